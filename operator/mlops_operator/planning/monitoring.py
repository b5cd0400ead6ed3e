"""Drift monitoring planning: when to check, and what a check's scores mean for status, conditions and Events.

A check scores the stable track's live inputs over `window`; DriftDetected turns True after
`consecutiveWindows` successive checks above the threshold of the same serving version. A check
without a verdict (too few samples) neither counts nor breaks the run; a new serving version starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.common import parse_duration
from ..drift import DriftReport, default_threshold
from .conditions import find_condition, set_condition
from .plan import Event, Meta, Obj, Plan, parse_time, rfc3339

CONDITION = "DriftDetected"


@dataclass(frozen=True)
class DriftCheck:
    """What one check found for the serving version: a report, or why there is none."""

    version: int
    report: DriftReport | None = None
    error: str | None = None


def drift_settings(spec: Obj) -> Obj | None:
    """spec.monitoring.drift with defaults applied; None when drift is not monitored."""
    drift = (spec.get("monitoring") or {}).get("drift")
    if drift is None:
        return None
    method = drift.get("method", "psi")
    threshold = drift.get("threshold")
    return {
        "method": method,
        "threshold": float(threshold) if threshold is not None else default_threshold(method),
        "window": drift.get("window", "30m"),
        "minSamples": int(drift.get("minSamples", 1000)),
        "interval": drift.get("interval", "1m"),
        "consecutiveWindows": int(drift.get("consecutiveWindows", 2)),
        "query": drift.get("query"),
    }


def seconds_until_check(body: Obj, now: datetime) -> float | None:
    """Seconds until the next drift check of the stable version; None when drift is not monitored."""
    settings, status = drift_settings(body["spec"]), body.get("status") or {}
    if settings is None or status.get("stableVersion") is None:
        return None
    last = parse_time((status.get("drift") or {}).get("checkedAt"))
    if last is None:
        return 0.0
    return parse_duration(settings["interval"]).total_seconds() - (now - last).total_seconds()


def drift_due(body: Obj, now: datetime) -> bool:
    """True when a drift check of the stable version is due."""
    remaining = seconds_until_check(body, now)
    return remaining is not None and remaining <= 0


def plan_drift(plan: Plan, body: Obj, check: DriftCheck | None, now: datetime) -> None:
    """Fold one check's result (if one ran) into status, the DriftDetected condition and Events."""
    settings, meta, status = drift_settings(body["spec"]), Meta.of(body), plan.status
    if settings is None:
        return
    if check is not None:
        _record(plan, status, settings, check, meta, rfc3339(now))
    elif drift_detected(status) and (status.get("drift") or {}).get("version") != status.get("stableVersion"):
        message = f"version {status.get('stableVersion')} serves now; its drift is not measured yet"
        _condition(status, meta, rfc3339(now), "Unknown", "NewVersion", message)
    remaining = seconds_until_check({**body, "status": status}, now)
    if remaining is not None:
        wait = max(1.0, remaining)
        plan.requeue_after = wait if plan.requeue_after is None else min(plan.requeue_after, wait)


def _record(plan: Plan, status: Obj, settings: Obj, check: DriftCheck, meta: Meta, stamp: str) -> None:
    previous = dict(status.get("drift") or {})
    same_version = previous.get("version") == check.version
    consecutive = int(previous.get("consecutive") or 0) if same_version else 0
    threshold, needed = settings["threshold"], settings["consecutiveWindows"]
    drift: Obj = {
        "version": check.version,
        "method": "query" if settings["query"] else settings["method"],
        "threshold": threshold,
        "window": settings["window"],
        "checkedAt": stamp,
    }
    was_detected = (find_condition(status.get("conditions"), CONDITION) or {}).get("status") == "True"
    if check.error is not None or check.report is None:
        # The check could not run (Prometheus or the profile unreachable): keep the last verdict.
        message = f"drift check failed: {check.error}"
        kept = {k: previous.get(k) for k in ("score", "feature", "samples", "scores")} if same_version else {}
        status["drift"] = {**drift, **kept, "consecutive": consecutive, "message": message}
        if was_detected and not same_version:  # the old version's verdict does not carry over to this one
            unmeasured = f"version {check.version} serves now; its drift is not measured yet"
            _condition(status, meta, stamp, "Unknown", "NewVersion", unmeasured)
        if previous.get("message") != message:
            plan.events.append(Event("DriftCheckFailed", message, "Warning"))
        return
    report = check.report
    top = report.top
    if top is None:
        value, reason = ("True", "DriftDetected") if was_detected and same_version else ("Unknown", "NotEnoughSamples")
        message = report.message if value == "Unknown" else previous.get("message") or report.message
        status["drift"] = {
            **drift,
            "score": None,
            "feature": None,
            "scores": None,
            "samples": report.samples,
            "consecutive": consecutive,
            "message": report.message,
        }
        _condition(status, meta, stamp, value, reason, message)
        return
    consecutive = consecutive + 1 if top.score > threshold else 0
    detected = consecutive >= needed
    comparison = ">" if top.score > threshold else "<="
    message = (
        f"{top.feature}: {drift['method']} {top.score:.3f} {comparison} {threshold:g}"
        f" ({min(consecutive, needed)}/{needed} windows of {settings['window']}, {top.samples} samples)"
    )
    status["drift"] = {
        **drift,
        "score": round(top.score, 6),
        "feature": top.feature,
        "scores": {s.feature: round(s.score, 6) for s in report.scores},
        "samples": report.samples,
        "consecutive": consecutive,
        "message": message,
    }
    if detected:
        _condition(status, meta, stamp, "True", "DriftDetected", message)
        if not was_detected:
            plan.events.append(Event("DriftDetected", f"version {check.version}: {message}", "Warning"))
    else:
        _condition(status, meta, stamp, "False", "BelowThreshold" if consecutive == 0 else "Confirming", message)
        if was_detected:
            plan.events.append(Event("DriftCleared", f"version {check.version}: {message}"))


def _condition(status: Obj, meta: Meta, stamp: str, value: str, reason: str, message: str) -> None:
    status["conditions"] = set_condition(
        status.get("conditions"), CONDITION, value, reason, message, generation=meta.generation, now=stamp
    )


def drift_detected(status: Obj) -> bool:
    """True while the DriftDetected condition is True."""
    return (find_condition(status.get("conditions"), CONDITION) or {}).get("status") == "True"
