"""`mlops-operator models ...`: the explicit actions that give a registered model an owner and readers.

These write MLflow registered-model tags directly, so they run with MLflow credentials that may edit
the model (with MLflow's auth app on, its EDIT/MANAGE permission); nothing a namespace applies in
Kubernetes can make them happen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .contract import TAG_OWNER_NAMESPACE, TAG_READER_NAMESPACES
from .integrations.mlflow import Mlflow, MlflowError
from .planning.ownership import ModelOwnership


@dataclass(frozen=True)
class AccessChange:
    """What a command did, in one sentence, and whether it succeeded."""

    ok: bool
    message: str


async def adopt(mlflow: Mlflow, name: str, namespace: str, transfer: bool = False) -> AccessChange:
    """Make `namespace` the owner of a model created outside the operator (or, with `transfer`, of any model)."""
    ownership = ModelOwnership.of(name, await mlflow.registered_model(name))
    if not ownership.exists:
        return AccessChange(False, f"MLflow has no registered model '{name}'")
    if ownership.owner == namespace:
        return AccessChange(True, f"'{name}' already belongs to namespace {namespace}")
    if ownership.owner is not None and not transfer:
        return AccessChange(
            False, f"'{name}' belongs to namespace {ownership.owner}; pass --transfer to give it to {namespace}"
        )
    await mlflow.set_registered_model_tag(name, TAG_OWNER_NAMESPACE, namespace)
    was = f" (was {ownership.owner})" if ownership.owner else ""
    return AccessChange(True, f"'{name}' now belongs to namespace {namespace}{was}")


async def share(mlflow: Mlflow, name: str, readers: list[str]) -> AccessChange:
    """Set the namespaces (besides the owner) that may serve the model; an empty list shares it with none."""
    ownership = ModelOwnership.of(name, await mlflow.registered_model(name))
    if not ownership.exists:
        return AccessChange(False, f"MLflow has no registered model '{name}'")
    if ownership.owner is None:
        return AccessChange(False, f"'{name}' has no owner namespace; adopt it first (`models adopt`)")
    names = sorted({r.strip() for r in readers if r.strip() and r.strip() != ownership.owner})
    await mlflow.set_registered_model_tag(name, TAG_READER_NAMESPACES, ",".join(names))
    shared = ", ".join(names) if names else "no other namespace"
    return AccessChange(True, f"'{name}' (owner {ownership.owner}) may be served by {shared}")


async def show(mlflow: Mlflow, name: str) -> AccessChange:
    """The owner and readers of a model."""
    ownership = ModelOwnership.of(name, await mlflow.registered_model(name))
    if not ownership.exists:
        return AccessChange(False, f"MLflow has no registered model '{name}'")
    readers = ", ".join(sorted(ownership.readers)) or "none"
    return AccessChange(True, f"'{name}': owner {ownership.owner or '(none: not adopted)'}; readers {readers}")


def run(tracking_uri: str, action: str, name: str, namespace: str | None, readers: list[str], transfer: bool) -> int:
    """Carry out one `models` command and print its outcome; exit 0 on success."""

    async def main() -> AccessChange:
        mlflow = Mlflow(tracking_uri)
        try:
            if action == "adopt":
                assert namespace is not None
                return await adopt(mlflow, name, namespace, transfer)
            if action == "share":
                return await share(mlflow, name, readers)
            return await show(mlflow, name)
        except MlflowError as error:
            return AccessChange(False, str(error))
        finally:
            await mlflow.aclose()

    change = asyncio.run(main())
    print(change.message)
    return 0 if change.ok else 1
