"""What a reconcile pass decided: objects to create, the next status, Events, and when to look again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Obj = dict[str, Any]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the reconciled object."""

    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass
class Plan:
    """The outcome of one planning pass; `Runtime.apply` documents the order in which it is carried out."""

    status: Obj
    creates: list[Obj] = field(default_factory=list)  # created (idempotently, by name) before status is written
    creates_after_status: list[Obj] = field(default_factory=list)  # names that status must record first
    applies: list[Obj] = field(default_factory=list)  # created or patched to this spec after status is written
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None  # seconds; None: wait for the next watch event
    # Outside effects, made after the status that records them was written: (registered model, alias, version).
    alias_moves: list[tuple[str, str, int]] = field(default_factory=list)
    # Tags set on a registry version, before any alias move of the same pass: (registered model, version, tags).
    version_tags: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    # Merge patches of existing children after the status write: (child with apiVersion/kind/metadata, patch).
    patches: list[tuple[Obj, Obj]] = field(default_factory=list)
    deletes: list[Obj] = field(default_factory=list)  # children of ours spec no longer asks for, after applies
    wake: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, ns, name) to reconcile afterwards


@dataclass(frozen=True)
class Meta:
    """The identity fields of an object that planners need."""

    namespace: str
    name: str
    uid: str
    generation: int

    @classmethod
    def of(cls, body: Obj) -> Meta:
        """From an object's metadata."""
        meta = body["metadata"]
        return cls(meta["namespace"], meta["name"], meta["uid"], int(meta.get("generation") or 1))


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp format (UTC, seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as written by the API server; None if absent."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def owner_reference(body: Obj) -> Obj:
    """A controller ownerReference to `body`, so its children are garbage-collected with it."""
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def dns_name(*parts: str, max_length: int = 63) -> str:
    """Join parts into a DNS-1123 label, truncating the first part so the whole fits."""
    suffix = "-".join(parts[1:])
    room = max_length - (len(suffix) + 1 if suffix else 0)
    head = parts[0][:room].rstrip("-.")
    name = f"{head}-{suffix}" if suffix else head
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower())
