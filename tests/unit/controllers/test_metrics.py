"""The operator's per-object metric series follow the objects: replaced when they change, gone when deleted."""

from __future__ import annotations

from mlops_operator.controllers import metrics
from mlops_operator.planning.plan import Event
from prometheus_client import REGISTRY


def drift_series(namespace: str, name: str) -> dict[tuple[str, str], float]:
    """The drift gauge's samples of one Deployment, by (feature, method)."""
    found = {}
    for family in REGISTRY.collect():
        if family.name != "mlops_operator_drift_score":
            continue
        for sample in family.samples:
            if sample.labels["namespace"] == namespace and sample.labels["deployment"] == name:
                found[(sample.labels["feature"], sample.labels["method"])] = sample.value
    return found


def counted(metric: str, namespace: str, name: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"namespace": namespace, "deployment": name})


def test_features_no_longer_scored_lose_their_series() -> None:
    metrics.export_drift_scores("ns-a", "iris", "psi", {"petal": 0.3, "sepal": 0.1})
    metrics.export_drift_scores("ns-a", "iris", "psi", {"petal": 0.4})
    assert drift_series("ns-a", "iris") == {("petal", "psi"): 0.4}
    metrics.export_drift_scores("ns-a", "iris", "ks", {"petal": 0.2})
    assert drift_series("ns-a", "iris") == {("petal", "ks"): 0.2}


def test_a_deleted_deployment_leaves_no_series_behind() -> None:
    metrics.export_drift_scores("ns-b", "churn", "psi", {"tenure": 0.5})
    metrics.count_events([Event("DriftDetected", "tenure drifted", "Warning")], "ns-b", "churn")
    assert counted("mlops_operator_drift_detected_total", "ns-b", "churn") == 1.0
    metrics.export_drift_scores("ns-b", "other", "psi", {"tenure": 0.1})

    metrics.forget_object("ns-b", "churn")
    metrics.forget_object("ns-b", "never-seen")  # nothing recorded: not an error

    assert drift_series("ns-b", "churn") == {}
    assert counted("mlops_operator_drift_detected_total", "ns-b", "churn") is None
    assert drift_series("ns-b", "other") == {("tenure", "psi"): 0.1}


def test_a_canary_aborted_by_request_counts_as_a_rollback_and_a_promoted_step_as_a_step() -> None:
    before = REGISTRY.get_sample_value("mlops_operator_rollbacks_total") or 0.0
    steps = REGISTRY.get_sample_value("mlops_operator_canary_steps_total") or 0.0
    metrics.count_events([Event("AbortedByRequest", "canary of version 3 rolled back", "Warning")], "ns-c", "iris")
    metrics.count_events([Event("PromotedByRequest", "step 1 ended"), Event("CanaryStep", "at 50%")], "ns-c", "iris")
    assert REGISTRY.get_sample_value("mlops_operator_rollbacks_total") == before + 1
    assert REGISTRY.get_sample_value("mlops_operator_canary_steps_total") == steps + 1
