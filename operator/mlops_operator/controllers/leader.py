"""Leader election through a coordination.k8s.io/v1 Lease, after client-go's tools/leaderelection.

Only the leader reconciles and runs timers; followers keep watching (a warm store) and take over
when the leader's Lease expires or is released. Expiry is judged by each candidate's own monotonic
clock from the moment it last saw the Lease record change (client-go's observedTime), never by
comparing the holder's renewTime with the local wall clock: two machines' clocks may disagree, while
one machine's clock rate can be trusted. As in client-go there is no fencing: a leader cut off from
the API server stops acting after the renew deadline, which is shorter than the lease duration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ..kubeapi import ApiError, Obj
from . import metrics

log = logging.getLogger("mlops.leader")

MICROTIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_LEASE_NAME = "mlops-operator-leader"
JITTER_FACTOR = 1.2  # client-go's: attempts to acquire are spread over retry_period x (1 .. 2.2)
RELEASE_TIMEOUT = 5.0
RECORD_FIELDS = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions")

StartedCallback = Callable[[], Awaitable[None]]
StoppedCallback = Callable[[], Awaitable[None] | None]


class LeaseApi(Protocol):
    """The part of kubeapi.Kube the elector uses."""

    async def get_or_none(self, path: str) -> Obj | None: ...

    async def create(self, collection: str, body: Obj) -> Obj | None: ...

    async def merge_patch(self, path: str, body: Obj) -> Obj: ...


def format_microtime(moment: datetime) -> str:
    """A metav1.MicroTime: UTC with six fractional digits, `2006-01-02T15:04:05.000000Z`."""
    if moment.tzinfo is None:
        raise ValueError("a MicroTime needs an aware datetime")
    return moment.astimezone(UTC).strftime(MICROTIME_FORMAT)


def parse_microtime(text: str) -> datetime:
    """An aware UTC datetime from a MicroTime (or any RFC 3339 time; a missing zone means UTC)."""
    parsed = datetime.fromisoformat(text.strip())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


@dataclass(frozen=True)
class ElectionSettings:
    """Where the Lease is, who this replica is, and client-go's three durations (seconds)."""

    enabled: bool
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # client-go's rules: a leader must give up (renew deadline) before others may take over
        # (lease duration), and must get a few renewal attempts in before it gives up.
        if self.retry_period <= 0:
            raise ValueError("the leader election retry period must be positive")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("the leader election renew deadline must exceed 1.2 x the retry period")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("the leader election lease duration must exceed the renew deadline")
        if not self.identity:
            raise ValueError("the leader election identity must not be empty")

    @property
    def lease_duration_seconds(self) -> int:
        """leaseDurationSeconds as written to the Lease (whole seconds, rounded up)."""
        return math.ceil(self.lease_duration)

    @classmethod
    def from_env(
        cls, watched: list[str], environ: Mapping[str, str] | None = None, sa_namespace_file: Path = SA_NAMESPACE_FILE
    ) -> ElectionSettings:
        """From MLOPS_LEADER_ELECTION, MLOPS_LEADER_IDENTITY, MLOPS_LEADER_LEASE_NAMESPACE, MLOPS_LEADER_LEASE_NAME,
        MLOPS_LEADER_LEASE_DURATION, MLOPS_LEADER_RENEW_DEADLINE and MLOPS_LEADER_RETRY_PERIOD (seconds)."""
        env = os.environ if environ is None else environ
        namespace = env.get("MLOPS_LEADER_LEASE_NAMESPACE", "")
        if not namespace and sa_namespace_file.exists():
            namespace = sa_namespace_file.read_text().strip()
        return cls(
            enabled=_parse_bool("MLOPS_LEADER_ELECTION", env.get("MLOPS_LEADER_ELECTION", "true")),
            namespace=namespace or (watched[0] if watched else "default"),
            name=env.get("MLOPS_LEADER_LEASE_NAME") or DEFAULT_LEASE_NAME,
            # A restarted container keeps its pod's hostname, so it takes its own Lease back at once.
            identity=env.get("MLOPS_LEADER_IDENTITY") or socket.gethostname(),
            lease_duration=float(env.get("MLOPS_LEADER_LEASE_DURATION") or 15),
            renew_deadline=float(env.get("MLOPS_LEADER_RENEW_DEADLINE") or 10),
            retry_period=float(env.get("MLOPS_LEADER_RETRY_PERIOD") or 2),
        )


@dataclass(frozen=True)
class Observation:
    """The Lease record last seen, its resourceVersion, and when (monotonic clock) it last changed."""

    record: Obj
    resource_version: str
    observed_at: float

    @property
    def holder(self) -> str:
        """The holder's identity; empty when nobody holds the Lease (it was released)."""
        return str(self.record.get("holderIdentity") or "")

    def valid(self, now: float) -> bool:
        """Is the holder's term still running by this replica's clock?"""
        return now < self.observed_at + float(self.record.get("leaseDurationSeconds") or 0)


def observe(previous: Observation | None, lease: Obj, now: float) -> Observation:
    """The observation after reading `lease` at `now`: the clock restarts only when the record changed."""
    spec = lease.get("spec") or {}
    record = {key: spec[key] for key in RECORD_FIELDS if key in spec}
    version = str(lease.get("metadata", {}).get("resourceVersion", ""))
    if previous is not None and previous.record == record:
        return Observation(record, version, previous.observed_at)
    return Observation(record, version, now)


def next_record(identity: str, duration_seconds: int, now: datetime, previous: Obj | None) -> Obj:
    """The record to write: a renewal keeps acquireTime and leaseTransitions, a takeover counts one more."""
    stamp = format_microtime(now)
    if previous is not None and previous.get("holderIdentity") == identity:
        acquired, transitions = previous.get("acquireTime") or stamp, int(previous.get("leaseTransitions") or 0)
    else:
        acquired = stamp
        transitions = 0 if previous is None else int(previous.get("leaseTransitions") or 0) + 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration_seconds,
        "acquireTime": acquired,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released_record(now: datetime, previous: Obj) -> Obj:
    """What a clean shutdown writes (as client-go's ReleaseOnCancel): no holder, so anyone may take it now."""
    stamp = format_microtime(now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": int(previous.get("leaseTransitions") or 0),
    }


class LeaderElector:
    """Acquire and renew one Lease; call back when this replica starts and stops leading."""

    def __init__(
        self,
        kube: LeaseApi,
        settings: ElectionSettings,
        on_started_leading: StartedCallback,
        on_stopped_leading: StoppedCallback,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube, self.settings = kube, settings
        self._on_started, self._on_stopped = on_started_leading, on_stopped_leading
        self._clock, self._wall = clock, wall
        self._observed: Observation | None = None
        self._leading = False
        self._started_task: asyncio.Task[None] | None = None
        base = f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases"
        self.collection, self.path = base, f"{base}/{settings.name}"

    @property
    def is_leader(self) -> bool:
        """True while this replica leads (and may act)."""
        return self._leading

    @property
    def holder(self) -> str:
        """The holder seen last (empty when none, or not read yet)."""
        return self._observed.holder if self._observed else ""

    def describe(self) -> str:
        """namespace/name of the Lease."""
        return f"{self.settings.namespace}/{self.settings.name}"

    async def acquire_once(self) -> bool:
        """One attempt before run(); on success this replica leads without on_started_leading (nothing to catch up)."""
        if await self._attempt(self.settings.renew_deadline):
            self._begin(call_back=False)
            return True
        return False

    async def run(self) -> None:
        """Acquire, lead and renew, and after a lost term try again; when cancelled, stop leading and release."""
        try:
            while True:
                if not self._leading:
                    await self._acquire()
                    self._begin(call_back=True)
                await self._renew()
                await self._end()
        finally:
            if self._leading:
                await self._end()
            await self.release()

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True when this replica holds the Lease afterwards."""
        sent = self._clock()  # a term is counted from before the write: conservative for the holder
        identity = self.settings.identity
        observed = self._observed
        if self._leading and observed is not None and observed.holder == identity and observed.valid(sent):
            try:  # the fast path: renew on the record seen last, without reading it first
                record = next_record(identity, self.settings.lease_duration_seconds, self._wall(), observed.record)
                self._observed = observe(None, await self._write(record, observed.resource_version), sent)
                return True
            except ApiError as error:
                log.info("leader Lease %s: renewing on the last record failed (%s); reading it", self.describe(), error)
        lease = await self.kube.get_or_none(self.path)
        if lease is None:
            record = next_record(identity, self.settings.lease_duration_seconds, self._wall(), None)
            created = await self.kube.create(self.collection, self._lease(record))
            if created is None:
                return False  # another replica created it first; the next round reads it
            self._observed = observe(None, created, sent)
            return True
        self._observed = observed = observe(self._observed, lease, self._clock())
        if observed.holder and observed.holder != identity and observed.valid(self._clock()):
            return False
        record = next_record(identity, self.settings.lease_duration_seconds, self._wall(), observed.record)
        self._observed = observe(None, await self._write(record, observed.resource_version), sent)
        return True

    async def release(self) -> bool:
        """Give the Lease up if this replica holds it, so a follower need not wait for it to expire."""
        observed = self._observed
        if observed is None or observed.holder != self.settings.identity:
            return True
        try:
            written = await asyncio.wait_for(
                self._write(released_record(self._wall(), observed.record), observed.resource_version), RELEASE_TIMEOUT
            )
        except Exception as error:  # a lost release only delays the takeover until the Lease expires
            log.warning("leader Lease %s: could not release it: %s", self.describe(), error)
            return False
        self._observed = observe(None, written, self._clock())
        log.info("released the leader Lease %s", self.describe())
        return True

    async def _acquire(self) -> None:
        log.info("waiting for the leader Lease %s (identity %s)", self.describe(), self.settings.identity)
        reported = ""
        while not await self._attempt(self.settings.renew_deadline):
            if self.holder != reported:
                reported = self.holder
                log.info("leader Lease %s is held by %s", self.describe(), reported or "nobody")
            await asyncio.sleep(self.settings.retry_period * (1 + random.random() * JITTER_FACTOR))

    async def _renew(self) -> None:
        """Renew every retry period; return once the Lease is lost or the renew deadline has passed."""
        renewed = self._observed.observed_at if self._observed else self._clock()
        while True:
            await asyncio.sleep(self.settings.retry_period)
            remaining = renewed + self.settings.renew_deadline - self._clock()
            if remaining > 0 and await self._attempt(remaining):
                renewed = self._observed.observed_at if self._observed else self._clock()
                continue
            if self.holder and self.holder != self.settings.identity:
                log.warning("leader Lease %s was taken by %s; stopping leading", self.describe(), self.holder)
                return
            if self._clock() - renewed >= self.settings.renew_deadline:
                log.warning(
                    "leader Lease %s not renewed for %.1fs (renew deadline %.0fs); stopping leading",
                    self.describe(),
                    self._clock() - renewed,
                    self.settings.renew_deadline,
                )
                return

    async def _attempt(self, timeout: float) -> bool:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that arrives as the
            # inner call finishes (gh-86296), and run() would then never stop.
            async with asyncio.timeout(timeout):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            log.warning("leader Lease %s: no answer within %.1fs", self.describe(), timeout)
        except ApiError as error:
            if error.status == 409:  # another replica wrote first: it won this round
                log.info("leader Lease %s changed while writing it: %s", self.describe(), error)
            else:
                log.warning("leader Lease %s: %s", self.describe(), error)
        except Exception as error:  # a network or API failure must never end the election
            log.warning("leader Lease %s: %s: %s", self.describe(), type(error).__name__, error)
        return False

    async def _write(self, record: Obj, resource_version: str) -> Obj:
        # The resourceVersion precondition makes concurrent takeovers safe: all but one get 409 Conflict.
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": record}
        return await self.kube.merge_patch(self.path, patch)

    def _lease(self, record: Obj) -> Obj:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.settings.name,
                "namespace": self.settings.namespace,
                "labels": {"app.kubernetes.io/part-of": "mlops-operator"},
            },
            "spec": record,
        }

    def _begin(self, call_back: bool) -> None:
        self._leading = True
        metrics.LEADER.set(1)
        metrics.LEADER_TRANSITIONS.labels("started").inc()
        log.info("leading now (Lease %s, identity %s)", self.describe(), self.settings.identity)
        if call_back:
            # Catching up may take longer than a lease duration; renewals must go on meanwhile.
            self._started_task = asyncio.create_task(self._call_started())

    async def _call_started(self) -> None:
        # A leader that never caught up would leave objects without events unreconciled: retry while leading.
        while self._leading:
            try:
                await self._on_started()
                return
            except Exception:
                log.exception("on_started_leading failed; retrying in %.0fs", self.settings.retry_period)
            await asyncio.sleep(self.settings.retry_period)

    async def _end(self) -> None:
        self._leading = False
        metrics.LEADER.set(0)
        metrics.LEADER_TRANSITIONS.labels("stopped").inc()
        log.info("not leading any more (Lease %s)", self.describe())
        task, self._started_task = self._started_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # wait() does not raise the task's CancelledError into us
        try:
            result = self._on_stopped()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_stopped_leading failed")
