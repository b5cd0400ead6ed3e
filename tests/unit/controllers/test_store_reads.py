"""A pass that no event brought a body for reads its object from the watch-fed store, not the API server; a status
write that finds the object changed makes the next pass read the API server; what a write answers is stored."""

from __future__ import annotations

import asyncio
from typing import Any

from mlops_operator.controllers import listing as listing_module
from mlops_operator.controllers.runtime import Runtime
from mlops_operator.kubeapi import ApiError
from mlops_operator.planning.plan import Plan

from .fakes import FakeKube, FakeMlflow, fake_runtime, requeued_in, stop_timers

KEY = ("Dataset", "team", "iris")
PATH = "/apis/mlops.dev/v1alpha1/namespaces/team/datasets/iris"


def dataset(generation: int) -> dict[str, Any]:
    meta = {"name": "iris", "namespace": "team", "generation": generation, "resourceVersion": str(generation)}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "Dataset", "metadata": meta, "spec": {}, "status": {}}


class ConflictOnceKube(FakeKube):
    """An API server whose object changed since the store's copy: the first status write answers 409."""

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        if len(self.patches) == 1:
            raise ApiError(409, '{"reason": "Conflict", "message": "the object has been modified"}')
        return {**dataset(2), "status": patch["status"]}


def recording(seen: list[int]) -> Any:
    async def reconcile(_: Runtime, current: dict[str, Any]) -> Plan:
        seen.append(current["metadata"]["generation"])
        return Plan(status={"observedGeneration": current["metadata"]["generation"]})

    return reconcile


def test_a_timer_pass_reads_the_store_and_a_listed_kind_missing_from_it_is_not_asked_for() -> None:
    async def scenario() -> None:
        kube = FakeKube({PATH: dataset(5)})
        rt = fake_runtime(kube, FakeMlflow())
        rt.store.replace("Dataset", [dataset(1)])
        seen: list[int] = []
        rt.reconcilers["Dataset"] = recording(seen)
        await rt.reconcile(*KEY)
        assert seen == [1] and kube.reads == [], "the store's copy, no GET"
        assert await rt.get("Dataset", "team", "gone") is None and kube.reads == []
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_stale_status_write_makes_the_next_pass_read_the_api_server_and_keeps_its_answer() -> None:
    async def scenario() -> None:
        kube = ConflictOnceKube({PATH: dataset(2)})
        rt = fake_runtime(kube, FakeMlflow())
        rt.store.replace("Dataset", [dataset(1)])
        seen: list[int] = []
        rt.reconcilers["Dataset"] = recording(seen)
        await rt.reconcile(*KEY)
        assert KEY in rt.stale and requeued_in(rt, KEY) == 0
        await rt.reconcile(*KEY)
        assert seen == [1, 2] and kube.reads == [PATH] and not rt.stale
        assert rt.store.body(*KEY)["status"] == {"observedGeneration": 2}, "the write's answer is the store's copy"
        await rt.reconcile(*KEY)
        assert kube.reads == [PATH], "and the pass after reads the store again"
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_created_child_is_in_the_store_before_its_watch_event() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        rt.store.replace("Job", [])
        rt.store.replace("ServingDeployment", [])
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "iris-check", "namespace": "team"}}
        track = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "iris-stable", "namespace": "team"},
        }
        assert await rt.create(job) and await rt.create(track)
        assert rt.store.get("Job", "team", "iris-check") is not None
        assert rt.store.get("ServingDeployment", "team", "iris-stable") is not None
        assert rt.store.get("Deployment", "team", "iris-stable") is None, "an apps/v1 Deployment is not one of ours"

    asyncio.run(scenario())


class PagedKube(FakeKube):
    """Datasets LISTed in pages of two; every other collection is empty."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names, self.pages = names, 0

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        if not path.endswith("/datasets"):
            return {"items": []}
        self.pages += 1
        start = int(params.get("continue") or 0)
        assert params["limit"] == listing_module.LIST_PAGE_SIZE
        page = [dataset(1) | {"metadata": {"name": n, "namespace": "team"}} for n in self.names[start : start + 2]]
        more = start + 2 < len(self.names)
        return {"items": page, "metadata": {"continue": str(start + 2) if more else ""}}


def test_the_startup_listing_follows_continue_tokens_to_the_last_page() -> None:
    async def scenario() -> None:
        kube = PagedKube([f"d{i}" for i in range(5)])
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        await rt.seed_store()
        assert kube.pages == 3 and sorted(name for _, name in rt.store.keys("Dataset")) == [f"d{i}" for i in range(5)]

    asyncio.run(scenario())


def _full(kind: str) -> dict[str, Any]:
    """An object as a LIST answers it: managedFields, labels, a whole status."""
    managed = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "time": "2026-12-07T10:00:00Z",
            "fieldsV1": {"f:spec": {"f:promote": {}}},
        },
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {"f:replicas": {}}}},
    ]
    ref = {"apiVersion": "mlops.dev/v1alpha1", "kind": "Deployment", "name": "iris", "uid": "u1", "controller": True}
    meta = {"name": "iris-stable", "namespace": "team", "uid": "u2", "generation": 3, "resourceVersion": "41"}
    meta |= {"labels": {"a": "b"}, "annotations": {"h": "1"}, "managedFields": managed, "ownerReferences": [ref]}
    spec = {
        "replicas": 2,
        "promote": True,
        "model": {"registeredModel": "iris", "alias": "production"},
        "template": {
            "metadata": {"labels": {"v": "1"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "X"}]}]},
        },
    }
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": "quota",
        "lastUpdateTime": "t",
    }
    progressing = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    status = {"observedGeneration": 3, "readyReplicas": 1, "updatedReplicas": 1, "replicas": 2, "phase": "Ready"}
    status["conditions"] = [failure, progressing]
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": spec, "status": status}


def test_a_listing_keeps_only_what_the_store_keeps_and_the_store_ends_up_the_same() -> None:
    from mlops_operator.controllers.store import SEEDED, Store, slim

    for kind in {kind for _, _, kind, _ in SEEDED}:
        whole, cut = Store(), Store()
        whole.replace(kind, [_full(kind)])
        cut.replace(kind, [slim(kind, _full(kind))])
        assert cut.objects == whole.objects and cut.bodies == whole.bodies, kind
        assert len(str(slim(kind, _full(kind)))) < len(str(_full(kind))), kind  # nothing it does not keep
