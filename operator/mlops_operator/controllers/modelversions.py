"""ModelVersion controller: gates against MLflow metrics, approval, and alias moves when nothing rolls it out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..api.modelversion import ModelVersionSpec
from ..integrations.mlflow import MlflowError
from ..planning.modelversion import TERMINAL, ModelVersionObserved, plan_modelversion
from ..planning.ownership import ModelOwnership
from ..planning.plan import Obj, Plan
from .runtime import Runtime, runtime


async def reconcile_modelversion(rt: Runtime, body: Obj) -> Plan | None:
    """Gather the registry's view (MLflow errors as data) and the store's, then plan gates and promotion."""
    status, meta = body.get("status") or {}, body["metadata"]
    if status.get("phase") in TERMINAL and status.get("observedGeneration") == meta.get("generation"):
        return None
    spec = ModelVersionSpec.model_validate(body["spec"])
    model, version, alias = spec.registered_model, spec.version, spec.promotion.alias
    namespace = meta["namespace"]
    rollouts = sorted(rt.store.rollout_deployments(namespace, model, alias))
    rolled_back_by = rt.store.rollback_of(namespace, model, alias, version)
    try:
        ownership = ModelOwnership.of(model, await rt.mlflow.registered_model(model))
        registered, metrics = await rt.mlflow.version_metrics(model, version)
        holder = await rt.mlflow.alias_version(model, alias)
        holder_metrics = None
        if holder is not None and holder != version:
            holder_metrics = (await rt.mlflow.version_metrics(model, holder))[1]
    except MlflowError as error:
        observed = ModelVersionObserved(rollouts=rollouts, rolled_back_by=rolled_back_by, mlflow_error=str(error))
    else:
        observed = ModelVersionObserved(
            registered, metrics, holder, holder_metrics, rollouts, rolled_back_by, ownership=ownership
        )
    return plan_modelversion(body, observed, datetime.now(UTC))


@kopf.on.event(GROUP, VERSION, "modelversions")  # type: ignore[arg-type]
async def modelversion_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a ModelVersion reconciles it; approval wakes its Deployments, promotion its rivals."""
    rt = runtime()
    news = rt.event("ModelVersion", type, dict(body))
    if type == "DELETED":
        return
    phase, spec = (body.get("status") or {}).get("phase"), body["spec"]
    if phase == "Approved":  # a Deployment serving this alias rolls it out as a canary
        alias = ModelVersionSpec.model_validate(spec).promotion.alias
        for deployment in rt.store.rollout_deployments(namespace, spec["registeredModel"], alias):
            rt.enqueue("Deployment", namespace, deployment, urgent=news)
    if phase == "Promoted":
        for other_ns, other in rt.store.promoted_versions(spec["registeredModel"]):
            if (other_ns, other) != (namespace, name):
                rt.enqueue("ModelVersion", other_ns, other, urgent=news)
