"""kopf's relist after 410 Gone (of the operator's own kinds) sends no DELETED for what went away meanwhile: the store
relists itself. (The children's watches are ours and relist on 410 themselves: test_childwatch.py.)"""

from __future__ import annotations

import asyncio

import pytest
from mlops_operator.controllers import listing as listing_module

from tests.unit.controllers.fakes import FakeKube, FakeMlflow, fake_runtime, requeued_in, stop_timers

RUNS = "/apis/mlops.dev/v1alpha1/namespaces/team/trainingruns"


def run(name: str, owner: str) -> dict:
    ref = {"kind": "Deployment", "name": owner, "uid": f"uid-{owner}", "controller": True}
    return {"metadata": {"name": name, "namespace": "team", "ownerReferences": [ref]}, "spec": {}}


def test_a_relisted_watch_drops_the_child_deleted_in_the_gap_and_wakes_its_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listing_module, "RELIST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(listing_module, "LISTING_QUIET_SECONDS", 0.05)

    async def scenario() -> None:
        kube = FakeKube({RUNS: {"items": [run("iris", "iris")]}})
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        rt.store.put("TrainingRun", run("iris", "iris"))
        rt.store.put("TrainingRun", run("iris-canary", "iris"))
        rt.observe("TrainingRun", None, run("iris", "iris"))  # the first listing, right after seed_store
        assert not rt.relists
        await asyncio.sleep(0.1)
        rt.observe("TrainingRun", None, run("iris", "iris"))  # a later listing: kopf's relist after 410 Gone
        rt.observe("TrainingRun", None, run("iris", "iris"))
        assert list(rt.relists) == ["TrainingRun"]  # one relist per listing, however many objects it holds
        await rt.relists["TrainingRun"]
        assert rt.store.keys("TrainingRun") == [("team", "iris")]
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0  # the retraining run it started went away
        assert not rt.relists
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_failed_relist_is_logged_and_left_to_the_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_module, "RELIST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(listing_module, "LISTING_QUIET_SECONDS", 0.0)

    async def scenario() -> None:
        kube = FakeKube()
        kube.failing[RUNS] = OSError("connection refused")
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        rt.store.put("TrainingRun", run("iris", "iris"))
        rt.observe("TrainingRun", None, run("iris", "iris"))
        await asyncio.sleep(0.01)
        rt.observe("TrainingRun", None, run("iris", "iris"))
        await rt.relists["TrainingRun"]  # returns: the error is data for the log, not an escaped exception
        assert rt.store.keys("TrainingRun") == [("team", "iris")]
        assert not rt.relists

    asyncio.run(scenario())
