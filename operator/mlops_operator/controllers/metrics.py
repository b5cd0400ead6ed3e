"""The operator's own Prometheus metrics, served on `--metrics-port` (the chart's metrics Service)."""

from __future__ import annotations

import contextlib
import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ..planning.plan import Event

log = logging.getLogger("mlops.metrics")

RECONCILES = Counter("mlops_operator_reconciles_total", "Reconcile passes, by kind.", ["kind"])
RECONCILES_COALESCED = Counter(
    "mlops_operator_reconciles_coalesced_total",
    "Reconcile requests folded into a pass already waiting for the same object, by kind.",
    ["kind"],
)
RECONCILE_ERRORS = Counter(
    "mlops_operator_reconcile_errors_total", "Reconcile passes that failed and were retried, by kind.", ["kind"]
)
RECONCILE_SECONDS = Histogram(
    "mlops_operator_reconcile_duration_seconds",
    "Time of one reconcile pass (reads, planning, writes), by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STORE_RELISTS = Counter(
    "mlops_operator_store_relists_total",
    "Relists of the store after kopf relisted a watch (410 Gone), by kind.",
    ["kind"],
)
JOBS_LAUNCHED = Counter("mlops_operator_jobs_launched_total", "Worker Jobs created, by owner kind.", ["kind"])
PROMOTIONS = Counter("mlops_operator_promotions_total", "MLflow alias moves made by the operator.", ["via"])
CANARY_STEPS = Counter("mlops_operator_canary_steps_total", "Canary steps entered (including the first).")
ROLLBACKS = Counter("mlops_operator_rollbacks_total", "Canaries aborted by analysis and rolled back.")
DRIFT_SCORE = Gauge(
    "mlops_operator_drift_score",
    "Latest drift score of each feature of a Deployment's serving version.",
    ["namespace", "deployment", "feature", "method"],
)
DRIFT_DETECTED = Counter(
    "mlops_operator_drift_detected_total", "DriftDetected conditions turned True.", ["namespace", "deployment"]
)
RETRAINING_TRIGGERS = Counter(
    "mlops_operator_retraining_triggers_total", "TrainingRuns created because of drift.", ["namespace", "deployment"]
)

_BY_REASON = {
    "CanaryStarted": CANARY_STEPS,
    "CanaryStep": CANARY_STEPS,
    "RolledBack": ROLLBACKS,
    "AbortedByRequest": ROLLBACKS,  # a canary rolled back by hand is a rollback too (kubectl mlops abort)
}
_BY_REASON_PER_OBJECT = {"DriftDetected": DRIFT_DETECTED, "RetrainingTriggered": RETRAINING_TRIGGERS}


def count_events(events: list[Event], namespace: str = "", name: str = "") -> None:
    """Count the transitions a plan announced about the object `namespace/name`."""
    for event in events:
        counter = _BY_REASON.get(event.reason)
        if counter is not None:
            counter.inc()
        per_object = _BY_REASON_PER_OBJECT.get(event.reason)
        if per_object is not None:
            per_object.labels(namespace, name).inc()


_drift_series: dict[tuple[str, str], set[tuple[str, str]]] = {}


def export_drift_scores(namespace: str, name: str, method: str, scores: dict[str, float]) -> None:
    """Set the drift gauge of each scored feature; features (or a method) no longer scored lose their series."""
    wanted = {(feature, method) for feature in scores}
    for feature, old_method in _drift_series.get((namespace, name), set()) - wanted:
        DRIFT_SCORE.remove(namespace, name, feature, old_method)
    for feature, score in scores.items():
        DRIFT_SCORE.labels(namespace, name, feature, method).set(score)
    if wanted:
        _drift_series[(namespace, name)] = wanted
    else:
        _drift_series.pop((namespace, name), None)


def forget_object(namespace: str, name: str) -> None:
    """Drop a deleted Deployment's per-object series, so churned names do not grow /metrics for ever."""
    export_drift_scores(namespace, name, "", {})
    for counter in _BY_REASON_PER_OBJECT.values():
        with contextlib.suppress(KeyError):  # never counted
            counter.remove(namespace, name)


def serve(port: int) -> None:
    """Serve /metrics on all interfaces; a port already taken is logged, not fatal (metrics are optional)."""
    if port <= 0:
        return
    try:
        start_http_server(port)
    except OSError as error:
        log.warning("operator metrics are off: cannot listen on port %d: %s", port, error)


LEADER = Gauge(
    "mlops_operator_leader",
    "1 while this replica holds the leader Lease and acts (also when leader election is off), else 0.",
)
LEADER_TRANSITIONS = Counter(
    "mlops_operator_leader_transitions_total",
    "Times this replica started or stopped leading.",
    ["transition"],
)
