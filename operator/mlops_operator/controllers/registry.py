"""Registers every controller with kopf and wires each kind to its reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from . import datasets, deployments, main, modelversions, trainingruns  # noqa: F401  (handlers register on import)
from .runtime import runtime


@kopf.on.startup()
async def start_runtime(**_: Any) -> None:
    """Create the shared clients and wire each kind to its reconciler."""
    rt = runtime()
    rt.reconcilers.update(
        Dataset=datasets.reconcile_dataset,
        TrainingRun=trainingruns.reconcile_trainingrun,
        ModelVersion=modelversions.reconcile_modelversion,
        Deployment=deployments.reconcile_deployment,
    )
    await rt.seed_store()


@kopf.on.cleanup()
async def stop_runtime(**_: Any) -> None:
    """Close the shared clients."""
    rt = runtime()
    for timer in rt.timers.values():
        timer.cancel()
    await rt.kube.aclose()
    await rt.mlflow.aclose()
