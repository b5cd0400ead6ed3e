"""The children's watches: the store follows their events, owners wake only for what their planner reads,
an expired watch relists its collection, and a dropped stream resumes from the last version seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from mlops_operator.contract import LABEL_DEPLOYMENT
from mlops_operator.controllers import childwatch
from mlops_operator.controllers.childwatch import child_event, watch_collection
from mlops_operator.kubeapi import ApiError

from tests.unit.controllers.fakes import FakeKube, FakeMlflow, fake_runtime, requeued_in, stop_timers

TRACKS = "/apis/apps/v1/namespaces/team/deployments"
Obj = dict[str, Any]


def track(name: str, version: int, ready: int, *, progressing: str = "True", owner: str = "iris") -> Obj:
    ref = {"kind": "Deployment", "name": owner, "uid": f"uid-{owner}", "controller": True}
    meta = {"name": name, "namespace": "team", "uid": f"uid-{name}", "resourceVersion": str(version)}
    meta |= {"generation": 1, "labels": {LABEL_DEPLOYMENT: owner}, "ownerReferences": [ref]}
    conditions = [{"type": "Progressing", "status": progressing, "reason": "ProgressDeadlineExceeded"}]
    status = {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": ready, "conditions": conditions}
    return {"metadata": meta, "spec": {"replicas": 2, "template": {"metadata": {"labels": {}}}}, "status": status}


class WatchingKube(FakeKube):
    """A FakeKube whose watches play scripted streams in turn (an exception ends one), then wait for ever."""

    def __init__(self, streams: list[list[tuple[str, Obj]] | Exception], objects: dict[str, Obj] | None = None):
        super().__init__(objects)
        self.streams, self.watched_from = list(streams), list[str]()
        self.done = asyncio.Event()

    async def watch(
        self, path: str, version: str, selector: str = "", timeout: int = 60
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        self.watched_from.append(version)
        if not self.streams:
            self.done.set()
            await asyncio.Event().wait()
        stream = self.streams.pop(0)
        if isinstance(stream, Exception):
            raise stream
        for event in stream:
            yield event


def test_an_owner_wakes_for_ready_pods_but_not_for_a_progress_deadline_or_a_version_bump() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        child_event(rt, "ServingDeployment", "ADDED", track("iris-stable", 1, ready=0))
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0  # a new child is news
        stop_timers(rt)
        child_event(rt, "ServingDeployment", "MODIFIED", track("iris-stable", 2, ready=0, progressing="False"))
        child_event(rt, "ServingDeployment", "MODIFIED", track("iris-stable", 3, ready=0, progressing="False"))
        assert rt.timers == {}  # 5,000 tracks turning ProgressDeadlineExceeded at once wake nobody
        assert rt.store.get("ServingDeployment", "team", "iris-stable")["metadata"]["resourceVersion"] == "3"
        child_event(rt, "ServingDeployment", "MODIFIED", track("iris-stable", 4, ready=2))
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0
        assert ("Deployment", "team", "iris") in rt.urgent  # a child's news goes before the timers' passes
        stop_timers(rt)
        child_event(rt, "ServingDeployment", "MODIFIED", track("iris-stable", 3, ready=0))  # an older version, late
        assert (
            rt.timers == {} and rt.store.get("ServingDeployment", "team", "iris-stable")["status"]["readyReplicas"] == 2
        )
        child_event(rt, "ServingDeployment", "DELETED", track("iris-stable", 5, ready=2))
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0 and not rt.store.keys("ServingDeployment")
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_child_wakes_the_object_that_controls_it_and_nothing_else() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        job = track("fit-train", 1, ready=0)
        job["metadata"]["ownerReferences"] = [{"kind": "TrainingRun", "name": "fit", "uid": "u", "controller": True}]
        child_event(rt, "Job", "ADDED", job)
        assert requeued_in(rt, ("TrainingRun", "team", "fit")) == 0 and ("TrainingRun", "team", "fit") in rt.urgent
        stop_timers(rt)
        stray = track("stray", 1, ready=0)
        stray["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x", "uid": "v", "controller": True}]
        child_event(rt, "ServingDeployment", "ADDED", stray)
        unowned = track("unowned", 1, ready=0)
        unowned["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "iris", "uid": "w"}]  # not controller
        child_event(rt, "ServingDeployment", "ADDED", unowned)
        assert rt.timers == {}

    asyncio.run(scenario())


def test_an_expired_watch_relists_its_namespace_drops_the_deleted_child_and_resumes_from_the_listing() -> None:
    async def scenario() -> None:
        gone = {"type": "ERROR", "code": 410, "reason": "Expired", "message": "too old resource version: 7 (9)"}
        became_ready = track("api-stable", 10, ready=2, owner="api")  # in the gap: its event was never seen
        listing = {"items": [track("iris-stable", 9, ready=2), became_ready], "metadata": {"resourceVersion": "12"}}
        kube = WatchingKube([[("MODIFIED", track("iris-stable", 8, ready=2)), ("ERROR", gone)]], {TRACKS: listing})
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team", "other"]
        before = [
            track("iris-stable", 7, ready=2),
            track("iris-canary", 7, ready=1),
            track("api-stable", 7, 0, owner="api"),
        ]
        rt.store.replace("ServingDeployment", before)
        elsewhere = track("web-stable", 7, ready=1, owner="web") | {}
        elsewhere["metadata"] = elsewhere["metadata"] | {"namespace": "other"}
        rt.store.put("ServingDeployment", elsewhere)
        rt.list_versions[TRACKS] = "7"
        woken: list[tuple[str, str, str]] = []
        rt.requeue = lambda key, delay: woken.append(key)  # type: ignore[method-assign]
        task = asyncio.create_task(watch_collection(rt, "ServingDeployment", TRACKS, ""))
        await asyncio.wait_for(kube.done.wait(), 2)
        assert kube.watched_from == ["7", "12"]  # resumed from the relist's version, not listed twice
        kept = [("other", "web-stable"), ("team", "api-stable"), ("team", "iris-stable")]
        assert sorted(rt.store.keys("ServingDeployment")) == kept
        # iris: its reconcile re-creates iris-canary; api: its track became Ready unseen; iris-stable is unchanged
        assert sorted(woken) == [("Deployment", "team", "api"), ("Deployment", "team", "iris")]
        task.cancel()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "failure", [httpx.RemoteProtocolError("peer closed connection"), ApiError(500, '{"message": "etcd timeout"}')]
)
def test_a_dropped_watch_is_resumed_from_the_last_version_it_saw(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    monkeypatch.setattr(childwatch, "MAX_RETRY_SECONDS", 0.01)

    async def scenario() -> None:
        kube = WatchingKube([[("BOOKMARK", {"metadata": {"resourceVersion": "20"}})], failure])
        rt = fake_runtime(kube, FakeMlflow())
        rt.list_versions[TRACKS] = "7"
        task = asyncio.create_task(watch_collection(rt, "ServingDeployment", TRACKS, ""))
        await asyncio.wait_for(kube.done.wait(), 2)
        assert kube.watched_from == ["7", "20", "20"]  # a bookmark moves the version on; a failure does not
        assert TRACKS not in kube.reads  # nothing was listed again
        task.cancel()

    asyncio.run(scenario())


def test_an_event_that_cannot_be_handled_is_passed_over_and_the_watch_goes_on() -> None:
    async def scenario() -> None:
        broken = {"metadata": {"namespace": "team", "resourceVersion": "8"}}  # no name
        kube = WatchingKube([[("MODIFIED", broken), ("ADDED", track("iris-stable", 9, ready=1))]])
        rt = fake_runtime(kube, FakeMlflow())
        rt.list_versions[TRACKS] = "7"
        task = asyncio.create_task(watch_collection(rt, "ServingDeployment", TRACKS, ""))
        await asyncio.wait_for(kube.done.wait(), 2)
        assert kube.watched_from == ["7", "9"] and rt.store.keys("ServingDeployment") == [("team", "iris-stable")]
        task.cancel()
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_write_answer_that_brings_news_of_a_child_wakes_its_owner() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        rt.store.replace("ServingDeployment", [track("iris-stable", 7, ready=0)])
        rt.remember("ServingDeployment", track("iris-stable", 8, ready=0))  # our patch, nothing else changed
        assert rt.timers == {}
        rt.remember("ServingDeployment", track("iris-stable", 9, ready=2))  # pods became Ready since the read
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0
        child_event(rt, "ServingDeployment", "MODIFIED", track("iris-stable", 9, ready=2))  # its event: known
        stop_timers(rt)

    asyncio.run(scenario())
