"""TrainingRun controller: one training Job on a pinned Dataset version, its result, its ModelVersion.

One gather reads the run's Job (with its pods and MLflow run, as the Dataset controller reads a check)
and, while no Job exists, its Dataset, into a `TrainingRunObserved`; a failed read is data for the
planner, never an exception.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import kopf

from .. import contract
from ..api.common import GROUP, VERSION
from ..api.dataset import DatasetStatus
from ..api.trainingrun import TrainingRunSpec, TrainingRunStatus
from ..contract import ANNOTATION_DATA_NOT_BEFORE
from ..integrations.mlflow import MlflowError, RunInfo
from ..kubeapi import ApiError, job_path
from ..planning.conflicts import foreign
from ..planning.jobs import job_outcome
from ..planning.observed import TrainingDataset, TrainingRunObserved, WorkerJobObserved
from ..planning.ownership import ModelOwnership
from ..planning.plan import Meta, Obj, Plan
from ..planning.trainingrun import TERMINAL, plan_trainingrun, training_job_name
from ..planning.trials import MAX_TRIAL_RUNS, trial_job_name
from .datasets import failure, gather_job, job_pods, known_job
from .podrefs import missing_pod_refs
from .runtime import Runtime, runtime


def parse(body: Obj) -> tuple[Meta, TrainingRunSpec, TrainingRunStatus]:
    """The object as the typed API models (defaults filled in by them, not restated here)."""
    return (
        Meta.of(body),
        TrainingRunSpec.model_validate(body["spec"]),
        TrainingRunStatus.model_validate(body.get("status") or {}),
    )


async def reconcile_trainingrun(rt: Runtime, body: Obj) -> Plan:
    """Gather, then plan; the runtime applies the plan."""
    observed = await gather(rt, body)
    return plan_trainingrun(observed, datetime.now(UTC))


async def gather(rt: Runtime, body: Obj) -> TrainingRunObserved:
    """Every read one pass needs: the Job (with its pods and run, as a Dataset check is read), and the Dataset
    while no Job exists. A finished run reads only the store's view of its Job (it may expire now)."""
    meta, spec, status = parse(body)
    name = training_job_name(meta)
    dataset, dataset_error = None, None
    ownership: ModelOwnership | None = None
    ownership_error: MlflowError | None = None
    missing: tuple[str, ...] = ()
    trial_job: WorkerJobObserved | None = None
    trial_runs: tuple[RunInfo, ...] = ()
    finished_trial_jobs: tuple[Obj, ...] = ()
    if status.phase in TERMINAL:  # only a Job this run controls is ever patched (its TTL)
        stored = rt.store.get("Job", meta.namespace, name)
        job = WorkerJobObserved(name, job=None if foreign("Job", stored, meta.uid) else stored)
        finished_trial_jobs = _stored_trial_jobs(rt, meta, status.trials.rounds if status.trials else 0)
    else:
        job = await gather_job(rt, meta.namespace, name, bool(status.job_name), contract.EXPERIMENT_TRAINING, meta.uid)
        if job.job is None and job.job_error is None:  # nothing runs yet: what starting it depends on
            dataset, dataset_error = await _dataset(rt, meta.namespace, spec.dataset_ref.name)
            if spec.trials is not None and status.trials is not None:  # a search runs: its round and trials
                trial_job, trial_runs = await gather_trials(rt, meta, status.trials.round)
            else:
                try:
                    model = spec.registered_model
                    ownership = ModelOwnership.of(model, await rt.mlflow.registered_model(model))
                except MlflowError as error:
                    ownership_error = error
                missing = await missing_pod_refs(rt, meta.namespace, spec.pod)
    return TrainingRunObserved(
        meta=meta,
        spec=spec,
        status=status,
        body=body,
        worker=rt.settings.worker,
        job=job,
        data_not_before=(body["metadata"].get("annotations") or {}).get(ANNOTATION_DATA_NOT_BEFORE),
        dataset=dataset,
        dataset_error=dataset_error,
        ownership=ownership,
        ownership_error=ownership_error,
        conflicts=() if status.phase in TERMINAL else await rt.name_conflicts(meta.uid),
        missing_pod_refs=missing,
        trial_job=trial_job,
        trial_runs=trial_runs,
        finished_trial_jobs=finished_trial_jobs,
    )


async def gather_trials(rt: Runtime, meta: Meta, round_index: int) -> tuple[WorkerJobObserved, tuple[RunInfo, ...]]:
    """The current round's Indexed Job (a failed one's pods too) and every trial run of this TrainingRun, in
    one search; a failed read is kept as its error (`run_error`: the runs)."""
    name = trial_job_name(meta, round_index)
    try:
        job = await known_job(rt, meta.namespace, name, True)
    except (ApiError, httpx.HTTPError) as error:
        return WorkerJobObserved(name, job_error=f"Job {name} could not be read: {failure(error)}"), ()
    conflict = foreign("Job", job, meta.uid)
    if conflict is not None:  # not ours: left alone, and the name conflict stops the run
        rt.note_conflict(meta.uid, job_path(meta.namespace, name), conflict)
        job = None
    outcome, pods_error = None, None
    if job is not None:
        pods: list[Obj] = []
        try:
            pods = await job_pods(rt, job)
        except (ApiError, httpx.HTTPError) as error:
            pods_error = f"the pods of Job {name} could not be read: {failure(error)}"
        outcome = job_outcome(job, pods)
    tags = {contract.TAG_UID: meta.uid, contract.TAG_ROLE: contract.ROLE_TRIAL}
    try:
        runs = tuple(await rt.mlflow.find_runs(contract.EXPERIMENT_TRAINING, tags, max_results=MAX_TRIAL_RUNS))
    except MlflowError as error:
        return WorkerJobObserved(name, job, outcome, pods_error=pods_error, run_error=error), ()
    return WorkerJobObserved(name, job, outcome, pods_error=pods_error), runs


def _stored_trial_jobs(rt: Runtime, meta: Meta, rounds: int) -> tuple[Obj, ...]:
    """A finished search's round Jobs as the store has them (only this run's: their TTL is patched)."""
    jobs = (rt.store.get("Job", meta.namespace, trial_job_name(meta, r)) for r in range(rounds))
    return tuple(job for job in jobs if job is not None and foreign("Job", job, meta.uid) is None)


async def _dataset(rt: Runtime, namespace: str, name: str) -> tuple[TrainingDataset | None, str | None]:
    """The Dataset to train on (None: it does not exist), or why it could not be read."""
    try:
        dataset = await rt.get("Dataset", namespace, name)
    except (ApiError, httpx.HTTPError) as error:
        return None, f"Dataset {name} could not be read: {failure(error)}"
    if dataset is None:
        return None, None
    return TrainingDataset(dataset, DatasetStatus.model_validate(dataset.get("status") or {})), None


@kopf.on.event(GROUP, VERSION, "trainingruns")  # type: ignore[arg-type]
async def trainingrun_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a TrainingRun reconciles it."""
    runtime().event("TrainingRun", type, dict(body))
