"""Integration fixtures: the real local control plane, brought up once per session.

With KUBECONFIG set (and MLOPS_TEST_USE_KUBECONFIG=1) the suite uses that cluster instead.
A cluster that cannot be reached fails the tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlops_operator.localcluster import cluster
from mlops_operator.localcluster.binaries import ensure_binaries
from mlops_operator.localcluster.config import ClusterConfig

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Kube:
    """kubectl against the test cluster, with JSON helpers."""

    kubeconfig: Path
    kubectl_path: Path
    mlflow_url: str
    prometheus_url: str

    def run(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [str(self.kubectl_path), *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: str, namespace: str) -> None:
        self.run("apply", "-n", namespace, "-f", "-", input_text=manifest)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll until `check` returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    bin_dir = ensure_binaries()
    if os.environ.get("MLOPS_TEST_USE_KUBECONFIG") == "1":
        yield Kube(
            Path(os.environ["KUBECONFIG"]),
            bin_dir / "kubectl",
            os.environ["MLFLOW_TRACKING_URI"],
            os.environ["MLOPS_PROMETHEUS_URL"],
        )
        return
    cfg = ClusterConfig.from_env(Path(os.environ.get("MLOPS_TEST_STATE_DIR", REPO / ".localcluster")))
    cluster.up(cfg)
    yield Kube(cfg.kubeconfig, bin_dir / "kubectl", cfg.mlflow_url, cfg.prometheus_url)


@pytest.fixture(scope="session")
def crds_installed(kube: Kube) -> Kube:
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return kube


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    wait_for(
        "the default service account",
        lambda: kube.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
    )
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


class OperatorProcess:
    """`mlops-operator run` as a subprocess watching one namespace, logging to a file tests can show."""

    def __init__(self, kube: Kube, namespace: str, log_file: Path, port: int = 18080) -> None:
        self.kube, self.namespace, self.log_file, self.port = kube, namespace, log_file, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def healthz(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 10}/metrics"

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one operator metric sample (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.metrics_url, timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def start(self) -> OperatorProcess:
        argv = [
            sys.executable,
            "-m",
            "mlops_operator",
            "run",
            "--namespace",
            self.namespace,
            "--liveness",
            self.healthz,
            "--metrics-port",
            str(self.port + 10),
        ]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kube.kubeconfig),
            "MLFLOW_TRACKING_URI": self.kube.mlflow_url,
            "MLOPS_PROMETHEUS_URL": self.kube.prometheus_url,
        }
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, as in a node failure or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def operator_process(crds_installed: Kube, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(crds_installed, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()
    print(f"--- operator log (tail) ---\n{op.log_tail()}")


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    """A condition of an object's status, if present."""
    return next((c for c in obj.get("status", {}).get("conditions", []) or [] if c["type"] == ctype), None)
