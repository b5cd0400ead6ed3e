"""Registers every controller with kopf. The Deployment kind is acknowledged until its controller lands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api import GROUP, VERSION
from ..planning.conditions import status_changed
from ..planning.initial import initial_status
from . import datasets, main, modelversions, trainingruns  # noqa: F401  (handlers register on import)
from .runtime import runtime


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
async def start_runtime(**_: Any) -> None:
    """Create the shared clients and wire each kind to its reconciler."""
    rt = runtime()
    rt.reconcilers.update(
        Dataset=datasets.reconcile_dataset,
        TrainingRun=trainingruns.reconcile_trainingrun,
        ModelVersion=modelversions.reconcile_modelversion,
    )


@kopf.on.cleanup()
async def stop_runtime(**_: Any) -> None:
    """Close the shared clients."""
    rt = runtime()
    for timer in rt.timers.values():
        timer.cancel()
    await rt.kube.aclose()
    await rt.mlflow.aclose()


@kopf.on.resume(GROUP, VERSION, "deployments")
@kopf.on.create(GROUP, VERSION, "deployments")
@kopf.on.update(GROUP, VERSION, "deployments", field="spec")
async def acknowledge_deployment(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Write the first status of a Deployment, so `kubectl get` and `kubectl wait` show something true."""
    desired = initial_status("Deployment", dict(body), _now())
    if status_changed(dict(body.get("status") or {}), desired):
        patch.status.update(desired)
