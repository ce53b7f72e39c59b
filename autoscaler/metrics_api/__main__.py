"""``python -m autoscaler.metrics_api``: the external metrics API alone (see :mod:`.runner`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from autoscaler.metrics_api.runner import RunnerOptions, serve


def parse_args(argv: Sequence[str] | None = None) -> RunnerOptions:
    d = RunnerOptions()
    p = argparse.ArgumentParser(
        prog="python -m autoscaler.metrics_api",
        description="Serve external.metrics.k8s.io/v1beta1 from a metrics snapshot cache.",
    )
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig (in-cluster when unset)")
    p.add_argument("--listen", default=d.listen, help="address to bind")
    p.add_argument("--port", type=int, default=d.port, help="HTTPS port")
    p.add_argument("--source", choices=("prometheus", "direct"), default=d.source)
    p.add_argument("--prometheus-url")
    p.add_argument("--metric-prefix", default=d.metric_prefix)
    p.add_argument("--refresh", type=float, default=d.refresh, help="seconds between reads")
    p.add_argument(
        "--max-snapshot-age", type=float, default=d.max_snapshot_age,
        help="older snapshots are served as 503",
    )  # fmt: skip
    p.add_argument(
        "--stale-after", type=float, default=d.stale_after, help="older samples are missing"
    )
    p.add_argument("--tls-cert-file", type=Path)
    p.add_argument("--tls-key-file", type=Path)
    p.add_argument(
        "--self-signed-host", action="append", dest="hosts",
        help="host name of the self-signed certificate (repeat); default localhost, 127.0.0.1",
    )  # fmt: skip
    p.add_argument("--cert-dir", type=Path, help="where to write a self-signed certificate")
    p.add_argument("--namespace", action="append", dest="namespaces", help="only these (repeat)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if (a.tls_cert_file is None) != (a.tls_key_file is None):
        p.error("--tls-cert-file and --tls-key-file go together")
    if a.source == "prometheus" and not a.prometheus_url:
        p.error("--source=prometheus needs --prometheus-url")
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return RunnerOptions(
        kubeconfig=a.kubeconfig,
        listen=a.listen,
        port=a.port,
        source=a.source,
        prometheus_url=a.prometheus_url,
        metric_prefix=a.metric_prefix,
        refresh=a.refresh,
        max_snapshot_age=a.max_snapshot_age,
        stale_after=a.stale_after,
        tls_cert_file=a.tls_cert_file,
        tls_key_file=a.tls_key_file,
        self_signed_hosts=tuple(a.hosts or d.self_signed_hosts),
        cert_dir=a.cert_dir,
        namespaces=tuple(a.namespaces or ()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
