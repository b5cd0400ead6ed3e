"""Which destinations a planned Event goes to (pure): the policies of the object's own namespace, their triggers
and model filters. A policy in another namespace never sees it — tenancy holds by construction here, not by RBAC."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.notification import NotificationPolicySpec
from ..planning.plan import Event
from .payload import build_payload, model_of
from .triggers import trigger_of

Obj = dict[str, Any]
log = logging.getLogger("mlops.notify")


@dataclass(frozen=True)
class Delivery:
    """One notification for one destination; `attempt` counts tries (1 = the first)."""

    namespace: str
    policy: str
    destination: str
    type: str  # webhook | slack
    url: str | None
    url_secret_key: str | None
    signing_secret_key: str | None
    payload: Obj
    attempt: int = 1


def plan_deliveries(policies: list[Obj], body: Obj, status: Obj, events: list[Event], now: datetime) -> list[Delivery]:
    """The deliveries of `events` (about `body`, whose status is now `status`) under `policies`."""
    namespace = body["metadata"].get("namespace")
    model = model_of(body)
    deliveries: list[Delivery] = []
    for event in events:
        trigger = trigger_of(body.get("kind", ""), event.reason, status)
        if trigger is None:
            continue
        payload: Obj | None = None
        for policy in policies:
            meta = policy.get("metadata") or {}
            if meta.get("namespace") != namespace:
                continue  # never another namespace's events, whatever a caller passed
            spec = _spec(policy)
            if spec is None or spec.suspend or (spec.models is not None and model not in spec.models):
                continue
            for dest in spec.destinations:
                wanted = dest.triggers if dest.triggers is not None else spec.triggers
                if wanted is not None and trigger not in wanted:
                    continue
                payload = payload or build_payload(trigger, event, body, status, now)
                deliveries.append(
                    Delivery(
                        namespace=namespace,
                        policy=meta["name"],
                        destination=dest.name,
                        type=dest.type,
                        url=dest.url,
                        url_secret_key=dest.url_secret_key,
                        signing_secret_key=dest.signing_secret_key,
                        payload=payload,
                    )
                )
    return deliveries


def _spec(policy: Obj) -> NotificationPolicySpec | None:
    try:
        return NotificationPolicySpec.model_validate(policy.get("spec") or {})
    except ValidationError as error:  # the CRD refuses such a spec; one written before a schema change is skipped
        log.warning("NotificationPolicy %s is not valid: %s", (policy.get("metadata") or {}).get("name"), error)
        return None
