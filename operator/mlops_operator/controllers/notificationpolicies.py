"""NotificationPolicy controller: keeps the store's copy current (routing reads it) and reports in status whether
each destination can be delivered to. Delivery itself is the notifier's (notify/delivery.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..api.notification import NotificationPolicySpec
from ..notify.destinations import destination_problems
from ..planning.notificationpolicy import plan_notificationpolicy
from ..planning.plan import Obj, Plan
from .runtime import Runtime, runtime


async def reconcile_notificationpolicy(rt: Runtime, body: Obj) -> Plan | None:
    """Check every destination against the chart's host list and the mounted keys, then plan the status."""
    spec = NotificationPolicySpec.model_validate(body["spec"])
    settings = rt.settings.notifications
    namespace = body["metadata"]["namespace"]
    problems = [
        problem
        for dest in spec.destinations
        for problem in destination_problems(namespace, dest, settings.secrets, settings.allowed_hosts)
    ]
    return plan_notificationpolicy(body, spec, problems, datetime.now(UTC))


@kopf.on.event(GROUP, VERSION, "notificationpolicies")  # type: ignore[arg-type]
async def notificationpolicy_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a policy: the store (what routing reads) first, then its status."""
    runtime().event("NotificationPolicy", type, dict(body))
