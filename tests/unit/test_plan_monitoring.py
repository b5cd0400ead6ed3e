"""Drift monitoring planning: when a check is due, and what its scores do to status, conditions and Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.api.monitoring import Drift
from mlops_operator.drift import DEFAULT_THRESHOLDS, DriftReport, FeatureScore
from mlops_operator.planning.conditions import find_condition, status_changed, status_patch
from mlops_operator.planning.monitoring import (
    DriftCheck,
    drift_of,
    drift_reads,
    fold_check,
    seconds_until_check,
)
from mlops_operator.planning.plan import Meta, Plan

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(status: dict | None = None, drift: dict | None = None) -> dict:
    spec: dict = {"model": {"registeredModel": "iris-classifier", "alias": "production"}, "replicas": 2}
    if drift is not None:
        spec["monitoring"] = {"drift": drift}
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 3},
        "spec": spec,
        "status": status if status is not None else {"stableVersion": 1},
    }


def report(*scores: tuple[str, float], samples: int = 1500) -> DriftReport:
    ranked = sorted((FeatureScore(f, s, samples) for f, s in scores), key=lambda s: -s.score)
    return DriftReport("psi", ranked, samples=samples, message=f"{len(ranked)} feature(s) scored")


def drifted(version: int = 1) -> DriftCheck:
    return DriftCheck(version, report=report(("petal_length", 0.3), ("sepal_width", 0.02)))


def calm(version: int = 1) -> DriftCheck:
    return DriftCheck(version, report=report(("petal_length", 0.04), ("sepal_width", 0.02)))


def typed(body: dict) -> tuple[Meta, DeploymentSpec, DeploymentStatus]:
    return Meta.of(body), DeploymentSpec.model_validate(body["spec"]), DeploymentStatus.model_validate(body["status"])


def run_check(body: dict, check: DriftCheck | None, now: datetime, plan: Plan | None = None) -> Plan:
    """One planning pass as the controller does it: typed spec and status in, the status patch out."""
    meta, spec, status = typed(body)
    plan = plan or Plan(status={})
    fold_check(plan, status, meta, spec, check, now)
    plan.status = status_patch(status)
    return plan


def until(body: dict, now: datetime) -> float | None:
    _, spec, status = typed(body)
    return seconds_until_check(spec, status, now)


def due(body: dict, now: datetime) -> bool:
    meta, spec, status = typed(body)
    return drift_reads(meta, spec, status, now) is not None


def drift_detected(status: dict) -> bool:
    found = find_condition(status.get("conditions"), "DriftDetected")
    return found is not None and found["status"] == "True"


def condition(plan: Plan) -> tuple[str, str]:
    found = find_condition(plan.status.get("conditions"), "DriftDetected")
    assert found is not None
    return found["status"], found["reason"]


def events(plan: Plan) -> list[tuple[str, str]]:
    return [(e.reason, e.type) for e in plan.events]


def test_drift_defaults_live_in_the_api_model_with_the_method_threshold() -> None:
    model = {"registeredModel": "m", "alias": "a"}
    assert drift_of(DeploymentSpec.model_validate({"model": model})) is None
    assert (
        drift_of(DeploymentSpec.model_validate({"model": model, "monitoring": {"prometheusUrl": "http://p"}})) is None
    )
    drift = drift_of(DeploymentSpec.model_validate({"model": model, "monitoring": {"drift": {}}}))
    assert drift is not None
    assert (drift.method, drift.effective_threshold, drift.window, drift.min_samples) == ("psi", 0.1, "30m", 1000)
    assert (drift.interval, drift.consecutive_windows, drift.query) == ("1m", 2, None)
    for method in ("js", "ks"):
        assert Drift.model_validate({"method": method}).effective_threshold == DEFAULT_THRESHOLDS[method]
    assert DEFAULT_THRESHOLDS["js"] != DEFAULT_THRESHOLDS["psi"]  # so the per-method lookup is really tested
    explicit = Drift.model_validate({"method": "js", "threshold": "0.3", "minSamples": "50"})
    assert (explicit.effective_threshold, explicit.min_samples) == (0.3, 50)


def test_check_is_due_only_after_the_interval() -> None:
    settings = {"interval": "1m"}
    assert until(deployment(drift=settings), T0) == 0.0  # never checked: due now
    assert due(deployment(drift=settings), T0)
    checked = {"stableVersion": 1, "drift": {"checkedAt": stamp(T0)}}
    assert until(deployment(checked, settings), T0 + timedelta(seconds=20)) == 40.0
    assert not due(deployment(checked, settings), T0 + timedelta(seconds=59))
    assert due(deployment(checked, settings), T0 + timedelta(seconds=60))
    assert due(deployment(checked, settings), T0 + timedelta(minutes=5))
    # Nothing serves yet, or drift is not monitored: never due.
    assert until(deployment({}, settings), T0) is None and not due(deployment({}, settings), T0)
    assert until(deployment(checked), T0) is None and not due(deployment(checked), T0)


def test_one_window_over_the_threshold_only_confirms() -> None:
    plan = run_check(deployment(drift={}), drifted(), T0)
    drift = plan.status["drift"]
    assert condition(plan) == ("False", "Confirming")
    assert drift["consecutive"] == 1 and plan.events == []
    assert (drift["version"], drift["method"], drift["threshold"], drift["window"]) == (1, "psi", 0.1, "30m")
    assert (drift["score"], drift["feature"], drift["samples"]) == (0.3, "petal_length", 1500)
    assert drift["scores"] == {"petal_length": 0.3, "sepal_width": 0.02}
    assert drift["checkedAt"] == stamp(T0)
    assert drift["message"] == "petal_length: psi 0.300 > 0.1 (1/2 windows of 30m, 1500 samples)"
    assert not drift_detected(plan.status)


def test_consecutive_windows_detect_drift_with_one_warning() -> None:
    first = run_check(deployment(drift={}), drifted(), T0)
    second = run_check(deployment(first.status, {}), drifted(), T0 + timedelta(minutes=1))
    assert condition(second) == ("True", "DriftDetected") and second.status["drift"]["consecutive"] == 2
    assert events(second) == [("DriftDetected", "Warning")]
    assert second.events[0].message.startswith("version 1: petal_length: psi 0.300 > 0.1 (2/2 windows")
    assert drift_detected(second.status)
    third = run_check(deployment(second.status, {}), drifted(), T0 + timedelta(minutes=2))
    assert condition(third) == ("True", "DriftDetected") and third.status["drift"]["consecutive"] == 3
    assert third.events == []  # still drifting: no second Warning
    detected = find_condition(third.status["conditions"], "DriftDetected")
    assert detected is not None and detected["lastTransitionTime"] == stamp(T0 + timedelta(minutes=1))
    assert detected["observedGeneration"] == 3
    assert "(2/2 windows" in third.status["drift"]["message"]  # the count shown is capped at the windows needed


def test_a_window_under_the_threshold_resets_the_count() -> None:
    first = run_check(deployment(drift={}), drifted(), T0)
    reset = run_check(deployment(first.status, {}), calm(), T0 + timedelta(minutes=1))
    assert reset.status["drift"]["consecutive"] == 0 and condition(reset) == ("False", "BelowThreshold")
    assert reset.events == []  # it was never detected, so nothing clears
    assert reset.status["drift"]["message"].startswith("petal_length: psi 0.040 <= 0.1 (0/2 windows")
    again = run_check(deployment(reset.status, {}), drifted(), T0 + timedelta(minutes=2))
    assert again.status["drift"]["consecutive"] == 1 and condition(again) == ("False", "Confirming")


def test_drift_clears_after_detection_with_an_event() -> None:
    status = run_check(deployment(drift={"consecutiveWindows": 1}), drifted(), T0).status
    assert drift_detected(status)
    cleared = run_check(deployment(status, {"consecutiveWindows": 1}), calm(), T0 + timedelta(minutes=1))
    assert condition(cleared) == ("False", "BelowThreshold") and cleared.status["drift"]["consecutive"] == 0
    assert events(cleared) == [("DriftCleared", "Normal")]
    assert not drift_detected(cleared.status)


def test_too_few_samples_give_no_verdict_and_keep_the_count() -> None:
    first = run_check(deployment(drift={}), drifted(), T0)
    sparse = DriftCheck(1, report=DriftReport("psi", [], samples=120, message="120 samples: no verdict"))
    plan = run_check(deployment(first.status, {}), sparse, T0 + timedelta(minutes=1))
    drift = plan.status["drift"]
    assert condition(plan) == ("Unknown", "NotEnoughSamples")
    assert (drift["consecutive"], drift["samples"], drift["score"], drift["feature"]) == (1, 120, None, None)
    assert drift["message"] == "120 samples: no verdict" and drift["checkedAt"] == stamp(T0 + timedelta(minutes=1))
    assert plan.events == []
    # The sparse window neither counted nor broke the run: the next window over the threshold detects.
    after = run_check(deployment(plan.status, {}), drifted(), T0 + timedelta(minutes=2))
    assert after.status["drift"]["consecutive"] == 2 and condition(after) == ("True", "DriftDetected")


def test_a_new_serving_version_starts_the_count_over() -> None:
    status = {
        "stableVersion": 2,
        "drift": {"version": 1, "consecutive": 1, "score": 0.3, "checkedAt": stamp(T0)},
    }
    plan = run_check(deployment(status, {}), drifted(version=2), T0 + timedelta(minutes=1))
    assert plan.status["drift"]["version"] == 2 and plan.status["drift"]["consecutive"] == 1
    assert condition(plan) == ("False", "Confirming")
    same_version = {**status, "drift": {**status["drift"], "version": 2}}
    counted = run_check(deployment(same_version, {}), drifted(version=2), T0 + timedelta(minutes=1))
    assert counted.status["drift"]["consecutive"] == 2  # the same version's count does carry on


def test_a_failed_check_keeps_the_last_score_and_warns_once() -> None:
    scored = run_check(deployment(drift={}), drifted(), T0).status
    failed = run_check(
        deployment(scored, {}), DriftCheck(1, error="prometheus: connection refused"), T0 + timedelta(minutes=1)
    )
    drift = failed.status["drift"]
    assert (drift["score"], drift["feature"], drift["samples"]) == (0.3, "petal_length", 1500)
    assert drift["scores"] == {"petal_length": 0.3, "sepal_width": 0.02}
    assert drift["consecutive"] == 1 and drift["message"] == "drift check failed: prometheus: connection refused"
    assert drift["checkedAt"] == stamp(T0 + timedelta(minutes=1))  # the next attempt waits an interval
    assert failed.status["conditions"] == scored["conditions"]  # the last verdict stands
    assert events(failed) == [("DriftCheckFailed", "Warning")]
    again = run_check(deployment(failed.status, {}), DriftCheck(1, error="prometheus: connection refused"), T0)
    assert again.events == []
    other = run_check(deployment(failed.status, {}), DriftCheck(1, error="profile missing"), T0)
    assert events(other) == [("DriftCheckFailed", "Warning")]


def test_a_failed_check_of_a_new_version_keeps_no_old_score() -> None:
    scored = {**run_check(deployment(drift={}), drifted(), T0).status, "stableVersion": 2}
    failed = run_check(deployment(scored, {}), DriftCheck(2, error="no reference profile"), T0 + timedelta(minutes=1))
    drift = failed.status["drift"]
    assert drift["version"] == 2 and drift["consecutive"] == 0
    assert drift.get("score") is None and drift.get("feature") is None


def test_a_new_stable_version_makes_detected_drift_unknown() -> None:
    status = run_check(deployment(drift={"consecutiveWindows": 1}), drifted(), T0).status
    assert drift_detected(status)
    promoted = {**status, "stableVersion": 2}
    plan = run_check(deployment(promoted, {"consecutiveWindows": 1}), None, T0 + timedelta(seconds=10))
    assert condition(plan) == ("Unknown", "NewVersion") and not drift_detected(plan.status)
    detected = find_condition(plan.status["conditions"], "DriftDetected")
    assert detected is not None and "version 2" in detected["message"]
    assert plan.status["drift"]["version"] == 1  # the record of the last check is left alone
    # Same version and no check: the True condition stays.
    unchanged = run_check(deployment(status, {"consecutiveWindows": 1}), None, T0 + timedelta(seconds=10))
    assert condition(unchanged) == ("True", "DriftDetected") and unchanged.events == []


def test_a_failed_first_check_of_a_new_version_does_not_keep_the_old_detection() -> None:
    status = run_check(deployment(drift={"consecutiveWindows": 1}), drifted(version=1), T0).status
    assert drift_detected(status)
    promoted = {**status, "stableVersion": 2}
    failed = run_check(
        deployment(promoted, {"consecutiveWindows": 1}),
        DriftCheck(2, error="no reference profile"),
        T0 + timedelta(minutes=1),
    )
    # Version 2's drift is not measured: DriftDetected must not stay True (it would trigger retraining of v2).
    assert not drift_detected(failed.status)
    assert condition(failed) == ("Unknown", "NewVersion")


def test_requeue_waits_for_the_next_check() -> None:
    settings = {"interval": "2m"}
    checked = run_check(deployment(drift=settings), drifted(), T0)
    assert checked.requeue_after == 120.0
    status = {"stableVersion": 1, "drift": {"version": 1, "checkedAt": stamp(T0)}}
    waiting = run_check(deployment(status, settings), None, T0 + timedelta(seconds=50))
    assert waiting.requeue_after == 70.0
    overdue = run_check(deployment(status, settings), None, T0 + timedelta(minutes=10))
    assert overdue.requeue_after == 1.0  # never zero or negative
    sooner = run_check(
        deployment(status, settings), None, T0 + timedelta(seconds=50), Plan(status={}, requeue_after=5.0)
    )
    assert sooner.requeue_after == 5.0  # an earlier wake-up (a canary step) wins
    later = run_check(
        deployment(status, settings), None, T0 + timedelta(seconds=50), Plan(status={}, requeue_after=600)
    )
    assert later.requeue_after == 70.0


def test_without_drift_monitoring_nothing_changes() -> None:
    status = {"stableVersion": 1}
    plan = run_check(deployment(status), drifted(), T0)
    assert not status_changed(status, plan.status) and plan.events == [] and plan.requeue_after is None


def test_a_custom_query_scores_as_method_query() -> None:
    settings = {"query": "max(my_drift_score{deployment='{{deployment}}'})", "threshold": 0.5, "consecutiveWindows": 1}
    top = FeatureScore("income", 0.7, 0)
    check = DriftCheck(1, report=DriftReport("query", [top], message="scored by spec.monitoring.drift.query"))
    plan = run_check(deployment(drift=settings), check, T0)
    drift = plan.status["drift"]
    assert (drift["method"], drift["threshold"], drift["score"], drift["feature"]) == ("query", 0.5, 0.7, "income")
    assert drift["message"].startswith("income: query 0.700 > 0.5 (1/1 windows of 30m")
    assert condition(plan) == ("True", "DriftDetected") and events(plan) == [("DriftDetected", "Warning")]
    low = DriftCheck(1, report=DriftReport("query", [FeatureScore("income", 0.4, 0)]))
    cleared = run_check(deployment(plan.status, settings), low, T0 + timedelta(minutes=1))
    assert condition(cleared) == ("False", "BelowThreshold") and events(cleared) == [("DriftCleared", "Normal")]


@pytest.mark.parametrize(
    ("method", "consecutive", "reason"),
    [("psi", 1, "Confirming"), ("js", 0, "BelowThreshold"), ("ks", 1, "Confirming")],
)
def test_the_default_threshold_follows_the_method(method: str, consecutive: int, reason: str) -> None:
    # 0.11 is over the psi and ks defaults (0.1) and under js's (0.12).
    check = DriftCheck(1, report=DriftReport(method, [FeatureScore("x", 0.11, 2000)], samples=2000))
    plan = run_check(deployment(drift={"method": method}), check, T0)
    assert plan.status["drift"]["consecutive"] == consecutive and condition(plan) == ("False", reason)
    assert plan.status["drift"]["threshold"] == DEFAULT_THRESHOLDS[method]
