"""Autoscaling and disruption budgets: track replicas under an HPA, the HPA and PDB objects, and their removal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.contract import METRIC_IN_FLIGHT
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.scaling import (
    autoscaler,
    disruption_budgets,
    replica_floor,
    track_replicas,
)
from pydantic import ValidationError

from .builders import condition, observe, track
from .test_plan_rollout import APPROVED, T0, canary_status, children, deployment, scaling_children, steady

IN_FLIGHT = {"minReplicas": 2, "maxReplicas": 10, "target": {"inFlightRequests": 4}}
META = Meta.of(deployment())


def spec(**extra: Any) -> DeploymentSpec:
    return DeploymentSpec.model_validate(deployment()["spec"] | extra)


def autoscaled(status: dict | None = None, **scaling: Any) -> dict:
    body = deployment(status)
    body["spec"]["autoscaling"] = IN_FLIGHT | scaling
    return body


def test_without_autoscaling_the_tracks_split_spec_replicas_by_weight() -> None:
    assert track_replicas(spec(), None, None, None) == (4, 0)
    assert track_replicas(spec(), 10, track(4), None) == (3, 1)
    assert track_replicas(spec(), 100, track(4), track(1)) == (0, 4)
    assert replica_floor(spec()) == 4


def test_a_new_stable_track_starts_at_min_replicas_then_the_hpa_owns_its_count() -> None:
    scaled = spec(autoscaling=IN_FLIGHT)
    assert track_replicas(scaled, None, None, None) == (2, 0)
    assert track_replicas(scaled, None, track(7), None) == (None, 0)  # the HPA scaled it to 7: left alone
    assert replica_floor(scaled) == 2


def test_the_canary_follows_the_stable_count_so_its_share_is_the_weight() -> None:
    scaled = spec(autoscaling=IN_FLIGHT)
    assert track_replicas(scaled, 10, track(6), None) == (None, 1)  # ceil(6 * 10 / 90)
    assert track_replicas(scaled, 50, track(6), track(1)) == (None, 6)
    assert track_replicas(scaled, 75, track(6), None) == (None, 10)  # 18, capped at maxReplicas


def test_a_full_step_empties_the_stable_track_and_the_end_refills_it() -> None:
    scaled = spec(autoscaling=IN_FLIGHT)
    assert track_replicas(scaled, 100, track(5), track(3)) == (0, 8)
    assert track_replicas(scaled, 100, track(9), track(5)) == (0, 10)  # never above maxReplicas
    assert track_replicas(scaled, 100, track(0, replicas=0), track(8)) == (0, 8)  # stays put at 100 %
    # the canary became stable: the stable track is refilled to the canary's count before the HPA acts again
    assert track_replicas(scaled, None, track(0, replicas=0), track(8)) == (8, 0)
    assert track_replicas(scaled, None, track(0, replicas=0), None) == (2, 0)


@given(
    low=st.integers(1, 20),
    extra=st.integers(0, 30),
    stable=st.integers(1, 60),
    weight=st.integers(1, 99),
)
def test_canary_replicas_stay_within_bounds_and_never_below_the_weight(
    low: int, extra: int, stable: int, weight: int
) -> None:
    high = low + extra
    scaled = spec(autoscaling={"minReplicas": low, "maxReplicas": high, "target": {"cpuUtilization": 70}})
    counts = track_replicas(scaled, weight, track(stable), None)
    assert counts.stable is None and 1 <= counts.canary <= high
    if counts.canary < high:  # not capped: its share is at least the step's weight, by at most one pod more
        assert counts.canary * 100 >= weight * (stable + counts.canary)
        assert (counts.canary - 1) * (100 - weight) < stable * weight


def test_the_hpa_targets_the_stable_track_with_the_in_flight_pods_metric() -> None:
    hpa = autoscaler(META, spec(autoscaling=IN_FLIGHT))
    assert hpa is not None and (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["metadata"]["name"] == "iris-stable" and hpa["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-stable"},
        "minReplicas": 2,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Pods",
                "pods": {"metric": {"name": METRIC_IN_FLIGHT}, "target": {"type": "AverageValue", "averageValue": "4"}},
            }
        ],
    }
    assert autoscaler(META, spec()) is None


def test_cpu_autoscaling_targets_utilization_and_needs_a_cpu_request() -> None:
    cpu = {"minReplicas": 1, "maxReplicas": 3, "target": {"cpuUtilization": 70}}
    with pytest.raises(ValidationError):  # the CRD's CEL rules say the rest (tests/manifests/invalid/autoscaling-*)
        spec(autoscaling=IN_FLIGHT | {"minReplicas": 0})
    hpa = autoscaler(META, spec(autoscaling=cpu, server={"resources": {"requests": {"cpu": "500m"}}}))
    assert hpa is not None and hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]


def test_each_serving_track_has_a_budget_over_exactly_its_pods() -> None:
    stable, canary = disruption_budgets(META, spec(disruptionBudget={"maxUnavailable": "25%"}))
    assert [b["metadata"]["name"] for b in (stable, canary)] == ["iris-stable", "iris-canary"]
    assert stable["spec"]["maxUnavailable"] == "25%" and stable["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    plan = plan_deployment(observe(deployment(), holder=1), T0)
    pods = children(plan)["iris-stable"]["spec"]["template"]["metadata"]["labels"]
    selector = scaling_children(plan)["PodDisruptionBudget", "iris-stable"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pods.items() and selector["mlops.dev/track"] == "stable"
    assert disruption_budgets(META, spec())[0]["spec"]["maxUnavailable"] == 1  # the default


def test_an_autoscaled_deployment_leaves_the_stable_count_to_its_hpa_and_is_ready_at_min_replicas() -> None:
    first = plan_deployment(observe(autoscaled(), holder=1), T0)
    assert children(first)["iris-stable"]["spec"]["replicas"] == 2
    assert ("HorizontalPodAutoscaler", "iris-stable") in scaling_children(first)
    scaled_up = track(2, replicas=6, version=1)  # the HPA raised it to 6; two are Ready so far
    later = plan_deployment(observe(autoscaled(steady()), holder=1, stable=scaled_up), T0)
    assert "replicas" not in children(later)["iris-stable"]["spec"]
    # 2 Ready pods is the floor; the other 4 are capacity being added
    assert condition(later.status, "Ready")["status"] == "True"


def test_a_canary_under_autoscaling_gets_its_share_of_the_stable_count() -> None:
    running = autoscaled(canary_status(1, T0), maxReplicas=20)
    plan = plan_deployment(
        observe(running, holder=1, approved=APPROVED, stable=track(6, replicas=6, version=1), canary_ready=1), T0
    )
    assert plan.status["canaryWeight"] == 50
    objs = children(plan)
    assert "replicas" not in objs["iris-stable"]["spec"] and objs["iris-canary"]["spec"]["replicas"] == 6


def test_removing_autoscaling_deletes_the_hpa_and_returns_to_spec_replicas() -> None:
    hpa = autoscaler(META, spec(autoscaling=IN_FLIGHT))
    assert hpa is not None
    observed_hpa = {"metadata": hpa["metadata"] | {"uid": "hpa-uid"}, "spec": hpa["spec"]}
    plan = plan_deployment(
        observe(deployment(steady()), holder=1, stable=track(6, replicas=6, version=1), autoscaler=observed_hpa), T0
    )
    [gone] = plan.deletes
    assert (gone["apiVersion"], gone["kind"], gone["metadata"]["name"]) == (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "iris-stable",
    )
    assert gone["metadata"]["uid"] == "hpa-uid"  # deleted with a precondition on the object we saw
    assert children(plan)["iris-stable"]["spec"]["replicas"] == 4
    kept = plan_deployment(observe(autoscaled(steady()), holder=1, autoscaler=observed_hpa), T0)
    assert kept.deletes == []
