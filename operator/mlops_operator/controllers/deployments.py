"""Deployment controller (deployments.mlops.dev): serving tracks, canary steps, analysis, rollback, promotion."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import kopf

from ..api.common import GROUP, VERSION, parse_duration
from ..integrations.prometheus import Prometheus, builtin_query, custom_query, judge
from ..planning.jobs import LABEL_MANAGED_BY, MANAGED_BY
from ..planning.monitoring import drift_due, plan_drift
from ..planning.plan import Obj, Plan
from ..planning.retraining import in_cooldown, plan_retraining, retraining_settings, wants_new_run
from ..planning.rollout import Observed, analysis_due, canary_settings, plan_deployment
from ..planning.serving import (
    ANNOTATION_SPEC_HASH,
    LABEL_DEPLOYMENT,
    ServerSettings,
    needs_update,
    ready_replicas,
    track_name,
)
from .monitoring import check_drift, retraining_observed
from .runtime import Runtime, runtime

APPLY_GRACE_SECONDS = 5.0


async def reconcile_deployment(rt: Runtime, body: Obj) -> Plan:
    """Read the alias holder, approved versions, both tracks and (when due) the analysis; plan the rollout."""
    meta, spec = body["metadata"], body["spec"]
    namespace, name = meta["namespace"], meta["name"]
    model = spec["model"]
    holder = await rt.mlflow.alias_version(model["registeredModel"], model["alias"]) if model.get("alias") else None
    approved = (
        rt.store.approved_versions(namespace, model["registeredModel"], model["alias"]) if model.get("alias") else {}
    )
    stable = rt.store.get("ServingDeployment", namespace, track_name(name, "stable"))
    canary = rt.store.get("ServingDeployment", namespace, track_name(name, "canary"))
    service = rt.store.get("Service", namespace, name)
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
    stable_version = (body.get("status") or {}).get("stableVersion")
    drift = None
    if stable_version is not None and drift_due(body, now):
        drift = await check_drift(rt, body, int(stable_version))
    plan_drift(plan, body, drift, now)
    await _plan_retraining(rt, body, plan, now)
    # Children are applied only when they differ from what is there (spec hash), never blindly.
    existing = {
        ("Deployment", track_name(name, "stable")): stable,
        ("Deployment", track_name(name, "canary")): canary,
    }
    existing[("Service", name)] = service
    plan.applies = [
        child
        for child in plan.applies
        if needs_update(child, existing.get((child["kind"], child["metadata"]["name"])))
        and not _just_applied(rt, namespace, child)
    ]
    return plan


async def _plan_retraining(rt: Runtime, body: Obj, plan: Plan, now: datetime) -> None:
    """Read what retraining needs (the serving version's run spec only when a run may be created) and plan it."""
    settings = retraining_settings(body["spec"])
    if settings is None:
        return
    status = plan.status
    decided = (status.get("retraining") or {}).get("run")
    missing = bool(decided) and rt.store.get("TrainingRun", body["metadata"]["namespace"], str(decided)) is None
    need_source = wants_new_run(status, body["spec"], now) or (
        missing and in_cooldown(status, settings["cooldown"], now)
    )
    plan_retraining(plan, body, await retraining_observed(rt, body, need_source), now)


def _just_applied(rt: Runtime, namespace: str, child: Obj) -> bool:
    """True if this exact spec was applied moments ago and the watch has not caught up yet (no double patch)."""
    key = f"{namespace}/{child['kind']}/{child['metadata']['name']}"
    digest = child["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
    previous = rt.applied.get(key)
    now = time.monotonic()
    if previous is not None and previous[0] == digest and now - previous[1] < APPLY_GRACE_SECONDS:
        return True
    rt.applied[key] = (digest, now)
    return False


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


@kopf.on.event(GROUP, VERSION, "deployments")  # type: ignore[arg-type]
async def deployment_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a deployments.mlops.dev object reconciles it."""
    rt = runtime()
    rt.observe("Deployment", type, dict(body))
    if type == "DELETED":
        return
    await rt.reconcile("Deployment", namespace, name, dict(body))


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
async def track_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """A serving track changed (pods became ready, a rollout progressed): reconcile its owner."""
    rt = runtime()
    rt.observe("ServingDeployment", type, dict(body))
    owner = (body.get("metadata", {}).get("labels") or {}).get(LABEL_DEPLOYMENT)
    if owner:
        await rt.reconcile("Deployment", namespace, owner)


@kopf.on.event("", "v1", "services", labels={LABEL_MANAGED_BY: MANAGED_BY})  # type: ignore[arg-type]
def service_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Keep the view of the Services the operator made current."""
    runtime().observe("Service", type, dict(body))
