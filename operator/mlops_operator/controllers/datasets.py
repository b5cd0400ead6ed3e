"""Dataset controller: a validation Job per check, its MLflow result into status, dependants woken when Ready.

One gather reads the wanted check's Job, its pods (when it failed) and its MLflow run (once it finished)
into a `DatasetObserved`; a failed read ends there as data, never as an exception, so status is still
written and Degraded says what failed. The Job reads here are shared with the TrainingRun controller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import kopf

from .. import contract
from ..api.common import GROUP, VERSION
from ..api.dataset import DatasetSpec, DatasetStatus
from ..contract import ANNOTATION_DATA_NOT_BEFORE
from ..integrations.mlflow import MlflowError, RunInfo
from ..kubeapi import ApiError, job_path
from ..planning.conflicts import foreign
from ..planning.dataset import plan_dataset, wanted_check
from ..planning.jobs import job_outcome
from ..planning.observed import DatasetObserved, WorkerJobObserved
from ..planning.plan import Meta, Obj, Plan
from .podrefs import missing_pod_refs
from .runtime import Runtime, runtime


def parse(body: Obj) -> tuple[Meta, DatasetSpec, DatasetStatus]:
    """The object as the typed API models (defaults filled in by them, not restated here)."""
    return (
        Meta.of(body),
        DatasetSpec.model_validate(body["spec"]),
        DatasetStatus.model_validate(body.get("status") or {}),
    )


async def reconcile_dataset(rt: Runtime, body: Obj) -> Plan:
    """Gather, then plan; the runtime applies the plan."""
    now = datetime.now(UTC)
    return plan_dataset(await gather(rt, body, now), now)


async def gather(rt: Runtime, body: Obj, now: datetime) -> DatasetObserved:
    """Every read one pass needs: which check is wanted (the store's refresh requests), then, unless its
    result is recorded, that check's Job, pods and run."""
    meta, spec, status = parse(body)
    requested = rt.store.refresh_requested(meta.namespace, meta.name, ANNOTATION_DATA_NOT_BEFORE)
    name = wanted_check(meta, spec, status, now, requested)
    check = WorkerJobObserved(name)
    if status.checked_job != name:
        expected = status.job_name == name
        check = await gather_job(rt, meta.namespace, name, expected, contract.EXPERIMENT_DATASETS, meta.uid)
    conflicts = await rt.name_conflicts(meta.uid)
    missing: tuple[str, ...] = ()
    if status.checked_job != name and check.job is None and check.job_error is None:  # a Job is to be created
        missing = await missing_pod_refs(rt, meta.namespace, spec.pod)
    return DatasetObserved(
        meta=meta,
        spec=spec,
        status=status,
        body=body,
        worker=rt.settings.worker,
        check=check,
        conflicts=conflicts,
        missing_pod_refs=missing,
    )


async def gather_job(
    rt: Runtime, namespace: str, name: str, expected: bool, experiment: str, uid: str
) -> WorkerJobObserved:
    """A worker Job, its outcome (a failed one's from its pods too) and, once it finished, its MLflow run;
    a read that fails is kept as its error."""
    try:
        job = await known_job(rt, namespace, name, expected)
    except (ApiError, httpx.HTTPError) as error:
        return WorkerJobObserved(name, job_error=f"Job {name} could not be read: {failure(error)}")
    conflict = foreign("Job", job, uid)
    if conflict is not None:  # not ours: its outcome says nothing about this owner, and it is left alone
        rt.note_conflict(uid, job_path(namespace, name), conflict)
        return WorkerJobObserved(name)
    if job is None:
        return WorkerJobObserved(name)
    pods: list[Obj] = []
    pods_error = None
    try:
        pods = await job_pods(rt, job)
    except (ApiError, httpx.HTTPError) as error:
        pods_error = f"the pods of Job {name} could not be read: {failure(error)}"
    outcome = job_outcome(job, pods)
    run, run_error = None, None
    if outcome.state in ("Succeeded", "Failed"):
        try:
            run = await find_job_run(rt, experiment, uid, name)
        except MlflowError as error:
            run_error = error
    return WorkerJobObserved(name, job, outcome, run, pods_error=pods_error, run_error=run_error)


def failure(error: Exception) -> str:
    """An API failure in one line (the API server's own message, cut short)."""
    return (str(error) or repr(error)).splitlines()[0][:300]


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
    news = rt.event("Dataset", type, dict(body))
    for run_name in rt.store.waiting_trainingruns(namespace, name):
        rt.enqueue("TrainingRun", namespace, run_name, urgent=news)
