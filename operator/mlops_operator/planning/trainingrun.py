"""TrainingRun planning: wait for the Dataset, pin its version, run one Job, and record what it produced."""

from __future__ import annotations

import json
from datetime import datetime

from .. import contract
from ..api.common import API_VERSION
from ..api.trainingrun import TrainingRunSpec
from ..contract import (
    ANNOTATION_DATA_NOT_BEFORE,
    ANNOTATION_DATASET_VERSION,
    ANNOTATION_RUN_ID,
    LABEL_DATASET,
    LABEL_REGISTERED_MODEL,
    LABEL_TRAINING_RUN,
)
from ..integrations.mlflow import RunInfo
from .conditions import set_condition
from .jobs import JobOutcome, WorkerSettings, worker_job, worker_object
from .plan import Event, Meta, Obj, Plan, dns_name, parse_time, rfc3339

RESULT_RETRY_SECONDS = 3.0
MLFLOW_RETRY_SECONDS = 15.0
FINISHED_JOB_TTL_SECONDS = 3600  # the Job and its pods' logs stay an hour after the run recorded its result
TERMINAL = ("Succeeded", "Failed")


def training_job_name(meta: Meta) -> str:
    """One Job per TrainingRun, named after it and its uid so a re-created run never adopts an old Job."""
    return dns_name(meta.name, meta.uid[:8])


def model_version_name(registered_model: str, version: int) -> str:
    """The ModelVersion object that stands for version `version` of a registered model."""
    return dns_name(registered_model, str(version), max_length=253)


def label_value(text: str) -> str:
    """A string cut down to a valid label value."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:63]
    return cleaned.strip("-_.")


def plan_trainingrun(
    body: Obj,
    dataset: Obj | None,
    job: Obj | None,
    outcome: JobOutcome | None,
    run: RunInfo | None,
    now: datetime,
    settings: WorkerSettings,
    mlflow_error: str | None = None,
) -> Plan:
    """Next status, and the Job or ModelVersion to create, for a TrainingRun; `mlflow_error` when the
    finished Job's run could not be read (the result waits: nothing final is decided without it)."""
    meta, status = Meta.of(body), dict(body.get("status") or {})
    stamp = rfc3339(now)
    plan = Plan(status=status)
    if status.get("phase") in TERMINAL:
        # Finished runs never change; their ModelVersion lives on. The result is recorded, so the Job may go.
        expire_finished_job(plan, job)
        return plan
    status["observedGeneration"] = meta.generation
    if job is None:
        return _start(body, dataset, plan, meta, stamp, settings)
    status["jobName"] = job["metadata"]["name"]
    status["datasetVersion"] = (job["metadata"].get("annotations") or {}).get(ANNOTATION_DATASET_VERSION) or status.get(
        "datasetVersion"
    )
    assert outcome is not None
    if outcome.start_time:
        status["startTime"] = outcome.start_time
    if outcome.state in ("Pending", "Running"):
        status["phase"] = outcome.state
        status["message"] = f"Job {status['jobName']} is {outcome.state.lower()}"
        _conditions(status, meta, stamp, "Unknown", outcome.state, status["message"])
        return plan
    if mlflow_error is not None:
        status["message"] = f"Job {status['jobName']} finished; its result cannot be read yet: {mlflow_error}"
        status["conditions"] = set_condition(
            status.get("conditions"),
            "Degraded",
            "True",
            "MlflowUnavailable",
            mlflow_error,
            generation=meta.generation,
            now=stamp,
        )
        plan.requeue_after = MLFLOW_RETRY_SECONDS
        return plan
    if run is not None and run.run_id:
        status["mlflowRunId"] = run.run_id
    if outcome.state == "Succeeded":
        return _succeeded(body, plan, meta, run, outcome, stamp)
    return _failed(plan, meta, run, outcome, stamp)


def expire_finished_job(plan: Plan, job: Obj | None) -> None:
    """Give a finished training Job its TTL once the run's result is in status (level-triggered: a restart
    between the status write and the patch patches on the next pass)."""
    if job is not None and (job.get("spec") or {}).get("ttlSecondsAfterFinished") is None:
        ref = {"apiVersion": "batch/v1", "kind": "Job", "metadata": dict(job["metadata"])}
        plan.patches.append((ref, {"spec": {"ttlSecondsAfterFinished": FINISHED_JOB_TTL_SECONDS}}))


def _start(body: Obj, dataset: Obj | None, plan: Plan, meta: Meta, stamp: str, settings: WorkerSettings) -> Plan:
    status = plan.status
    ref = body["spec"]["datasetRef"]["name"]
    ds_status = (dataset or {}).get("status") or {}
    status["phase"] = "Pending"
    if dataset is None:
        status["message"] = f"waiting for Dataset '{ref}': it does not exist in namespace {meta.namespace}"
        _conditions(status, meta, stamp, "False", "DatasetNotFound", status["message"])
        return plan
    if ds_status.get("phase") != "Ready" or not ds_status.get("version"):
        why = ds_status.get("message") or "not validated yet"
        status["message"] = (
            f"waiting for Dataset '{ref}' to be Ready (phase {ds_status.get('phase', 'Pending')}: {why})"
        )
        _conditions(status, meta, stamp, "False", "DatasetNotReady", status["message"])
        return plan
    fresh_after = (body["metadata"].get("annotations") or {}).get(ANNOTATION_DATA_NOT_BEFORE)
    if fresh_after and _checked_before(ds_status.get("lastChecked"), fresh_after):
        status["message"] = (
            f"waiting for Dataset '{ref}' to re-check its source (this run needs data read after {fresh_after})"
        )
        _conditions(status, meta, stamp, "False", "WaitingForFreshData", status["message"])
        plan.wake.append(("Dataset", meta.namespace, ref))
        return plan
    version = ds_status["version"]
    name = training_job_name(meta)
    plan.creates.append(_training_job(body, dataset, name, version, settings))
    status.update(jobName=name, datasetVersion=version, message=f"Job {name} created on dataset version {version[:19]}")
    _conditions(status, meta, stamp, "Unknown", "JobCreated", status["message"])
    plan.events.append(Event("JobCreated", f"training Job {name} on Dataset '{ref}' version {version}"))
    return plan


def _checked_before(last_checked: str | None, wanted: str) -> bool:
    """True when the Dataset's last check is older than `wanted` (an unreadable time asks for nothing)."""
    try:
        wanted_time = parse_time(wanted)
    except ValueError:
        return False
    checked = parse_time(last_checked) if last_checked else None
    return wanted_time is not None and (checked is None or checked < wanted_time)


def _succeeded(body: Obj, plan: Plan, meta: Meta, run: RunInfo | None, outcome: JobOutcome, stamp: str) -> Plan:
    status = plan.status
    if run is None or run.status == "RUNNING" or contract.TAG_REGISTERED_VERSION not in run.tags:
        status["message"] = f"Job {status['jobName']} finished; waiting for its results in MLflow"
        plan.requeue_after = RESULT_RETRY_SECONDS
        return plan
    spec = body["spec"]
    version = int(run.tags[contract.TAG_REGISTERED_VERSION])
    registered = run.tags.get(contract.TAG_REGISTERED_MODEL, spec["registeredModel"])
    mv_name = model_version_name(registered, version)
    plan.creates.append(_model_version(body, registered, version, run, mv_name, status.get("datasetVersion")))
    metrics = {k: round(v, 6) for k, v in sorted(run.metrics.items()) if k in _METRICS}
    figures = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    status.update(
        phase="Succeeded",
        metrics=metrics,
        modelVersion=mv_name,
        completionTime=outcome.completion_time or stamp,
        message=f"registered {registered} version {version} ({figures})",
    )
    _conditions(status, meta, stamp, "True", "Succeeded", status["message"])
    plan.events.append(Event("Succeeded", f"{status['message']}; created ModelVersion {mv_name}"))
    return plan


_METRICS = set(contract.CLASSIFICATION_METRICS) | set(contract.REGRESSION_METRICS)


def _failed(plan: Plan, meta: Meta, run: RunInfo | None, outcome: JobOutcome, stamp: str) -> Plan:
    status = plan.status
    reason = (run.tags.get(contract.TAG_ERROR) if run else None) or outcome.message or "the training Job failed"
    status.update(phase="Failed", completionTime=outcome.completion_time or stamp, message=reason)
    condition_reason = outcome.reason if outcome.reason in ("DeadlineExceeded", "OOMKilled") else "TrainingFailed"
    _conditions(status, meta, stamp, "False", condition_reason, reason)
    plan.events.append(Event(condition_reason, reason, "Warning"))
    return plan


def _conditions(status: Obj, meta: Meta, stamp: str, succeeded: str, reason: str, message: str) -> None:
    ready = "True" if succeeded == "True" else "False"
    conditions = set_condition(
        status.get("conditions"), "Succeeded", succeeded, reason, message, generation=meta.generation, now=stamp
    )
    status["conditions"] = set_condition(
        conditions, "Ready", ready, reason, message, generation=meta.generation, now=stamp
    )


def _training_job(body: Obj, dataset: Obj, name: str, version: str, settings: WorkerSettings) -> Obj:
    spec = TrainingRunSpec.model_validate(body["spec"])  # defaults from the API model
    pinned = json.loads(worker_object(dataset))
    pinned["status"] = {"version": version}
    return worker_job(
        owner=body,
        name=name,
        command="train",
        settings=settings,
        extra_env={contract.ENV_DATASET: json.dumps(pinned, separators=(",", ":"), sort_keys=True)},
        resources=spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True) if spec.resources else None,
        backoff_limit=spec.backoff_limit,
        active_deadline_seconds=spec.active_deadline_seconds,
        ttl_seconds_after_finished=None,
        annotations={ANNOTATION_DATASET_VERSION: version},
    )


def _model_version(
    body: Obj, registered: str, version: int, run: RunInfo, name: str, dataset_version: str | None
) -> Obj:
    meta, spec = body["metadata"], body["spec"]
    mv_spec: Obj = {
        "registeredModel": registered,
        "version": version,
        "source": {"trainingRunRef": meta["name"], "runId": run.run_id, "uri": f"models:/{registered}/{version}"},
    }
    if spec.get("promotion"):
        mv_spec["promotion"] = spec["promotion"]
    annotations = {ANNOTATION_RUN_ID: run.run_id}
    if dataset_version:
        annotations[ANNOTATION_DATASET_VERSION] = dataset_version
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {
                LABEL_TRAINING_RUN: label_value(meta["name"]),
                LABEL_DATASET: label_value(spec["datasetRef"]["name"]),
                LABEL_REGISTERED_MODEL: label_value(registered),
                "app.kubernetes.io/managed-by": "mlops-operator",
            },
            "annotations": annotations,
        },
        "spec": mv_spec,
    }
