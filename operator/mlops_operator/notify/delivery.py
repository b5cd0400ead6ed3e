"""Delivering notifications without ever blocking a reconcile: a bounded asyncio queue, a few worker tasks, and
retries with exponential back-off scheduled beside the queue (a receiver that is down holds no worker).

Semantics: at most once across restarts. Notifications come from the Events a pass posts after its status write
(preconditioned on the read resourceVersion), and planners post an Event on a transition only, so a restarted
operator does not post — or notify — an old transition again: no storm. What is still queued when the operator
stops cleanly is given `close`'s grace period, then counted as dropped (`reason="shutdown"`); a SIGKILL loses the
queue, as it would lose an Event not yet posted. Every other loss is counted too (queue full, retries exhausted, a
4xx, a refused URL, a missing key). Within one run, a retry repeats the same `id`, so a receiver can drop the
duplicate when an earlier attempt did arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import httpx

from .. import __version__
from . import metrics
from .destinations import SecretFiles, url_refusal
from .payload import slack_message
from .routing import Delivery
from .signing import signed_headers

log = logging.getLogger("mlops.notify")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class NotifierSettings:
    """Bounds and timings of delivery (the chart sets the first three)."""

    secrets: SecretFiles = field(default_factory=lambda: SecretFiles(None))
    allowed_hosts: tuple[str, ...] = ()
    queue_size: int = 1000  # queued plus waiting to retry; beyond, new notifications are dropped and counted
    workers: int = 2
    max_attempts: int = 6  # 1 + 5 retries: 1, 2, 4, 8, 16 s apart (≈ 31 s) before giving up
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    timeout: float = 5.0  # per attempt: connect, write, read


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds before attempt `attempt + 1` after `attempt` failed: base * 2^(attempt - 1), capped, scaled by
    `jitter` in [0.5, 1] so receivers coming back are not hit by every operator at the same instant."""
    return min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """A 429/503 Retry-After in seconds (delta form only; an HTTP date is ignored), capped."""
    if value and value.strip().isdigit():
        return min(cap, float(value.strip()))
    return None


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: delivered, or why not and whether to try again (after `delay`, when known)."""

    delivered: bool
    reason: str = ""
    retry: bool = False
    delay: float | None = None


class Notifier:
    """The queue and its workers; `submit` is synchronous and never waits."""

    def __init__(
        self,
        settings: NotifierSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(
            transport=transport,  # None: the network; tests fake only this boundary
            timeout=settings.timeout,
            follow_redirects=False,  # a redirect could point anywhere, past the host check
            headers={"User-Agent": f"mlops-operator/{__version__}"},
            trust_env=False,  # no proxy from the environment: the host check must see the real target
        )
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.retrying: set[asyncio.Task[None]] = set()
        self.workers: list[asyncio.Task[None]] = []
        self.in_flight = 0
        self.closed = False
        self._sleep, self._clock, self._jitter = sleep, clock, jitter

    @property
    def pending(self) -> int:
        """Queued, being sent, or waiting to retry."""
        return self.queue.qsize() + len(self.retrying) + self.in_flight

    def submit(self, deliveries: list[Delivery]) -> None:
        """Queue deliveries; one that does not fit the bound is dropped and counted (never waits)."""
        for delivery in deliveries:
            self._enqueue(delivery)

    def _enqueue(self, delivery: Delivery, retrying: bool = False) -> None:
        # A retry already counts in `pending` (its task, or the worker that holds it), so only new work is bounded.
        if self.closed or (not retrying and self.pending >= self.settings.queue_size):
            metrics.DROPPED.labels("shutdown" if self.closed else "queue_full").inc()
            log.warning(
                "notification %s for %s/%s dropped: %s",
                delivery.payload.get("trigger"),
                delivery.namespace,
                delivery.destination,
                "the operator is stopping" if self.closed else f"{self.settings.queue_size} already pending",
            )
            return
        self.queue.put_nowait(delivery)
        metrics.QUEUED.set(self.pending)

    def start(self) -> None:
        """Start the worker tasks (inside the running loop)."""
        self.workers = [asyncio.create_task(self._work(), name=f"notifier-{n}") for n in range(self.settings.workers)]

    async def close(self, grace: float = 3.0) -> None:
        """Stop taking work, give what is pending `grace` seconds, then count what is left as dropped."""
        self.closed = True
        deadline = time.monotonic() + grace
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = self.pending
        for task in [*self.workers, *self.retrying]:
            task.cancel()
        for task in [*self.workers, *self.retrying]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if left:
            metrics.DROPPED.labels("shutdown").inc(left)
            log.warning("%d notification(s) not delivered before shutdown", left)
        await self.client.aclose()

    async def _work(self) -> None:
        while True:
            delivery = await self.queue.get()
            self.in_flight += 1
            try:
                await self.handle(delivery)
            except Exception:  # a bug in one delivery must not stop the worker
                log.exception("notification to %s/%s failed", delivery.namespace, delivery.destination)
            finally:
                self.in_flight -= 1
                metrics.QUEUED.set(self.pending)

    async def handle(self, delivery: Delivery) -> None:
        """One attempt, then the retry (scheduled, not awaited here) or the final count."""
        labels = (delivery.namespace, delivery.policy, delivery.destination)
        outcome = await self.attempt(delivery)
        if outcome.delivered:
            metrics.DELIVERED.labels(*labels).inc()
            return
        if outcome.reason not in ("not_allowed", "secret_missing"):
            metrics.FAILED_ATTEMPTS.labels(*labels, outcome.reason).inc()
        if not outcome.retry:
            final = outcome.reason if outcome.reason in ("not_allowed", "secret_missing") else "rejected"
            metrics.DROPPED.labels(final).inc()
            log.warning("notification to %s/%s given up: %s", delivery.namespace, delivery.destination, outcome.reason)
            return
        if delivery.attempt >= self.settings.max_attempts:
            metrics.DROPPED.labels("retries_exhausted").inc()
            log.warning(
                "notification to %s/%s given up after %d attempts (last: %s)",
                delivery.namespace,
                delivery.destination,
                delivery.attempt,
                outcome.reason,
            )
            return
        delay = backoff_delay(delivery.attempt, self.settings.backoff_base, self.settings.backoff_cap, self._jitter())
        if outcome.delay is not None:
            delay = max(delay, outcome.delay)
        task = asyncio.create_task(self._retry_later(replace(delivery, attempt=delivery.attempt + 1), delay))
        self.retrying.add(task)
        task.add_done_callback(self.retrying.discard)

    async def _retry_later(self, delivery: Delivery, delay: float) -> None:
        await self._sleep(delay)
        self._enqueue(delivery, retrying=True)

    def request(self, delivery: Delivery) -> tuple[str, bytes, dict[str, str]] | Outcome:
        """The URL, body and headers of one attempt (pure but for reading the mounted keys and the clock), or
        why it cannot be sent."""
        url = delivery.url
        if url is None and delivery.url_secret_key is not None:
            raw = self.settings.secrets.read(delivery.namespace, delivery.url_secret_key)
            url = raw.decode(errors="replace").strip() if raw else None
        if not url:
            return Outcome(False, "secret_missing")
        refusal = url_refusal(url, self.settings.allowed_hosts)
        if refusal:
            return Outcome(False, "not_allowed")
        document = slack_message(delivery.payload) if delivery.type == "slack" else delivery.payload
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Mlops-Event-Id": str(delivery.payload.get("id", "")),
            "X-Mlops-Trigger": str(delivery.payload.get("trigger", "")),
            "X-Mlops-Attempt": str(delivery.attempt),
        }
        if delivery.signing_secret_key is not None:
            key = self.settings.secrets.read(delivery.namespace, delivery.signing_secret_key)
            if not key:
                return Outcome(False, "secret_missing")
            headers.update(signed_headers(key, int(self._clock()), body))
        return url, body, headers

    async def attempt(self, delivery: Delivery) -> Outcome:
        """Send once and classify the result."""
        prepared = self.request(delivery)
        if isinstance(prepared, Outcome):
            return prepared
        url, body, headers = prepared
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, "timeout", retry=True)
        except httpx.TransportError:
            return Outcome(False, "connect", retry=True)
        code = response.status_code
        if 200 <= code < 300:
            return Outcome(True)
        if code == 429 or code >= 500:
            later = retry_after_seconds(response.headers.get("Retry-After"), self.settings.backoff_cap)
            return Outcome(False, "http_429" if code == 429 else "http_5xx", retry=True, delay=later)
        return Outcome(False, "redirect" if 300 <= code < 400 else "http_4xx")
