"""A requeue keeps nothing of its caller: a kopf handler's context holds the event's whole body (kopf's cause),
and timers and passes chained from it kept every object's first event alive (10,000 objects: past 512 MiB)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from typing import Any

from mlops_operator.controllers.runtime import Runtime
from mlops_operator.planning.plan import Plan

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

KEY = ("Dataset", "team", "iris")
CAUSE: contextvars.ContextVar[object] = contextvars.ContextVar("cause")  # as kopf's cause_var


class EventBody:
    """Stands for the body a kopf handler's context holds."""


def test_neither_the_timer_nor_the_pass_it_starts_holds_the_handlers_context() -> None:
    async def scenario() -> None:
        rt = fake_runtime(FakeKube(), FakeMlflow())
        seen_in_pass: list[object] = []

        async def reconcile(_: Runtime, current: dict[str, Any]) -> Plan | None:
            seen_in_pass.append(CAUSE.get(None))
            rt.requeue(KEY, 3600)  # a back-off chained from the pass: it must not hold the body either
            return None

        rt.reconcilers["Dataset"] = reconcile
        rt.store.listed.add("Dataset")
        rt.store.put("Dataset", {"metadata": {"name": "iris", "namespace": "team", "generation": 1}, "spec": {}})
        body = EventBody()
        held = weakref.ref(body)

        def handler(event: EventBody) -> None:  # what a watch handler does, inside kopf's context
            CAUSE.set(event)
            rt.enqueue(*KEY)

        contextvars.copy_context().run(handler, body)
        del body
        for _ in range(5):
            await asyncio.sleep(0.01)
        gc.collect()
        assert seen_in_pass == [None]
        assert held() is None, "a pending timer or pass still holds the handler's context"
        assert KEY in rt.timers  # the back-off is pending, and holds nothing of the event
        stop_timers(rt)

    asyncio.run(scenario())
