"""One helper for conditions: stamps observedGeneration, keeps lastTransitionTime unless status flips."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..api.common import Condition, ConditionStatus

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
    """True when writing `desired` would change anything in `current` (for diffed status writes); an absent
    field and a null one are the same, at any depth."""
    return any(_pruned(current.get(key)) != _pruned(value) for key, value in desired.items())


def set_typed(
    conditions: list[Condition] | None,
    ctype: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> list[Condition]:
    """`set_condition` for typed statuses."""
    current = [c.model_dump(by_alias=True) for c in conditions or []]
    updated = set_condition(current, ctype, status, reason, message, generation=generation, now=now)
    return [Condition.model_validate(c) for c in updated]


def find_typed(conditions: list[Condition] | None, ctype: str) -> Condition | None:
    """The typed condition of that type, if any."""
    return next((c for c in conditions or [] if c.type == ctype), None)


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _patchable(value: Any, in_list: bool) -> Any:
    # A merge patch deletes keys set to null in objects; inside lists (replaced whole) nulls are just noise.
    if isinstance(value, dict):
        return {k: _patchable(v, in_list) for k, v in value.items() if not (in_list and v is None)}
    if isinstance(value, list):
        return [_patchable(v, True) for v in value]
    return value


def status_patch(status: BaseModel) -> Obj:
    """A typed status as the body of a merge patch: unset fields are null (cleared), lists carry no nulls."""
    return dict(_patchable(status.model_dump(mode="json", by_alias=True), False))
