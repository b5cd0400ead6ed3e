"""Replicas of the serving tracks, the stable track's HorizontalPodAutoscaler and each track's PodDisruptionBudget.

Without `spec.autoscaling` the operator splits `spec.replicas` between the tracks by the canary weight.
With it, the HPA owns the stable track's `spec.replicas` (the operator writes them only to create the
track, to empty it at a 100 % step and to refill it after one), and the canary follows the stable's
current count S so that its share of pods stays the step's weight w while the HPA scales:
canary = ceil(S * w / (100 - w)), at most maxReplicas. At w = 100 the stable track is set to 0 pods,
which the HPA leaves alone (it never scales a target at zero), and the canary takes all S + canary pods.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..api.deployment import DeploymentSpec
from ..contract import (
    ANNOTATION_SPEC_HASH,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_TRACK,
    MANAGED_BY,
    METRIC_IN_FLIGHT,
)
from .plan import Meta, Obj
from .serving import deployment_owner, spec_hash, split_replicas, track_name, track_selector

SERVING_TRACKS = ("stable", "canary")  # the shadow track takes mirrored copies only: nobody needs it up


class TrackReplicas(NamedTuple):
    """Pods of each track; stable None: leave the stable track's count to its HPA."""

    stable: int | None
    canary: int


def replica_floor(spec: DeploymentSpec) -> int:
    """Ready stable pods that make a Deployment Ready: spec.replicas, or the HPA's minReplicas (pods the HPA adds
    above it are capacity, so a scale-up does not turn Ready False nor post phase Events)."""
    return spec.autoscaling.min_replicas if spec.autoscaling is not None else spec.replicas


def spec_replicas(observed: Obj | None) -> int | None:
    """The `spec.replicas` of an observed apps/v1 Deployment (None: no such track yet)."""
    if observed is None:
        return None
    return int((observed.get("spec") or {}).get("replicas") or 0)


def track_replicas(
    spec: DeploymentSpec, canary_weight: int | None, stable: Obj | None, canary: Obj | None
) -> TrackReplicas:
    """How many pods each track gets at this weight, given the observed tracks."""
    scaling = spec.autoscaling
    if scaling is None:
        return TrackReplicas(*split_replicas(spec.replicas, canary_weight))
    low, high = scaling.min_replicas, scaling.max_replicas
    stable_now, canary_now = spec_replicas(stable), spec_replicas(canary) or 0
    weight = canary_weight or 0
    if weight >= 100:
        total = (stable_now or 0) + canary_now
        return TrackReplicas(0, min(high, max(low, total)))
    if stable_now is None:  # created at the floor; the HPA takes it from there
        stable_target: int | None = low
        count = low
    elif stable_now == 0:  # emptied by a 100 % step: refill before the HPA can act again
        stable_target = min(high, max(low, canary_now))
        count = stable_target
    else:
        stable_target, count = None, stable_now
    if not weight:
        return TrackReplicas(stable_target, 0)
    return TrackReplicas(stable_target, min(high, max(1, math.ceil(count * weight / (100 - weight)))))


def _labels(meta: Meta, track: str) -> Obj:
    return {LABEL_DEPLOYMENT: meta.name, LABEL_TRACK: track, LABEL_MANAGED_BY: MANAGED_BY}


def _child(api_version: str, kind: str, meta: Meta, track: str, desired_spec: Obj) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": track_name(meta.name, track),
            "namespace": meta.namespace,
            "labels": _labels(meta, track),
            "annotations": {ANNOTATION_SPEC_HASH: spec_hash(desired_spec)},
            "ownerReferences": [deployment_owner(meta)],
        },
        "spec": desired_spec,
    }


def autoscaler(meta: Meta, spec: DeploymentSpec) -> Obj | None:
    """The autoscaling/v2 HPA of the stable track, or None without `spec.autoscaling`."""
    scaling = spec.autoscaling
    if scaling is None:
        return None
    target = scaling.target
    if target.cpu_utilization is not None:
        metric: Obj = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target.cpu_utilization},
            },
        }
    else:
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": METRIC_IN_FLIGHT},
                "target": {"type": "AverageValue", "averageValue": str(target.in_flight_requests)},
            },
        }
    desired_spec: Obj = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": track_name(meta.name, "stable")},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [metric],
    }
    return _child("autoscaling/v2", "HorizontalPodAutoscaler", meta, "stable", desired_spec)


def disruption_budgets(meta: Meta, spec: DeploymentSpec) -> list[Obj]:
    """One policy/v1 PodDisruptionBudget per serving track, over the pods its Deployment selects."""
    budgets = []
    for track in SERVING_TRACKS:
        desired_spec: Obj = {
            "selector": {"matchLabels": track_selector(meta, track)},
            "maxUnavailable": spec.disruption_budget.max_unavailable,
            # A pod that is not Ready serves nobody: a drain may always take it (else one crash-looping pod
            # would block every node drain).
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
        budgets.append(_child("policy/v1", "PodDisruptionBudget", meta, track, desired_spec))
    return budgets
