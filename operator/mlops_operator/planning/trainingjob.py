"""The pieces of a TrainingRun's plan both the plain run and a trial search use: the training Job, its name,
the pinned Dataset the worker receives, and the Succeeded/Ready pair of conditions."""

from __future__ import annotations

import json
from typing import Any

from .. import contract
from ..api.common import ConditionStatus
from ..api.trainingrun import TrainingRunStatus
from ..contract import ANNOTATION_DATASET_VERSION
from .conditions import set_typed
from .jobs import worker_job, worker_object
from .observed import TrainingDataset, TrainingRunObserved
from .plan import Meta, Obj, dns_name


def training_job_name(meta: Meta) -> str:
    """One Job per TrainingRun, named after it and its uid so a re-created run never adopts an old Job."""
    return dns_name(meta.name, meta.uid[:8])


def set_run_conditions(
    status: TrainingRunStatus, meta: Meta, stamp: str, succeeded: ConditionStatus, reason: str, message: str
) -> None:
    """Succeeded as given and Ready with it (True only once the run succeeded), with one reason and message."""
    ready: ConditionStatus = "True" if succeeded == "True" else "False"
    conditions = set_typed(
        status.conditions, "Succeeded", succeeded, reason, message, generation=meta.generation, now=stamp
    )
    status.conditions = set_typed(conditions, "Ready", ready, reason, message, generation=meta.generation, now=stamp)


def pinned_dataset(dataset: TrainingDataset, version: str) -> str:
    """The MLOPS_DATASET value: the Dataset as the worker sees it, with the version this run is pinned to."""
    pinned = json.loads(worker_object(dataset.body))
    pinned["status"] = {"version": version}
    return json.dumps(pinned, separators=(",", ":"), sort_keys=True)


def training_job(
    obs: TrainingRunObserved, dataset: TrainingDataset, name: str, version: str, params: dict[str, Any] | None = None
) -> Obj:
    """The training Job; after a trial search, the refit of the chosen `params` (no search in the pod)."""
    spec = obs.spec
    extra_env = {contract.ENV_DATASET: pinned_dataset(dataset, version)}
    if params is not None:
        extra_env[contract.ENV_PARAMS] = json.dumps(params, separators=(",", ":"), sort_keys=True)
    return worker_job(
        owner=obs.body,
        name=name,
        command="train",
        settings=obs.worker,
        extra_env=extra_env,
        resources=spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True) if spec.resources else None,
        backoff_limit=spec.backoff_limit,
        active_deadline_seconds=spec.active_deadline_seconds,
        ttl_seconds_after_finished=None,
        annotations={ANNOTATION_DATASET_VERSION: version},
        pod=spec.pod,
    )
