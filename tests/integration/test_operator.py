"""`mlops-operator run` against the real cluster: health, first status, and no writes after a restart."""

from __future__ import annotations

import time

import httpx

from .conftest import REPO, Kube, OperatorProcess, condition, wait_for


def _healthz_ok(op: OperatorProcess) -> bool:
    try:
        return httpx.get(op.healthz, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _example_deployment(namespace: str) -> str:
    """The example Deployment, for a registered model that has no versions (unique per test)."""
    text = (REPO / "examples" / "iris" / "deployment.yaml").read_text()
    return text.replace("registeredModel: iris-classifier", f"registeredModel: nothing-{namespace}")


def test_deployment_without_a_version_to_serve_says_so(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube = crds_installed
    kube.apply(_example_deployment(namespace), namespace)
    obj = wait_for(
        "the Deployment's Ready condition",
        lambda: (o := kube.json("get", "mldeploy/iris", "-n", namespace)) and condition(o, "Ready") and o,
        timeout=30,
    )
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "WaitingForVersion"
    assert "none holds alias 'production'" in ready["message"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert operator_process.running() and _healthz_ok(operator_process)


def test_restart_writes_nothing_new(crds_installed: Kube, namespace: str, operator_process: OperatorProcess) -> None:
    kube = crds_installed
    kube.apply(_example_deployment(namespace), namespace)
    # A Dataset whose source does not exist settles as Invalid; a TrainingRun on it waits.
    kube.apply(
        "apiVersion: mlops.dev/v1alpha1\nkind: Dataset\nmetadata: {name: gone}\n"
        "spec: {source: {uri: 'file:///nonexistent/data.csv'}, target: label}\n"
        "---\napiVersion: mlops.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: waits}\n"
        "spec: {datasetRef: {name: gone}, estimator: sklearn.linear_model.Ridge, registeredModel: m}\n",
        namespace,
    )
    refs = ("mldeploy/iris", "datasets.mlops.dev/gone", "trainingrun/waits")
    wait_for(
        "the Dataset to settle as Invalid",
        lambda: (
            kube.json("get", "datasets.mlops.dev/gone", "-n", namespace).get("status", {}).get("phase") == "Invalid"
        ),
        timeout=120,
    )
    time.sleep(2)
    before = {ref: kube.json("get", ref, "-n", namespace)["metadata"]["resourceVersion"] for ref in refs}
    operator_process.stop()
    operator_process.start()
    wait_for("the restarted operator's liveness endpoint", lambda: _healthz_ok(operator_process), timeout=30)
    time.sleep(3)  # resume passes run right after startup; give them time to (not) write
    after = {ref: kube.json("get", ref, "-n", namespace)["metadata"]["resourceVersion"] for ref in refs}
    assert after == before, "a restarted operator rewrote unchanged objects"
