"""Drift-triggered retraining planning: whether to start a TrainingRun, what it is, and how the last one went.

Exactly one run per cooldown: the decision (run name, time, cause) is written to the Deployment's
status with the read resourceVersion as precondition *before* the TrainingRun is created, and the
name derives from the decision time. A second operator replica loses the status write (409); a
restarted operator finds the decision in status and creates the same run by name, never another.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from ..api.common import API_VERSION, parse_duration
from ..api.trainingrun import TrainingRunSpec
from .monitoring import drift_detected, drift_settings
from .plan import Event, Meta, Obj, Plan, dns_name, parse_time, rfc3339
from .trainingrun import ANNOTATION_DATA_NOT_BEFORE, label_value

LABEL_TRIGGER = "mlops.dev/triggered-by"
LABEL_DEPLOYMENT = "mlops.dev/deployment"
ANNOTATION_PREFIX = "mlops.dev/drift-"
FINAL_VERSION_PHASES = ("Promoted", "Rejected", "RolledBack", "Superseded")


@dataclass(frozen=True)
class RetrainingObserved:
    """The last retraining run and its ModelVersion (store summaries), and the run spec to retrain with."""

    last_run: Obj | None = None
    last_version: Obj | None = None
    source_spec: Obj | None = None  # the spec of the TrainingRun behind the serving version, if one made it
    source_error: str | None = None


def retraining_settings(spec: Obj) -> Obj | None:
    """spec.retraining with defaults; None when retraining is off."""
    retraining = spec.get("retraining") or {}
    if not retraining.get("enabled"):
        return None
    return {"cooldown": retraining.get("cooldown", "6h"), "template": retraining.get("trainingRunTemplate")}


def run_name(deployment: str, decided: datetime) -> str:
    """The deterministic name of the run decided at `decided`."""
    return dns_name(deployment, "retrain", decided.strftime("%Y%m%d-%H%M%S"))


def in_cooldown(status: Obj, cooldown: str, now: datetime) -> bool:
    """True while the last decision is younger than the cooldown."""
    decided = parse_time(status.get("lastRetrainingAt"))
    return decided is not None and (now - decided).total_seconds() < parse_duration(cooldown).total_seconds()


def wants_new_run(status: Obj, spec: Obj, now: datetime) -> bool:
    """True when drift on the serving version calls for a run and the cooldown allows one (no reads needed)."""
    settings = retraining_settings(spec)
    return (
        settings is not None
        and drift_detected(status)
        and (status.get("drift") or {}).get("version") == status.get("stableVersion")
        and not in_cooldown(status, settings["cooldown"], now)
    )


def resolve_template(spec: Obj, source_spec: Obj | None, source_error: str | None) -> tuple[Obj | None, str | None]:
    """The TrainingRun spec to retrain with, validated by the API model; or why there is none."""
    settings = retraining_settings(spec) or {}
    if not spec["model"].get("alias"):
        return None, "the Deployment is pinned to a version (spec.model.version); serve an alias to retrain"
    explicit = settings.get("template")
    template = copy.deepcopy(explicit or source_spec)
    if template is None:
        return None, source_error or "no trainingRunTemplate and no TrainingRun produced the serving version"
    model = spec["model"]
    template.setdefault("registeredModel", model["registeredModel"])
    if model.get("alias") and not (template.get("promotion") or {}).get("alias"):
        # A promotion without an alias would default to "production", not the alias this Deployment serves.
        template["promotion"] = {**(template.get("promotion") or {}), "alias": model["alias"]}
    try:
        TrainingRunSpec.model_validate(template)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3])
        where = "spec.retraining.trainingRunTemplate" if explicit else "the spec of the run behind the serving version"
        return None, f"{where} is not a valid TrainingRun spec: {problems}"
    return template, None


def training_run(body: Obj, name: str, template: Obj, cause: Obj) -> Obj:
    """The TrainingRun a decision stands for, labelled and annotated with its cause."""
    meta = Meta.of(body)
    annotations = {f"{ANNOTATION_PREFIX}{key}": str(cause[key]) for key in ("feature", "method", "score", "window")}
    annotations[f"{ANNOTATION_PREFIX}deployment"] = meta.name
    annotations[f"{ANNOTATION_PREFIX}version"] = str(cause["version"])
    annotations[ANNOTATION_DATA_NOT_BEFORE] = cause["decidedAt"]
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": {
                LABEL_TRIGGER: "drift",
                LABEL_DEPLOYMENT: label_value(meta.name),
                f"{ANNOTATION_PREFIX}feature": label_value(str(cause["feature"])),
            },
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


def plan_retraining(plan: Plan, body: Obj, obs: RetrainingObserved, now: datetime) -> None:
    """Report the last run's outcome; re-create a decided run that is missing; decide a new one when due."""
    settings, status = retraining_settings(body["spec"]), plan.status
    if settings is None:
        return
    retraining = dict(status.get("retraining") or {})
    if retraining.get("run"):
        _report_outcome(plan, retraining, obs)
        if obs.last_run is None and in_cooldown(status, settings["cooldown"], now):
            # Decided (status says so) but not created: the operator stopped in between. Same name, same cause.
            template, _ = resolve_template(body["spec"], obs.source_spec, obs.source_error)
            if template is not None:
                plan.creates_after_status.append(training_run(body, retraining["run"], template, retraining))
    if not wants_new_run(status, body["spec"], now) or in_flight(obs):
        status["retraining"] = retraining or None
        return
    template, error = resolve_template(body["spec"], obs.source_spec, obs.source_error)
    if template is None:
        message = f"drift calls for retraining, but {error}"
        if retraining.get("message") != message:
            plan.events.append(Event("RetrainingImpossible", message, "Warning"))
        status["retraining"] = {**retraining, "message": message}
        return
    drift, stamp = status.get("drift") or {}, rfc3339(now)
    name = run_name(Meta.of(body).name, now)
    cause = {
        "run": name,
        "decidedAt": stamp,
        "feature": drift.get("feature"),
        "method": drift.get("method"),
        "score": drift.get("score"),
        "window": (drift_settings(body["spec"]) or {}).get("window"),
        "version": drift.get("version"),
        "phase": "Pending",
        "modelVersion": None,
        "message": f"TrainingRun {name} created because of drift in {drift.get('feature')}",
    }
    status.update(retraining=cause, lastRetrainingRun=name, lastRetrainingAt=stamp)
    plan.creates_after_status.append(training_run(body, name, template, cause))
    plan.events.append(
        Event(
            "RetrainingTriggered",
            f"created TrainingRun {name}: {drift.get('method')} {drift.get('score')} on {drift.get('feature')}"
            f" over {cause['window']} (version {drift.get('version')})",
        )
    )


def _report_outcome(plan: Plan, retraining: Obj, obs: RetrainingObserved) -> None:
    """Mirror the last run's progress into status; a failure or rejection gets a Warning Event once."""
    if obs.last_run is None:
        return
    run_status = obs.last_run.get("status") or {}
    phase, version_name = run_status.get("phase") or "Pending", run_status.get("modelVersion")
    version_status = (obs.last_version or {}).get("status") or {}
    version_phase = version_status.get("phase")
    if phase == "Failed":
        message = f"TrainingRun {retraining['run']} failed: {run_status.get('message') or 'see its status'}"
        reason = "RetrainingFailed"
    elif version_phase in ("Rejected", "RolledBack"):
        why = version_status.get("message") or version_phase.lower()
        message = f"retrained {version_name} was {version_phase.lower()}: {why}; the serving version is unchanged"
        reason = "RetrainingRejected"
    elif version_phase in ("Promoted", "Superseded"):
        message, reason = f"retrained {version_name} was promoted", ""
    else:
        message = f"TrainingRun {retraining['run']}: {phase}"
        if version_name:
            message += f", {version_name} {version_phase or 'Registered'}"
        reason = ""
    if reason and retraining.get("message") != message:
        plan.events.append(Event(reason, message, "Warning"))
    retraining.update(phase=phase, modelVersion=version_name, modelVersionPhase=version_phase, message=message)
