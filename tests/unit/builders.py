"""Shared builders for planner tests: typed observations from plain manifests, as the controllers gather them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlops_operator.api.dataset import DatasetSpec, DatasetStatus
from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.api.trainingrun import TrainingRunSpec, TrainingRunStatus
from mlops_operator.contract import ANNOTATION_DATA_NOT_BEFORE
from mlops_operator.integrations.mlflow import MlflowError, RunInfo
from mlops_operator.planning.analysis import MetricReading
from mlops_operator.planning.dataset import wanted_check
from mlops_operator.planning.jobs import JobOutcome, WorkerSettings
from mlops_operator.planning.observed import (
    DatasetObserved,
    DeploymentObserved,
    DriftReadings,
    PerformanceReadings,
    RetrainingObserved,
    Tracks,
    TrainingDataset,
    TrainingRunObserved,
    WorkerJobObserved,
)
from mlops_operator.planning.ownership import ModelOwnership
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.serving import ServerSettings
from mlops_operator.planning.trainingrun import training_job_name

SERVER = ServerSettings(image="mlops-operator/server:test", tracking_uri="http://mlflow:5000")
PROMETHEUS = "http://prometheus:9090"


def track(ready: int, replicas: int | None = None, version: int | None = None) -> dict[str, Any]:
    """An observed apps/v1 Deployment of a track with `ready` current pods."""
    labels = {"mlops.dev/model-version": str(version or 0)}
    return {
        "metadata": {"generation": 1, "annotations": {}},
        "spec": {"replicas": ready if replicas is None else replicas, "template": {"metadata": {"labels": labels}}},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": ready},
    }


def observe(
    body: dict[str, Any],
    *,
    holder: int | None = None,
    holder_error: str | None = None,
    approved: dict[int, str] | None = None,
    stable_ready: int = 0,
    canary_ready: int = 0,
    stable: dict[str, Any] | None = None,
    canary: dict[str, Any] | None = None,
    budgets: tuple[dict[str, Any], dict[str, Any]] | None = None,
    autoscaler: dict[str, Any] | None = None,
    readings: list[MetricReading] | None = None,
    drift: DriftReadings | None = None,
    performance: PerformanceReadings | None = None,
    retraining: RetrainingObserved | None = None,
    prometheus_url: str | None = PROMETHEUS,
    ownership: ModelOwnership | None = None,
    ownership_error: str | None = None,
) -> DeploymentObserved:
    """A Deployment observation: the body parsed by the API models, tracks with the given ready pods."""
    return DeploymentObserved(
        meta=Meta.of(body),
        spec=DeploymentSpec.model_validate(body["spec"]),
        status=DeploymentStatus.model_validate(body.get("status") or {}),
        server=SERVER,
        prometheus_url=prometheus_url,
        tracks=Tracks(
            stable=stable if stable is not None else (track(stable_ready) if stable_ready else None),
            canary=canary if canary is not None else (track(canary_ready) if canary_ready else None),
            stable_budget=budgets[0] if budgets else None,
            canary_budget=budgets[1] if budgets else None,
            autoscaler=autoscaler,
        ),
        approved=approved or {},
        holder_version=holder,
        holder_error=holder_error,
        ownership=ownership,
        ownership_error=ownership_error,
        analysis=readings,
        drift=drift,
        performance=performance,
        retraining=retraining or RetrainingObserved(),
    )


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    """A condition of a planned status (fails the test if absent)."""
    return next(c for c in status["conditions"] if c["type"] == ctype)


WORKER = WorkerSettings(image="mlops-operator/trainer:test", tracking_uri="http://mlflow:5000")


def wanted(body: dict[str, Any], now: datetime, requested: str | None = None) -> str:
    """The check a Dataset's status should show now, from its manifest."""
    meta, spec = Meta.of(body), DatasetSpec.model_validate(body["spec"])
    return wanted_check(meta, spec, DatasetStatus.model_validate(body.get("status") or {}), now, requested)


def observe_dataset(
    body: dict[str, Any],
    check: str,
    job: dict[str, Any] | None = None,
    outcome: JobOutcome | None = None,
    run: RunInfo | None = None,
    *,
    job_error: str | None = None,
    pods_error: str | None = None,
    run_error: MlflowError | None = None,
) -> DatasetObserved:
    """A Dataset observation: the body parsed by the API models, the wanted check's Job as read."""
    return DatasetObserved(
        meta=Meta.of(body),
        spec=DatasetSpec.model_validate(body["spec"]),
        status=DatasetStatus.model_validate(body.get("status") or {}),
        body=body,
        worker=WORKER,
        check=WorkerJobObserved(check, job, outcome, run, job_error, pods_error, run_error),
    )


def observe_trainingrun(
    body: dict[str, Any],
    dataset: dict[str, Any] | None = None,
    job: dict[str, Any] | None = None,
    outcome: JobOutcome | None = None,
    run: RunInfo | None = None,
    *,
    job_error: str | None = None,
    pods_error: str | None = None,
    run_error: MlflowError | None = None,
    dataset_error: str | None = None,
    ownership: ModelOwnership | None = None,
    ownership_error: MlflowError | None = None,
) -> TrainingRunObserved:
    """A TrainingRun observation: the body parsed by the API models, its Job and Dataset as read."""
    meta = Meta.of(body)
    typed_dataset = None
    if dataset is not None:
        typed_dataset = TrainingDataset(dataset, DatasetStatus.model_validate(dataset.get("status") or {}))
    return TrainingRunObserved(
        meta=meta,
        spec=TrainingRunSpec.model_validate(body["spec"]),
        status=TrainingRunStatus.model_validate(body.get("status") or {}),
        body=body,
        worker=WORKER,
        job=WorkerJobObserved(training_job_name(meta), job, outcome, run, job_error, pods_error, run_error),
        data_not_before=(body["metadata"].get("annotations") or {}).get(ANNOTATION_DATA_NOT_BEFORE),
        dataset=typed_dataset,
        dataset_error=dataset_error,
        ownership=ownership,
        ownership_error=ownership_error,
    )
