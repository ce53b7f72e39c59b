"""``llm-autoscaler stack up|status|down`` as a user runs it: a second, separate stack."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _procs_mentioning(text: str) -> list[str]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                out.append(f"{d.name}: {cmd[:120]}")
    return out


def test_stack_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / "st"
    up = cli(
        "stack",
        "up",
        "--state-dir",
        str(state_dir),
        "--pod-net",
        str(int(os.environ.get("LLM_AUTOSCALER_TEST_POD_NET", "3")) + 1),
        "--nodes",
        "1",
    )
    assert up.returncode == 0, up.stderr
    assert f"kubeconfig:  {state_dir / 'admin.kubeconfig'}" in up.stdout
    state = json.loads((state_dir / "state.json").read_text())

    st = cli("stack", "status", "--state-dir", str(state_dir))
    assert st.returncode == 0, st.stdout
    assert state["prometheus_url"] in st.stdout
    assert "NOT RUNNING" not in st.stdout
    assert _procs_mentioning(str(state_dir))  # the components really run

    again = cli("stack", "up", "--state-dir", str(state_dir))
    assert again.returncode == 1
    assert "already running" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    down = cli("stack", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    assert _procs_mentioning(str(state_dir)) == []
    assert [p for p in state["ports"].values() if _listening(p)] == []
    assert all(not _pid_alive(pid) for pid in state["pids"].values())
    assert cli("stack", "status", "--state-dir", str(state_dir)).returncode == 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
