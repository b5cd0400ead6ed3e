"""The first status each kind gets, so `kubectl get` and `kubectl wait` have something true to show."""

from __future__ import annotations

from typing import Any

from .conditions import REASON_AWAITING_CONTROLLER, set_condition

Obj = dict[str, Any]

INITIAL_PHASE = {
    "Dataset": "Pending",
    "TrainingRun": "Pending",
    "ModelVersion": "Registered",
    "Deployment": "Progressing",
}


def initial_status(kind: str, body: Obj, now: str) -> Obj:
    """Status for an object this operator version accepts but does not reconcile yet."""
    status = dict(body.get("status") or {})
    generation = body.get("metadata", {}).get("generation")
    message = f"accepted by mlops-operator; the {kind} controller has not acted on it yet"
    conditions = set_condition(
        status.get("conditions"),
        "Ready",
        "Unknown",
        REASON_AWAITING_CONTROLLER,
        message,
        generation=generation,
        now=now,
    )
    desired: Obj = {
        "observedGeneration": generation,
        "phase": status.get("phase") or INITIAL_PHASE[kind],
        "conditions": conditions,
    }
    if kind == "TrainingRun":
        desired["conditions"] = set_condition(
            conditions, "Succeeded", "Unknown", REASON_AWAITING_CONTROLLER, message, generation=generation, now=now
        )
    return desired
