"""The ``llm-autoscaler`` command line: a thin dispatcher to one module per sub-command.

Each module in :mod:`autoscaler.commands` defines ``HELP`` (one line), ``configure(parser)``
and ``run(args) -> int``. Modules are imported only when their command runs, so
``llm-autoscaler --help`` stays fast and one command's heavy imports never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# command name -> module under autoscaler.commands
COMMANDS: dict[str, str] = {
    "stack": "stack",
    "loadgen": "loadgen",
    "render": "render",
    "demo": "demo",
    "inspect-metrics": "inspect_metrics",
    "simulate": "simulate",
    "run": "run",
    "explain": "explain",
}


def _top_help() -> str:
    lines = ["usage: llm-autoscaler COMMAND [options]", "", "commands:"]
    for name, mod in COMMANDS.items():
        module = importlib.import_module(f"autoscaler.commands.{mod}")
        lines.append(f"  {name:<18}{module.HELP}")
    lines += ["", "Run 'llm-autoscaler COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"llm-autoscaler: unknown command {name!r}\n\n{_top_help()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"autoscaler.commands.{COMMANDS[name]}")
    parser = argparse.ArgumentParser(prog=f"llm-autoscaler {name}", description=module.HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.configure(parser)
    ns = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(ns) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
