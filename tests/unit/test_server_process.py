"""The real `mlops-server` process with two workers, over HTTP on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .test_server_app import sample
from .test_server_registry import IRIS_COLUMNS, Registry, free_port, registry

__all__ = ["registry"]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "mlops-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlops_operator.server.cli"]


def test_server_process_two_workers(registry: Registry, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLOPS_TRACK": "stable",
        "MLOPS_DEPLOYMENT": "iris",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    args = ["--model-uri", "models:/iris-classifier@production", "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([*_command(), *args, "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = 0
        while ready < 6 and time.monotonic() < deadline:  # both workers: new connections land on either
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                ok = httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
                ready = ready + 1 if ok else 0
            except httpx.HTTPError:
                ready = 0
            time.sleep(0.2)
        assert ready >= 6, (tmp_path / "server.log").read_text()
        rows = registry.iris_x.iloc[:3].to_numpy().tolist()
        for _ in range(10):  # a fresh connection each time, spread over both workers
            response = httpx.post(f"{base}/invocations", json={"instances": rows}, timeout=5)
            assert response.status_code == 200
            assert response.json()["predictions"] == registry.iris_model.predict(registry.iris_x.iloc[:3]).tolist()
        infer = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in IRIS_COLUMNS]}
        assert httpx.post(f"{base}/v2/models/iris-classifier/infer", json=infer, timeout=5).status_code == 200
        assert httpx.post(f"{base}/invocations", content=b"nope", timeout=5).status_code == 400
        labels = {"model": "iris-classifier", "version": "1", "track": "stable", "deployment": "iris"}
        deadline = time.monotonic() + 10
        while True:  # each worker flushes its counts every second; the scrape merges both workers' files
            text = httpx.get(f"{base}/metrics", timeout=5).text
            if sample(text, "mlops_server_rows_total", **labels) == 31 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert sample(text, "mlops_server_rows_total", **labels) == 31
        assert sample(text, "mlops_server_requests_total", **labels, outcome="success") == 11
        assert sample(text, "mlops_server_requests_total", **labels, outcome="client_error") == 1
        assert len(list((tmp_path / "metrics").glob("*.db"))) >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_cli_refuses_a_missing_model_uri() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_MODEL_URI"}
    result = subprocess.run([*_command(), "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--model-uri" in result.stderr
