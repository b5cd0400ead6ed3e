"""The shadow step: the candidate answers a mirrored sample of live traffic before any user is served by it.

While `status.shadow` is Running for the canary version, the canary track has no pods (weight 0) and the
shadow track serves the candidate to the stable servers' mirrors only (server/shadow.py). Every analysis
interval the stable servers' counters are read over the time since the shadow started; after `duration`,
with `minRequests` compared, the verdict is: agreement, error rate and latency within bounds -> the first
canary step starts; any outside -> the rollout aborts (ShadowDisagreement, ShadowErrors, ShadowLatency),
the stable track untouched all along. Too few requests or no ready shadow pod by the progress deadline
abort too (NoShadowTraffic, ShadowNotReady): never a silent wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from .. import contract
from ..api.common import parse_duration
from ..api.deployment import DeploymentSpec, DeploymentStatus, Shadow, ShadowStatus
from .plan import Meta, parse_time

# Below this p95 the shadow's latency is not judged: a ratio of sub-millisecond figures is noise.
LATENCY_FLOOR_S = 0.005
ERROR_OUTCOMES = ("error", "timeout", "unreachable")


@dataclass(frozen=True)
class ShadowQueries:
    """The PromQL of one shadow check, by reading name."""

    version: int
    queries: dict[str, str]


@dataclass(frozen=True)
class ShadowReadings:
    """One shadow check's values by reading name (None: no data), or why there are none."""

    version: int
    values: dict[str, float | None] | None = None
    by_outcome: dict[str, float] | None = None
    error: str | None = None


@dataclass(frozen=True)
class ShadowVerdict:
    """What one check found: the figures for status, and a failure reason (None: passed) once judgeable."""

    figures: ShadowStatus
    judged: bool
    failure: str | None = None
    message: str = ""


def shadow_of(spec: DeploymentSpec) -> Shadow | None:
    """The shadow step's settings, when the canary strategy has one."""
    return spec.strategy.canary.shadow


def in_shadow(status: DeploymentStatus) -> bool:
    """True while the canary version runs its shadow step."""
    shadow = status.shadow
    return (
        status.canary_version is not None
        and shadow is not None
        and shadow.version == status.canary_version
        and (shadow.phase == "Running")
    )


def shadow_seconds(status: DeploymentStatus, now: datetime) -> float:
    """Seconds since the shadow step started."""
    started = parse_time(status.shadow.started_at if status.shadow else None)
    return max(0.0, (now - started).total_seconds()) if started else 0.0


def shadow_check_due(spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> bool:
    """True in a shadow step once its duration has passed and the last check is an analysis interval old."""
    shadow = shadow_of(spec)
    if shadow is None or not in_shadow(status):
        return False
    if shadow_seconds(status, now) < parse_duration(shadow.duration).total_seconds():
        return False
    checked = parse_time(status.shadow.checked_at if status.shadow else None)
    interval = parse_duration(spec.strategy.canary.analysis.interval).total_seconds()
    return checked is None or (now - checked).total_seconds() >= interval


def shadow_queries(meta: Meta, status: DeploymentStatus, now: datetime) -> ShadowQueries:
    """The counters of the stable servers' mirrors and both tracks' latency, since the shadow started."""
    version = int(status.canary_version or 0)
    window = f"{max(60, math.ceil(shadow_seconds(status, now)))}s"
    mirrored = f'namespace="{meta.namespace}",deployment="{meta.name}",shadow_version="{version}"'

    def total(metric: str) -> str:
        return f"sum(increase({metric}{{{mirrored}}}[{window}]))"

    def p95(track: str, served: int | None) -> str:
        selector = f'namespace="{meta.namespace}",deployment="{meta.name}",track="{track}",version="{served}"'
        bucket = contract.METRIC_DURATION + "_bucket"
        return f"histogram_quantile(0.95, sum by (le) (rate({bucket}{{{selector}}}[{window}])))"

    return ShadowQueries(
        version,
        {
            "requests": f"sum by (outcome) (increase({contract.METRIC_SHADOW_REQUESTS}{{{mirrored}}}[{window}]))",
            "rows": total(contract.METRIC_SHADOW_ROWS),
            "agreed": total(contract.METRIC_SHADOW_AGREED_ROWS),
            "latency": p95("shadow", version),
            "stable_latency": p95("stable", status.stable_version),
        },
    )


def judge_shadow(shadow: Shadow, current: ShadowStatus, readings: ShadowReadings, stamp: str) -> ShadowVerdict:
    """The figures of one check and, with `minRequests` compared, the verdict (first failing bound wins)."""
    values, outcomes = readings.values or {}, readings.by_outcome or {}
    compared = outcomes.get("compared", 0.0)
    errors = sum(outcomes.get(o, 0.0) for o in ERROR_OUTCOMES)
    requests = compared + errors
    rows, agreed = values.get("rows") or 0.0, values.get("agreed") or 0.0
    # increase() extrapolates each counter over its own samples, so agreed can read a hair above rows.
    agreement = min(1.0, agreed / rows) if rows > 0 else None
    error_rate = min(1.0, errors / requests) if requests > 0 else None
    latency, stable_latency = _finite(values.get("latency")), _finite(values.get("stable_latency"))
    figures = current.model_copy(
        update={
            "checked_at": stamp,
            "requests": round(requests),
            "rows": round(rows),
            "agreement": None if agreement is None else round(agreement, 4),
            "error_rate": None if error_rate is None else round(error_rate, 4),
            "dropped": round(outcomes.get("dropped", 0.0)),
            "latency_p95": latency,
            "stable_latency_p95": stable_latency,
        }
    )
    if requests < shadow.min_requests:
        message = f"{round(requests)}/{shadow.min_requests} mirrored requests so far"
        return ShadowVerdict(figures.model_copy(update={"message": message}), judged=False, message=message)
    failures: list[tuple[str, str]] = []
    if agreement is None or agreement < shadow.min_agreement:
        shown = "no rows compared" if agreement is None else f"{agreement:.1%} of {round(rows)} rows agreed"
        failures.append(("ShadowDisagreement", f"{shown} (minAgreement {shadow.min_agreement:.1%})"))
    if error_rate is not None and error_rate > shadow.max_error_rate:
        failures.append(
            (
                "ShadowErrors",
                f"{error_rate:.1%} of {round(requests)} mirrored requests failed (max {shadow.max_error_rate:.1%})",
            )
        )
    if _too_slow(latency, stable_latency, shadow.max_latency_ratio):
        failures.append(
            (
                "ShadowLatency",
                f"p95 {(latency or 0) * 1e3:.1f} ms against the stable's {(stable_latency or 0) * 1e3:.1f} ms"
                f" (maxLatencyRatio {shadow.max_latency_ratio:g})",
            )
        )
    if failures:
        message = "; ".join(m for _, m in failures)
        return ShadowVerdict(
            figures.model_copy(update={"phase": "Failed", "message": message}), True, failures[0][0], message
        )
    message = (
        f"{figures.agreement:.1%} of {round(rows)} rows agreed over {round(requests)} mirrored requests,"
        f" {figures.error_rate:.1%} failed"
    )
    return ShadowVerdict(figures.model_copy(update={"phase": "Passed", "message": message}), True, None, message)


def _too_slow(latency: float | None, stable: float | None, ratio: float) -> bool:
    # Judged only above the floor: a p95 of 2 ms against 0.8 ms is a ratio of noise, not a slower model.
    return latency is not None and stable is not None and latency > LATENCY_FLOOR_S and latency > ratio * stable


def _finite(value: float | None) -> float | None:
    return round(value, 6) if value is not None and math.isfinite(value) else None
