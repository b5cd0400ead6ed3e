"""TrainingRun controller: one training Job on a pinned Dataset version, its result, its ModelVersion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from .. import contract
from ..api.common import GROUP, VERSION
from ..contract import LABEL_MANAGED_BY, LABEL_OWNER_KIND, LABEL_OWNER_NAME, MANAGED_BY
from ..integrations.mlflow import MlflowError
from ..planning.jobs import job_outcome
from ..planning.plan import Meta, Obj, Plan
from ..planning.trainingrun import TERMINAL, plan_trainingrun, training_job_name
from .datasets import find_job_run, job_pods, known_job
from .runtime import Runtime, runtime


async def reconcile_trainingrun(rt: Runtime, body: Obj) -> Plan | None:
    """Read the Dataset, the Job and the MLflow run; plan the TrainingRun's next step."""
    status = body.get("status") or {}
    meta = Meta.of(body)
    if status.get("phase") in TERMINAL:  # only the store's view of its Job: it may expire now
        job = rt.store.get("Job", meta.namespace, training_job_name(meta))
        return plan_trainingrun(body, None, job, None, None, datetime.now(UTC), rt.settings.worker)
    job = await known_job(rt, meta.namespace, training_job_name(meta), bool(status.get("jobName")))
    dataset = None
    if job is None:
        dataset = await rt.get("Dataset", meta.namespace, body["spec"]["datasetRef"]["name"])
    outcome = job_outcome(job, await job_pods(rt, job)) if job is not None else None
    run, mlflow_error = None, None
    if job is not None and outcome is not None and outcome.state in ("Succeeded", "Failed"):
        try:
            run = await find_job_run(rt, contract.EXPERIMENT_TRAINING, meta.uid, job["metadata"]["name"])
        except MlflowError as error:  # data for the planner: the result waits, status says why
            mlflow_error = str(error)
    now = datetime.now(UTC)
    return plan_trainingrun(body, dataset, job, outcome, run, now, rt.settings.worker, mlflow_error)


@kopf.on.event(GROUP, VERSION, "trainingruns")  # type: ignore[arg-type]
async def trainingrun_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a TrainingRun reconciles it."""
    rt = runtime()
    rt.observe("TrainingRun", type, dict(body))
    if type == "DELETED":
        return
    await rt.reconcile("TrainingRun", namespace, name, dict(body))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
async def job_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """A worker Job changed: reconcile the object that owns it."""
    rt = runtime()
    rt.observe("Job", type, dict(body))
    labels = body.get("metadata", {}).get("labels") or {}
    kind, owner = labels.get(LABEL_OWNER_KIND), labels.get(LABEL_OWNER_NAME)
    if kind in ("Dataset", "TrainingRun") and owner:
        await rt.reconcile(kind, namespace, owner)
