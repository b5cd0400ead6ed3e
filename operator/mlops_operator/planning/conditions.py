"""One helper for conditions: stamps observedGeneration, keeps lastTransitionTime unless status flips."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def set_condition(
    conditions: list[Obj] | None,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> list[Obj]:
    """A new condition list with `ctype` set; other conditions are kept as they were."""
    current = [dict(c) for c in conditions or []]
    previous = next((c for c in current if c.get("type") == ctype), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    updated = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    if previous is None:
        return [*current, updated]
    return [updated if c.get("type") == ctype else c for c in current]


def find_condition(conditions: list[Obj] | None, ctype: str) -> Obj | None:
    """The condition of that type, if any."""
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def status_changed(current: Obj, desired: Obj) -> bool:
    """True when writing `desired` would change anything in `current` (for diffed status writes)."""
    return any(current.get(key) != value for key, value in desired.items())
