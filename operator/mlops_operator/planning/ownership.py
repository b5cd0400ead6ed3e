"""Which namespace owns a registered model, and what another namespace may do with it.

A registered model belongs to the namespace recorded in its `mlops.dev/owner-namespace` tag: the
worker writes it when it creates the model, and `mlops-operator models adopt` writes it on a model
created outside the operator. Only the owner registers versions, moves aliases or retrains; the
namespaces the owner lists in `mlops.dev/reader-namespaces` may also serve it. A model without an
owner tag is refused to everyone until it is adopted, so no namespace claims one by using it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..contract import TAG_OWNER_NAMESPACE, TAG_READER_NAMESPACES
from .plan import Obj

Action = Literal["register", "promote", "serve"]
REFUSED_REASONS = ("ModelOwnedElsewhere", "ModelNotAdopted")
MIN_RECHECK_SECONDS, MAX_RECHECK_SECONDS = 15.0, 300.0

_DOING = {"register": "register versions into", "promote": "move aliases of", "serve": "serve"}


@dataclass(frozen=True)
class ModelOwnership:
    """What MLflow says of a registered model: whether it exists, its owner and its reader namespaces."""

    name: str
    exists: bool
    owner: str | None = None
    readers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, name: str, registered_model: Obj | None) -> ModelOwnership:
        """From MLflow's `registered_model` JSON (None: no such model)."""
        if registered_model is None:
            return cls(name, exists=False)
        tags = {t["key"]: t.get("value", "") for t in registered_model.get("tags") or []}
        readers = frozenset(r.strip() for r in tags.get(TAG_READER_NAMESPACES, "").split(",") if r.strip())
        return cls(name, exists=True, owner=tags.get(TAG_OWNER_NAMESPACE) or None, readers=readers)


@dataclass(frozen=True)
class Refusal:
    """Why a namespace may not act on a model: a condition reason and a message a person can act on."""

    reason: str  # one of REFUSED_REASONS
    message: str
    owner: str | None


def refusal(namespace: str, ownership: ModelOwnership, action: Action) -> Refusal | None:
    """None if `namespace` may do `action` on the model; otherwise why not.

    A model that does not exist yet refuses nothing: the worker creates it with this namespace as owner
    (and re-checks at registration, so two namespaces racing for one new name cannot both win)."""
    if not ownership.exists or ownership.owner == namespace:
        return None
    name, doing = ownership.name, _DOING[action]
    if ownership.owner is None:
        return Refusal(
            "ModelNotAdopted",
            f"registered model '{name}' has no owner namespace (it was created outside the operator); "
            f"a platform admin adopts it with `mlops-operator models adopt {name} --namespace <owner>`",
            None,
        )
    if action == "serve" and namespace in ownership.readers:
        return None
    share = (
        f"; the owner can share it for serving with `mlops-operator models share {name} --with {namespace}`"
        if action == "serve"
        else ""
    )
    return Refusal(
        "ModelOwnedElsewhere",
        f"registered model '{name}' belongs to namespace {ownership.owner}: namespace {namespace} may not {doing} it"
        + share,
        ownership.owner,
    )


def recheck_after(refused_for_seconds: float) -> float:
    """How soon to look at a refused model again (ownership lives in MLflow, which sends no events)."""
    return min(MAX_RECHECK_SECONDS, max(MIN_RECHECK_SECONDS, refused_for_seconds / 2))
