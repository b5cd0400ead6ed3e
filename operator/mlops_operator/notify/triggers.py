"""Which planned Events are notification triggers: a function of the Event's reason, the object's kind and (for a
rollback) its status — so the controllers need no notification code of their own."""

from __future__ import annotations

from typing import Any

from ..api.notification import Trigger

Obj = dict[str, Any]

# (kind, Event reason) -> trigger. Reasons are those the planners (and Runtime.apply's phase Events) post.
_BY_REASON: dict[tuple[str, str], Trigger] = {
    ("TrainingRun", "Succeeded"): "Trained",
    ("TrainingRun", "TrainingFailed"): "TrainingFailed",
    ("TrainingRun", "DeadlineExceeded"): "TrainingFailed",
    ("TrainingRun", "OOMKilled"): "TrainingFailed",
    ("ModelVersion", "Approved"): "Approved",
    ("ModelVersion", "Rejected"): "Rejected",
    # Planned on a direct alias move; a canary's promotion shows as the phase Event of the same reason.
    ("ModelVersion", "Promoted"): "Promoted",
    ("Deployment", "CanaryStarted"): "CanaryStep",
    ("Deployment", "CanaryStep"): "CanaryStep",
    ("Deployment", "CanaryCompleted"): "CanaryStep",
    ("Deployment", "ShadowPassed"): "ShadowPassed",
    ("Deployment", "DriftDetected"): "DriftDetected",
    ("Deployment", "PerformanceDegraded"): "PerformanceDegraded",
    ("Deployment", "RetrainingTriggered"): "RetrainingStarted",
    ("Deployment", "RetrainingFailed"): "RetrainingFailed",
    ("Deployment", "RetrainingRejected"): "RetrainingFailed",
    # `kubectl mlops abort` (spec.rolloutRequest Abort) rolls the canary back as a failed analysis does.
    ("Deployment", "AbortedByRequest"): "RolledBack",
}


def trigger_of(kind: str, reason: str, status: Obj) -> Trigger | None:
    """The trigger an Event about an object of `kind` fires (None: not one), given the status just written.

    A Deployment's RolledBack is ShadowFailed when the aborted step was the shadow (its recorded rollback
    names it); a ModelVersion's own RolledBack is left out — the Deployment's carries the analysis."""
    if kind == "Deployment" and reason == "RolledBack":
        last = (status.get("rollbacks") or [{}])[-1]
        text = f"{last.get('reason') or ''} {last.get('message') or ''}".lower()
        return "ShadowFailed" if "shadow" in text else "RolledBack"
    return _BY_REASON.get((kind, reason))
