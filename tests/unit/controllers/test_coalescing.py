"""Requests for an object whose pass is already waiting fold into that pass (controller-runtime's workqueue
holds a key once): a slow object under frequent resyncs and events never piles up waiting passes."""

from __future__ import annotations

import asyncio
from typing import Any

from mlops_operator.controllers import runtime as runtime_module
from mlops_operator.controllers.runtime import Runtime
from mlops_operator.planning.plan import Plan

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

KEY = ("Dataset", "team", "iris")


def body(generation: int) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "namespace": "team", "generation": generation}, "spec": {}}


def test_requests_during_a_pass_fold_into_one_waiting_pass_with_the_newest_body() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        seen: list[int] = []
        release = asyncio.Event()

        async def slow(_: Runtime, current: dict[str, Any]) -> Plan | None:
            seen.append(current["metadata"]["generation"])
            if len(seen) == 1:
                await release.wait()
            return None

        rt.reconcilers["Dataset"] = slow
        first = asyncio.create_task(rt.reconcile(*KEY, body(1)))
        await asyncio.sleep(0)
        assert seen == [1]
        others = [asyncio.create_task(rt.reconcile(*KEY, body(g))) for g in range(2, 12)]
        await asyncio.sleep(0.01)
        done = [t for t in others if t.done()]
        assert len(done) == 9, "all but one request return at once: the one waiting pass will run for them"
        release.set()
        await asyncio.gather(first, *others)
        assert seen == [1, 11], "exactly one more pass, with the newest body"
        assert not rt.waiting and not rt.locks[KEY].locked()
        # A request with no body (a timer) keeps the body an event brought.
        release.clear()
        seen.clear()
        first = asyncio.create_task(rt.reconcile(*KEY, body(20)))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(rt.reconcile(*KEY, body(21)))
        await asyncio.sleep(0)
        await rt.reconcile(*KEY)
        release.set()
        await asyncio.gather(first, waiting)
        assert seen == [20, 21]
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_cancelled_waiting_pass_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        release = asyncio.Event()

        async def slow(_: Runtime, current: dict[str, Any]) -> Plan | None:
            await release.wait()
            return None

        rt.reconcilers["Dataset"] = slow
        first = asyncio.create_task(rt.reconcile(*KEY, body(1)))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(rt.reconcile(*KEY, body(2)))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert KEY not in rt.waiting
        release.set()
        await first
        assert not rt.locks[KEY].locked()
        again = asyncio.create_task(rt.reconcile(*KEY, body(3)))
        await asyncio.wait_for(again, 1)  # a later request runs: nothing was left waiting or locked
        stop_timers(rt)

    asyncio.run(scenario())


def test_passes_under_way_at_once_are_bounded_whatever_starts_them() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        running, most = 0, 0
        release = asyncio.Event()

        async def slow(_: Runtime, current: dict[str, Any]) -> Plan | None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            return None

        rt.reconcilers["Dataset"] = slow
        objects = [("Dataset", "team", f"d{i}") for i in range(3 * runtime_module.MAX_CONCURRENT_PASSES)]
        passes = [asyncio.create_task(rt.reconcile(*key, body(1))) for key in objects]
        await asyncio.sleep(0.01)
        assert running == runtime_module.MAX_CONCURRENT_PASSES, "the rest wait before they gather anything"
        release.set()
        await asyncio.gather(*passes)
        assert most == runtime_module.MAX_CONCURRENT_PASSES and running == 0
        stop_timers(rt)

    asyncio.run(scenario())
