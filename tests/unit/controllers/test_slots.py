"""Pass slots: bounded, and a pass a watch event asked for is let in before passes timers started."""

from __future__ import annotations

import asyncio

from mlops_operator.controllers.runtime import Runtime
from mlops_operator.controllers.slots import PassSlots
from mlops_operator.planning.plan import Plan
from prometheus_client import REGISTRY

from .fakes import FakeKube, FakeMlflow, fake_runtime, requeued_in, stop_timers


def test_an_urgent_waiter_goes_first_then_the_timed_ones_in_order() -> None:
    async def scenario() -> None:
        slots, order = PassSlots(1), []
        await slots.acquire(urgent=False)  # the one slot is taken

        async def wait(name: str, urgent: bool) -> None:
            await slots.acquire(urgent)
            order.append(name)
            slots.release()

        waiters = [
            asyncio.create_task(wait(name, urgent)) for name, urgent in (("a", False), ("b", False), ("c", True))
        ]
        await asyncio.sleep(0)
        assert slots.waiting() == 3 and order == []
        slots.release()
        await asyncio.gather(*waiters)
        assert order == ["c", "a", "b"] and slots.free == 1

    asyncio.run(scenario())


def test_a_cancelled_waiter_takes_no_slot_with_it() -> None:
    async def scenario() -> None:
        slots = PassSlots(1)
        await slots.acquire(urgent=True)
        waiter = asyncio.create_task(slots.acquire(urgent=False))
        await asyncio.sleep(0)
        slots.release()  # handed to the waiter...
        waiter.cancel()  # ...which is cancelled before it runs: the slot comes back
        await asyncio.gather(waiter, return_exceptions=True)
        assert slots.free == 1 and slots.waiting() == 0
        cancelled = asyncio.create_task(slots.acquire(urgent=False))
        await slots.acquire(urgent=False)
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        slots.release()
        assert slots.free == 1 and slots.waiting() == 0

    asyncio.run(scenario())


def test_a_spec_change_is_reconciled_before_a_wave_of_back_offs() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        rt.passes = PassSlots(1)
        order: list[str] = []
        release = asyncio.Event()

        async def reconcile(_: Runtime, current: dict) -> Plan | None:
            name = current["metadata"]["name"]
            order.append(name)
            if name == "busy":
                await release.wait()
            return None

        rt.reconcilers["Dataset"] = reconcile
        rt.store.listed.add("Dataset")
        for name in ("busy", "changed", *(f"backed-off-{i}" for i in range(5))):
            rt.store.put("Dataset", {"metadata": {"name": name, "namespace": "ns", "generation": 1}, "spec": {}})
        rt.requeue(("Dataset", "ns", "busy"), 0.0)
        await asyncio.sleep(0.01)
        for i in range(5):  # back-offs come due together
            rt.requeue(("Dataset", "ns", f"backed-off-{i}"), 0.0)
        await asyncio.sleep(0.01)
        rt.enqueue("Dataset", "ns", "changed")  # a watch event
        await asyncio.sleep(0.01)
        release.set()
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert order[:2] == ["busy", "changed"] and len(order) == 7
        assert not rt.urgent
        stop_timers(rt)

    asyncio.run(scenario())


def test_the_queue_histogram_times_an_event_from_its_arrival_to_its_pass() -> None:
    def observed(queue: str) -> tuple[float, float]:
        labels = {"kind": "Dataset", "queue": queue}
        count = REGISTRY.get_sample_value("mlops_operator_queue_duration_seconds_count", labels) or 0.0
        return count, REGISTRY.get_sample_value("mlops_operator_queue_duration_seconds_sum", labels) or 0.0

    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        release = asyncio.Event()

        async def reconcile(_: Runtime, current: dict) -> Plan | None:
            if current["metadata"]["name"] == "busy":
                await release.wait()
            return None

        rt.reconcilers["Dataset"] = reconcile
        rt.store.listed.add("Dataset")
        rt.store.put("Dataset", {"metadata": {"name": "busy", "namespace": "ns", "generation": 1}, "spec": {}})
        rt.requeue(("Dataset", "ns", "busy"), 0.0)  # a timer's pass, under way
        await asyncio.sleep(0.01)
        rt.enqueue("Dataset", "ns", "busy")  # an event for the same object: its pass waits for the lock
        await asyncio.sleep(0.2)
        release.set()
        for _ in range(5):
            await asyncio.sleep(0.01)
        stop_timers(rt)

    events, event_seconds = observed("event")
    timers, _ = observed("timer")
    asyncio.run(scenario())
    assert observed("timer")[0] == timers + 1
    assert observed("event")[0] == events + 1
    assert 0.2 <= observed("event")[1] - event_seconds < 1.0  # the event waited for the timer's pass to end


def test_a_timed_pass_an_event_then_asks_for_moves_ahead_of_the_other_timed_ones() -> None:
    async def scenario() -> None:
        rt, order = fake_runtime(FakeKube(), FakeMlflow()), []
        rt.passes = PassSlots(1)
        await rt.passes.acquire(urgent=False)  # the one slot is taken: a resync's passes queue up behind it

        async def wait(name: str) -> None:
            await rt.passes.acquire(urgent=False, key=("TrainingRun", "team", name))
            order.append(name)
            rt.passes.release()

        waiters = [asyncio.create_task(wait(f"run-{i}")) for i in range(5)]
        await asyncio.sleep(0)
        rt.enqueue("TrainingRun", "team", "run-3")  # its spec changed: the pass holding its lock must not wait
        stop_timers(rt)
        rt.passes.release()
        await asyncio.gather(*waiters)
        assert order == ["run-3", "run-0", "run-1", "run-2", "run-4"] and rt.passes.free == 1
        assert not rt.passes._timed_keys

    asyncio.run(scenario())


def test_the_echo_of_our_own_write_waits_behind_the_timers_and_news_goes_first() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        rt.store.listed.add("Dataset")
        key = ("Dataset", "ns", "iris")
        written = {"metadata": {"name": "iris", "namespace": "ns", "uid": "u1", "resourceVersion": "5"}, "spec": {}}
        rt.remember("Dataset", written)  # our status write's answer, kept before its watch event arrives
        assert rt.event("Dataset", "MODIFIED", written) is False  # the echo: reconciled, after the timers
        assert key not in rt.urgent and requeued_in(rt, key) == 0
        changed = {**written, "metadata": {**written["metadata"], "resourceVersion": "6"}}
        assert rt.event("Dataset", "MODIFIED", changed) is True  # a person's change: first in line
        assert key in rt.urgent
        stop_timers(rt)

    asyncio.run(scenario())
