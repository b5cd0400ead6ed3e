"""Dataset controller: a validation Job per check, its MLflow result into status, dependants woken when Ready."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from .. import contract
from ..api.common import GROUP, VERSION
from ..contract import ANNOTATION_DATA_NOT_BEFORE
from ..integrations.mlflow import RunInfo
from ..kubeapi import job_path
from ..planning.dataset import plan_dataset, wanted_check
from ..planning.jobs import job_outcome
from ..planning.plan import Obj, Plan
from .runtime import Runtime, runtime


async def reconcile_dataset(rt: Runtime, body: Obj) -> Plan:
    """Read the wanted check's Job and, once it finished, its MLflow run; plan the Dataset's status."""
    meta, now = body["metadata"], datetime.now(UTC)
    requested = rt.store.refresh_requested(meta["namespace"], meta["name"], ANNOTATION_DATA_NOT_BEFORE)
    job_name = wanted_check(body, now, requested)
    job = None
    if (body.get("status") or {}).get("checkedJob") != job_name:
        job = await known_job(rt, meta["namespace"], job_name, (body.get("status") or {}).get("jobName") == job_name)
    outcome = job_outcome(job, await job_pods(rt, job)) if job is not None else None
    run = None
    if outcome is not None and outcome.state in ("Succeeded", "Failed"):
        run = await find_job_run(rt, contract.EXPERIMENT_DATASETS, meta["uid"], job_name)
    return plan_dataset(body, now, job_name, job, outcome, run, rt.settings.worker)


async def known_job(rt: Runtime, namespace: str, name: str, expected: bool) -> Obj | None:
    """A worker Job from the watch-fed store; asked from the API only when status says it should exist
    and the watch has not shown it yet (just created, or the operator just started)."""
    job = rt.store.get("Job", namespace, name)
    if job is None and expected:
        job = await rt.kube.get_or_none(job_path(namespace, name))
    return job


async def job_pods(rt: Runtime, job: Obj | None) -> list[Obj]:
    """The pods of a failed Job (their termination state says why); none for other Jobs."""
    if job is None or not any(
        c.get("type") == "Failed" and c.get("status") == "True" for c in job.get("status", {}).get("conditions") or []
    ):
        return []
    meta = job["metadata"]
    pods = await rt.kube.get(
        f"/api/v1/namespaces/{meta['namespace']}/pods", labelSelector=f"batch.kubernetes.io/job-name={meta['name']}"
    )
    return list(pods.get("items", []))


async def find_job_run(rt: Runtime, experiment: str, uid: str, job_name: str) -> RunInfo | None:
    """The newest MLflow run a Job's pods logged (retried pods log one run each)."""
    runs = await rt.mlflow.find_runs(experiment, {contract.TAG_UID: uid, contract.TAG_JOB: job_name})
    finished = [r for r in runs if r.status != "RUNNING"]
    candidates = finished or runs
    return candidates[0] if candidates else None


@kopf.on.event(GROUP, VERSION, "datasets")  # type: ignore[arg-type]
async def dataset_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a Dataset: reconcile it, then let the TrainingRuns waiting for it re-read it."""
    rt = runtime()
    rt.observe("Dataset", type, dict(body))
    if type != "DELETED":
        await rt.reconcile("Dataset", namespace, name, dict(body))
    for run_name in rt.store.waiting_trainingruns(namespace, name):
        await rt.reconcile("TrainingRun", namespace, run_name)
