"""`mlops-operator run` against the real cluster: health, first status, and no writes after a restart."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
from mlops_operator.localcluster.audit import AuditLog, per_object_reads, writes
from mlops_operator.localcluster.config import ClusterConfig

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


def _settled_objects(namespace: str) -> str:
    """Two each of a Deployment, a ModelVersion and a TrainingRun that can only wait (no version, no Dataset)."""
    model = f"nothing-{namespace}"
    docs = []
    for i in range(2):
        docs += [
            _example_deployment(namespace).replace("name: iris\n", f"name: iris-{i}\n", 1),
            f"apiVersion: mlops.dev/v1alpha1\nkind: ModelVersion\nmetadata: {{name: {model}-{i + 1}}}\n"
            f"spec: {{registeredModel: {model}, version: {i + 1}, promotion: {{mode: manual}}}}\n",
            f"apiVersion: mlops.dev/v1alpha1\nkind: TrainingRun\nmetadata: {{name: waits-{i}}}\n"
            f"spec: {{datasetRef: {{name: absent}}, estimator: sklearn.linear_model.Ridge,"
            f" registeredModel: {model}}}\n",
        ]
    return "\n---\n".join(docs)


def _quiet(audit: AuditLog, namespace: str, seconds: float = 5.0, timeout: float = 90.0) -> Counter[tuple[str, str]]:
    """The namespace's audited requests once none came for `seconds` (the leader Lease's renewals aside: they
    are the operator's, not any object's)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        counts = Counter({k: n for k, n in audit.since_mark(namespace).items() if k[1] != "leases"})
        if counts != last:
            last, since = counts, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"the operator kept making requests for {timeout:.0f} s: {last}")


def _passes(op: OperatorProcess) -> float:
    """Reconcile passes of the three kinds so far (0 until the operator serves its metrics)."""
    try:
        return sum(
            op.metric("mlops_operator_reconciles_total", kind=k) for k in ("Deployment", "ModelVersion", "TrainingRun")
        )
    except httpx.HTTPError:
        return 0.0


def test_a_settled_object_costs_two_requests_and_a_restart_over_them_none(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube = crds_installed
    assert kube.state_dir is not None, "this test counts requests in the local cluster's audit log"
    cfg = ClusterConfig.from_env(kube.state_dir)
    audit = AuditLog(cfg.audit_log)
    kube.apply(_settled_objects(namespace), namespace)
    kinds = ("deployments.mlops.dev", "modelversions.mlops.dev", "trainingruns.mlops.dev")

    def acknowledged() -> bool:
        items = [o for kind in kinds for o in kube.json("get", kind, "-n", namespace)["items"]]
        return len(items) == 6 and all((o.get("status") or {}).get("observedGeneration") for o in items)

    audit.mark()
    op = OperatorProcess(
        kube, namespace, tmp_path / "operator.log", extra_env={"KUBECONFIG": str(cfg.audited_kubeconfig)}
    )
    op.start()
    try:
        wait_for("every object's first status", acknowledged, timeout=60)
        first = _quiet(audit, namespace)
        # Nothing is read one by one: the children are created straight away (a name someone else holds would be
        # found by its create, and what the set had created deleted again).
        children = {("deployments", 4), ("services", 2), ("poddisruptionbudgets", 4)}
        assert per_object_reads(first) == {}, f"single objects read: {per_object_reads(first)}"
        assert writes(first) == {
            ("patch", "deployments/status"): 2,
            ("patch", "modelversions/status"): 2,
            ("patch", "trainingruns/status"): 2,
            ("create", "events"): 6,
            **{("create", resource): n for resource, n in children},
        }, "one status write and one Event per object, and a Deployment's Service, two tracks and their budgets"

        op.stop()
        audit.mark()
        op.start()
        wait_for("every object's pass after the restart", lambda: _passes(op) >= 6, timeout=60)
        after = _quiet(audit, namespace)
        assert writes(after) == {} and per_object_reads(after) == {}, f"a restart over settled objects asked {after}"
    finally:
        op.stop()
        print(f"--- operator log (tail) ---\n{op.log_tail()}")
