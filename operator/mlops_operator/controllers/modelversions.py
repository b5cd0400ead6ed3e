"""ModelVersion controller: gates against MLflow metrics, approval, and alias moves when nothing rolls it out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..planning.modelversion import TERMINAL, plan_modelversion
from ..planning.plan import Obj, Plan
from .runtime import Runtime, runtime


async def reconcile_modelversion(rt: Runtime, body: Obj) -> Plan | None:
    """Read the version, its metrics and the alias holder from MLflow; plan gates and promotion."""
    status, spec = body.get("status") or {}, body["spec"]
    if status.get("phase") in TERMINAL:
        return None
    model, version = spec["registeredModel"], int(spec["version"])
    alias = (spec.get("promotion") or {}).get("alias", "production")
    registered, metrics = await rt.mlflow.version_metrics(model, version)
    holder = await rt.mlflow.alias_version(model, alias)
    holder_metrics = None
    if holder is not None and holder != version:
        holder_metrics = (await rt.mlflow.version_metrics(model, holder))[1]
    rollouts = sorted(rt.store.rollout_deployments(body["metadata"]["namespace"], model, alias))
    return plan_modelversion(body, registered, metrics, holder, holder_metrics, rollouts, datetime.now(UTC))


@kopf.on.event(GROUP, VERSION, "modelversions")  # type: ignore[arg-type]
async def modelversion_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a ModelVersion reconciles it; approval wakes its Deployments, promotion its rivals."""
    rt = runtime()
    rt.observe("ModelVersion", type, dict(body))
    if type == "DELETED":
        return
    await rt.reconcile("ModelVersion", namespace, name, dict(body))
    phase, spec = (body.get("status") or {}).get("phase"), body["spec"]
    if phase == "Approved":  # a Deployment serving this alias rolls it out as a canary
        alias = (spec.get("promotion") or {}).get("alias", "production")
        for deployment in rt.store.rollout_deployments(namespace, spec["registeredModel"], alias):
            await rt.reconcile("Deployment", namespace, deployment)
    if phase == "Promoted":
        for other_ns, other in rt.store.promoted_versions(spec["registeredModel"]):
            if (other_ns, other) != (namespace, name):
                await rt.reconcile("ModelVersion", other_ns, other)
