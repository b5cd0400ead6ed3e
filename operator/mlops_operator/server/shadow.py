"""Shadow mirroring: a stable server sends a sampled copy of live requests to the shadow track and compares.

Users never wait for it: `offer` is a sampling draw and a `put_nowait` on a bounded queue (full: the
copy is dropped and counted), and a few sender tasks post the copies to the shadow Service, discard
its answers and count, per shadow version, how many rows agreed with what users were told.

Discovery without restarting stable pods: they know only the shadow track's Service
(MLOPS_SHADOW_URL); every POLL_S they GET `{url}/v2/shadow`, which only a ready shadow-track server
answers, with its version, the sample fraction and the tolerance of the rollout's shadow step. No
answer (no shadow running): nothing is sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
from prometheus_client import CollectorRegistry, Counter

from .. import contract

log = logging.getLogger("mlops_operator.server.shadow")

SHADOW_PATH = "/v2/shadow"
POLL_S = 5.0
POLL_TIMEOUT_S = 1.0
QUEUE_SIZE = 256  # copies waiting per worker; beyond, new ones are dropped (users never wait for the shadow)
SENDERS = 4  # copies in flight per worker
# A shadow slower than this counts as an error: the canary would answer users no later.
REQUEST_TIMEOUT_S = 2.0
MIRRORED_HEADER = "x-mlops-mirrored"

OUTCOME_COMPARED = "compared"
OUTCOME_ERROR = "error"  # the shadow answered, but not 200 or not a matching prediction
OUTCOME_TIMEOUT = "timeout"
OUTCOME_UNREACHABLE = "unreachable"  # a shadow pod went away between polls
OUTCOME_DROPPED = "dropped"  # the queue was full
OUTCOMES = (OUTCOME_COMPARED, OUTCOME_ERROR, OUTCOME_TIMEOUT, OUTCOME_UNREACHABLE, OUTCOME_DROPPED)
LABELS = ("model", "version", "track", "deployment", "shadow_version")


@dataclass(frozen=True)
class ShadowTarget:
    """What a shadow server says of itself: the version it serves and how the step samples and compares."""

    version: str
    sample: float
    tolerance: float


@dataclass(frozen=True)
class Comparison:
    """Rows compared in one mirrored request, how many agreed, and the sum of relative differences (values)."""

    rows: int
    agreed: int
    relative_difference: float = 0.0


def parse_target(body: bytes) -> ShadowTarget | None:
    """The target a /v2/shadow answer describes, or None when it is not one."""
    try:
        doc = orjson.loads(body)
        version, sample, tolerance = str(doc["version"]), float(doc["sample"]), float(doc["tolerance"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not version or not (0.0 < sample <= 1.0) or not (tolerance >= 0.0 and math.isfinite(tolerance)):
        return None
    return ShadowTarget(version, sample, tolerance)


def shadow_prediction(body: bytes, protocol: str, output: str) -> list[Any] | None:
    """The shadow's values of output `output` from its answer (OIP or /invocations), or None if absent."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if protocol == "v2":
        tensors = doc.get("outputs")
        if not isinstance(tensors, list) or not tensors:
            return None
        named = [t for t in tensors if isinstance(t, dict) and t.get("name") == output]
        data = (named[0] if named else tensors[0]).get("data") if isinstance(tensors[0], dict) else None
        return data if isinstance(data, list) else None
    predictions = doc.get("predictions")
    if isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
        return [row.get(output) if isinstance(row, dict) else None for row in predictions]
    return predictions if isinstance(predictions, list) else None


def compare(stable: np.ndarray, shadow: list[Any], exact: bool, tolerance: float) -> Comparison | None:
    """Row by row: classes (`exact`) agree when equal; values when |shadow - stable| <= tolerance * max(|stable|, 1).
    None when the shadow answered another number of rows."""
    if len(shadow) != len(stable):
        return None
    if exact:
        agreed = sum(1 for mine, theirs in zip(stable.tolist(), shadow, strict=True) if _same(mine, theirs))
        return Comparison(len(shadow), agreed)
    try:
        theirs = np.asarray(shadow, dtype=np.float64).reshape(stable.shape)
    except (TypeError, ValueError):
        return Comparison(len(shadow), 0)
    mine = stable.astype(np.float64)
    # Relative to the stable value, absolute below 1: a tolerance of 5 % does not demand equality around 0.
    relative = np.abs(theirs - mine) / np.maximum(np.abs(mine), 1.0)
    relative = np.where(np.isfinite(relative), relative, np.inf)
    per_row = relative.reshape(len(shadow), -1).max(axis=1)
    agreed = int(np.count_nonzero(per_row <= tolerance))
    finite = per_row[np.isfinite(per_row)]
    return Comparison(len(shadow), agreed, float(finite.sum()))


def _same(mine: Any, theirs: Any) -> bool:
    # JSON gives 1 for a class the stable side holds as 1 or "1" (numpy object arrays of strings).
    return mine == theirs or str(mine) == str(theirs)


class ShadowMetrics:
    """The mirror's counters, by the stable server's (model, version, track, deployment) and the shadow version."""

    def __init__(self, registry: CollectorRegistry, static: dict[str, str]) -> None:
        self._static = (static["model"], static["track"], static["deployment"])
        self.version = ""
        self.requests = Counter(
            contract.METRIC_SHADOW_REQUESTS.removesuffix("_total"),
            "Mirrored requests by outcome (compared, error, timeout, unreachable, dropped).",
            [*LABELS, "outcome"],
            registry=registry,
        )
        self.rows = Counter(
            contract.METRIC_SHADOW_ROWS.removesuffix("_total"), "Rows compared.", LABELS, registry=registry
        )
        self.agreed = Counter(
            contract.METRIC_SHADOW_AGREED_ROWS.removesuffix("_total"),
            "Compared rows the shadow answered like the stable (classes equal, values within the tolerance).",
            LABELS,
            registry=registry,
        )
        self.relative_difference = Counter(
            contract.METRIC_SHADOW_RELATIVE_DIFFERENCE.removesuffix("_total"),
            "Sum over compared rows of |shadow - stable| / |stable| (values only).",
            LABELS,
            registry=registry,
        )

    def _labels(self, shadow_version: str) -> tuple[str, ...]:
        model, track, deployment = self._static
        return (model, self.version, track, deployment, shadow_version)

    def start_at_zero(self, shadow_version: str) -> None:
        """Export the series at 0 when a shadow is found: increase() cannot see a counter's first value."""
        labels = self._labels(shadow_version)
        for outcome in OUTCOMES:
            self.requests.labels(*labels, outcome)
        for family in (self.rows, self.agreed, self.relative_difference):
            family.labels(*labels)

    def outcome(self, shadow_version: str, outcome: str) -> None:
        """Count one mirrored request."""
        self.requests.labels(*self._labels(shadow_version), outcome).inc()

    def compared(self, shadow_version: str, result: Comparison) -> None:
        """Count one compared answer."""
        labels = self._labels(shadow_version)
        self.requests.labels(*labels, OUTCOME_COMPARED).inc()
        self.rows.labels(*labels).inc(result.rows)
        if result.agreed:
            self.agreed.labels(*labels).inc(result.agreed)
        if result.relative_difference:
            self.relative_difference.labels(*labels).inc(result.relative_difference)


@dataclass(frozen=True)
class _Copy:
    target: ShadowTarget
    protocol: str
    path: str
    body: bytes
    output: str
    stable: np.ndarray
    exact: bool


class Mirror:
    """One worker's mirror to the shadow Service at `url` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        metrics: ShadowMetrics | None,
        *,
        queue_size: int = QUEUE_SIZE,
        senders: int = SENDERS,
        timeout_s: float = REQUEST_TIMEOUT_S,
        poll_s: float = POLL_S,
        draw: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.metrics = metrics
        self.target: ShadowTarget | None = None
        self._queue: asyncio.Queue[_Copy] = asyncio.Queue(maxsize=queue_size)
        self._senders, self._timeout_s, self._poll_s, self._draw = senders, timeout_s, poll_s, draw
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start polling for a shadow and the sender tasks (on the running loop)."""
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout_s, connect=min(1.0, self._timeout_s)),
            limits=httpx.Limits(max_connections=self._senders, max_keepalive_connections=self._senders),
        )
        self._tasks = [asyncio.ensure_future(self._poll())]
        self._tasks += [asyncio.ensure_future(self._send()) for _ in range(self._senders)]

    async def stop(self) -> None:
        """Stop polling and sending; copies still queued are dropped."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    def offer(self, protocol: str, path: str, body: bytes, output: tuple[str, np.ndarray], exact: bool) -> None:
        """Maybe mirror one answered request (sampled); never blocks, never raises."""
        target = self.target
        if target is None or self._draw() >= target.sample:
            return
        try:
            self._queue.put_nowait(_Copy(target, protocol, path, body, output[0], output[1], exact))
        except asyncio.QueueFull:
            if self.metrics is not None:
                self.metrics.outcome(target.version, OUTCOME_DROPPED)

    async def poll_once(self) -> None:
        """Ask the shadow Service who serves there; no answer or not a shadow: mirror nothing."""
        assert self._client is not None
        try:
            answer = await self._client.get(self.url + SHADOW_PATH, timeout=POLL_TIMEOUT_S)
            found = parse_target(answer.content) if answer.status_code == 200 else None
        except httpx.HTTPError:
            found = None
        if found is not None and (self.target is None or self.target.version != found.version):
            log.info("mirroring %g of requests to shadow version %s at %s", found.sample, found.version, self.url)
            if self.metrics is not None:
                self.metrics.start_at_zero(found.version)
        elif found is None and self.target is not None:
            log.info("shadow version %s is gone: mirroring stopped", self.target.version)
        self.target = found

    async def _poll(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll_s)

    async def _send(self) -> None:
        while True:
            copy = await self._queue.get()
            outcome = await self.send_one(copy)
            if outcome is not None and self.metrics is not None:
                self.metrics.outcome(copy.target.version, outcome)

    async def send_one(self, copy: _Copy) -> str | None:
        """Post one copy and count the comparison; the outcome to count when there was none."""
        assert self._client is not None
        headers = {"content-type": "application/json", MIRRORED_HEADER: "1", "x-prediction-ids": "none"}
        try:
            # httpx's timeouts are per read; the deadline is for the whole answer (a shadow dripping bytes too).
            async with asyncio.timeout(self._timeout_s):
                answer = await self._client.post(self.url + copy.path, content=copy.body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return OUTCOME_TIMEOUT
        except httpx.HTTPError:
            return OUTCOME_UNREACHABLE
        if answer.status_code != 200:
            return OUTCOME_ERROR
        values = shadow_prediction(answer.content, copy.protocol, copy.output)
        result = compare(copy.stable, values, copy.exact, copy.target.tolerance) if values is not None else None
        if result is None:
            return OUTCOME_ERROR
        if self.metrics is not None:
            self.metrics.compared(copy.target.version, result)
        return None
