"""Creating and patching children, and acting only on children the owner controls (no adoption by name).

A create that finds the name taken reads the object: ours (our controller ownerReference for this
owner's uid) goes on as before; anything else is recorded in the store as the owner's conflict and the
pass ends (NameConflictError), so the next pass's plan says NameConflict and touches nothing. A set of
children (a Deployment's) is created without reading any name first, as Argo Rollouts does; on a conflict
the children the set had just created are deleted again, so none is left half-applied.
"""

from __future__ import annotations

import logging

import httpx

from ..api.kinds import ALL_KINDS
from ..kubeapi import ApiError, Kube
from ..planning.conflicts import NameConflict, controller_uid, foreign
from ..planning.plan import Obj
from . import metrics
from .store import BODY_KINDS, Store

log = logging.getLogger("mlops.controllers")

PLURALS = {kind.kind: kind.plural for kind in ALL_KINDS}
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})  # children whose create starts pods
STORE_KINDS = {"Deployment": "ServingDeployment"}  # an apps/v1 child's kind in the store (ours has the name)
PLURALS_OF_CHILDREN = {
    "Job": "jobs",
    "Service": "services",
    "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets",
}


def store_kind(obj: Obj) -> str:
    """The kind an object is kept under in the store (an apps/v1 Deployment is a ServingDeployment)."""
    kind = str(obj.get("kind"))
    return STORE_KINDS.get(kind, kind) if str(obj.get("apiVersion", "")).startswith("apps/") else kind


class NameConflictError(Exception):
    """A child's name is held by an object the owner does not control; the next pass plans NameConflict."""


def collection_of(obj: Obj) -> str:
    """The API collection a child object is created in."""
    group_version, kind = obj["apiVersion"], obj["kind"]
    plural = PLURALS_OF_CHILDREN.get(kind) or PLURALS[kind]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}"


class ChildWriter:
    """The runtime's child writes (a mixin over its `kube` and `store`)."""

    kube: Kube
    store: Store

    def wake_owner(self, namespace: str, obj: Obj | None, urgent: bool = False) -> None:
        """Reconcile the owner of `obj` soon (the runtime's requeue)."""
        raise NotImplementedError

    async def create(self, obj: Obj) -> bool:
        """Create a child object; False when one of that name exists and is ours (left as it is). One that
        is not ours is recorded as the owner's conflict and raises NameConflictError: nothing acts on it."""
        return await self._create(obj) is not None

    async def _create(self, obj: Obj) -> Obj | None:
        """`create`, answering the object created (None: the name holds our own child already)."""
        meta = obj["metadata"]
        created = await self.kube.create(collection_of(obj), obj)
        if created is not None:
            self.remember(store_kind(obj), created)
            log.info("created %s %s/%s", obj["kind"], meta["namespace"], meta["name"])
            if obj["kind"] == "Job":
                owner = (meta.get("ownerReferences") or [{}])[0].get("kind", "unknown")
                metrics.JOBS_LAUNCHED.labels(owner).inc()
            return created
        owner_uid = controller_uid(obj)
        if owner_uid is None:  # planning marks every child; an unmarked one has no owner to protect
            return None
        path = f"{collection_of(obj)}/{meta['name']}"
        conflict = foreign(obj["kind"], await self.kube.get_or_none(path), owner_uid)
        if conflict is not None:
            self.note_conflict(owner_uid, path, conflict)
            raise NameConflictError(conflict.message)
        return None

    async def create_or_patch(self, obj: Obj) -> Obj | None:
        """Create a child, or merge-patch the existing one (only if ours) to the desired metadata and spec;
        answers the object if this call created it."""
        created = await self._create(obj)
        if created is None:
            meta = obj["metadata"]
            patch = {"metadata": {k: meta[k] for k in ("labels", "annotations") if k in meta}, "spec": obj["spec"]}
            self.remember(store_kind(obj), await self.kube.merge_patch(f"{collection_of(obj)}/{meta['name']}", patch))
            log.info("updated %s %s/%s", obj["kind"], meta["namespace"], meta["name"])
        return created

    async def apply_set(self, children: list[Obj]) -> None:
        """Create or patch several children, those that start no pods first. A name held by an object the owner
        does not control stops the set, and the children this call created are deleted again (uid preconditions),
        so a conflict never leaves a half-applied set and the happy path reads nothing (no GET per name)."""
        created: list[Obj] = []
        try:
            for obj in sorted(children, key=lambda child: child["kind"] in WORKLOAD_KINDS):
                written = await self.create_or_patch(obj)
                if written is not None:
                    created.append(written)
        except NameConflictError:
            for obj in reversed(created):
                await self.delete_child(obj)
                self.store.delete(store_kind(obj), obj["metadata"]["namespace"], obj["metadata"]["name"])
            raise

    async def delete_child(self, obj: Obj) -> None:
        """Delete a child only while the owner still controls it (its uid as precondition: a same-named object
        created since is never taken); gone already is done."""
        meta = obj["metadata"]
        owner_uid = controller_uid(obj)
        if owner_uid is None or foreign(str(obj["kind"]), obj, owner_uid) is not None:
            return
        path = f"{collection_of(obj)}/{meta['name']}"
        await self.kube.delete(path, uid=meta.get("uid"))
        log.info("deleted %s %s/%s", obj["kind"], meta["namespace"], meta["name"])

    def remember(self, kind: str, written: Obj | None) -> None:
        """Keep what a write answered in the store, so the next pass sees it before its watch event arrives
        (no GET of a Job just created, no pass planned from the status before the one just written)."""
        meta = (written or {}).get("metadata") or {}
        if written and meta.get("name") and kind in self.store.listed:
            before = self.store.get(kind, meta.get("namespace", ""), meta["name"])
            self.store.put(kind, written)
            after = self.store.get(kind, meta.get("namespace", ""), meta["name"])
            # A child's answer can carry someone else's change (a track's pods became Ready since the pass read
            # it); its watch event is then known and wakes nobody, so the owner is woken here.
            moved = before is not None and after is not None and before.get("status") != after.get("status")
            if kind not in BODY_KINDS and moved:
                self.wake_owner(meta.get("namespace", ""), after)

    def note_conflict(self, owner_uid: str, path: str, conflict: NameConflict) -> None:
        """Record a child name a gather found held by an object the owner does not control."""
        self.store.conflicts.setdefault(owner_uid, {})[path] = conflict

    def forget_conflicts(self, owner_uid: str | None) -> None:
        """Drop what was recorded for an owner that is gone."""
        if owner_uid:
            self.store.conflicts.pop(owner_uid, None)

    async def name_conflicts(self, owner_uid: str) -> tuple[NameConflict, ...]:
        """The owner's recorded conflicts that still stand: each path is read again (a freed or adopted
        name is dropped); one that cannot be read stays a conflict, since nothing says it is ours."""
        recorded = self.store.conflicts.get(owner_uid)
        if not recorded:
            return ()
        standing: dict[str, NameConflict] = {}
        for path, conflict in recorded.items():
            try:
                current = foreign(conflict.kind, await self.kube.get_or_none(path), owner_uid)
            except (ApiError, httpx.HTTPError):
                current = conflict
            if current is not None:
                standing[path] = current
        if standing:
            self.store.conflicts[owner_uid] = standing
        else:
            self.store.conflicts.pop(owner_uid, None)
        return tuple(standing.values())
