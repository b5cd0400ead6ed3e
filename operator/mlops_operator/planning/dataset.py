"""Dataset planning: which validation Job should exist, and the status its result gives.

    wanted_check(...)        the check whose result the status should show now (the controller reads its Job)
    plan_dataset(obs, now)   the next status, the Job to create, Events, and when to look again

A read that failed (the Job, its pods, its MLflow run) records nothing: the phase stays, Degraded says
what failed (planning/degraded.py), and the check is looked at again with a growing back-off.
"""

from __future__ import annotations

import json
from datetime import datetime

from .. import contract
from ..api.common import ConditionStatus, parse_duration
from ..api.dataset import DatasetSpec, DatasetStatus, Violation
from .conditions import set_typed, status_patch
from .conflicts import plan_name_conflicts
from .degraded import degraded, job_problems, problem_text, retry_after
from .jobs import JobOutcome, worker_job
from .observed import DatasetObserved
from .placement import POD_REFS_MISSING, POD_REFS_RECHECK_SECONDS, missing_refs_message
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


def wanted_check(
    meta: Meta, spec: DatasetSpec, status: DatasetStatus, now: datetime, refresh_requested: str | None = None
) -> str:
    """The Job whose result the status should show now: a new generation's first check, the one in
    progress, a check a waiting TrainingRun requested, a due refresh, or the last one done."""
    job_name, checked = status.job_name, status.checked_job
    if status.observed_generation != meta.generation or not job_name:
        return check_job_name(meta, 0)
    if job_name != checked:
        return job_name
    try:
        requested = parse_time(refresh_requested)
    except ValueError:  # an unreadable data-not-before asks for nothing, as the TrainingRun planner reads it
        requested = None
    last = parse_time(status.last_checked)
    if requested is not None and (last is None or last < requested):
        return refresh_job_name(meta, requested)
    if spec.refresh_interval and last is not None:
        seconds = parse_duration(spec.refresh_interval).total_seconds()
        if seconds > 0 and (now - last).total_seconds() >= seconds:
            return check_job_name(meta, int(now.timestamp() // seconds))
    return job_name


def seconds_until_refresh(spec: DatasetSpec, status: DatasetStatus, now: datetime) -> float | None:
    """When the next refresh check is due, if the Dataset refreshes at all."""
    last = parse_time(status.last_checked)
    if not spec.refresh_interval or last is None:
        return None
    return max(1.0, parse_duration(spec.refresh_interval).total_seconds() - (now - last).total_seconds())


def plan_dataset(obs: DatasetObserved, now: datetime) -> Plan:
    """Next status (and Job to create) for a Dataset whose wanted check is `obs.check`."""
    meta, stamp = obs.meta, rfc3339(now)
    status, plan = obs.status.model_copy(deep=True), Plan(status={})
    first_check = status.observed_generation != meta.generation or not status.checked_job
    status.observed_generation = meta.generation
    if plan_name_conflicts(plan, status, meta, obs.conflicts, now):
        plan.status = status_patch(status)
        return plan
    problems = job_problems(obs.check)
    if status.checked_job == obs.check.name:  # the result is recorded; only a refresh can start a new check
        _ready(status, meta, stamp, *_ready_args(status))
        plan.requeue_after = seconds_until_refresh(obs.spec, status, now)
    else:
        _plan_check(plan, status, obs, first_check, stamp, now)
    status.conditions = degraded(status.conditions, problems, generation=meta.generation, now=stamp)
    plan.status = status_patch(status)
    if problems:
        plan.requeue_after = retry_after(plan.status, now)
    return plan


def _plan_check(
    plan: Plan, status: DatasetStatus, obs: DatasetObserved, first_check: bool, stamp: str, now: datetime
) -> None:
    meta, check = obs.meta, obs.check
    job, outcome = check.job, check.outcome
    status.job_name = check.name
    if job is None and check.job_error is not None:
        return  # whether the Job exists is not known: nothing is created, Degraded says why
    if job is None and obs.missing_pod_refs:
        message = missing_refs_message(obs.missing_pod_refs)
        if status.message != message:
            plan.events.append(Event(POD_REFS_MISSING, message, "Warning"))
        status.phase, status.message = status.phase or "Pending", message
        if first_check or not status.version:  # else a refresh waits and the version checked before stays usable
            _ready(status, meta, stamp, "False", POD_REFS_MISSING, message)
        plan.requeue_after = POD_REFS_RECHECK_SECONDS
        return
    if job is None:
        plan.creates_after_status.append(_validation_job(obs, check.name))
        plan.events.append(Event("ValidationStarted", f"validating {obs.spec.source.uri} in Job {check.name}"))
    if job is None or outcome is None or outcome.state in ("Pending", "Running"):
        if first_check or not status.phase or status.phase == "Pending":
            status.phase = "Validating"
        if not first_check and status.version:  # a refresh re-checks a Ready dataset; it stays usable
            _ready(status, meta, stamp, *_ready_args(status))
        else:
            _ready(status, meta, stamp, "Unknown", "Validating", f"Job {check.name} is validating")
        return
    problems = job_problems(check)
    if problems:  # nothing is recorded without the Job's reason and its run
        status.message = f"Job {check.name} finished; its result cannot be read yet: {problem_text(problems)}"
        return
    if outcome.state == "Succeeded" and (check.run is None or check.run.status == "RUNNING"):
        plan.requeue_after = RESULT_RETRY_SECONDS  # MLflow shows the run a moment after the pod exits
        status.message = f"Job {check.name} finished; waiting for its results in MLflow"
        return
    _record_result(plan, status, obs, outcome, stamp, now)


def _record_result(
    plan: Plan, status: DatasetStatus, obs: DatasetObserved, outcome: JobOutcome, stamp: str, now: datetime
) -> None:
    run = obs.check.run
    previous_version = status.version
    status.checked_job, status.last_checked = obs.check.name, stamp
    tags = run.tags if run else {}
    result = tags.get(contract.TAG_OUTCOME)
    if outcome.state == "Failed" or result == contract.OUTCOME_FAILED or result is None:
        reason = tags.get(contract.TAG_ERROR) or outcome.message or "the validation Job failed"
        status.phase = "Invalid"
        status.violations = [Violation(rule="source", message=reason)]
        status.message = f"the source could not be validated: {reason}"
        plan.events.append(Event("SourceUnreadable", reason, "Warning"))
    else:
        violations = json.loads(tags.get(contract.TAG_VIOLATIONS) or "[]")
        version = tags.get(contract.TAG_DATASET_VERSION)
        rows = int(run.metrics.get("rows", 0)) if run else 0
        status.rows, status.profile_uri = rows, tags.get(contract.TAG_PROFILE_URI)
        status.violations = [Violation.model_validate(v) for v in violations] or None
        if result == contract.OUTCOME_VALID:
            status.phase, status.version = "Ready", version
            status.message = f"{rows} rows, version {_short(version)}"
            if version != previous_version:
                plan.events.append(Event("NewVersion", f"version {version} ({rows} rows) is Ready"))
        else:
            summary = "; ".join(v.get("message", "") for v in violations[:3])
            count = int(run.metrics.get("violations", len(violations))) if run else len(violations)
            status.phase, status.message = "Invalid", f"{count} violation(s): {summary}"
            plan.events.append(Event("Invalid", status.message, "Warning"))
    _ready(status, obs.meta, stamp, *_ready_args(status))
    plan.requeue_after = seconds_until_refresh(obs.spec, status, parse_time(stamp) or now)


def _short(version: str | None) -> str:
    return (version or "")[:19]


def _ready_args(status: DatasetStatus) -> tuple[ConditionStatus, str, str]:
    if status.phase == "Ready" or (status.version and status.phase != "Invalid"):
        return "True", "Validated", status.message or "validated"
    return "False", "Invalid", status.message or "the data failed validation"


def _ready(status: DatasetStatus, meta: Meta, stamp: str, value: ConditionStatus, reason: str, message: str) -> None:
    status.conditions = set_typed(
        status.conditions, "Ready", value, reason, message, generation=meta.generation, now=stamp
    )


def _validation_job(obs: DatasetObserved, job_name: str) -> Obj:
    return worker_job(
        owner=obs.body,
        name=job_name,
        command="validate",
        settings=obs.worker,
        extra_env={},
        resources=obs.spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True),
        backoff_limit=2,
        active_deadline_seconds=VALIDATION_DEADLINE_SECONDS,
        ttl_seconds_after_finished=VALIDATION_TTL_SECONDS,
        pod=obs.spec.pod,
    )
