"""Dataset planning: which validation Job should exist, and the status its result gives."""

from __future__ import annotations

import json
from datetime import datetime

from .. import contract
from ..api.common import parse_duration
from ..integrations.mlflow import RunInfo
from .conditions import set_condition
from .jobs import JobOutcome, WorkerSettings, worker_job
from .plan import Event, Meta, Obj, Plan, dns_name, parse_time, rfc3339

VALIDATION_TTL_SECONDS = 24 * 3600
VALIDATION_DEADLINE_SECONDS = 1800
RESULT_RETRY_SECONDS = 3.0


def check_job_name(meta: Meta, epoch: int) -> str:
    """The deterministic name of a check: one per generation, plus one per refresh period."""
    return dns_name(meta.name, f"check-g{meta.generation}-{epoch}")


def refresh_job_name(meta: Meta, requested: datetime) -> str:
    """The check a TrainingRun asked for (data no older than `requested`): one per request time."""
    return dns_name(meta.name, f"check-g{meta.generation}-r{int(requested.timestamp())}")


def wanted_check(body: Obj, now: datetime, refresh_requested: str | None = None) -> str:
    """The Job whose result the status should show now: a new generation's first check, the one in
    progress, a check a waiting TrainingRun requested, a due refresh, or the last one done."""
    meta, status, spec = Meta.of(body), body.get("status") or {}, body["spec"]
    job_name, checked = status.get("jobName"), status.get("checkedJob")
    if status.get("observedGeneration") != meta.generation or not job_name:
        return check_job_name(meta, 0)
    if job_name != checked:
        return str(job_name)
    try:
        requested = parse_time(refresh_requested)
    except ValueError:  # an unreadable data-not-before asks for nothing, as the TrainingRun planner reads it
        requested = None
    last = parse_time(status.get("lastChecked"))
    if requested is not None and (last is None or last < requested):
        return refresh_job_name(meta, requested)
    interval = spec.get("refreshInterval")
    if interval and last is not None:
        seconds = parse_duration(interval).total_seconds()
        if seconds > 0 and (now - last).total_seconds() >= seconds:
            return check_job_name(meta, int(now.timestamp() // seconds))
    return str(job_name)


def seconds_until_refresh(body: Obj, now: datetime) -> float | None:
    """When the next refresh check is due, if the Dataset refreshes at all."""
    interval, last = body["spec"].get("refreshInterval"), parse_time((body.get("status") or {}).get("lastChecked"))
    if not interval or last is None:
        return None
    return max(1.0, parse_duration(interval).total_seconds() - (now - last).total_seconds())


def plan_dataset(
    body: Obj,
    now: datetime,
    job_name: str,
    job: Obj | None,
    outcome: JobOutcome | None,
    run: RunInfo | None,
    settings: WorkerSettings,
) -> Plan:
    """Next status (and Job to create) for a Dataset whose wanted check is `job_name`."""
    meta, status = Meta.of(body), dict(body.get("status") or {})
    stamp = rfc3339(now)
    first_check = status.get("observedGeneration") != meta.generation or not status.get("checkedJob")
    status["observedGeneration"] = meta.generation
    if status.get("checkedJob") == job_name:  # the result is recorded; only a refresh can start a new check
        plan = Plan(status=_with_ready(status, meta, stamp))
        plan.requeue_after = seconds_until_refresh(body, now)
        return plan
    plan = Plan(status=status)
    status["jobName"] = job_name
    if job is None:
        plan.creates_after_status.append(_validation_job(body, job_name, settings))
        plan.events.append(Event("ValidationStarted", f"validating {body['spec']['source']['uri']} in Job {job_name}"))
    if job is None or outcome is None or outcome.state in ("Pending", "Running"):
        if first_check or not status.get("phase") or status.get("phase") == "Pending":
            status["phase"] = "Validating"
        status["conditions"] = _ready(status, meta, stamp, "Unknown", "Validating", f"Job {job_name} is validating")
        if not first_check and status.get("version"):  # a refresh re-checks a Ready dataset; it stays usable
            status["conditions"] = _ready(status, meta, stamp, *_ready_args(status))
        return plan
    if outcome.state == "Succeeded" and (run is None or run.status == "RUNNING"):
        plan.requeue_after = RESULT_RETRY_SECONDS  # MLflow shows the run a moment after the pod exits
        status["message"] = f"Job {job_name} finished; waiting for its results in MLflow"
        return plan
    return _record_result(body, plan, job_name, outcome, run, stamp)


def _record_result(body: Obj, plan: Plan, job_name: str, outcome: JobOutcome, run: RunInfo | None, stamp: str) -> Plan:
    meta, status = Meta.of(body), plan.status
    previous_version = status.get("version")
    status.update({"checkedJob": job_name, "lastChecked": stamp})
    tags = run.tags if run else {}
    result = tags.get(contract.TAG_OUTCOME)
    if outcome.state == "Failed" or result == contract.OUTCOME_FAILED or result is None:
        reason = tags.get(contract.TAG_ERROR) or outcome.message or "the validation Job failed"
        status.update(
            phase="Invalid",
            violations=[{"rule": "source", "message": reason}],
            message=f"the source could not be validated: {reason}",
        )
        plan.events.append(Event("SourceUnreadable", reason, "Warning"))
    else:
        violations = json.loads(tags.get(contract.TAG_VIOLATIONS) or "[]")
        version = tags.get(contract.TAG_DATASET_VERSION)
        rows = int(run.metrics.get("rows", 0)) if run else 0
        status.update(rows=rows, profileUri=tags.get(contract.TAG_PROFILE_URI), violations=violations or None)
        if result == contract.OUTCOME_VALID:
            status.update(phase="Ready", version=version, message=f"{rows} rows, version {_short(version)}")
            if version != previous_version:
                plan.events.append(Event("NewVersion", f"version {version} ({rows} rows) is Ready"))
        else:
            summary = "; ".join(v.get("message", "") for v in violations[:3])
            count = int(run.metrics.get("violations", len(violations))) if run else len(violations)
            status.update(phase="Invalid", message=f"{count} violation(s): {summary}")
            plan.events.append(Event("Invalid", status["message"], "Warning"))
    status["conditions"] = _ready(status, meta, stamp, *_ready_args(status))
    plan.requeue_after = seconds_until_refresh({**body, "status": status}, parse_time(stamp) or datetime.now())
    return plan


def _short(version: str | None) -> str:
    return (version or "")[:19]


def _ready_args(status: Obj) -> tuple[str, str, str]:
    if status.get("phase") == "Ready" or (status.get("version") and status.get("phase") != "Invalid"):
        return "True", "Validated", status.get("message") or "validated"
    return "False", "Invalid", status.get("message") or "the data failed validation"


def _ready(status: Obj, meta: Meta, stamp: str, value: str, reason: str, message: str) -> list[Obj]:
    return set_condition(
        status.get("conditions"), "Ready", value, reason, message, generation=meta.generation, now=stamp
    )


def _with_ready(status: Obj, meta: Meta, stamp: str) -> Obj:
    status["conditions"] = _ready(status, meta, stamp, *_ready_args(status))
    return status


def _validation_job(body: Obj, job_name: str, settings: WorkerSettings) -> Obj:
    return worker_job(
        owner=body,
        name=job_name,
        command="validate",
        settings=settings,
        extra_env={},
        resources=None,
        backoff_limit=2,
        active_deadline_seconds=VALIDATION_DEADLINE_SECONDS,
        ttl_seconds_after_finished=VALIDATION_TTL_SECONDS,
    )
