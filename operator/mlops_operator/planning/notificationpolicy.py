"""NotificationPolicy status (pure): Ready when every destination can be delivered to, else Invalid with why."""

from __future__ import annotations

from datetime import datetime

from ..api.notification import NotificationPolicySpec
from .conditions import set_condition
from .plan import Event, Meta, Obj, Plan, rfc3339


def plan_notificationpolicy(body: Obj, spec: NotificationPolicySpec, problems: list[str], now: datetime) -> Plan:
    """The status of a policy whose destinations have `problems` (URLs refused, keys not mounted)."""
    meta, stamp = Meta.of(body), rfc3339(now)
    current: Obj = dict(body.get("status") or {})
    if spec.suspend:
        phase, ready, reason, message = "Suspended", "False", "Suspended", "spec.suspend is true: nothing is sent"
    elif problems:
        phase, ready, reason, message = "Invalid", "False", "DestinationUnusable", "; ".join(problems)
    else:
        names = ", ".join(d.name for d in spec.destinations)
        phase, ready, reason, message = "Ready", "True", "DestinationsReady", f"sending to {names}"
    status: Obj = {
        "phase": phase,
        "observedGeneration": meta.generation,
        "message": message[:1000],
        "problems": problems or None,
        "conditions": set_condition(
            current.get("conditions"), "Ready", ready, reason, message[:1000], generation=meta.generation, now=stamp
        ),
    }
    plan = Plan(status=status)
    if phase == "Invalid" and current.get("message") != status["message"]:
        plan.events.append(Event("DestinationUnusable", status["message"], "Warning"))
    return plan
