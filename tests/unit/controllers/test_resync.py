"""The periodic resync relists and reconciles what a lost watch event left wrong, not every object; a replica
that starts leading reconciles everything (it has no timers yet)."""

from __future__ import annotations

import asyncio
from typing import Any

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

Obj = dict[str, Any]
RUNS = "/apis/mlops.dev/v1alpha1/namespaces/team/trainingruns"
TRACKS = "/apis/apps/v1/namespaces/team/deployments"


def obj(name: str, version: int, generation: int = 1, owner: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "team", "uid": f"uid-{name}", "resourceVersion": str(version)}
    meta["generation"] = generation
    if owner:
        meta["ownerReferences"] = [{"kind": "Deployment", "name": owner, "uid": f"uid-{owner}", "controller": True}]
    return {"metadata": meta, "spec": {}, "status": {}}


def test_a_resync_reconciles_only_what_changed_or_went_away_unseen() -> None:
    async def scenario() -> None:
        runs = [obj("same", 5), obj("edited", 9, generation=2)]  # "edited": its spec change's event was lost
        kube = FakeKube({RUNS: {"items": runs}, TRACKS: {"items": [obj("a-stable", 3, owner="a")]}})
        rt = fake_runtime(kube, FakeMlflow())
        rt.namespaces = ["team"]
        rt.store.replace("TrainingRun", [obj("same", 4), obj("edited", 4), obj("deleted", 4)])
        rt.store.replace("ServingDeployment", [obj("a-stable", 3, owner="a"), obj("b-stable", 3, owner="b")])
        woken: list[tuple[str, str, str]] = []
        rt.requeue = lambda key, delay: woken.append(key)  # type: ignore[method-assign]
        await rt.resync()
        # "same" differs only in its resourceVersion; "deleted" is forgotten; b's track went away unseen
        assert sorted(woken) == [("Deployment", "team", "b"), ("TrainingRun", "team", "edited")]
        assert sorted(rt.store.keys("TrainingRun")) == [("team", "edited"), ("team", "same")]

        woken.clear()
        await rt.start_leading()
        assert sorted(woken) == [("TrainingRun", "team", "edited"), ("TrainingRun", "team", "same")]
        stop_timers(rt)

    asyncio.run(scenario())
