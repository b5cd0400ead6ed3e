"""Performance monitoring planning: when to check live quality, and what a check means for status.

A check reads every labelled (version, track) over `window` and judges the serving (stable) version,
all its tracks together, against `min`/`max`; PerformanceDegraded turns True after
`consecutiveWindows` checks in a row beyond the bound (planning/quality.py). A window with fewer than
`minLabels` gives no verdict and neither counts nor breaks the run; a new serving version starts over;
a check that could not run (Prometheus down) keeps the last verdict and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.common import ConditionStatus, parse_duration
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.monitoring import Performance, PerformanceStatus, TrackQuality
from ..integrations.prometheus import feedback_queries
from .conditions import find_typed, set_typed
from .livequality import labelled_tracks, measure_version, needs_of
from .observed import DeploymentObserved, PerformanceReadings
from .plan import Event, Meta, Plan, parse_time, rfc3339
from .quality import judge_performance

CONDITION = "PerformanceDegraded"


@dataclass(frozen=True)
class PerformanceQueries:
    """The reads of one due check: the feedback queries for every version and track, judged for `version`."""

    version: int
    window: str
    queries: dict[str, str]


def performance_of(spec: DeploymentSpec) -> Performance | None:
    """spec.monitoring.performance (defaults from the API model); None when performance is not monitored."""
    return spec.monitoring.performance if spec.monitoring is not None else None


def seconds_until_check(spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> float | None:
    """Seconds until the next performance check of the stable version; None when it is not monitored."""
    performance = performance_of(spec)
    if performance is None or status.stable_version is None:
        return None
    last = parse_time(status.performance.checked_at if status.performance else None)
    if last is None:
        return 0.0
    return parse_duration(performance.interval).total_seconds() - (now - last).total_seconds()


def performance_reads(
    meta: Meta, spec: DeploymentSpec, status: DeploymentStatus, now: datetime
) -> PerformanceQueries | None:
    """The queries of a check due now, if one is."""
    performance, remaining = performance_of(spec), seconds_until_check(spec, status, now)
    if performance is None or remaining is None or remaining > 0 or status.stable_version is None:
        return None
    window = f"{int(parse_duration(performance.window).total_seconds())}s"
    queries = feedback_queries(meta.namespace, meta.name, window, needs_of(performance.metric))
    return PerformanceQueries(int(status.stable_version), window, queries)


def plan_performance(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> None:
    """Judge this pass's performance readings (if a check was due) and fold the verdict into status."""
    performance = performance_of(obs.spec)
    if performance is None:
        return
    readings = obs.performance
    if readings is None and not obs.prometheus_url and status.stable_version is not None:
        remaining = seconds_until_check(obs.spec, status, now)
        if remaining is not None and remaining <= 0:  # a check that can never run says so each interval
            readings = PerformanceReadings(int(status.stable_version), error=obs.no_prometheus_reason)
    stamp = rfc3339(now)
    if readings is not None:
        _record(plan, status, performance, readings, obs.meta, stamp)
    elif degraded(status) and (status.performance.version if status.performance else None) != status.stable_version:
        _condition(status, obs.meta, stamp, "Unknown", "NewVersion", _unmeasured(status.stable_version))
    remaining = seconds_until_check(obs.spec, status, now)
    if remaining is not None:
        wait = max(1.0, remaining)
        plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)


def _unmeasured(version: int | None) -> str:
    return f"version {version} serves now; its live performance is not measured yet"


def _record(
    plan: Plan,
    status: DeploymentStatus,
    performance: Performance,
    readings: PerformanceReadings,
    meta: Meta,
    stamp: str,
) -> None:
    previous = status.performance or PerformanceStatus()
    same_version = previous.version == readings.version
    consecutive = int(previous.consecutive or 0) if same_version else 0
    base = PerformanceStatus(
        metric=performance.metric, version=readings.version, window=performance.window, checked_at=stamp
    )
    was_degraded = degraded(status)
    if readings.error is not None or readings.series is None:
        message = f"performance check failed: {readings.error}"
        kept = previous if same_version else PerformanceStatus()
        status.performance = base.model_copy(
            update={
                "value": kept.value,
                "labels": kept.labels,
                "tracks": kept.tracks,
                "consecutive": consecutive,
                "message": message,
            }
        )
        if was_degraded and not same_version:
            _condition(status, meta, stamp, "Unknown", "NewVersion", _unmeasured(readings.version))
        if previous.message != message:
            plan.events.append(Event("PerformanceCheckFailed", message, "Warning"))
        return
    metric, positive = performance.metric, performance.positive_class
    measured = measure_version(readings.series, metric, readings.version, positive=positive)
    verdict = judge_performance(
        measured,
        metric,
        minimum=performance.min,
        maximum=performance.max,
        min_labels=performance.min_labels,
        consecutive=performance.consecutive_windows,
        previous_consecutive=consecutive,
        positive=positive,
    )
    tracks = []
    for version, track in labelled_tracks(readings.series):
        one = measure_version(readings.series, metric, version, track, positive)
        rounded = None if one.value is None else round(one.value, 6)
        tracks.append(TrackQuality(version=version, track=track, value=rounded, labels=round(one.labels)))
    window_note = f" (window {performance.window})"
    status.performance = base.model_copy(
        update={
            "value": None if verdict.value is None else round(verdict.value, 6),
            "labels": round(verdict.labels),
            "consecutive": verdict.consecutive,
            "message": verdict.message + window_note,
            "tracks": tracks or None,
        }
    )
    message = f"version {readings.version}: {verdict.message}{window_note}"
    if verdict.state == "degraded":
        _condition(status, meta, stamp, "True", CONDITION, message)
        if not was_degraded:
            plan.events.append(Event(CONDITION, message, "Warning"))
    elif verdict.state == "insufficient":
        keep = was_degraded and same_version  # too few labels now does not clear a degradation
        value: ConditionStatus = "True" if keep else "Unknown"
        current = find_typed(status.conditions, CONDITION)
        kept_message = current.message if keep and current is not None and current.message else message
        _condition(status, meta, stamp, value, CONDITION if keep else "NotEnoughLabels", kept_message)
    else:
        reason = "Confirming" if verdict.breached else "WithinBounds"
        _condition(status, meta, stamp, "False", reason, message)
        if was_degraded:
            plan.events.append(Event("PerformanceRecovered", message))


def _condition(
    status: DeploymentStatus, meta: Meta, stamp: str, value: ConditionStatus, reason: str, message: str
) -> None:
    status.conditions = set_typed(
        status.conditions, CONDITION, value, reason, message, generation=meta.generation, now=stamp
    )


def degraded(status: DeploymentStatus) -> bool:
    """True while the PerformanceDegraded condition is True."""
    condition = find_typed(status.conditions, CONDITION)
    return condition is not None and condition.status == "True"
