"""Integration fixtures: the real local control plane, brought up once per session.

With KUBECONFIG set (and MLOPS_TEST_USE_KUBECONFIG=1) the suite uses that cluster instead.
A cluster that cannot be reached fails the tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        yield Kube(Path(os.environ["KUBECONFIG"]), bin_dir / "kubectl")
        return
    cfg = ClusterConfig.from_env(Path(os.environ.get("MLOPS_TEST_STATE_DIR", REPO / ".localcluster")))
    cluster.up(cfg)
    yield Kube(cfg.kubeconfig, bin_dir / "kubectl")


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
