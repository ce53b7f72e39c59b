"""``llm-autoscaler inspect-metrics``, run through ``autoscaler.cli.main`` as a user runs it:
files, stdin, a URL; vLLM, dcgm-exporter and both; --pod merging; errors."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoscaler.cli import main
from tests.unit.adapters import samples

KEYS = [
    "namespace",
    "pod",
    "model",
    "queue_depth",
    "running",
    "kv_cache_usage",
    "gpu_utilization",
    "gpus",
    "ttft_p95_seconds",
]
DCGM_NS, DCGM_POD = samples.DCGM_POD


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["inspect-metrics", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else out), err


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "metrics.txt"
    path.write_text(text)
    return str(path)


def test_vllm_file_without_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, write(tmp_path, samples.VLLM_V1))
    assert (code, err) == (0, "")
    assert out == {
        "pods": [
            {
                "namespace": None,
                "pod": None,
                "model": samples.MODEL,
                "queue_depth": 5.0,
                "running": 14.0,
                "kv_cache_usage": 0.375,
                "gpu_utilization": None,
                "gpus": [],
                "ttft_p95_seconds": pytest.approx(0.875),
            }
        ],
        "unattributed_gpus": [],
    }
    assert list(out["pods"][0]) == KEYS


def test_dcgm_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, write(tmp_path, samples.DCGM))
    assert code == 0
    [pod] = out["pods"]
    assert pod == {
        "namespace": DCGM_NS,
        "pod": DCGM_POD,
        "model": None,
        "queue_depth": None,
        "running": None,
        "kv_cache_usage": None,
        "gpu_utilization": 80.0,
        "gpus": [0, 1],
        "ttft_p95_seconds": None,
    }
    assert out["unattributed_gpus"] == [
        {
            "hostname": "gpu-node-1",
            "gpu": 2,
            "uuid": "GPU-2b2c3d4e-0000-1111-2222-333344445552",
            "gpu_utilization": 0.0,
        }
    ]


def test_both_without_pod_stay_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, write(tmp_path, samples.VLLM_V1 + samples.DCGM))
    assert code == 0
    assert [(p["namespace"], p["pod"], p["model"]) for p in out["pods"]] == [
        (None, None, samples.MODEL),
        (DCGM_NS, DCGM_POD, None),
    ]


def test_both_with_matching_pod_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, samples.DCGM + samples.VLLM_V1)
    code, out, _ = run(capsys, path, "--pod", f"{DCGM_NS}/{DCGM_POD}")
    assert code == 0
    [pod] = out["pods"]
    assert (pod["namespace"], pod["pod"], pod["model"]) == (DCGM_NS, DCGM_POD, samples.MODEL)
    assert (pod["queue_depth"], pod["gpu_utilization"], pod["gpus"]) == (5.0, 80.0, [0, 1])


def test_pod_not_holding_gpus_is_its_own_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, write(tmp_path, samples.VLLM_V0 + samples.DCGM), "--pod", "llm/other"
    )
    assert code == 0
    assert [(p["pod"], p["model"], p["gpus"]) for p in out["pods"]] == [
        (DCGM_POD, None, [0, 1]),
        ("other", "Qwen/Qwen2.5-1.5B-Instruct", []),
    ]
    assert out["pods"][1]["kv_cache_usage"] == 0.0125
    assert out["pods"][1]["ttft_p95_seconds"] is None


def test_stdin_and_prefix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = samples.vllm_v1("kserve_vllm:")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, _ = run(capsys, "-", "--prefix", "kserve_vllm:", "--pod", "ns/p")
    assert code == 0
    assert [(p["pod"], p["queue_depth"]) for p in out["pods"]] == [("p", 5.0)]


def test_unknown_metrics_only_give_no_pods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, write(tmp_path, "# TYPE up gauge\nup 1\nprocess_cpu_seconds_total 3\n")
    )
    assert (code, out) == (0, {"pods": [], "unattributed_gpus": []})


@pytest.fixture
def http_url() -> Iterator[str]:
    """A stdlib HTTP server in a thread (the command's client is synchronous)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = samples.VLLM_V0.encode() if self.path == "/metrics" else b"nope"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_url(http_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, f"{http_url}/metrics", "--pod", "llm/qwen-0")
    assert code == 0
    assert [(p["namespace"], p["pod"], p["running"]) for p in out["pods"]] == [
        ("llm", "qwen-0", 1.0)
    ]


def test_url_http_error(http_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, f"{http_url}/missing")
    assert (code, out) == (1, "")
    assert (
        err
        == f"llm-autoscaler inspect-metrics: cannot read {http_url}/missing: HTTP 404 Not Found\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("<html>\n", "line 1: invalid metric name", id="html"),
        pytest.param(samples.VLLM_V0 + 'x{a="1} 2\n', "line 43: invalid label set", id="bad-line"),
    ],
)
def test_unparseable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write(tmp_path, text)
    code, out, err = run(capsys, path)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"llm-autoscaler inspect-metrics: {path}: not a valid exposition: {message}"
    )
    assert err.count("\n") == 1


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "absent"))
    assert code == 1
    assert err.startswith("llm-autoscaler inspect-metrics: cannot read ")
    assert "No such file" in err
    assert err.count("\n") == 1


def test_bad_pod_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect-metrics", "-", "--pod", "no-slash"])
    assert exc.value.code == 2
    assert "expected NAMESPACE/POD" in capsys.readouterr().err


def test_listed_in_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    assert "inspect-metrics" in capsys.readouterr().out
