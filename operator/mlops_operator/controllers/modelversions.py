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
    index = rt.indexes.get("rollout_deployments")
    namespace = body["metadata"]["namespace"]
    rollouts = sorted(set(index.get((namespace, model, alias), []))) if index is not None else []
    return plan_modelversion(body, registered, metrics, holder, holder_metrics, rollouts, datetime.now(UTC))


@kopf.index(GROUP, VERSION, "modelversions")  # type: ignore[arg-type]
def promoted_versions(namespace: str, name: str, spec: Any, status: Any, **_: Any) -> dict[Any, Any]:
    """Promoted ModelVersions by registered model: they are superseded when another version takes the alias."""
    if (status or {}).get("phase") != "Promoted":
        return {}
    return {spec.get("registeredModel"): (namespace, name)}


@kopf.index(GROUP, VERSION, "deployments")  # type: ignore[arg-type]
def rollout_deployments(namespace: str, name: str, spec: Any, **_: Any) -> dict[Any, Any]:
    """Deployments by the (registered model, alias) they serve: their canary, not us, moves that alias."""
    model = (spec or {}).get("model") or {}
    if not (model.get("alias") and model.get("registeredModel")):
        return {}
    return {(namespace, model["registeredModel"], model["alias"]): name}


@kopf.on.event(GROUP, VERSION, "modelversions")  # type: ignore[arg-type]
async def modelversion_changed(
    type: str,
    body: kopf.Body,
    namespace: str,
    name: str,
    promoted_versions: kopf.Index[Any, tuple[str, str]],
    rollout_deployments: kopf.Index[Any, str],
    **_: Any,
) -> None:
    """Any change to a ModelVersion reconciles it; a new promotion re-checks the model's other holders."""
    if type == "DELETED":
        return
    rt = runtime()
    rt.indexes["rollout_deployments"] = rollout_deployments
    await rt.reconcile("ModelVersion", namespace, name, dict(body))
    phase = (body.get("status") or {}).get("phase")
    if phase == "Approved":  # a Deployment serving this alias rolls it out as a canary
        alias = (body["spec"].get("promotion") or {}).get("alias", "production")
        for deployment in list(rollout_deployments.get((namespace, body["spec"]["registeredModel"], alias), [])):
            await rt.reconcile("Deployment", namespace, deployment)
    if phase == "Promoted":
        model = body["spec"]["registeredModel"]
        for other_ns, other in list(promoted_versions.get(model, [])):
            if (other_ns, other) != (namespace, name):
                await rt.reconcile("ModelVersion", other_ns, other)
