"""Deployment controller (deployments.mlops.dev): serving tracks, canary steps, analysis, rollback, promotion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api.common import GROUP, VERSION, parse_duration
from ..integrations.prometheus import Prometheus, builtin_query, custom_query, judge
from ..planning.jobs import LABEL_MANAGED_BY, MANAGED_BY
from ..planning.plan import Obj, Plan
from ..planning.rollout import Observed, analysis_due, canary_settings, plan_deployment
from ..planning.serving import (
    LABEL_DEPLOYMENT,
    ServerSettings,
    needs_update,
    ready_replicas,
    track_name,
)
from .runtime import Runtime, runtime

APPLY_GRACE_SECONDS = 5.0


class _MergedIndex:
    """Two kopf indexes with disjoint keys, read as one."""

    def __init__(self, *indexes: Any) -> None:
        self.indexes = indexes

    def get(self, key: Any, default: Any = None) -> Any:
        for index in self.indexes:
            if key in index:
                return index[key]
        return default


async def reconcile_deployment(rt: Runtime, body: Obj) -> Plan:
    """Read the alias holder, approved versions, both tracks and (when due) the analysis; plan the rollout."""
    meta, spec = body["metadata"], body["spec"]
    namespace, name = meta["namespace"], meta["name"]
    model = spec["model"]
    holder = await rt.mlflow.alias_version(model["registeredModel"], model["alias"]) if model.get("alias") else None
    approved: dict[int, str] = {}
    index = rt.indexes.get("approved_versions")
    if index is not None and model.get("alias"):
        for mv_name, version in list(index.get((namespace, model["registeredModel"], model["alias"]), [])):
            approved[int(version)] = mv_name
    stable = _indexed(rt, "serving_objects", (namespace, "Deployment", track_name(name, "stable")))
    canary = _indexed(rt, "serving_objects", (namespace, "Deployment", track_name(name, "canary")))
    service = _indexed(rt, "serving_objects", (namespace, "Service", name))
    now = datetime.now(UTC)
    analysis = await run_analysis(rt, body) if analysis_due(body, now) and ready_replicas(canary) > 0 else None
    observed = Observed(
        holder=holder,
        approved=approved,
        stable=stable,
        canary=canary,
        stable_ready=ready_replicas(stable),
        canary_ready=ready_replicas(canary),
        analysis=analysis,
    )
    settings = ServerSettings(image=rt.settings.server_image, tracking_uri=rt.settings.tracking_uri)
    plan = plan_deployment(body, observed, now, settings)
    # Children are applied only when they differ from what is there (spec hash), never blindly.
    existing = {("Deployment", track_name(name, "stable")): stable, ("Deployment", track_name(name, "canary")): canary}
    existing[("Service", name)] = service
    plan.applies = [
        child for child in plan.applies if needs_update(child, existing.get((child["kind"], child["metadata"]["name"])))
    ]
    return plan


def _indexed(rt: Runtime, index_name: str, key: tuple[str, str, str]) -> Obj | None:
    index = rt.indexes.get(index_name)
    if index is None:
        return None
    values = list(index.get(key, []))
    return values[-1] if values else None


@kopf.index("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
def serving_deployments(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The serving tracks the operator made, kept in memory: reconciles read them without API calls."""
    return {(namespace, "Deployment", name): _summary(body)}


@kopf.index("", "v1", "services", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
def serving_services(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The Services the operator made."""
    return {(namespace, "Service", name): _summary(body)}


def _summary(body: kopf.Body) -> Obj:
    meta, spec = body.get("metadata", {}), body.get("spec", {})
    template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "generation": meta.get("generation"),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": {"replicas": spec.get("replicas"), "template": {"metadata": {"labels": dict(template_labels)}}},
        "status": dict(body.get("status") or {}),
    }


async def run_analysis(rt: Runtime, body: Obj) -> list[Obj]:
    """Query every analysis metric for the canary track and judge it."""
    meta, spec = body["metadata"], body["spec"]
    _, analysis = canary_settings(spec)
    url = ((spec.get("monitoring") or {}).get("prometheusUrl")) or rt.settings.prometheus_url
    if not url:
        return [
            {"name": m["name"], "message": "no Prometheus configured (spec.monitoring.prometheusUrl)"}
            for m in analysis.get("metrics", [])
        ]
    seconds = max(30.0, parse_duration(analysis.get("interval", "30s")).total_seconds())
    window = f"{int(seconds)}s"
    prometheus = Prometheus(url)
    try:
        results = []
        for metric in analysis.get("metrics", []):
            if metric.get("builtin"):
                query = builtin_query(metric["builtin"], meta["namespace"], meta["name"], "canary", window)
            else:
                query = custom_query(metric["query"], meta["namespace"], meta["name"], "canary", window)
            results.append(judge(metric, await prometheus.scalar(query)))
        return results
    finally:
        await prometheus.aclose()


@kopf.index(GROUP, VERSION, "modelversions")  # type: ignore[arg-type]
def approved_versions(namespace: str, name: str, spec: Any, status: Any, **_: Any) -> dict[Any, Any]:
    """Approved ModelVersions by (namespace, registered model, alias): the canary candidates."""
    if (status or {}).get("phase") != "Approved":
        return {}
    alias = (spec.get("promotion") or {}).get("alias", "production")
    return {(namespace, spec.get("registeredModel"), alias): (name, spec.get("version"))}


@kopf.on.event(GROUP, VERSION, "deployments")  # type: ignore[arg-type]
async def deployment_changed(
    type: str,
    body: kopf.Body,
    namespace: str,
    name: str,
    approved_versions: kopf.Index[Any, Any],
    serving_deployments: kopf.Index[Any, Any],
    serving_services: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    """Any change to a deployments.mlops.dev object reconciles it."""
    rt = runtime()
    rt.indexes.update(
        approved_versions=approved_versions,
        serving_objects=_MergedIndex(serving_deployments, serving_services),
    )
    if type != "DELETED":
        await rt.reconcile("Deployment", namespace, name, dict(body))


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
async def track_changed(body: kopf.Body, namespace: str, **_: Any) -> None:
    """A serving track changed (pods became ready, a rollout progressed): reconcile its owner."""
    owner = (body.get("metadata", {}).get("labels") or {}).get(LABEL_DEPLOYMENT)
    if owner:
        await runtime().reconcile("Deployment", namespace, owner)
