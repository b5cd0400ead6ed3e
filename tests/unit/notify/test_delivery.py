"""Delivery: signed requests, retries with back-off (a fake sleep at the one boundary where time passes), the
queue bound, what is given up and how it is counted. HTTP is faked only at the transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mlops_operator.notify.delivery import Notifier, NotifierSettings, backoff_delay, retry_after_seconds
from mlops_operator.notify.destinations import SecretFiles
from mlops_operator.notify.routing import Delivery
from mlops_operator.notify.signing import verify
from prometheus_client import REGISTRY

NS = "team-a"


def delivery(url: str | None = "http://hooks.test/in", **fields: object) -> Delivery:
    values: dict = {
        "namespace": NS,
        "policy": "alerts",
        "destination": "hook",
        "type": "webhook",
        "url": url,
        "url_secret_key": None,
        "signing_secret_key": None,
        "payload": {"id": "abc", "trigger": "Promoted", "message": "m", "time": "t", "object": {}},
    }
    values.update(fields)
    return Delivery(**values)


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("mlops_operator_notifications_dropped_total", {"reason": reason}) or 0.0


def delivered(destination: str = "hook") -> float:
    labels = {"namespace": NS, "policy": "alerts", "destination": destination}
    return REGISTRY.get_sample_value("mlops_operator_notifications_delivered_total", labels) or 0.0


class Receiver:
    """Answers with the given status codes in turn (then 200), recording every request."""

    def __init__(self, *codes: int, headers: dict[str, str] | None = None) -> None:
        self.codes, self.headers = list(codes), headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        code = self.codes.pop(0) if self.codes else 200
        if code == -1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(code, headers=self.headers)


def run(
    receiver: Receiver,
    deliveries: list[Delivery],
    settings: NotifierSettings | None = None,
    until: Callable[[Notifier], bool] | None = None,
) -> tuple[Notifier, list[float]]:
    """Submit, let the workers run until nothing is pending, and return the notifier and the slept delays."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)  # time passes at once: the retry is due

    async def scenario() -> Notifier:
        notifier = Notifier(
            settings or NotifierSettings(),
            httpx.MockTransport(receiver),
            sleep=fake_sleep,
            clock=lambda: 1_790_000_000.0,
            jitter=lambda: 1.0,
        )
        notifier.start()
        notifier.submit(deliveries)
        for _ in range(500):
            await asyncio.sleep(0)
            if not notifier.pending and (until is None or until(notifier)):
                break
        await notifier.close(grace=0.0)
        return notifier

    return asyncio.run(scenario()), slept


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_delay(a, 1.0, 60.0, 1.0) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(7, 1.0, 64.0, 1.0) == 64.0  # 2^6 = 64: exactly at the cap, not past it
    assert backoff_delay(7, 1.0, 63.9, 1.0) == 63.9
    assert backoff_delay(3, 1.0, 60.0, 0.0) == 2.0  # jitter scales into [0.5, 1] of the delay
    assert retry_after_seconds("7", 60.0) == 7.0 and retry_after_seconds("600", 60.0) == 60.0
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", 60.0) is None


def test_a_5xx_and_a_refused_connection_are_retried_with_back_off_then_delivered_once() -> None:
    receiver, before = Receiver(503, -1, 500), delivered()
    _, slept = run(receiver, [delivery()])
    assert slept == [1.0, 2.0, 4.0]
    assert [r.headers["X-Mlops-Attempt"] for r in receiver.requests] == ["1", "2", "3", "4"]
    assert {r.headers["X-Mlops-Event-Id"] for r in receiver.requests} == {"abc"}  # one id: receivers dedupe
    assert delivered() == before + 1


def test_retry_after_of_a_429_is_honoured() -> None:
    receiver = Receiver(429, headers={"Retry-After": "9"})
    _, slept = run(receiver, [delivery()])
    assert slept == [9.0] and len(receiver.requests) == 2


def test_retries_are_exhausted_after_max_attempts_and_counted() -> None:
    receiver, before = Receiver(*[503] * 10), dropped("retries_exhausted")
    _, slept = run(receiver, [delivery()], NotifierSettings(max_attempts=3))
    assert len(receiver.requests) == 3 and slept == [1.0, 2.0]
    assert dropped("retries_exhausted") == before + 1


def test_a_4xx_and_a_redirect_are_not_retried_nor_followed() -> None:
    before = dropped("rejected")
    receiver = Receiver(400, 302, headers={"Location": "http://169.254.169.254/"})
    _, slept = run(receiver, [delivery(), delivery()])
    assert len(receiver.requests) == 2 and slept == [] and dropped("rejected") == before + 2
    assert all(r.url.host == "hooks.test" for r in receiver.requests)


def test_the_body_is_signed_with_the_namespaces_key_and_slack_gets_text(tmp_path: Path) -> None:
    (tmp_path / f"{NS}.hmac").write_bytes(b"s" * 32 + b"\n")
    (tmp_path / f"{NS}.slack").write_text("http://slack.test/services/x\n")
    receiver = Receiver()
    settings = NotifierSettings(secrets=SecretFiles(tmp_path))
    run(
        receiver,
        [
            delivery(signing_secret_key="hmac"),
            delivery(url=None, url_secret_key="slack", type="slack", destination="slack", payload=slack_payload()),
        ],
        settings,
    )
    by_host = {r.url.host: r for r in receiver.requests}
    signed, slack = by_host["hooks.test"], by_host["slack.test"]
    assert verify(b"s" * 32, signed.content, dict(signed.headers), 1_790_000_000)
    assert not verify(b"t" * 32, signed.content, dict(signed.headers), 1_790_000_000)
    assert json.loads(signed.content)["trigger"] == "Promoted"
    assert str(slack.url) == "http://slack.test/services/x" and "X-Mlops-Signature" not in slack.headers
    assert json.loads(slack.content)["text"].startswith(":white_check_mark: Promoted")


def slack_payload() -> dict:
    return {"id": "abc", "trigger": "Promoted", "message": "m", "time": "t", "object": {"kind": "ModelVersion"}}


def test_missing_keys_and_refused_hosts_are_dropped_without_a_request(tmp_path: Path) -> None:
    receiver = Receiver()
    missing, refused = dropped("secret_missing"), dropped("not_allowed")
    settings = NotifierSettings(secrets=SecretFiles(tmp_path), allowed_hosts=("hooks.slack.com",))
    run(
        receiver,
        [
            delivery(url="https://hooks.slack.com/x", signing_secret_key="absent"),
            delivery(url=None, url_secret_key="absent"),
            delivery(url="http://mlflow.internal:5000/api"),
        ],
        settings,
    )
    assert receiver.requests == []
    assert dropped("secret_missing") == missing + 2 and dropped("not_allowed") == refused + 1


def test_submit_never_waits_and_drops_beyond_the_bound() -> None:
    async def scenario() -> tuple[int, float]:
        notifier = Notifier(NotifierSettings(queue_size=3), httpx.MockTransport(Receiver()))
        before = dropped("queue_full")
        notifier.submit([delivery() for _ in range(5)])  # no worker runs yet: nothing is taken off
        pending, lost = notifier.pending, dropped("queue_full") - before
        await notifier.close(grace=0.0)
        return pending, lost

    assert asyncio.run(scenario()) == (3, 2.0)


def test_what_is_pending_at_shutdown_is_counted_and_later_submits_are_refused() -> None:
    async def scenario() -> float:
        notifier = Notifier(NotifierSettings(), httpx.MockTransport(Receiver()))
        before = dropped("shutdown")
        notifier.submit([delivery(), delivery()])  # workers never started: both still queued at close
        await notifier.close(grace=0.0)
        notifier.submit([delivery()])
        return dropped("shutdown") - before

    assert asyncio.run(scenario()) == 3.0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_receiver_that_is_down_holds_no_worker(workers: int) -> None:
    # The down destination's retries wait beside the queue, so the healthy one is delivered without waiting.
    async def scenario() -> tuple[list[str], int]:
        hosts: list[str] = []
        release = asyncio.Event()

        def answer(request: httpx.Request) -> httpx.Response:
            hosts.append(request.url.host)
            return httpx.Response(503 if request.url.host == "down.test" else 200)

        async def slow_sleep(seconds: float) -> None:
            await release.wait()

        notifier = Notifier(NotifierSettings(workers=workers), httpx.MockTransport(answer), sleep=slow_sleep)
        notifier.start()
        notifier.submit([delivery(url="http://down.test/"), delivery(url="http://up.test/")])
        for _ in range(200):
            await asyncio.sleep(0)
        waiting = len(notifier.retrying)
        release.set()
        await notifier.close(grace=0.0)
        return hosts, waiting

    hosts, waiting = asyncio.run(scenario())
    assert hosts[:2] == ["down.test", "up.test"] and waiting == 1
