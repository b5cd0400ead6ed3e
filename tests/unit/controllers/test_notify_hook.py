"""The one hook: every Event `Runtime.apply` posts (planned, or the phase Event it adds) is offered to the
notifier with the status just written — controllers carry no notification code."""

from __future__ import annotations

import asyncio

import httpx
from mlops_operator.notify.delivery import Notifier, NotifierSettings
from mlops_operator.planning.plan import Event, Plan

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

BODY = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"namespace": "ns", "name": "iris-2", "uid": "u", "generation": 1, "resourceVersion": "3"},
    "spec": {"registeredModel": "iris", "version": 2},
    "status": {"phase": "Approved", "metrics": {"accuracy": 0.97}},
}
POLICY = {
    "metadata": {"namespace": "ns", "name": "alerts", "generation": 1},
    "spec": {"destinations": [{"name": "hook", "url": "http://hooks.test/"}]},
}


def queued_after(plan: Plan, *policies: dict) -> tuple[list[dict], list[str]]:
    """The payloads queued and the Event reasons posted when `plan` is applied to BODY."""

    async def scenario() -> tuple[list[dict], list[str]]:
        kube = FakeKube()
        rt = fake_runtime(kube, FakeMlflow())
        rt.notifier = Notifier(NotifierSettings(), httpx.MockTransport(lambda r: httpx.Response(200)))
        for policy in policies:
            rt.store.put("NotificationPolicy", policy)
        await rt.apply("ModelVersion", BODY, plan)
        payloads = [rt.notifier.queue.get_nowait().payload for _ in range(rt.notifier.queue.qsize())]
        await rt.notifier.close(grace=0.0)
        stop_timers(rt)
        reasons = [body["reason"] for collection, body in kube.created if collection.endswith("/events")]
        return payloads, reasons

    return asyncio.run(scenario())


def test_a_planned_event_is_queued_with_the_status_just_written() -> None:
    plan = Plan(status={"phase": "Rejected", "message": "gate"}, events=[Event("Rejected", "gate", "Warning")])
    payloads, reasons = queued_after(plan, POLICY)
    assert reasons == ["Rejected"]
    assert [p["trigger"] for p in payloads] == ["Rejected"]
    assert payloads[0]["metrics"] == {"accuracy": 0.97} and payloads[0]["phase"] == "Rejected"


def test_the_phase_event_of_a_canary_promotion_is_a_trigger_too() -> None:
    payloads, reasons = queued_after(Plan(status={"phase": "Promoted", "message": "names version 2"}), POLICY)
    assert reasons == ["Promoted"] and [p["trigger"] for p in payloads] == ["Promoted"]


def test_no_policy_in_the_namespace_queues_nothing_and_an_unchanged_status_posts_nothing() -> None:
    other = {**POLICY, "metadata": {**POLICY["metadata"], "namespace": "elsewhere"}}
    plan = Plan(status={"phase": "Rejected"}, events=[Event("Rejected", "gate", "Warning")])
    assert queued_after(plan, other) == ([], ["Rejected"])
    assert queued_after(Plan(status={"phase": "Approved"}), POLICY) == ([], [])
