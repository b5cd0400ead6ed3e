"""`mlops-operator run` against the real cluster: it acknowledges every kind and writes status once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import REPO, Kube, wait_for

KINDS = ("dataset/iris", "trainingrun/iris-train", "modelversion/iris-classifier-external-1", "mldeploy/iris")
HEALTHZ = "http://127.0.0.1:18080/healthz"


def _start_operator(kube: Kube, namespace: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "mlops_operator", "run", "--namespace", namespace, "--liveness", HEALTHZ]
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def _healthz_ok() -> bool:
    try:
        return httpx.get(HEALTHZ, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def operator(crds_installed: Kube, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = _start_operator(crds_installed, namespace)
    yield proc
    if proc.poll() is None:
        _stop(proc)


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
    _stop(operator)
    again = _start_operator(crds_installed, namespace)
    try:
        wait_for("the restarted operator to serve its liveness endpoint", _healthz_ok, timeout=30)
        time.sleep(3)  # the resume handlers run right after startup; give them time to (not) write
        after = crds_installed.json("get", "dataset/iris", "-n", namespace)["metadata"]["resourceVersion"]
        assert after == before, "a restarted operator rewrote an unchanged object"
    finally:
        _stop(again)
