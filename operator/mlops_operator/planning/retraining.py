"""Retraining planning: whether to start a TrainingRun, what it is, and how the last one went.

Why did this TrainingRun appear? `plan_retraining` is the one function that decides it: a cause
(`due_causes`: DriftDetected or PerformanceDegraded on the serving version, a scheduled fire, a new
Dataset version — planning/triggers.py), retraining enabled with that trigger, the cooldown passed and
nothing in flight. Causes that coincide make one run that names them all.

Exactly one run per cooldown: the decision (run name, time, causes, evidence) is written to the
Deployment's status with the read resourceVersion as precondition *before* the TrainingRun is created,
and the name derives from the decision time. A second operator replica loses the status write (409); a
restarted operator finds the decision in status and creates the same run by name, never another.
"""

from __future__ import annotations

import copy
from datetime import datetime

from pydantic import ValidationError

from .. import contract
from ..api.common import API_VERSION, parse_duration
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.retraining import Retraining, RetrainingStatus
from ..api.trainingrun import TrainingRunSpec
from .monitoring import drift_detected, drift_of
from .observed import DeploymentObserved, RetrainingObserved, WatchedDataset
from .performance import degraded, performance_of
from .plan import Event, Meta, Obj, Plan, dns_name, parse_time, rfc3339
from .trainingrun import label_value
from .triggers import new_dataset_version, schedule_state, scheduled_fire, track_schedule, without_schedule_note

FINAL_VERSION_PHASES = ("Promoted", "Rejected", "RolledBack", "Superseded")


def retraining_of(spec: DeploymentSpec) -> Retraining | None:
    """spec.retraining when enabled (defaults from the API model); None when retraining is off."""
    return spec.retraining if spec.retraining is not None and spec.retraining.enabled else None


def run_name(deployment: str, decided: datetime) -> str:
    """The deterministic name of the run decided at `decided`."""
    return dns_name(deployment, "retrain", decided.strftime("%Y%m%d-%H%M%S"))


def in_cooldown(status: DeploymentStatus, cooldown: str, now: datetime) -> bool:
    """True while the last decision is younger than the cooldown."""
    decided = parse_time(status.last_retraining_at)
    return decided is not None and (now - decided).total_seconds() < parse_duration(cooldown).total_seconds()


def due_causes(
    spec: DeploymentSpec, status: DeploymentStatus, now: datetime, data: WatchedDataset | None = None
) -> list[str]:
    """Every enabled cause that holds now, in this order: "drift", "performance", "schedule", "newData"."""
    retraining = retraining_of(spec)
    if retraining is None or status.stable_version is None:
        return []
    causes = []
    drift_version = status.drift.version if status.drift else None
    if retraining.triggers.drift and drift_detected(status) and drift_version == status.stable_version:
        causes.append("drift")
    performance_version = status.performance.version if status.performance else None
    if retraining.triggers.performance_degraded and degraded(status) and performance_version == status.stable_version:
        causes.append("performance")
    if scheduled_fire(spec, status, now) is not None:
        causes.append("schedule")
    if new_dataset_version(spec, status, data) is not None:
        causes.append("newData")
    return causes


def wants_new_run(
    spec: DeploymentSpec, status: DeploymentStatus, now: datetime, data: WatchedDataset | None = None
) -> bool:
    """True when a cause calls for a run and the cooldown allows one (no outside reads needed)."""
    retraining = retraining_of(spec)
    return (
        retraining is not None
        and not in_cooldown(status, retraining.cooldown, now)
        and bool(due_causes(spec, status, now, data))
    )


def needs_source_spec(
    spec: DeploymentSpec,
    status: DeploymentStatus,
    decided_missing: bool,
    now: datetime,
    data: WatchedDataset | None = None,
) -> bool:
    """True when this pass may create a run from the serving version's run spec, so it must be read."""
    retraining = retraining_of(spec)
    if retraining is None or retraining.training_run_template is not None or status.stable_version is None:
        return False
    return wants_new_run(spec, status, now, data) or (decided_missing and in_cooldown(status, retraining.cooldown, now))


def resolve_template(spec: DeploymentSpec, obs: RetrainingObserved) -> tuple[Obj | None, str | None]:
    """The TrainingRun spec to retrain with, validated by the API model; or why there is none."""
    retraining = retraining_of(spec)
    if not spec.model.alias:
        return None, "the Deployment is pinned to a version (spec.model.version); serve an alias to retrain"
    explicit = retraining.training_run_template if retraining is not None else None
    template = copy.deepcopy(explicit or obs.source_spec)
    if template is None:
        return None, obs.source_error or "no trainingRunTemplate and no TrainingRun produced the serving version"
    template.setdefault("registeredModel", spec.model.registered_model)
    if not (template.get("promotion") or {}).get("alias"):
        # A promotion without an alias would default to "production", not the alias this Deployment serves.
        template["promotion"] = {**(template.get("promotion") or {}), "alias": spec.model.alias}
    try:
        TrainingRunSpec.model_validate(template)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3])
        where = "spec.retraining.trainingRunTemplate" if explicit else "the spec of the run behind the serving version"
        return None, f"{where} is not a valid TrainingRun spec: {problems}"
    return template, None


def training_run(meta: Meta, name: str, template: Obj, cause: RetrainingStatus) -> Obj:
    """The TrainingRun a decision stands for, labelled and annotated with its causes and their evidence."""
    causes = cause.causes or ["drift"]  # a decision recorded before causes were: drift was the only one
    annotations: dict[str, str] = {contract.ANNOTATION_RETRAINING_CAUSES: ",".join(causes)}
    labels = {contract.LABEL_TRIGGER: causes[0], contract.LABEL_DEPLOYMENT: label_value(meta.name)}
    if "drift" in causes:
        values = {"feature": cause.feature, "method": cause.method, "score": cause.score, "window": cause.window}
        annotations.update({f"{contract.ANNOTATION_DRIFT_PREFIX}{key}": str(value) for key, value in values.items()})
        annotations[f"{contract.ANNOTATION_DRIFT_PREFIX}deployment"] = meta.name
        annotations[f"{contract.ANNOTATION_DRIFT_PREFIX}version"] = str(cause.version)
        labels[f"{contract.ANNOTATION_DRIFT_PREFIX}feature"] = label_value(str(cause.feature))
    if "performance" in causes:
        values = {"metric": cause.metric, "value": cause.value, "labels": cause.labels, "version": cause.version}
        annotations.update({f"{contract.ANNOTATION_PERFORMANCE_PREFIX}{k}": str(v) for k, v in values.items()})
    if "schedule" in causes:
        values = {"fire-time": cause.scheduled_for, "cron": cause.cron, "time-zone": cause.time_zone}
        annotations.update({f"{contract.ANNOTATION_SCHEDULE_PREFIX}{k}": str(v) for k, v in values.items()})
    if "newData" in causes:
        values = {
            "dataset": cause.dataset,
            "version": cause.dataset_version,
            "previous-version": cause.previous_dataset_version,
        }
        annotations.update({f"{contract.ANNOTATION_NEW_DATA_PREFIX}{k}": str(v) for k, v in values.items()})
    annotations[contract.ANNOTATION_DATA_NOT_BEFORE] = cause.decided_at or ""
    annotations[contract.ANNOTATION_CONTROLLER_UID] = meta.uid  # no ownerReference: the run outlives the Deployment
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": template,
    }


def in_flight(obs: RetrainingObserved) -> bool:
    """True while the last run trains, or its version still waits for gates or rides a canary."""
    if obs.last_run is None:
        return False
    phase = (obs.last_run.get("status") or {}).get("phase")
    if phase == "Failed":
        return False
    if phase != "Succeeded":
        return True
    version_phase = ((obs.last_version or {}).get("status") or {}).get("phase")
    return version_phase not in FINAL_VERSION_PHASES


def plan_retraining(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> None:
    """Report the last run's outcome; re-create a decided run that is missing; decide a new one when due;
    then record where the schedule stands and wake when it next fires."""
    retraining = retraining_of(obs.spec)
    if retraining is None:
        return
    _decide(plan, status, obs, retraining, now)
    track_schedule(plan, status, retraining, now)


def _decide(
    plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, retraining: Retraining, now: datetime
) -> None:
    observed = obs.retraining
    last = status.retraining.model_copy() if status.retraining else None
    if last is not None:  # an invalid schedule's note is said anew each pass, after what this pass decides
        last.message = without_schedule_note(last.message)
    if last is not None and last.run:
        _report_outcome(plan, last, observed)
        if observed.last_run is None and in_cooldown(status, retraining.cooldown, now):
            # Decided (status says so) but not created: the operator stopped in between. Same name, same cause.
            template, _ = resolve_template(obs.spec, observed)
            if template is not None:
                plan.creates_after_status.append(training_run(obs.meta, last.run, template, last))
            elif not observed.source_read:
                plan.requeue_after = 0.5
    status.retraining = last
    data = observed.dataset
    if not wants_new_run(obs.spec, status, now, data) or in_flight(observed):
        return
    if retraining.training_run_template is None and obs.spec.model.alias and not observed.source_read:
        plan.requeue_after = 0.5  # drift was confirmed this pass: read the serving run's spec on the next one
        return
    causes = due_causes(obs.spec, status, now, data)
    template, error = resolve_template(obs.spec, observed)
    if template is None:
        message = f"{' and '.join(causes)} call{'s' if len(causes) == 1 else ''} for retraining, but {error}"
        if (last.message if last else None) != message:
            plan.events.append(Event("RetrainingImpossible", message, "Warning"))
        status.retraining = (last or RetrainingStatus()).model_copy(update={"message": message})
        return
    stamp, name = rfc3339(now), run_name(obs.meta.name, now)
    cause = RetrainingStatus(run=name, decided_at=stamp, causes=causes, version=status.stable_version, phase="Pending")
    if last is not None:  # since when the schedule is known outlives each decision
        cause.schedule, cause.schedule_since = last.schedule, last.schedule_since
    if data is not None and data.phase == "Ready" and data.version:
        # Recorded whatever the causes: the next decision's onNewData compares with what this one trained on.
        cause.dataset, cause.dataset_version = data.name, data.version
    why, evidence = [], []
    drift, performance = status.drift, status.performance
    if "drift" in causes and drift is not None:
        monitored = drift_of(obs.spec)
        cause.feature, cause.method, cause.score = drift.feature, drift.method, drift.score
        cause.window = monitored.window if monitored else None
        why.append(f"drift in {drift.feature}")
        evidence.append(f"{drift.method} {drift.score} on {drift.feature} over {cause.window}")
    if "performance" in causes and performance is not None:
        watched = performance_of(obs.spec)
        cause.metric, cause.value, cause.labels = performance.metric, performance.value, performance.labels
        cause.window = cause.window or (watched.window if watched else None)
        why.append(f"degraded {performance.metric}")
        evidence.append(f"{performance.metric} {performance.value} over {performance.labels} labels")
    schedule, state = retraining.triggers.schedule, schedule_state(retraining, status, now)
    if "schedule" in causes and schedule is not None and state is not None and state.due is not None:
        cause.scheduled_for, cause.cron, cause.time_zone = rfc3339(state.due), schedule.cron, schedule.time_zone
        why.append(f"the schedule's fire at {cause.scheduled_for}")
        evidence.append(f"schedule '{schedule.cron}' ({schedule.time_zone}) fired at {cause.scheduled_for}")
    versions = new_dataset_version(obs.spec, status, data)
    if "newData" in causes and versions is not None and data is not None:
        cause.previous_dataset_version = versions[0]
        why.append(f"a new version of Dataset {data.name}")
        evidence.append(f"Dataset {data.name} is Ready at {versions[1]} (the serving version trained on {versions[0]})")
    cause.message = f"TrainingRun {name} created because of {' and '.join(why)}"
    status.retraining, status.last_retraining_run, status.last_retraining_at = cause, name, stamp
    plan.creates_after_status.append(training_run(obs.meta, name, template, cause))
    plan.events.append(
        Event(
            "RetrainingTriggered",
            f"created TrainingRun {name}: {'; '.join(evidence)} (version {status.stable_version})",
        )
    )


def _report_outcome(plan: Plan, retraining: RetrainingStatus, obs: RetrainingObserved) -> None:
    """Mirror the last run's progress into status; a failure or rejection gets a Warning Event once."""
    if obs.last_run is None:
        return
    run_status = obs.last_run.get("status") or {}
    phase, version_name = run_status.get("phase") or "Pending", run_status.get("modelVersion")
    version_status = (obs.last_version or {}).get("status") or {}
    version_phase = version_status.get("phase")
    if phase == "Failed":
        message = f"TrainingRun {retraining.run} failed: {run_status.get('message') or 'see its status'}"
        reason = "RetrainingFailed"
    elif version_phase in ("Rejected", "RolledBack"):
        why = version_status.get("message") or version_phase.lower()
        message = f"retrained {version_name} was {version_phase.lower()}: {why}; the serving version is unchanged"
        reason = "RetrainingRejected"
    elif version_phase in ("Promoted", "Superseded"):
        message, reason = f"retrained {version_name} was promoted", ""
    else:
        message = f"TrainingRun {retraining.run}: {phase}"
        if version_name:
            message += f", {version_name} {version_phase or 'Registered'}"
        reason = ""
    if reason and retraining.message != message:
        plan.events.append(Event(reason, message, "Warning"))
    retraining.phase, retraining.model_version = phase, version_name
    retraining.model_version_phase, retraining.message = version_phase, message
