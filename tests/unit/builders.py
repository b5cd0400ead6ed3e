"""Shared builders for planner tests: typed observations from plain manifests, as the controllers gather them."""

from __future__ import annotations

from typing import Any

from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.planning.analysis import MetricReading
from mlops_operator.planning.observed import DeploymentObserved, DriftReadings, RetrainingObserved, Tracks
from mlops_operator.planning.ownership import ModelOwnership
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.serving import ServerSettings

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
    readings: list[MetricReading] | None = None,
    drift: DriftReadings | None = None,
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
        ),
        approved=approved or {},
        holder_version=holder,
        holder_error=holder_error,
        ownership=ownership,
        ownership_error=ownership_error,
        analysis=readings,
        drift=drift,
        retraining=retraining or RetrainingObserved(),
    )


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    """A condition of a planned status (fails the test if absent)."""
    return next(c for c in status["conditions"] if c["type"] == ctype)
