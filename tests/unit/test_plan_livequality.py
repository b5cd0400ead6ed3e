"""The canary judged on live quality: the step's feedback queries, the non-inferiority verdicts, and the rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_operator.api.deployment import Analysis
from mlops_operator.planning.analysis import MetricReading, StepContext, analysis_queries, judge_all
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.livequality import counts_of, labelled_tracks, measure_version
from mlops_operator.planning.plan import Meta

from .builders import observe, track
from .test_plan_performance import outcomes

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
STEPS = [{"weight": 50, "pause": "20s"}, {"weight": 100}]
LIVE = {"name": "accuracy", "builtin": "liveAccuracy", "quality": {"minLabels": 100}}
META = Meta(namespace="ns", name="fraud", uid="d-uid", generation=1)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def analysis(*metrics: dict[str, Any]) -> Analysis:
    return Analysis.model_validate({"interval": "10s", "metrics": list(metrics)})


def live(series: Any, looks: int = 1, metric: dict[str, Any] = LIVE) -> Any:
    (result,) = judge_all(
        analysis(metric), [MetricReading(metric["name"], series=series)], 50, StepContext(2, 1, looks)
    )
    return result


def test_live_quality_reads_every_track_since_the_step_began_and_nothing_at_100_percent() -> None:
    spec = analysis({"name": "errors", "builtin": "errorRate", "max": 0.01}, LIVE)
    queries = {q.metric: q for q in analysis_queries(META, spec, weight=50, step_seconds=94.2)}
    feedback = queries["accuracy"].feedback
    assert feedback is not None and set(feedback) == {"outcomes"} and queries["accuracy"].promql == ""
    assert "[95s]" in feedback["outcomes"] and 'namespace="ns",deployment="fraud"' in feedback["outcomes"]
    assert "sum by (version, track, outcome)" in feedback["outcomes"]
    assert "[30s]" in analysis_queries(META, spec, weight=50, step_seconds=3)[1].feedback["outcomes"]  # type: ignore[index]
    assert [q.metric for q in analysis_queries(META, spec, weight=100, step_seconds=60)] == ["errors"]
    errors = analysis_queries(META, analysis({"name": "e", "builtin": "liveErrors"}), weight=10, step_seconds=60)
    assert set(errors[0].feedback or {}) == {"count", "abs_sum", "squared_sum", "buckets"}


def test_counts_pick_the_version_and_track_and_no_series_is_no_labels() -> None:
    series = outcomes((1, "stable", 940, 60), (2, "canary", 95, 5), (2, "stable", 7, 0), (1, "canary", 3, 3))
    assert counts_of(series, "outcomes", 2, "canary").labels == 100  # type: ignore[union-attr]
    assert counts_of(series, "outcomes", 2).labels == 107  # type: ignore[union-attr]
    assert counts_of(series, "outcomes", 3, "canary") is None
    assert labelled_tracks(series) == [(1, "canary"), (1, "stable"), (2, "canary"), (2, "stable")]
    assert measure_version({"outcomes": []}, "accuracy", 1).reason == "no labels in the window"


def test_an_equal_canary_passes_a_much_worse_one_fails_and_too_few_labels_wait() -> None:
    equal = live(outcomes((1, "stable", 1900, 100), (2, "canary", 475, 25)))
    assert equal.passed is True, equal.message
    assert (equal.value, equal.threshold) == (0.95, 0.95)
    assert "not worse than stable by 0.04" in equal.message
    worse = live(outcomes((1, "stable", 1900, 100), (2, "canary", 400, 100)))
    assert worse.passed is False and "worse than stable by more than 0.04" in worse.message
    few = live(outcomes((1, "stable", 1900, 100), (2, "canary", 60, 0)))
    assert few.passed is None and few.error is None and "100 labels on each track needed" in few.message
    none = live(outcomes((1, "stable", 1900, 100)))
    assert none.passed is None and "no labels on the canary track in this step yet" in none.message


def test_the_significance_is_spent_over_the_steps_analyses() -> None:
    series = outcomes((1, "stable", 1900, 100), (2, "canary", 285, 15))
    assert live(series, looks=1).passed is True
    spent = live(series, looks=23)
    assert spent.passed is None and "0.0022" in spent.message, spent.message


def test_live_errors_compare_the_error_histograms() -> None:
    def errors(version: int, track_name: str, counts: list[float]) -> dict[str, list[Any]]:
        labels = {"version": str(version), "track": track_name}
        cumulative, rows = 0.0, []
        for le, count in zip(("0.5", "1", "2", "+Inf"), counts, strict=True):
            cumulative += count
            rows.append(({**labels, "le": le}, cumulative))
        return {"count": [(labels, cumulative)], "abs_sum": [(labels, cumulative)], "buckets": rows}

    stable, same, worse = (
        errors(1, "stable", [600, 300, 80, 20]),
        errors(2, "canary", [300, 150, 40, 10]),
        errors(2, "canary", [50, 150, 200, 100]),
    )
    metric = {"name": "errors", "builtin": "liveErrors"}
    merged = {k: stable[k] + same[k] for k in stable}
    assert live(merged, metric=metric).passed is True
    merged = {k: stable[k] + worse[k] for k in stable}
    assert live(merged, metric=metric).passed is False


def deployment(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "fraud", "uid": "d-uid", "generation": 1},
        "spec": {
            "model": {"registeredModel": "fraud", "alias": "production"},
            "replicas": 4,
            "strategy": {"canary": {"steps": STEPS, "analysis": {"interval": "10s", "metrics": [LIVE]}}},
        },
        "status": status,
    }


def test_the_rollout_moves_on_after_a_live_pass_and_the_100_percent_step_needs_no_labels() -> None:
    started = T0 - timedelta(seconds=30)
    status = {"stableVersion": 1, "canaryVersion": 2, "step": 0, "canaryWeight": 50, "stepStartedAt": stamp(started)}
    body = deployment(status)
    good = [MetricReading("accuracy", series=outcomes((1, "stable", 1900, 100), (2, "canary", 1900, 100)))]
    kw: dict[str, Any] = {
        "holder": 1,
        "approved": {2: "fraud-2"},
        "stable": track(2, version=1),
        "canary": track(2, version=2),
    }
    waiting = plan_deployment(observe(body, readings=[MetricReading("accuracy", series={"outcomes": []})], **kw), T0)
    assert waiting.status["step"] == 0 and not waiting.status["stepAnalysisPassed"]
    assert "passed" not in waiting.status["analysis"][0], "no labels is no verdict"
    assert "no labels on the canary and stable tracks" in waiting.status["analysis"][0]["message"]
    passed = plan_deployment(observe(body, readings=good, **kw), T0)
    assert passed.status["step"] == 1 and passed.status["canaryWeight"] == 100, passed.status
    body = deployment({**status, **passed.status})
    kw["canary"] = track(4, version=2)
    last = plan_deployment(observe(body, **kw), T0 + timedelta(seconds=5))
    assert last.status["stableVersion"] == 2 and last.status["canaryVersion"] is None, last.status
    assert "CanaryCompleted" in [e.reason for e in last.events]
