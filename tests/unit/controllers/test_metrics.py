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


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_deployment_status_becomes_gauges_and_leaves_with_the_object() -> None:
    canary = {
        "phase": "Progressing",
        "canaryVersion": 2,
        "canaryWeight": 50,
        "stepStartedAt": "2026-12-01T10:00:00Z",
        "rollbacks": [{"version": 1, "reason": "AnalysisFailed", "at": "2026-11-30T09:00:00Z"}],
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "Degraded", "status": "True"}],
    }
    metrics.export_deployment_status("ns-c", "iris", canary)
    ids = {"namespace": "ns-c", "deployment": "iris"}
    assert sample("mlops_operator_deployment_phase", **ids, phase="Progressing") == 1
    assert sample("mlops_operator_deployment_phase", **ids, phase="Healthy") == 0
    assert sample("mlops_operator_deployment_condition", **ids, type="Degraded") == 1
    assert sample("mlops_operator_deployment_condition", **ids, type="Ready") == 0
    assert sample("mlops_operator_canary_weight", **ids) == 50
    assert sample("mlops_operator_canary_step_started_timestamp_seconds", **ids) == 1796119200.0
    assert sample("mlops_operator_last_rollback_timestamp_seconds", **ids) == 1796029200.0

    # The canary done: no step start (a stale one would fire MLOpsRolloutStuck), weight 0, a dropped condition gone.
    metrics.export_deployment_status(
        "ns-c", "iris", {"phase": "Healthy", "conditions": [{"type": "Ready", "status": "True"}]}
    )
    assert sample("mlops_operator_deployment_phase", **ids, phase="Healthy") == 1
    assert sample("mlops_operator_deployment_phase", **ids, phase="Progressing") == 0
    assert sample("mlops_operator_canary_weight", **ids) == 0
    assert sample("mlops_operator_canary_step_started_timestamp_seconds", **ids) is None
    assert sample("mlops_operator_last_rollback_timestamp_seconds", **ids) is None
    assert sample("mlops_operator_deployment_condition", **ids, type="Degraded") is None

    metrics.forget_object("ns-c", "iris")
    for family in REGISTRY.collect():
        leftover = [s for s in family.samples if s.labels.get("namespace") == "ns-c" and s.labels.get("deployment")]
        assert leftover == [], family.name


def test_finished_runs_rejections_and_rollbacks_are_counted_from_zero() -> None:
    runs = "mlops_operator_trainingruns_finished_total"
    metrics.count_events([], "ns-d", "retrain-1", kind="TrainingRun", trigger="drift")
    # Born at 0 before the first failure, so increase() sees that failure.
    assert sample(runs, namespace="ns-d", outcome="failed", trigger="drift") == 0
    metrics.count_events(
        [Event("OOMKilled", "out of memory", "Warning")], "ns-d", "retrain-1", kind="TrainingRun", trigger="drift"
    )
    metrics.count_events([Event("Succeeded", "registered")], "ns-d", "mine", kind="TrainingRun")
    assert sample(runs, namespace="ns-d", outcome="failed", trigger="drift") == 1
    assert sample(runs, namespace="ns-d", outcome="succeeded", trigger="user") == 1

    metrics.count_events([], "ns-d", "m-3", kind="ModelVersion")
    assert sample("mlops_operator_modelversions_rejected_total", namespace="ns-d") == 0
    metrics.count_events([Event("Rejected", "accuracy 0.5 < min 0.9", "Warning")], "ns-d", "m-3", kind="ModelVersion")
    assert sample("mlops_operator_modelversions_rejected_total", namespace="ns-d") == 1

    metrics.count_events([], "ns-d", "iris", kind="Deployment")
    assert sample("mlops_operator_rollbacks_total", namespace="ns-d", deployment="iris") == 0
    metrics.count_events([Event("RolledBack", "error-rate", "Warning")], "ns-d", "iris", kind="Deployment")
    # The ModelVersion's own RolledBack Event is the same rollback, not a second one.
    metrics.count_events([Event("RolledBack", "by iris", "Warning")], "ns-d", "m-4", kind="ModelVersion")
    assert sample("mlops_operator_rollbacks_total", namespace="ns-d", deployment="iris") == 1
    assert sample("mlops_operator_rollbacks_total", namespace="ns-d", deployment="m-4") is None


def test_a_canary_aborted_by_request_counts_as_a_rollback_and_a_promoted_step_as_a_step() -> None:
    rollbacks = {"namespace": "ns-e", "deployment": "iris"}
    steps = REGISTRY.get_sample_value("mlops_operator_canary_steps_total") or 0.0
    metrics.count_events(
        [Event("AbortedByRequest", "canary of version 3 rolled back", "Warning")], "ns-e", "iris", kind="Deployment"
    )
    metrics.count_events(
        [Event("PromotedByRequest", "step 1 ended"), Event("CanaryStep", "at 50%")], "ns-e", "iris", kind="Deployment"
    )
    assert sample("mlops_operator_rollbacks_total", **rollbacks) == 1
    assert REGISTRY.get_sample_value("mlops_operator_canary_steps_total") == steps + 1
