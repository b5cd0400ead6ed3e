"""No adoption by name: a child name held by an object this owner does not control is a conflict, not ours.

Children have deterministic names, so anyone who may create objects in the namespace can create one
first: a Job whose "success" would make a Dataset Ready, or a Deployment the operator would patch.
The operator acts on an existing object only when it carries our controller ownerReference for this
owner's uid; otherwise it leaves the object untouched, creates and applies nothing for the owner, and
says so in condition `NameConflict` (with Ready False) and a Warning Event, looking again with a
back-off until the name is free or the object is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.common import CommonStatus, ConditionStatus
from ..contract import ANNOTATION_CONTROLLER_UID
from .conditions import find_typed, set_typed
from .ownership import recheck_after
from .plan import Event, Meta, Obj, Plan, parse_time, rfc3339

NAME_CONFLICT = "NameConflict"


@dataclass(frozen=True)
class NameConflict:
    """A child name taken by an object that is not ours: what it is and who controls it, if anyone."""

    kind: str
    name: str
    controller: str | None  # "Kind/name" of its controller ownerReference; None: it has none

    @property
    def message(self) -> str:
        """One line a person can act on."""
        held = f"is controlled by {self.controller}" if self.controller else "has no controller"
        return f"{self.kind} {self.name} exists and {held}; it is left untouched: delete or rename it to go on"


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference marked controller, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def controller_uid(obj: Obj) -> str | None:
    """The uid of the object that controls `obj`: its controller ownerReference, else the creator annotation
    of children that carry no ownerReference (planning marks every child it creates one way or the other)."""
    ref = controller_of(obj)
    if ref is not None:
        return str(ref.get("uid") or "") or None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CONTROLLER_UID) or None


def foreign(kind: str, obj: Obj | None, owner_uid: str) -> NameConflict | None:
    """A conflict when `obj` exists and is not controlled by the owner with `owner_uid`."""
    if obj is None or controller_uid(obj) == owner_uid:
        return None
    ref = controller_of(obj)
    controller = f"{ref.get('kind')}/{ref.get('name')}" if ref is not None else None
    return NameConflict(kind, str((obj.get("metadata") or {}).get("name")), controller)


def plan_name_conflicts(
    plan: Plan, status: CommonStatus, meta: Meta, conflicts: tuple[NameConflict, ...], now: datetime
) -> bool:
    """True when the owner is blocked by `conflicts`: the plan then says so and acts on nothing else.
    With none, a NameConflict condition left from before turns False."""
    stamp = rfc3339(now)
    previous = find_typed(status.conditions, NAME_CONFLICT)
    if not conflicts:
        if previous is not None and previous.status == "True":
            status.conditions = set_typed(
                status.conditions, NAME_CONFLICT, "False", "NoConflict", "every child name is free or ours",
                generation=meta.generation, now=stamp,
            )  # fmt: skip
            plan.events.append(Event("NameConflictResolved", "every child name is free or ours"))
        return False
    message = "; ".join(conflict.message for conflict in conflicts)
    value: ConditionStatus
    for ctype, value in ((NAME_CONFLICT, "True"), ("Ready", "False")):
        status.conditions = set_typed(
            status.conditions, ctype, value, NAME_CONFLICT, message, generation=meta.generation, now=stamp
        )
    status.message = message
    if previous is None or previous.status != "True" or previous.message != message:
        plan.events.append(Event(NAME_CONFLICT, message, "Warning"))
    current = find_typed(status.conditions, NAME_CONFLICT)
    since = (parse_time(current.last_transition_time) if current else None) or now
    plan.requeue_after = recheck_after((now - since).total_seconds())
    return True
