"""The operator's own Prometheus metrics, served on `--metrics-port` (the chart's metrics Service)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, get_args

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ..api.deployment import DeploymentPhase
from ..planning.plan import Event, parse_time

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
# controller-runtime's workqueue_queue_duration_seconds: a reaction's time before its pass starts (the object's
# own pass under way, then a free slot), apart from the pass itself.
QUEUE_SECONDS = Histogram(
    "mlops_operator_queue_duration_seconds",
    "Time from the request for a pass to its start, by kind and queue (event: a watch event asked; timer).",
    ["kind", "queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
STORE_RELISTS = Counter(
    "mlops_operator_store_relists_total",
    "Relists of the store after a watch expired (410 Gone), by kind.",
    ["kind"],
)
WATCH_RESTARTS = Counter(
    "mlops_operator_watch_restarts_total",
    "Watches of children started again after an error (not after the server's timeout), by kind.",
    ["kind"],
)
JOBS_LAUNCHED = Counter("mlops_operator_jobs_launched_total", "Worker Jobs created, by owner kind.", ["kind"])
PROMOTIONS = Counter("mlops_operator_promotions_total", "MLflow alias moves made by the operator.", ["via"])
CANARY_STEPS = Counter("mlops_operator_canary_steps_total", "Canary steps entered (including the first).")
ROLLBACKS = Counter(
    "mlops_operator_rollbacks_total", "Canaries aborted and rolled back, by Deployment.", ["namespace", "deployment"]
)
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

# Counted per namespace (not per object: runs and versions are many) and by the run's trigger label
# (drift, performance, schedule, newData; "user" for a run a person created), so alerts can single out retraining.
TRAINING_RUNS_FINISHED = Counter(
    "mlops_operator_trainingruns_finished_total",
    "TrainingRuns that reached Succeeded or Failed, by namespace, outcome and trigger.",
    ["namespace", "outcome", "trigger"],
)
MODEL_VERSIONS_REJECTED = Counter(
    "mlops_operator_modelversions_rejected_total", "ModelVersions rejected by their gates, by namespace.", ["namespace"]
)
# Gauges read from each Deployment's status after every pass: status is the operator's memory, so these are
# right again after a restart (counters start from zero), and alerts on them need no increase() over a reset.
DEPLOYMENT_PHASE = Gauge(
    "mlops_operator_deployment_phase",
    "1 for the Deployment's current status.phase, 0 for the others.",
    ["namespace", "deployment", "phase"],
)
DEPLOYMENT_CONDITION = Gauge(
    "mlops_operator_deployment_condition",
    "1 while the Deployment's condition of this type is True, else 0.",
    ["namespace", "deployment", "type"],
)
CANARY_WEIGHT = Gauge(
    "mlops_operator_canary_weight",
    "Percent of replicas on the canary track (0: no canary).",
    ["namespace", "deployment"],
)
STEP_STARTED = Gauge(
    "mlops_operator_canary_step_started_timestamp_seconds",
    "When the current canary (or shadow) step started; present only while a candidate is rolled out.",
    ["namespace", "deployment"],
)
LAST_ROLLBACK = Gauge(
    "mlops_operator_last_rollback_timestamp_seconds",
    "When the Deployment's newest rollback (status.rollbacks) happened.",
    ["namespace", "deployment"],
)
PHASES: tuple[str, ...] = get_args(DeploymentPhase)
# The TrainingRun planner's terminal Event reasons, as the outcome label.
FINISHED_REASONS = {
    "Succeeded": "succeeded",
    "TrainingFailed": "failed",
    "DeadlineExceeded": "failed",
    "OOMKilled": "failed",
}
TRIGGER_USER = "user"

_BY_REASON = {"CanaryStarted": CANARY_STEPS, "CanaryStep": CANARY_STEPS}
_BY_REASON_PER_OBJECT = {"DriftDetected": DRIFT_DETECTED, "RetrainingTriggered": RETRAINING_TRIGGERS}
_PER_DEPLOYMENT = (ROLLBACKS, DRIFT_DETECTED, RETRAINING_TRIGGERS)


def count_events(
    events: list[Event], namespace: str = "", name: str = "", kind: str = "Deployment", trigger: str = ""
) -> None:
    """Count the transitions a plan announced about the `kind` object `namespace/name`.

    Every pass also creates the object's namespace-level series at 0 (`trigger`: the run's
    mlops.dev/triggered-by label): Prometheus' increase() cannot see a counter's first value, so a
    series born at 1 with the first failure would never fire an alert on it.
    """
    if kind == "TrainingRun":
        for outcome in ("succeeded", "failed"):
            TRAINING_RUNS_FINISHED.labels(namespace, outcome, trigger or TRIGGER_USER)
    elif kind == "ModelVersion":
        MODEL_VERSIONS_REJECTED.labels(namespace)
    elif kind == "Deployment":
        ROLLBACKS.labels(namespace, name)
    for event in events:
        if kind == "TrainingRun" and event.reason in FINISHED_REASONS:
            TRAINING_RUNS_FINISHED.labels(namespace, FINISHED_REASONS[event.reason], trigger or TRIGGER_USER).inc()
        elif kind == "ModelVersion" and event.reason == "Rejected":
            MODEL_VERSIONS_REJECTED.labels(namespace).inc()
        # The ModelVersion's echo is not a second one; a canary aborted by hand (kubectl mlops abort) is one.
        elif kind == "Deployment" and event.reason in ("RolledBack", "AbortedByRequest"):
            ROLLBACKS.labels(namespace, name).inc()
        counter = _BY_REASON.get(event.reason)
        if counter is not None:
            counter.inc()
        per_object = _BY_REASON_PER_OBJECT.get(event.reason)
        if per_object is not None:
            per_object.labels(namespace, name).inc()


_condition_types: dict[tuple[str, str], set[str]] = {}


def export_deployment_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """Set the Deployment's status gauges (phase, conditions, canary weight, step start, last rollback)."""
    phase = status.get("phase")
    for each in PHASES:
        DEPLOYMENT_PHASE.labels(namespace, name, each).set(1 if each == phase else 0)
    types = {c["type"]: c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type")}
    for gone in _condition_types.get((namespace, name), set()) - types.keys():
        DEPLOYMENT_CONDITION.remove(namespace, name, gone)
    for ctype, true in types.items():
        DEPLOYMENT_CONDITION.labels(namespace, name, ctype).set(1 if true else 0)
    _condition_types[(namespace, name)] = set(types)
    CANARY_WEIGHT.labels(namespace, name).set(status.get("canaryWeight") or 0)
    started = parse_time(status.get("stepStartedAt")) if status.get("canaryVersion") is not None else None
    _set_or_remove(STEP_STARTED, namespace, name, started.timestamp() if started else None)
    rollbacks = status.get("rollbacks") or []
    last = parse_time(rollbacks[-1].get("at")) if rollbacks else None
    _set_or_remove(LAST_ROLLBACK, namespace, name, last.timestamp() if last else None)


def _set_or_remove(gauge: Gauge, namespace: str, name: str, value: float | None) -> None:
    if value is not None:
        gauge.labels(namespace, name).set(value)
    else:
        with contextlib.suppress(KeyError):  # never set
            gauge.remove(namespace, name)


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
    for counter in _PER_DEPLOYMENT:
        with contextlib.suppress(KeyError):  # never counted
            counter.remove(namespace, name)
    for phase in PHASES:
        with contextlib.suppress(KeyError):
            DEPLOYMENT_PHASE.remove(namespace, name, phase)
    for ctype in _condition_types.pop((namespace, name), set()):
        DEPLOYMENT_CONDITION.remove(namespace, name, ctype)
    for gauge in (CANARY_WEIGHT, STEP_STARTED, LAST_ROLLBACK):
        _set_or_remove(gauge, namespace, name, None)


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
