"""The serving objects a rollout status asks for, and when a running rollout must be looked at again."""

from __future__ import annotations

from datetime import datetime

from ..api.deployment import DeploymentStatus
from .analysis import step_metrics
from .observed import DeploymentObserved
from .plan import Obj, parse_time
from .rollout import STEADY_RESYNC_SECONDS, seconds
from .scaling import autoscaler, disruption_budgets, spec_replicas, track_replicas
from .serving import SHADOW, served_version, server_deployment, service, shadow_service
from .shadow import in_shadow, shadow_of, shadow_seconds


def children(status: DeploymentStatus, obs: DeploymentObserved) -> list[Obj]:
    """The Service, both tracks' apps/v1 Deployments and PodDisruptionBudgets, the stable track's HPA (with
    spec.autoscaling) and the shadow track's objects (with a shadow step)."""
    counts = track_replicas(obs.spec, status.canary_weight, obs.tracks.stable, obs.tracks.canary)
    stable_replicas, canary_replicas = counts.stable, counts.canary
    stable, canary_version = status.stable_version, status.canary_version
    if canary_version is None:
        # Hand-over after a completed canary: its pods keep serving until the stable track is ready.
        served = served_version(obs.tracks.canary)
        wanted = stable_replicas if stable_replicas is not None else (spec_replicas(obs.tracks.stable) or 0)
        if served is not None and served == stable and obs.tracks.stable_ready < wanted and obs.tracks.canary:
            canary_version, canary_replicas = served, int(obs.tracks.canary["spec"].get("replicas") or 0)
        else:
            canary_version, canary_replicas = served, 0
    serving = [
        service(obs.meta),
        server_deployment(obs.meta, obs.spec, "stable", stable, stable_replicas, obs.server),
        server_deployment(obs.meta, obs.spec, "canary", canary_version, canary_replicas, obs.server),
        *disruption_budgets(obs.meta, obs.spec),
    ]
    hpa = autoscaler(obs.meta, obs.spec)
    if hpa is not None:
        serving.append(hpa)
    shadow = shadow_of(obs.spec)
    if shadow is not None:
        shadowing = status.canary_version if in_shadow(status) else None
        replicas_shadow = shadow.replicas if shadowing is not None else 0
        serving.append(shadow_service(obs.meta))
        serving.append(server_deployment(obs.meta, obs.spec, SHADOW, shadowing, replicas_shadow, obs.server))
    return serving


def stale_children(obs: DeploymentObserved) -> list[Obj]:
    """Children that spec no longer asks for and that must go: the HPA once spec.autoscaling is removed (while
    it exists it would keep setting the stable track's replicas against spec.replicas)."""
    if obs.spec.autoscaling is None and obs.tracks.autoscaler is not None:
        observed = obs.tracks.autoscaler
        return [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": observed["metadata"]}]
    return []


def next_wakeup(status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> float | None:
    """Seconds until the pause ends, the next analysis or the deadline (at most 5 s while a canary runs)."""
    if status.canary_version is None:
        return STEADY_RESYNC_SECONDS if obs.spec.model.alias else None  # notice alias moves made elsewhere
    canary_spec = obs.spec.strategy.canary
    shadow = shadow_of(obs.spec)
    if in_shadow(status) and shadow is not None:
        return max(0.5, min(5.0, seconds(shadow.duration) - shadow_seconds(status, now)))
    step = canary_spec.steps[min(int(status.step or 0), len(canary_spec.steps) - 1)]
    started = parse_time(status.step_started_at) or now
    elapsed = (now - started).total_seconds()
    waits = [5.0]
    if step.pause:
        waits.append(seconds(step.pause) - elapsed)
    if step_metrics(canary_spec.analysis, step.weight):
        since = parse_time(status.last_analysis_at) or started
        waits.append(seconds(canary_spec.analysis.interval) - (now - since).total_seconds())
    return max(0.5, min(waits))
