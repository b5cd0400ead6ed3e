"""Drift monitoring planning: when to check, the score of a check's readings, and what it means for status.

A check scores the stable track's live inputs over `window`; DriftDetected turns True after
`consecutiveWindows` successive checks above the threshold of the same serving version. A check
without a verdict (too few samples) neither counts nor breaks the run; a new serving version starts
over; a check that could not run (Prometheus or MLflow down) keeps the last verdict and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.common import ConditionStatus, parse_duration
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.monitoring import Drift, DriftStatus
from ..drift import NULL_BIN, DriftReport, FeatureScore, drift_report
from ..integrations.prometheus import custom_query, drift_queries
from .conditions import find_typed, set_typed
from .observed import DeploymentObserved, DriftReadings, Series
from .plan import Event, Meta, Plan, parse_time, rfc3339
from .querypolicy import CustomQueries, QueryRefusedError, scoped_query

CONDITION = "DriftDetected"


@dataclass(frozen=True)
class DriftCheck:
    """What one check found for the serving version: a report, or why there is none."""

    version: int
    report: DriftReport | None = None
    error: str | None = None


@dataclass(frozen=True)
class DriftQueries:
    """The reads of one due check: the builtin bin and null queries with the profile, or the user's query."""

    version: int
    window: str
    bins: str | None = None
    nulls: str | None = None
    custom: str | None = None
    refused: str | None = None  # why the custom query is not sent (planning/querypolicy.py)


def drift_of(spec: DeploymentSpec) -> Drift | None:
    """spec.monitoring.drift (defaults from the API model); None when drift is not monitored."""
    return spec.monitoring.drift if spec.monitoring is not None else None


def window_of(drift: Drift) -> str:
    """The window in whole seconds, as PromQL takes it."""
    return f"{int(parse_duration(drift.window).total_seconds())}s"


def seconds_until_check(spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> float | None:
    """Seconds until the next drift check of the stable version; None when drift is not monitored."""
    drift = drift_of(spec)
    if drift is None or status.stable_version is None:
        return None
    last = parse_time(status.drift.checked_at if status.drift else None)
    if last is None:
        return 0.0
    return parse_duration(drift.interval).total_seconds() - (now - last).total_seconds()


def drift_reads(
    meta: Meta, spec: DeploymentSpec, status: DeploymentStatus, now: datetime, policy: CustomQueries = "scoped"
) -> DriftQueries | None:
    """The queries of a check due now, if one is; a custom query scoped to the namespace, or refused."""
    drift, remaining = drift_of(spec), seconds_until_check(spec, status, now)
    if drift is None or remaining is None or remaining > 0 or status.stable_version is None:
        return None
    version, window = int(status.stable_version), window_of(drift)
    if drift.query:
        query = custom_query(drift.query, meta.namespace, meta.name, "stable", window, str(version))
        try:
            return DriftQueries(version, window, custom=scoped_query(query, meta.namespace, policy))
        except QueryRefusedError as refused:
            return DriftQueries(version, window, refused=f"invalid query: {refused}")
    bins, nulls = drift_queries(meta.namespace, meta.name, version, window)
    return DriftQueries(version, window, bins=bins, nulls=nulls)


def score(drift: Drift, readings: DriftReadings) -> DriftCheck:
    """The check's verdict from its readings: the builtin statistic, the user's query, or the read's error."""
    if readings.error is not None:
        return DriftCheck(readings.version, error=readings.error)
    if drift.query:
        return DriftCheck(readings.version, report=_custom_report(readings.custom or []))
    live: dict[str, dict[str, float]] = {}
    for labels, value in readings.bins or []:
        live.setdefault(labels.get("feature", ""), {})[labels.get("bin", "")] = value
    for labels, value in readings.nulls or []:
        live.setdefault(labels.get("feature", ""), {})[NULL_BIN] = value
    report = drift_report(readings.profile or {}, live, drift.method, drift.min_samples)
    return DriftCheck(readings.version, report=report)


def _custom_report(series: Series) -> DriftReport:
    """The highest series of a user's drift query; its `feature` label, if any, names the feature."""
    finite = [(labels, value) for labels, value in series if value == value]
    if not finite:
        return DriftReport(method="query", message="the drift query returned no data")
    labels, value = max(finite, key=lambda item: item[1])
    top = FeatureScore(labels.get("feature", "query"), value, 0)
    return DriftReport(method="query", scores=[top], message="scored by spec.monitoring.drift.query")


def plan_drift(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> None:
    """Score this pass's drift readings (if a check was due) and fold the verdict into status."""
    drift = drift_of(obs.spec)
    if drift is None:
        return
    check = score(drift, obs.drift) if obs.drift is not None else None
    if check is None and not obs.prometheus_url and status.stable_version is not None:
        remaining = seconds_until_check(obs.spec, status, now)
        if remaining is not None and remaining <= 0:  # a check that can never run says so each interval
            check = DriftCheck(int(status.stable_version), error=obs.no_prometheus_reason)
    fold_check(plan, status, obs.meta, obs.spec, check, now)


def fold_check(
    plan: Plan, status: DeploymentStatus, meta: Meta, spec: DeploymentSpec, check: DriftCheck | None, now: datetime
) -> None:
    """Fold one check's result (if one ran) into status, the DriftDetected condition and Events."""
    drift, stamp = drift_of(spec), rfc3339(now)
    if drift is None:
        return
    if check is not None:
        _record(plan, status, drift, check, meta, stamp)
    elif drift_detected(status) and (status.drift.version if status.drift else None) != status.stable_version:
        message = f"version {status.stable_version} serves now; its drift is not measured yet"
        _condition(status, meta, stamp, "Unknown", "NewVersion", message)
    remaining = seconds_until_check(spec, status, now)
    if remaining is not None:
        wait = max(1.0, remaining)
        plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)


def _record(plan: Plan, status: DeploymentStatus, drift: Drift, check: DriftCheck, meta: Meta, stamp: str) -> None:
    previous = status.drift or DriftStatus()
    same_version = previous.version == check.version
    consecutive = int(previous.consecutive or 0) if same_version else 0
    threshold, needed = drift.effective_threshold, drift.consecutive_windows
    base = DriftStatus(
        version=check.version,
        method="query" if drift.query else drift.method,
        threshold=threshold,
        window=drift.window,
        checked_at=stamp,
    )
    was_detected = drift_detected(status)
    if check.error is not None or check.report is None:
        # The check could not run (Prometheus or the profile unreachable): keep the last verdict.
        message = f"drift check failed: {check.error}"
        kept = previous if same_version else DriftStatus()
        status.drift = base.model_copy(
            update={
                "score": kept.score,
                "feature": kept.feature,
                "samples": kept.samples,
                "scores": kept.scores,
                "consecutive": consecutive,
                "message": message,
            }
        )
        if was_detected and not same_version:  # the old version's verdict does not carry over to this one
            unmeasured = f"version {check.version} serves now; its drift is not measured yet"
            _condition(status, meta, stamp, "Unknown", "NewVersion", unmeasured)
        if previous.message != message:
            plan.events.append(Event("DriftCheckFailed", message, "Warning"))
        return
    report, top = check.report, check.report.top
    if top is None:
        keep = was_detected and same_version
        value: ConditionStatus = "True" if keep else "Unknown"
        reason = "DriftDetected" if keep else "NotEnoughSamples"
        message = report.message if value == "Unknown" else previous.message or report.message
        status.drift = base.model_copy(
            update={"samples": report.samples, "consecutive": consecutive, "message": report.message}
        )
        _condition(status, meta, stamp, value, reason, message)
        return
    consecutive = consecutive + 1 if top.score > threshold else 0
    detected = consecutive >= needed
    comparison = ">" if top.score > threshold else "<="
    message = (
        f"{top.feature}: {base.method} {top.score:.3f} {comparison} {threshold:g}"
        f" ({min(consecutive, needed)}/{needed} windows of {drift.window}, {top.samples} samples)"
    )
    status.drift = base.model_copy(
        update={
            "score": round(top.score, 6),
            "feature": top.feature,
            "scores": {s.feature: round(s.score, 6) for s in report.scores},
            "samples": report.samples,
            "consecutive": consecutive,
            "message": message,
        }
    )
    if detected:
        _condition(status, meta, stamp, "True", "DriftDetected", message)
        if not was_detected:
            plan.events.append(Event("DriftDetected", f"version {check.version}: {message}", "Warning"))
    else:
        _condition(status, meta, stamp, "False", "BelowThreshold" if consecutive == 0 else "Confirming", message)
        if was_detected:
            plan.events.append(Event("DriftCleared", f"version {check.version}: {message}"))


def _condition(
    status: DeploymentStatus, meta: Meta, stamp: str, value: ConditionStatus, reason: str, message: str
) -> None:
    status.conditions = set_typed(
        status.conditions, CONDITION, value, reason, message, generation=meta.generation, now=stamp
    )


def drift_detected(status: DeploymentStatus) -> bool:
    """True while the DriftDetected condition is True."""
    condition = find_typed(status.conditions, CONDITION)
    return condition is not None and condition.status == "True"
