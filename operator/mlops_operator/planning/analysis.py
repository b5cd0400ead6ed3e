"""Canary analysis planning: which queries a step runs, and what their readings mean.

Readings come back from Prometheus as values, "no data" or errors (the controller never raises
over them); the verdict rules live here, so the rollout planner decides from data alone, as
Argo Rollouts' analysis controller does: a failed metric counts towards `failureLimit`, an erred
query towards `consecutiveErrorLimit`, and "no data yet" is neither a pass nor a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..api.common import parse_duration
from ..api.deployment import Analysis, AnalysisMetric, AnalysisResult
from ..integrations.prometheus import builtin_query, custom_query, feedback_queries
from .livequality import Needs, Readings, counts_of
from .plan import Meta
from .quality import ClassificationCounts, RegressionCounts, compare_accuracy, compare_errors
from .qualitytests import per_look_alpha
from .querypolicy import CustomQueries, QueryRefusedError, scoped_query

# Prometheus' rate() needs at least two scrapes inside the window; the local and chart scrape interval is 15 s.
MIN_WINDOW_SECONDS = 30.0
NO_PROMETHEUS = "no Prometheus configured: set spec.monitoring.prometheusUrl or the operator's MLOPS_PROMETHEUS_URL"


@dataclass(frozen=True)
class AnalysisQuery:
    """One metric's PromQL for the canary track."""

    metric: str
    promql: str
    refused: str | None = None  # why the custom query is not sent (planning/querypolicy.py); promql is then ""
    feedback: dict[str, str] | None = None  # a live-quality builtin's queries (reading name -> PromQL)


@dataclass(frozen=True)
class MetricReading:
    """What one query returned: a value, no data (value None), or an error (and whether the query is invalid)."""

    metric: str
    value: float | None = None
    error: str | None = None
    invalid_query: bool = False
    series: Readings | None = None  # a live-quality builtin's feedback series, every version and track


@dataclass(frozen=True)
class StepContext:
    """What a live-quality verdict compares: the canary and stable versions, and how many looks the step has."""

    canary_version: int
    stable_version: int | None
    looks: int = 1


def step_metrics(analysis: Analysis, weight: int) -> list[AnalysisMetric]:
    """The metrics judged at a step of this weight: live quality needs stable traffic, so not at 100 %."""
    return [m for m in analysis.metrics if not (m.live and weight >= 100)]


def analysis_window(analysis: Analysis) -> str:
    """The range over which rates are taken: one interval, at least two scrapes."""
    seconds = max(MIN_WINDOW_SECONDS, parse_duration(analysis.interval).total_seconds())
    return f"{int(seconds)}s"


def analysis_queries(
    meta: Meta, analysis: Analysis, policy: CustomQueries = "scoped", weight: int = 0, step_seconds: float = 0.0
) -> list[AnalysisQuery]:
    """The canary track's query of every metric of this step; a custom one scoped to the namespace, or refused.
    Live quality reads every track's labels since the step started (`step_seconds`)."""
    window = analysis_window(analysis)
    queries = []
    for metric in step_metrics(analysis, weight):
        if metric.live:
            since = f"{int(max(MIN_WINDOW_SECONDS, math.ceil(step_seconds)))}s"
            needs = "outcomes" if metric.builtin == "liveAccuracy" else "errors"
            queries.append(
                AnalysisQuery(metric.name, "", feedback=feedback_queries(meta.namespace, meta.name, since, needs))
            )
            continue
        if metric.builtin:
            promql = builtin_query(metric.builtin, meta.namespace, meta.name, "canary", window)
        else:
            promql = custom_query(metric.query or "", meta.namespace, meta.name, "canary", window)
            try:
                promql = scoped_query(promql, meta.namespace, policy)
            except QueryRefusedError as refused:
                queries.append(AnalysisQuery(metric.name, "", refused=f"invalid query: {refused}"))
                continue
        queries.append(AnalysisQuery(metric.name, promql))
    return queries


def judge(metric: AnalysisMetric, reading: MetricReading) -> AnalysisResult:
    """One analysis result: passed, failed (value and threshold), no data yet, or erred (passed unset)."""
    name = metric.name
    if reading.error is not None:
        return AnalysisResult(name=name, error=reading.error, message=f"{name}: {reading.error}")
    value = reading.value
    if value is None or math.isnan(value):
        return AnalysisResult(name=name, message=f"{name}: no data yet")
    rounded = round(value, 6)
    if metric.max is not None and value > metric.max:
        return AnalysisResult(
            name=name,
            value=rounded,
            threshold=metric.max,
            passed=False,
            message=f"{name} {value:.4g} > max {metric.max:g}",
        )
    if metric.min is not None and value < metric.min:
        return AnalysisResult(
            name=name,
            value=rounded,
            threshold=metric.min,
            passed=False,
            message=f"{name} {value:.4g} < min {metric.min:g}",
        )
    threshold = metric.max if metric.max is not None else metric.min
    return AnalysisResult(name=name, value=rounded, threshold=threshold, passed=True, message=f"{name} {value:.4g} ok")


def judge_live(metric: AnalysisMetric, reading: MetricReading, context: StepContext) -> AnalysisResult:
    """The canary's labelled quality against the stable track's over the step: a non-inferiority test whose
    pass needs p < significance / looks; "not enough labels" is inconclusive (passed unset), never a pass."""
    name = metric.name
    if reading.error is not None:
        return AnalysisResult(name=name, error=reading.error, message=f"{name}: {reading.error}")
    if context.stable_version is None:
        return AnalysisResult(name=name, message=f"{name}: no stable version to compare with")
    series = reading.series or {}
    needs: Needs = "outcomes" if metric.builtin == "liveAccuracy" else "errors"
    canary = counts_of(series, needs, context.canary_version, "canary")
    stable = counts_of(series, needs, context.stable_version, "stable")
    if canary is None or stable is None:
        missing = " and ".join(t for t, c in (("canary", canary), ("stable", stable)) if c is None)
        tracks = "tracks" if canary is None and stable is None else "track"
        return AnalysisResult(name=name, message=f"{name}: no labels on the {missing} {tracks} in this step yet")
    quality = metric.live_quality
    margin = quality.max_degradation_for(metric.builtin or "")
    alpha = per_look_alpha(quality.significance, context.looks)
    if isinstance(canary, ClassificationCounts) and isinstance(stable, ClassificationCounts):
        verdict = compare_accuracy(
            canary,
            stable,
            max_degradation=margin,
            alpha=alpha,
            min_labels=quality.min_labels,
            fail_alpha=quality.significance,
        )
    else:
        assert isinstance(canary, RegressionCounts) and isinstance(stable, RegressionCounts)
        verdict = compare_errors(
            canary,
            stable,
            max_degradation=margin,
            alpha=alpha,
            min_labels=quality.min_labels,
            fail_alpha=quality.significance,
        )
    passed = {"pass": True, "fail": False}.get(verdict.state)
    value = None if verdict.canary_value is None else round(verdict.canary_value, 6)
    threshold = None if verdict.stable_value is None else round(verdict.stable_value, 6)
    return AnalysisResult(
        name=name, value=value, threshold=threshold, passed=passed, message=f"{name}: {verdict.message}"
    )


def judge_all(
    analysis: Analysis, readings: list[MetricReading], weight: int = 0, context: StepContext | None = None
) -> list[AnalysisResult]:
    """Every result of this step's metrics; a metric without a reading erred."""
    by_name = {r.metric: r for r in readings}
    results = []
    for metric in step_metrics(analysis, weight):
        reading = by_name.get(metric.name) or MetricReading(metric.name, error="not queried")
        if metric.live:
            results.append(judge_live(metric, reading, context or StepContext(0, None)))
        else:
            results.append(judge(metric, reading))
    return results
