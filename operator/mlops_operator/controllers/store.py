"""An in-memory view of the objects reconciles look up across kinds, seeded by a LIST before any handler runs.

It also keeps the latest body of every object of the operator's own kinds, as compact JSON (a tenth of the
memory of the parsed dicts), so a pass woken by a timer or a child reads its object here, not from the API
server: the status write's resourceVersion precondition catches a stale copy, as controller-runtime's cache.

kopf's own indexes would do this, but kopf holds every object's worker until all indexes are
populated; with `queueing.worker_limit` bounding the workers (for memory), 1,000 objects deadlock
at startup. So the operator lists what it needs once in a startup handler and keeps the view
current from its watch events (every handler updates it before reconciling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..api.modelversion import Promotion
from ..contract import LABEL_MANAGED_BY, MANAGED_BY
from ..planning.approval import recorded_writers
from ..planning.conflicts import NameConflict
from ..planning.plan import parse_time

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
DEFAULT_ALIAS: str = Promotion.model_fields["alias"].default  # the API model's default, not restated

# (API collection path under /apis or /api, kind in the store, label selector)
SEEDED = (
    ("/apis/mlops.dev/v1alpha1", "datasets", "Dataset", ""),
    ("/apis/mlops.dev/v1alpha1", "trainingruns", "TrainingRun", ""),
    ("/apis/mlops.dev/v1alpha1", "modelversions", "ModelVersion", ""),
    ("/apis/mlops.dev/v1alpha1", "deployments", "Deployment", ""),
    ("/apis/mlops.dev/v1alpha1", "notificationpolicies", "NotificationPolicy", ""),
    ("/apis/apps/v1", "deployments", "ServingDeployment", f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    ("/api/v1", "services", "Service", f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    ("/apis/batch/v1", "jobs", "Job", f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    ("/apis/policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
)


BODY_KINDS = frozenset({"Dataset", "TrainingRun", "ModelVersion", "Deployment", "NotificationPolicy"})


def _kept_body(body: Obj) -> Obj:
    meta = dict(body.get("metadata") or {})
    writers = recorded_writers(meta)
    meta.pop("managedFields", None)
    if writers:
        meta["managedFields"] = writers
    return {**body, "metadata": meta}


def compact(body: Obj) -> str:
    """An object as the body cache keeps it: JSON without managedFields beyond the writers status records."""
    return json.dumps(_kept_body(body), separators=(",", ":"))


def slim(kind: str, body: Obj) -> Obj:
    """What a listing keeps of an object until its last page is in: all the store will keep of it (its summary;
    for the operator's own kinds, the body it caches). Whole pages kept until then set the peak RSS: a periodic
    resync of 10,000 objects' 25,000 bodies took it from 250 to 404 MiB."""
    return _kept_body(body) if kind in BODY_KINDS else summary(kind, body)


def known(meta: Obj, stored: Obj | None) -> bool:
    """True if the store holds this version of the object or a newer one (same uid, resourceVersion not lower).

    What a write answers goes into the store at once, and the watch delivers the versions before it afterwards:
    without this, a ModelVersion's status went back to before its approval for a moment, and a Deployment
    planned from it cancelled its canary and started it again; and a restart's listing repeats what the seed
    read. Versions of one resource compare as integers (KEP-5504, stable in Kubernetes 1.35, client-go's
    CompareResourceVersion); one that is not an integer is known only if it is the very same.
    """
    if stored is None or not meta.get("uid") or meta.get("uid") != stored["metadata"].get("uid"):
        return False
    incoming, kept = str(meta.get("resourceVersion") or ""), str(stored["metadata"].get("resourceVersion") or "")
    if incoming.isdigit() and kept.isdigit():
        return int(incoming) <= int(kept)
    return bool(incoming) and incoming == kept


def _without_version(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def summary(kind: str, body: Obj) -> Obj:
    """The part of an object the lookups need (small: the store holds every object)."""
    meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
    kept: Obj = {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "annotations": dict(meta.get("annotations") or {}),
        }
    }
    refs = meta.get("ownerReferences")
    if refs:  # who controls a child decides whether the operator may act on it (planning/conflicts.py)
        kept["metadata"]["ownerReferences"] = [
            {k: ref.get(k) for k in ("kind", "name", "uid", "controller")} for ref in refs
        ]
    if kind == "Job":  # everything the outcome reading needs; the env (the owner's JSON) is dropped
        kept["metadata"]["labels"] = dict(meta.get("labels") or {})
        template = (spec.get("template") or {}).get("spec") or {}
        containers = [{"name": c.get("name"), "resources": c.get("resources")} for c in template.get("containers", [])]
        kept["spec"] = {
            "activeDeadlineSeconds": spec.get("activeDeadlineSeconds"),
            "ttlSecondsAfterFinished": spec.get("ttlSecondsAfterFinished"),
            "template": {"spec": {"containers": containers}},
        }
        kept["status"] = dict(status)
    elif kind == "TrainingRun":
        kept["spec"] = {"datasetRef": spec.get("datasetRef")}
        kept["status"] = {k: status.get(k) for k in ("jobName", "phase", "modelVersion", "message", "datasetVersion")}
    elif kind == "Dataset":  # onNewData compares its Ready version with the serving version's (planning/triggers.py)
        kept["status"] = {k: status.get(k) for k in ("phase", "version")}
    elif kind == "ModelVersion":
        kept["spec"] = {k: spec.get(k) for k in ("registeredModel", "version", "promotion", "source")}
        kept["status"] = {k: status.get(k) for k in ("phase", "message")}
    elif kind == "Deployment":
        kept["spec"] = {"model": spec.get("model")}
        kept["status"] = {"rollbacks": [dict(r) for r in status.get("rollbacks") or []]}
    elif kind == "NotificationPolicy":  # small (≤ 8 destinations); routing reads all of it
        kept["spec"] = dict(spec)
    elif kind == "ServingDeployment":  # what planning/serving.py reads: ready pods and why none can be created
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        kept["spec"] = {"replicas": spec.get("replicas"), "template": {"metadata": {"labels": dict(labels)}}}
        counts = ("observedGeneration", "readyReplicas", "updatedReplicas")
        kept["status"] = {k: status[k] for k in counts if k in status}
        failures = [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
            if c.get("type") == "ReplicaFailure"
        ]
        if failures:  # (a Progressing condition's ProgressDeadlineExceeded is no reason to wake the owner)
            kept["status"]["conditions"] = failures
    return kept


@dataclass
class Store:
    """Objects by kind and (namespace, name), with the cross-kind lookups the controllers make."""

    objects: dict[str, dict[Key, Obj]] = field(default_factory=dict)
    # Child names a create found taken by an object the owner does not control: owner uid -> API path ->
    # the conflict. The cluster stays the truth: each pass re-reads these paths, and a restarted operator
    # that forgot them finds them again at its next create.
    conflicts: dict[str, dict[str, NameConflict]] = field(default_factory=dict)
    # Every put and delete bumps the revision and stamps its key (a delete leaves a tombstone stamp), so a
    # LIST merged in later never undoes a watch event that arrived while the LIST was in flight.
    revision: int = 0
    stamps: dict[str, dict[Key, int]] = field(default_factory=dict)
    bodies: dict[str, dict[Key, str]] = field(default_factory=dict)  # BODY_KINDS: the latest body, compact JSON
    listed: set[str] = field(default_factory=set)  # kinds a LIST filled: what is not stored does not exist

    def put(self, kind: str, body: Obj) -> bool:
        """Record an object unless the store holds this version or a newer one already; True if what the
        lookups read of it changed (a new object, or a summary that differs in more than its resourceVersion)."""
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        stored = self.objects.get(kind, {}).get(key)
        if known(meta, stored):
            return False
        kept = self.objects.setdefault(kind, {})[key] = summary(kind, body)
        if kind in BODY_KINDS:
            self.bodies.setdefault(kind, {})[key] = compact(body)
        self._stamp(kind, key)
        return stored is None or _without_version(stored) != _without_version(kept)

    def holds(self, kind: str, body: Obj) -> bool:
        """True if the store has this version of the object or a newer one (see `known`)."""
        meta = body.get("metadata", {})
        return known(meta, self.objects.get(kind, {}).get((meta.get("namespace", ""), meta["name"])))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Forget a deleted object."""
        self.objects.get(kind, {}).pop((namespace, name), None)
        self.bodies.get(kind, {}).pop((namespace, name), None)
        self._stamp(kind, (namespace, name))

    def body(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The latest full body of one of the operator's own objects (a fresh copy each call), if it is known."""
        raw = self.bodies.get(kind, {}).get((namespace, name))
        return None if raw is None else dict(json.loads(raw))

    def _stamp(self, kind: str, key: Key) -> None:
        self.revision += 1
        self.stamps.setdefault(kind, {})[key] = self.revision

    def replace(
        self,
        kind: str,
        bodies: list[Obj],
        listed_at: int | None = None,
        namespace: str | None = None,
        changed: list[Key] | None = None,
    ) -> list[tuple[Key, Obj]]:
        """Make a kind's entries (in `namespace` only, if given) those of a LIST sent at store revision
        `listed_at` (default: now), so what was deleted while no watch event said so is gone; entries a watch
        event touched after `listed_at` stay as that event left them. Returns the entries dropped; the keys
        the listing added or changed (beyond their resourceVersion) are appended to `changed`."""
        since = self.revision if listed_at is None else listed_at
        current, stamps = self.objects.get(kind, {}), self.stamps.get(kind, {})
        kept = {key for key in current if namespace is not None and key[0] != namespace}  # outside the listing
        kept |= {key for key, stamp in stamps.items() if stamp > since and (namespace is None or key[0] == namespace)}
        fresh: dict[Key, Obj] = {}
        current_bodies, fresh_bodies = self.bodies.get(kind, {}), dict[Key, str]()
        for body in bodies:
            meta = body.get("metadata", {})
            key = (meta.get("namespace", ""), meta["name"])
            if key not in kept:
                fresh[key] = summary(kind, body)
                if kind in BODY_KINDS:
                    fresh_bodies[key] = compact(body)
                before = current.get(key)
                if changed is not None and (before is None or _without_version(before) != _without_version(fresh[key])):
                    changed.append(key)
        fresh.update({key: current[key] for key in kept if key in current})
        fresh_bodies.update({key: current_bodies[key] for key in kept if key in current_bodies})
        self.objects[kind] = fresh
        self.listed.add(kind)
        if kind in BODY_KINDS:
            self.bodies[kind] = fresh_bodies
        # Older stamps in the listed namespace are settled by this listing; tombstones outside it stay.
        outside = namespace is not None
        self.stamps[kind] = {
            key: stamp for key, stamp in stamps.items() if key in kept or (outside and key[0] != namespace)
        }
        return [(key, obj) for key, obj in current.items() if key not in fresh]

    def keys(self, kind: str) -> list[Key]:
        """Every stored (namespace, name) of a kind."""
        return list(self.objects.get(kind, {}))

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """One stored object summary."""
        return self.objects.get(kind, {}).get((namespace, name))

    def in_namespace(self, kind: str, namespace: str) -> list[Obj]:
        """Every stored object of a kind in one namespace."""
        return [obj for (ns, _), obj in self.objects.get(kind, {}).items() if ns == namespace]

    def _all(self, kind: str) -> list[tuple[Key, Obj]]:
        return list(self.objects.get(kind, {}).items())

    def waiting_trainingruns(self, namespace: str, dataset: str) -> list[str]:
        """TrainingRuns on this Dataset that have not started their Job."""
        return [
            name
            for (ns, name), obj in self._all("TrainingRun")
            if ns == namespace
            and (obj["spec"].get("datasetRef") or {}).get("name") == dataset
            and not obj["status"].get("jobName")
        ]

    def refresh_requested(self, namespace: str, dataset: str, annotation: str) -> str | None:
        """The latest `annotation` time (RFC 3339) among TrainingRuns that wait for this Dataset to be re-checked."""
        times = []
        for (ns, _), obj in self._all("TrainingRun"):
            value = obj["metadata"]["annotations"].get(annotation)
            if (
                value
                and ns == namespace
                and (obj["spec"].get("datasetRef") or {}).get("name") == dataset
                and not obj["status"].get("jobName")
            ):
                try:
                    times.append((parse_time(value), value))
                except ValueError:
                    continue  # a hand-written, unreadable time asks for nothing (the TrainingRun ignores it too)
        return max(times)[1] if times else None

    def rollout_deployments(self, namespace: str, model: str, alias: str) -> list[str]:
        """Deployments in the namespace that serve this registered model through this alias."""
        return [
            name
            for (ns, name), obj in self._all("Deployment")
            if ns == namespace
            and (obj["spec"].get("model") or {}).get("registeredModel") == model
            and (obj["spec"].get("model") or {}).get("alias") == alias
        ]

    def approved_versions(self, namespace: str, model: str, alias: str) -> dict[int, str]:
        """Approved ModelVersions for (model, alias) in the namespace: version -> object name."""
        found = {}
        for (ns, name), obj in self._all("ModelVersion"):
            spec = obj["spec"]
            if (
                ns == namespace
                and obj["status"].get("phase") == "Approved"
                and spec.get("registeredModel") == model
                and (spec.get("promotion") or {}).get("alias", DEFAULT_ALIAS) == alias
            ):
                found[int(spec["version"])] = name
        return found

    def rollback_of(self, namespace: str, model: str, alias: str, version: int) -> tuple[str, str] | None:
        """(Deployment, message) if a Deployment rolling out this model's alias aborted this version's canary."""
        for (ns, name), obj in self._all("Deployment"):
            selector = obj["spec"].get("model") or {}
            if ns != namespace or selector.get("registeredModel") != model or selector.get("alias") != alias:
                continue
            for rollback in obj["status"].get("rollbacks") or []:
                if rollback.get("version") == version:
                    return name, str(rollback.get("message") or rollback.get("reason") or "rolled back")
        return None

    def promoted_versions(self, model: str) -> list[Key]:
        """ModelVersions of a registered model that say they hold an alias."""
        return [
            key
            for key, obj in self._all("ModelVersion")
            if obj["status"].get("phase") == "Promoted" and obj["spec"].get("registeredModel") == model
        ]


def namespace_of(path: str) -> str | None:
    """The namespace a collection path lists, or None for a cluster-wide one."""
    parts = path.split("/")
    return parts[parts.index("namespaces") + 1] if "namespaces" in parts else None


def collection_paths(namespaces: list[str]) -> list[tuple[str, str, str]]:
    """(store kind, list path, label selector) for every seeded resource, per namespace or cluster-wide."""
    paths = []
    for prefix, plural, kind, selector in SEEDED:
        if namespaces:
            paths += [(kind, f"{prefix}/namespaces/{ns}/{plural}", selector) for ns in namespaces]
        else:
            paths.append((kind, f"{prefix}/{plural}", selector))
    return paths
