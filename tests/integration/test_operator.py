"""`mlops-operator run` against the real cluster: it acknowledges every kind and writes status once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from .conftest import REPO, Kube, wait_for

KINDS = ("dataset/iris", "trainingrun/iris-train", "modelversion/iris-classifier-external-1", "mldeploy/iris")


@pytest.fixture
def operator(crds_installed: Kube, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "KUBECONFIG": str(crds_installed.kubeconfig)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_operator",
            "run",
            "--namespace",
            namespace,
            "--liveness",
            "http://127.0.0.1:18080/healthz",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def _ready_condition(kube: Kube, namespace: str, ref: str) -> dict | None:
    obj = kube.json("get", ref, "-n", namespace)
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)


def test_operator_acknowledges_every_kind(
    crds_installed: Kube, namespace: str, operator: subprocess.Popen[bytes]
) -> None:
    crds_installed.run("apply", "-n", namespace, "-f", str(REPO / "examples" / "iris"))
    for ref in KINDS:
        cond = wait_for(
            f"{ref} Ready condition", lambda r=ref: _ready_condition(crds_installed, namespace, r), timeout=30
        )
        assert cond["status"] == "Unknown" and cond["reason"] == "AwaitingController"
        obj = crds_installed.json("get", ref, "-n", namespace)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        assert "mlops.dev/last-handled-configuration" in obj["metadata"]["annotations"]
    assert operator.poll() is None, "the operator exited"


def test_restart_writes_nothing_new(crds_installed: Kube, namespace: str, operator: subprocess.Popen[bytes]) -> None:
    crds_installed.run("apply", "-n", namespace, "-f", str(REPO / "examples" / "iris" / "dataset.yaml"))
    wait_for("Dataset status", lambda: _ready_condition(crds_installed, namespace, "dataset/iris"), timeout=30)
    before = crds_installed.json("get", "dataset/iris", "-n", namespace)["metadata"]["resourceVersion"]
    operator.terminate()
    operator.wait(timeout=30)
    env = {**os.environ, "KUBECONFIG": str(crds_installed.kubeconfig)}
    again = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_operator",
            "run",
            "--namespace",
            namespace,
            "--liveness",
            "http://127.0.0.1:18080/healthz",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the restarted operator to resume", lambda: _healthz_ok(), timeout=30)
        import time

        time.sleep(3)
        after = crds_installed.json("get", "dataset/iris", "-n", namespace)["metadata"]["resourceVersion"]
        assert after == before, "a restarted operator rewrote an unchanged object"
    finally:
        again.terminate()
        again.wait(timeout=30)


def _healthz_ok() -> bool:
    import httpx

    try:
        return httpx.get("http://127.0.0.1:18080/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
