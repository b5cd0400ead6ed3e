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
from ..integrations.prometheus import builtin_query, custom_query
from .plan import Meta
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


@dataclass(frozen=True)
class MetricReading:
    """What one query returned: a value, no data (value None), or an error (and whether the query is invalid)."""

    metric: str
    value: float | None = None
    error: str | None = None
    invalid_query: bool = False


def analysis_window(analysis: Analysis) -> str:
    """The range over which rates are taken: one interval, at least two scrapes."""
    seconds = max(MIN_WINDOW_SECONDS, parse_duration(analysis.interval).total_seconds())
    return f"{int(seconds)}s"


def analysis_queries(meta: Meta, analysis: Analysis, policy: CustomQueries = "scoped") -> list[AnalysisQuery]:
    """The canary track's query of every analysis metric; a custom one scoped to the namespace, or refused."""
    window = analysis_window(analysis)
    queries = []
    for metric in analysis.metrics:
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


def judge_all(analysis: Analysis, readings: list[MetricReading]) -> list[AnalysisResult]:
    """Every configured metric's result; a metric without a reading erred."""
    by_name = {r.metric: r for r in readings}
    return [judge(m, by_name.get(m.name) or MetricReading(m.name, error="not queried")) for m in analysis.metrics]
