"""Steering a rollout by hand, decided from (spec, status) alone: the pause clock and one-shot requests.

Pause (`spec.paused`). While true no canary starts, none is replaced by a newer candidate, and the
running one changes no step; the step's clocks stop as Argo Rollouts' do: `status.pausedAt` records
when the pause took hold, and on resume `stepStartedAt` (and a shadow step's start) move on by the
time paused, so neither the step's `pause` nor its `progressDeadline` counts the paused time and a
resumed rollout never aborts at once for a deadline that ran out while a person held it. Analysis
keeps running while paused and its verdicts keep their force: a canary that fails `failureLimit`
analyses (or `consecutiveErrorLimit` in a row cannot be judged) is still rolled back, because a paused
canary still serves users — only the clocks stop, never the evidence.

Requests (`spec.rolloutRequest`). One request is pending while its identity (action, version, step,
requestedAt) differs from `status.lastRequest`. It applies only to the canary it names (and, for
Promote, only at the step it names); anything else is recorded as Ignored with the reason and a
Warning Event, so the record both ends the request and says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..api.common import ConditionStatus
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.steering import HandledRequest, RolloutRequest
from .conditions import set_typed
from .plan import Event, Meta, Plan, parse_time, rfc3339
from .shadow import in_shadow

PAUSED = "Paused"


def pending_request(spec: DeploymentSpec, status: DeploymentStatus) -> RolloutRequest | None:
    """The spec's rollout request, unless status records it as handled already."""
    request = spec.rollout_request
    if request is None or (status.last_request is not None and status.last_request.key() == request.key()):
        return None
    return request


def request_problem(request: RolloutRequest, status: DeploymentStatus) -> str | None:
    """Why the request does not apply to the rollout as it is now (None: it applies)."""
    canary = status.canary_version
    if canary is None:
        return f"{request.action} of version {request.version} ignored: no canary runs"
    if request.version != canary:
        return f"{request.action} of version {request.version} ignored: the canary is version {canary}"
    if request.action == "Promote":
        if in_shadow(status):
            return (
                f"Promote of version {canary} ignored: the shadow step ends by its verdict (PromoteFull or Abort"
                " end it by hand)"
            )
        step = int(status.step or 0)
        if request.step != step:
            return (
                f"Promote of step {int(request.step or 0) + 1} ignored: version {canary} is at step {step + 1}"
                " (the request was meant for another step)"
            )
    return None


def record_request(
    plan: Plan,
    status: DeploymentStatus,
    request: RolloutRequest,
    problem: str | None,
    message: str,
    stamp: str,
    by: str | None = None,
) -> None:
    """Record the handled request in status; its effect is in the same status write, which makes it once-only."""
    status.last_request = HandledRequest(
        action=request.action,
        version=request.version,
        step=request.step,
        requested_at=request.requested_at,
        by=by,
        outcome="Ignored" if problem else "Applied",
        message=problem or message,
        at=stamp,
    )
    if problem:
        plan.events.append(Event("RequestIgnored", problem, "Warning"))


def by_request(request: RolloutRequest, what: str, by: str | None = None) -> str:
    """The Event message of an applied request: what happened, who asked (field manager) and their reason."""
    who = f" of {by}" if by else ""
    return f"{what} by request{who}" + (f" ({request.reason})" if request.reason else "")


def hold_clock(plan: Plan, spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> None:
    """Start or end a pause: stamp `pausedAt`, or move the step's clocks on by the time paused."""
    stamp = rfc3339(now)
    if spec.paused:
        if status.paused_at is None:
            status.paused_at = stamp
            where = (
                f"version {status.canary_version} held at {status.canary_weight}% (step {int(status.step or 0) + 1})"
                if status.canary_version is not None
                else "no canary starts"
            )
            plan.events.append(Event("Paused", f"rollout paused (spec.paused): {where}"))
        return
    since = parse_time(status.paused_at)
    if since is None:
        return
    held = max(timedelta(0), now - since)
    status.paused_at = None
    if status.canary_version is not None:
        status.step_started_at = _later(status.step_started_at, held)
        if status.shadow is not None and in_shadow(status):
            status.shadow = status.shadow.model_copy(update={"started_at": _later(status.shadow.started_at, held)})
    plan.events.append(Event("Resumed", f"rollout resumed after {int(held.total_seconds())}s paused"))


def _later(stamp: str | None, by: timedelta) -> str | None:
    moment = parse_time(stamp)
    return rfc3339(moment + by) if moment is not None else stamp


def paused_conditions(meta: Meta, spec: DeploymentSpec, status: DeploymentStatus, stamp: str) -> None:
    """The Paused condition, and phase Paused (Argo CD: Suspended) while a paused rollout holds anything."""

    def cond(value: ConditionStatus, reason: str, message: str) -> None:
        status.conditions = set_typed(
            status.conditions, PAUSED, value, reason, message, generation=meta.generation, now=stamp
        )

    if not spec.paused:
        cond("False", "NotPaused", "spec.paused is false")
        return
    if status.canary_version is not None:
        message = (
            f"paused (spec.paused): canary version {status.canary_version} held at {status.canary_weight}%"
            f" (step {int(status.step or 0) + 1}); the step's clocks stopped at {status.paused_at}"
        )
    else:
        message = f"paused (spec.paused): version {status.stable_version} serves and no canary starts"
    cond("True", "SpecPaused", message)
    if status.stable_version is not None and status.phase != "Refused":
        status.phase, status.message = "Paused", message
