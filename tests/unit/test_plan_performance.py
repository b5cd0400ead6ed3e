"""Performance monitoring planning: when a check is due, and what live quality does to status, conditions, Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.planning.deployment import plan_deployment, reads_due
from mlops_operator.planning.observed import PerformanceReadings, Tracks
from mlops_operator.planning.plan import Meta, Plan

from tests.unit.builders import PROMETHEUS, condition, observe, track

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(performance: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"registeredModel": "fraud", "alias": "production"}, "replicas": 2}
    if performance is not None:
        spec["monitoring"] = {"performance": performance}
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "fraud", "uid": "d-uid", "generation": 2},
        "spec": spec,
        "status": status if status is not None else {"stableVersion": 1},
    }


ACCURACY = {"metric": "accuracy", "min": 0.9}


def outcomes(*rows: tuple[int, str, float, float]) -> dict[str, list[tuple[dict[str, str], float]]]:
    """(version, track, correct, incorrect) rows as the outcome query returns them."""
    series = []
    for version, track_name, right, wrong in rows:
        for outcome, value in (("correct", right), ("incorrect", wrong)):
            series.append(({"version": str(version), "track": track_name, "outcome": outcome}, value))
    return {"outcomes": series}


def check(body: dict[str, Any], readings: PerformanceReadings | None, now: datetime, **kw: Any) -> Plan:
    """One full Deployment pass with these performance readings; the status patch is merged into the body."""
    obs = observe(body, holder=1, stable=track(2, version=1), performance=readings, **kw)
    plan = plan_deployment(obs, now)
    merged = dict(body["status"])
    merged.update(plan.status)
    body["status"] = {k: v for k, v in merged.items() if v is not None}
    return plan


def reads(body: dict[str, Any], now: datetime, prometheus: str | None = PROMETHEUS) -> Any:
    meta, spec = Meta.of(body), DeploymentSpec.model_validate(body["spec"])
    status = DeploymentStatus.model_validate(body["status"])
    return reads_due(meta, spec, status, Tracks(stable=track(2, version=1)), prometheus, None, False, now)


def reasons(plan: Plan) -> list[str]:
    return [e.reason for e in plan.events]


def test_a_check_is_due_at_once_then_every_interval_with_the_queries_its_metric_needs() -> None:
    body = deployment(ACCURACY)
    queries = reads(body, T0).performance
    assert queries is not None and queries.version == 1 and queries.window == "600s"
    assert set(queries.queries) == {"outcomes"}
    promql = queries.queries["outcomes"]
    assert 'namespace="ns",deployment="fraud"' in promql and "[600s]" in promql and "outcome" in promql
    check(body, PerformanceReadings(1, series=outcomes((1, "stable", 290, 10))), T0)
    assert reads(body, T0 + timedelta(seconds=30)).performance is None
    assert reads(body, T0 + MINUTE).performance is not None
    assert reads(deployment(None), T0).performance is None
    assert reads(deployment(ACCURACY, status={}), T0).performance is None, "nothing serves yet"
    assert reads(body, T0 + MINUTE, prometheus=None).performance is None
    f1 = reads(deployment({"metric": "f1", "min": 0.8}), T0).performance
    assert set(f1.queries) == {"confusion"} and "true_class, predicted_class" in f1.queries["confusion"]
    mae = reads(deployment({"metric": "mae", "max": 2.0}), T0).performance
    assert set(mae.queries) == {"count", "abs_sum", "squared_sum", "buckets"}


def test_live_accuracy_within_bounds_shows_every_track_and_a_false_condition() -> None:
    body = deployment(ACCURACY, status={"stableVersion": 1, "canaryVersion": 2})
    rows = outcomes((1, "stable", 540, 20), (1, "canary", 10, 0), (2, "canary", 57, 3))
    plan = check(body, PerformanceReadings(1, series=rows), T0)
    performance = plan.status["performance"]
    assert performance["version"] == 1 and performance["labels"] == 570
    assert performance["value"] == round(550 / 570, 6)
    assert performance["tracks"] == [
        {"version": 1, "track": "canary", "value": 1.0, "labels": 10},
        {"version": 1, "track": "stable", "value": round(540 / 560, 6), "labels": 560},
        {"version": 2, "track": "canary", "value": 0.95, "labels": 60},
    ]
    found = condition(plan.status, "PerformanceDegraded")
    assert (found["status"], found["reason"]) == ("False", "WithinBounds")
    assert "accuracy 0.965 within min 0.9 over 570 labels" in found["message"]
    assert not [r for r in reasons(plan) if r.startswith("Performance")]


def test_degraded_after_consecutive_windows_with_one_event_then_recovered() -> None:
    body, now, low = deployment(ACCURACY), T0, outcomes((1, "stable", 250, 50))
    for n in (1, 2):
        plan = check(body, PerformanceReadings(1, series=low), now)
        found = condition(plan.status, "PerformanceDegraded")
        assert (found["status"], found["reason"]) == ("False", "Confirming"), found
        assert f"({n} of 3 windows in a row)" in found["message"]
        now += MINUTE
    plan = check(body, PerformanceReadings(1, series=low), now)
    found = condition(plan.status, "PerformanceDegraded")
    assert (found["status"], found["reason"]) == ("True", "PerformanceDegraded")
    assert "accuracy 0.833 < min 0.9 over 300 labels (3 windows in a row)" in found["message"]
    assert reasons(plan).count("PerformanceDegraded") == 1
    assert [e.type for e in plan.events if e.reason == "PerformanceDegraded"] == ["Warning"]
    plan = check(body, PerformanceReadings(1, series=low), now + MINUTE)
    assert "PerformanceDegraded" not in reasons(plan), "the Event is for the transition only"
    assert plan.status["performance"]["consecutive"] == 4
    plan = check(body, PerformanceReadings(1, series=outcomes((1, "stable", 295, 5))), now + 2 * MINUTE)
    assert condition(plan.status, "PerformanceDegraded")["status"] == "False"
    assert "PerformanceRecovered" in reasons(plan)
    assert plan.status["performance"]["consecutive"] == 0


def test_too_few_labels_is_no_verdict_and_does_not_clear_a_degradation() -> None:
    body = deployment(ACCURACY)
    plan = check(body, PerformanceReadings(1, series=outcomes((1, "stable", 100, 12))), T0)
    found = condition(plan.status, "PerformanceDegraded")
    assert (found["status"], found["reason"]) == ("Unknown", "NotEnoughLabels")
    assert "112 of 200 labels needed: no verdict" in found["message"]
    plan = check(body, PerformanceReadings(1, series={"outcomes": []}), T0 + MINUTE)
    assert "no labels in the window" in condition(plan.status, "PerformanceDegraded")["message"]
    now = T0 + 2 * MINUTE
    for _ in range(3):
        plan = check(body, PerformanceReadings(1, series=outcomes((1, "stable", 200, 100))), now)
        now += MINUTE
    assert condition(plan.status, "PerformanceDegraded")["status"] == "True"
    plan = check(body, PerformanceReadings(1, series=outcomes((1, "stable", 20, 2))), now)
    found = condition(plan.status, "PerformanceDegraded")
    assert (found["status"], found["reason"]) == ("True", "PerformanceDegraded"), "few labels clear nothing"
    assert plan.status["performance"]["consecutive"] == 3, "an insufficient window neither counts nor breaks"


def test_a_failed_check_keeps_the_last_verdict_and_warns_once() -> None:
    body = deployment(ACCURACY)
    check(body, PerformanceReadings(1, series=outcomes((1, "stable", 290, 10))), T0)
    error = "Prometheus at http://prometheus:9090 is unreachable (ConnectError)"
    plan = check(body, PerformanceReadings(1, error=error), T0 + MINUTE)
    performance = plan.status["performance"]
    assert performance["value"] == round(290 / 300, 6) and performance["labels"] == 300
    assert performance["message"] == f"performance check failed: {error}"
    assert performance["checkedAt"] == stamp(T0 + MINUTE), "a failed check waits an interval too"
    assert reasons(plan).count("PerformanceCheckFailed") == 1
    assert condition(plan.status, "PerformanceDegraded")["reason"] == "WithinBounds"
    plan = check(body, PerformanceReadings(1, error=error), T0 + 2 * MINUTE)
    assert "PerformanceCheckFailed" not in reasons(plan)


def test_without_prometheus_the_check_says_so_each_interval() -> None:
    body = deployment(ACCURACY)
    plan = check(body, None, T0, prometheus_url=None)
    assert plan.status["performance"]["message"].startswith("performance check failed: no Prometheus configured")
    assert "PerformanceCheckFailed" in reasons(plan)
    assert plan.requeue_after is not None and plan.requeue_after <= 60


def test_a_new_serving_version_starts_over() -> None:
    body = deployment(ACCURACY)
    now = T0
    for _ in range(3):
        check(body, PerformanceReadings(1, series=outcomes((1, "stable", 200, 100))), now)
        now += MINUTE
    assert condition(body["status"], "PerformanceDegraded")["status"] == "True"
    body["status"]["stableVersion"] = 2
    obs_plan = check(body, None, now - timedelta(seconds=30))
    found = condition(obs_plan.status, "PerformanceDegraded")
    assert (found["status"], found["reason"]) == ("Unknown", "NewVersion")
    rows = outcomes((1, "stable", 200, 100), (2, "stable", 150, 90))
    plan = check(body, PerformanceReadings(2, series=rows), now)
    assert plan.status["performance"]["version"] == 2 and plan.status["performance"]["consecutive"] == 1
    assert condition(plan.status, "PerformanceDegraded")["reason"] == "Confirming"


def test_regression_mae_against_max_and_precision_of_a_class() -> None:
    body = deployment({"metric": "mae", "max": 2.0, "minLabels": 50, "consecutiveWindows": 1})
    errors = {
        "count": [({"version": "1", "track": "stable"}, 100.0)],
        "abs_sum": [({"version": "1", "track": "stable"}, 250.0)],
        "squared_sum": [({"version": "1", "track": "stable"}, 900.0)],
        "buckets": [({"version": "1", "track": "stable", "le": le}, c) for le, c in (("1.0", 30.0), ("+Inf", 100.0))],
    }
    plan = check(body, PerformanceReadings(1, series=errors), T0)
    assert plan.status["performance"]["value"] == 2.5
    found = condition(plan.status, "PerformanceDegraded")
    assert found["status"] == "True" and "mae 2.500 > max 2" in found["message"]
    body = deployment({"metric": "precision", "positiveClass": "fraud", "min": 0.8, "minLabels": 10})
    cells = [("fraud", "fraud", 16.0), ("legit", "fraud", 4.0), ("legit", "legit", 500.0), ("fraud", "legit", 9.0)]
    confusion = {
        "confusion": [
            ({"version": "1", "track": "stable", "true_class": t, "predicted_class": p}, c) for t, p, c in cells
        ]
    }
    plan = check(body, PerformanceReadings(1, series=confusion), T0)
    assert plan.status["performance"]["value"] == 0.8 and plan.status["performance"]["labels"] == 20
    assert (
        "precision of 'fraud' 0.800 within min 0.8 over 20 predictions of class 'fraud'"
        in (plan.status["performance"]["message"])
    )
