"""TrainingRun planning: wait for the Dataset, pin its version, run one Job, and record what it produced.

    plan_trainingrun(obs, now)   the next status, the Job or ModelVersion to create, Events, the finished
                                 Job's TTL, and when to look again

A read that failed (the Dataset, the Job, its pods, its MLflow run) decides nothing final: the rest of
status stays, Degraded says what failed (planning/degraded.py), and the run is looked at again with a
growing back-off.
"""

from __future__ import annotations

from datetime import datetime

from .. import contract
from ..api.common import API_VERSION
from ..api.trainingrun import TrainingRunStatus
from ..contract import (
    ANNOTATION_CONTROLLER_UID,
    ANNOTATION_DATASET_VERSION,
    ANNOTATION_RUN_ID,
    LABEL_DATASET,
    LABEL_REGISTERED_MODEL,
    LABEL_TRAINING_RUN,
)
from ..integrations.mlflow import RunInfo
from .conditions import find_typed, status_patch
from .conflicts import plan_name_conflicts
from .degraded import (
    API_READ_FAILED,
    MLFLOW_UNAVAILABLE,
    Problem,
    degraded,
    job_problems,
    mlflow_failure,
    problem_text,
    retry_after,
)
from .jobs import JobOutcome
from .observed import TrainingRunObserved
from .ownership import recheck_after, refusal
from .placement import POD_REFS_MISSING, POD_REFS_RECHECK_SECONDS, missing_refs_message
from .plan import Event, Meta, Obj, Plan, dns_name, parse_time, rfc3339
from .search import plan_search, start_search
from .trainingjob import set_run_conditions, training_job, training_job_name

RESULT_RETRY_SECONDS = 3.0
FINISHED_JOB_TTL_SECONDS = 3600  # the Job and its pods' logs stay an hour after the run recorded its result
TERMINAL = ("Succeeded", "Failed")


def model_version_name(registered_model: str, version: int) -> str:
    """The ModelVersion object that stands for version `version` of a registered model."""
    return dns_name(registered_model, str(version), max_length=253)


def label_value(text: str) -> str:
    """A string cut down to a valid label value."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:63]
    return cleaned.strip("-_.")


def plan_trainingrun(obs: TrainingRunObserved, now: datetime) -> Plan:
    """Next status, and the Job or ModelVersion to create, for a TrainingRun; a finished Job whose run or
    pods could not be read waits (nothing final is decided without them) and says Degraded."""
    meta, stamp = obs.meta, rfc3339(now)
    status, plan = obs.status.model_copy(deep=True), Plan(status={})
    problems = job_problems(obs.job) + (job_problems(obs.trial_job) if obs.trial_job is not None else [])
    if obs.dataset_error is not None:
        problems.append((API_READ_FAILED, obs.dataset_error))
    if obs.ownership_error is not None:
        problems.append((MLFLOW_UNAVAILABLE, mlflow_failure(obs.ownership_error)))
    if status.phase in TERMINAL:
        # Finished runs never change; their ModelVersion lives on. The result is recorded, so the Job may go.
        expire_finished_job(plan, obs.job.job)
        for trial_job in obs.finished_trial_jobs:
            expire_finished_job(plan, trial_job)
    else:
        status.observed_generation = meta.generation
        if plan_name_conflicts(plan, status, meta, obs.conflicts, now):
            plan.status = status_patch(status)
            return plan
        _plan_run(plan, status, obs, problems, now)
    status.conditions = degraded(status.conditions, problems, generation=meta.generation, now=stamp)
    plan.status = status_patch(status)
    if problems:
        plan.requeue_after = retry_after(plan.status, now)
    elif status.phase == "Refused":
        ready = find_typed(status.conditions, "Ready")
        since = (parse_time(ready.last_transition_time) if ready else None) or now
        plan.requeue_after = recheck_after((now - since).total_seconds())
    return plan


def _plan_run(
    plan: Plan, status: TrainingRunStatus, obs: TrainingRunObserved, problems: list[Problem], now: datetime
) -> None:
    meta, job, outcome, stamp = obs.meta, obs.job.job, obs.job.outcome, rfc3339(now)
    if job is None:
        if obs.job.job_error is not None:  # it is not known to be absent: nothing is created
            return
        if status.trials is not None and obs.spec.trials is not None:  # the search runs; its refit is not made
            plan_search(plan, status, obs, problems, now)
        else:
            _start(plan, status, obs, stamp)
        return
    status.job_name = job["metadata"]["name"]
    status.dataset_version = (job["metadata"].get("annotations") or {}).get(
        ANNOTATION_DATASET_VERSION
    ) or status.dataset_version
    assert outcome is not None
    if outcome.start_time:
        status.start_time = outcome.start_time
    if outcome.state in ("Pending", "Running"):
        status.phase = "Pending" if outcome.state == "Pending" else "Running"
        status.message = f"Job {status.job_name} is {outcome.state.lower()}"
        set_run_conditions(status, meta, stamp, "Unknown", outcome.state, status.message)
        return
    if problems:
        status.message = f"Job {status.job_name} finished; its result cannot be read yet: {problem_text(problems)}"
        return
    run = obs.job.run
    if run is not None and run.run_id:
        status.mlflow_run_id = run.run_id
    if outcome.state == "Succeeded":
        _succeeded(plan, status, obs, run, outcome, stamp)
    else:
        _failed(plan, status, meta, run, outcome, stamp)


def expire_finished_job(plan: Plan, job: Obj | None) -> None:
    """Give a finished training Job its TTL once the run's result is in status (level-triggered: a restart
    between the status write and the patch patches on the next pass)."""
    if job is not None and (job.get("spec") or {}).get("ttlSecondsAfterFinished") is None:
        ref = {"apiVersion": "batch/v1", "kind": "Job", "metadata": dict(job["metadata"])}
        plan.patches.append((ref, {"spec": {"ttlSecondsAfterFinished": FINISHED_JOB_TTL_SECONDS}}))


def _start(plan: Plan, status: TrainingRunStatus, obs: TrainingRunObserved, stamp: str) -> None:
    meta, dataset, ref = obs.meta, obs.dataset, obs.spec.dataset_ref.name
    refused = refusal(meta.namespace, obs.ownership, "register") if obs.ownership is not None else None
    if refused is not None:  # another namespace's model: no Job, nothing registered
        _refuse(plan, status, meta, stamp, refused.reason, refused.message)
        return
    status.phase = "Pending"
    if obs.dataset_error is not None or obs.ownership_error is not None:
        return  # whether the run may start is not known: Degraded says why
    if dataset is None:
        status.message = f"waiting for Dataset '{ref}': it does not exist in namespace {meta.namespace}"
        set_run_conditions(status, meta, stamp, "False", "DatasetNotFound", status.message)
        return
    ds_status = dataset.status
    if ds_status.phase != "Ready" or not ds_status.version:
        why = ds_status.message or "not validated yet"
        status.message = f"waiting for Dataset '{ref}' to be Ready (phase {ds_status.phase or 'Pending'}: {why})"
        set_run_conditions(status, meta, stamp, "False", "DatasetNotReady", status.message)
        return
    fresh_after = obs.data_not_before
    if fresh_after and _checked_before(ds_status.last_checked, fresh_after):
        status.message = (
            f"waiting for Dataset '{ref}' to re-check its source (this run needs data read after {fresh_after})"
        )
        set_run_conditions(status, meta, stamp, "False", "WaitingForFreshData", status.message)
        plan.wake.append(("Dataset", meta.namespace, ref))
        return
    if obs.missing_pod_refs:
        _wait_for_pod_refs(plan, status, meta, stamp, obs.missing_pod_refs)
        return
    version = ds_status.version
    if obs.spec.trials is not None:
        start_search(plan, status, obs, dataset, version, stamp)
        return
    name = training_job_name(meta)
    plan.creates.append(training_job(obs, dataset, name, version))
    status.job_name, status.dataset_version = name, version
    status.message = f"Job {name} created on dataset version {version[:19]}"
    set_run_conditions(status, meta, stamp, "Unknown", "JobCreated", status.message)
    plan.events.append(Event("JobCreated", f"training Job {name} on Dataset '{ref}' version {version}"))


def _refuse(plan: Plan, status: TrainingRunStatus, meta: Meta, stamp: str, reason: str, message: str) -> None:
    # Not terminal: the model may be adopted by (or given to) this namespace later; the recheck sees it.
    before = find_typed(status.conditions, "Ready")
    status.phase, status.message = "Refused", message
    set_run_conditions(status, meta, stamp, "False", reason, message)
    if before is None or before.reason != reason:
        plan.events.append(Event(reason, message, "Warning"))


def _checked_before(last_checked: str | None, wanted: str) -> bool:
    """True when the Dataset's last check is older than `wanted` (an unreadable time asks for nothing)."""
    try:
        wanted_time = parse_time(wanted)
    except ValueError:
        return False
    checked = parse_time(last_checked) if last_checked else None
    return wanted_time is not None and (checked is None or checked < wanted_time)


def _succeeded(
    plan: Plan,
    status: TrainingRunStatus,
    obs: TrainingRunObserved,
    run: RunInfo | None,
    outcome: JobOutcome,
    stamp: str,
) -> None:
    if run is None or run.status == "RUNNING" or contract.TAG_REGISTERED_VERSION not in run.tags:
        status.message = f"Job {status.job_name} finished; waiting for its results in MLflow"
        plan.requeue_after = RESULT_RETRY_SECONDS
        return
    version = int(run.tags[contract.TAG_REGISTERED_VERSION])
    registered = run.tags.get(contract.TAG_REGISTERED_MODEL, obs.spec.registered_model)
    mv_name = model_version_name(registered, version)
    plan.creates.append(_model_version(obs, registered, version, run, mv_name, status.dataset_version))
    metrics = {k: round(v, 6) for k, v in sorted(run.metrics.items()) if k in _METRICS}
    figures = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    status.phase, status.metrics, status.model_version = "Succeeded", metrics, mv_name
    status.completion_time = outcome.completion_time or stamp
    status.message = f"registered {registered} version {version} ({figures})"
    set_run_conditions(status, obs.meta, stamp, "True", "Succeeded", status.message)
    plan.events.append(Event("Succeeded", f"{status.message}; created ModelVersion {mv_name}"))


_METRICS = set(contract.CLASSIFICATION_METRICS) | set(contract.REGRESSION_METRICS)


def _failed(
    plan: Plan, status: TrainingRunStatus, meta: Meta, run: RunInfo | None, outcome: JobOutcome, stamp: str
) -> None:
    reason = (run.tags.get(contract.TAG_ERROR) if run else None) or outcome.message or "the training Job failed"
    status.phase, status.completion_time, status.message = "Failed", outcome.completion_time or stamp, reason
    condition_reason = outcome.reason if outcome.reason in ("DeadlineExceeded", "OOMKilled") else "TrainingFailed"
    set_run_conditions(status, meta, stamp, "False", condition_reason, reason)
    plan.events.append(Event(condition_reason, reason, "Warning"))


def _wait_for_pod_refs(plan: Plan, status: TrainingRunStatus, meta: Meta, stamp: str, missing: tuple[str, ...]) -> None:
    message = missing_refs_message(missing)
    if status.message != message:
        plan.events.append(Event(POD_REFS_MISSING, message, "Warning"))
    status.message = message
    set_run_conditions(status, meta, stamp, "False", POD_REFS_MISSING, message)
    plan.requeue_after = POD_REFS_RECHECK_SECONDS


def _model_version(
    obs: TrainingRunObserved, registered: str, version: int, run: RunInfo, name: str, dataset_version: str | None
) -> Obj:
    meta, spec = obs.meta, obs.spec
    mv_spec: Obj = {
        "registeredModel": registered,
        "version": version,
        "source": {"trainingRunRef": meta.name, "runId": run.run_id, "uri": f"models:/{registered}/{version}"},
    }
    if spec.promotion is not None:  # as the user wrote it: the ModelVersion's own defaults fill in the rest
        mv_spec["promotion"] = spec.promotion.model_dump(mode="json", by_alias=True, exclude_unset=True)
    # No ownerReference (the version outlives its run); the annotation says which run made it.
    annotations = {ANNOTATION_RUN_ID: run.run_id, ANNOTATION_CONTROLLER_UID: meta.uid}
    if dataset_version:
        annotations[ANNOTATION_DATASET_VERSION] = dataset_version
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": {
                LABEL_TRAINING_RUN: label_value(meta.name),
                LABEL_DATASET: label_value(spec.dataset_ref.name),
                LABEL_REGISTERED_MODEL: label_value(registered),
                "app.kubernetes.io/managed-by": "mlops-operator",
            },
            "annotations": annotations,
        },
        "spec": mv_spec,
    }
