"""`cluster up|status` on the running local cluster (skipped nowhere: it is the session's cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mlops_operator.localcluster import cluster

from .conftest import REPO, Kube


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_operator", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_reports_every_component_healthy(kube: Kube) -> None:
    if os.environ.get("MLOPS_TEST_USE_KUBECONFIG") == "1":
        raise AssertionError("this test needs the local cluster; unset MLOPS_TEST_USE_KUBECONFIG")
    result = _cli("status", "--state-dir", str(kube.kubeconfig.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent"):
        assert f"{component}" in result.stdout and "unhealthy" not in result.stdout


def test_second_up_reuses_the_healthy_cluster(kube: Kube) -> None:
    started = time.monotonic()
    result = _cli("up", "--state-dir", str(kube.kubeconfig.parent))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("reused") == len(cluster.COMPONENTS), result.stdout
    assert elapsed < 15, f"reusing a healthy cluster took {elapsed:.1f}s"


def test_server_reports_the_pinned_version(kube: Kube) -> None:
    version = kube.json("version")["serverVersion"]
    pinned = next(
        line.split("=", 1)[1]
        for line in (REPO / "hack" / "versions.env").read_text().splitlines()
        if line.startswith("K8S_VERSION=")
    )
    assert version["gitVersion"] == pinned


def test_node_is_ready_with_capacity_and_lease(kube: Kube) -> None:
    node = kube.json("get", "node", "mlops-node")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert int(node["status"]["capacity"]["cpu"]) == os.cpu_count()
    assert not [t for t in node["spec"].get("taints", []) if "not-ready" in t["key"]]
    lease = kube.json("get", "lease", "mlops-node", "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "mlops-node"
