"""kopf's relist after 410 Gone sends no DELETED for what went away meanwhile: the store relists itself."""

from __future__ import annotations

import asyncio

import pytest
from mlops_operator.controllers import runtime as runtime_module

from tests.unit.controllers.fakes import FakeKube, FakeMlflow, fake_runtime, requeued_in, stop_timers

SERVICES = "/api/v1/namespaces/team/services"


def service(name: str, owner: str) -> dict:
    ref = {"kind": "Deployment", "name": owner, "uid": f"uid-{owner}", "controller": True}
    return {"metadata": {"name": name, "namespace": "team", "ownerReferences": [ref]}, "spec": {}}


def test_a_relisted_watch_drops_the_child_deleted_in_the_gap_and_wakes_its_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime_module, "RELIST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(runtime_module, "LISTING_QUIET_SECONDS", 0.05)

    async def scenario() -> None:
        kube = FakeKube({SERVICES: {"items": [service("iris", "iris")]}})
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        rt.store.put("Service", service("iris", "iris"))
        rt.store.put("Service", service("iris-canary", "iris"))
        rt.observe("Service", None, service("iris", "iris"))  # the first listing, right after seed_store
        assert not rt.relists
        await asyncio.sleep(0.1)
        rt.observe("Service", None, service("iris", "iris"))  # a later listing: kopf's relist after 410 Gone
        rt.observe("Service", None, service("iris", "iris"))
        assert list(rt.relists) == ["Service"]  # one relist per listing, however many objects it holds
        await rt.relists["Service"]
        assert rt.store.keys("Service") == [("team", "iris")]
        assert requeued_in(rt, ("Deployment", "team", "iris")) == 0  # its reconcile re-creates iris-canary
        assert not rt.relists
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_failed_relist_is_logged_and_left_to_the_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "RELIST_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(runtime_module, "LISTING_QUIET_SECONDS", 0.0)

    async def scenario() -> None:
        kube = FakeKube()
        kube.failing[SERVICES] = OSError("connection refused")
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        rt.store.put("Service", service("iris", "iris"))
        rt.observe("Service", None, service("iris", "iris"))
        await asyncio.sleep(0.01)
        rt.observe("Service", None, service("iris", "iris"))
        await rt.relists["Service"]  # returns: the error is data for the log, not an escaped exception
        assert rt.store.keys("Service") == [("team", "iris")]
        assert not rt.relists

    asyncio.run(scenario())
