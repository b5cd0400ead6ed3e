"""Leader election: MicroTime, expiry by the follower's own clock, the Lease records, and the elector's rounds.

The elector runs against a small in-memory Lease API (get, create, merge patch with resourceVersion
preconditions, as the API server answers them); the real API server is exercised by tests/faults.
"""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlops_operator.controllers.leader import (
    DEFAULT_LEASE_NAME,
    ElectionSettings,
    LeaderElector,
    Observation,
    format_microtime,
    next_record,
    observe,
    parse_microtime,
    released_record,
)
from mlops_operator.kubeapi import ApiError
from prometheus_client import REGISTRY

Obj = dict[str, Any]


def test_microtime_has_six_fractional_digits_in_utc() -> None:
    assert format_microtime(datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)) == "2006-01-02T15:04:05.000000Z"
    assert format_microtime(datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)) == "2026-03-04T05:06:07.000890Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_microtime(datetime(2026, 3, 4, 1, 0, 0, 500000, tzinfo=plus_two)) == "2026-03-03T23:00:00.500000Z"
    with pytest.raises(ValueError, match="aware"):
        format_microtime(datetime(2026, 1, 1))


def test_microtime_parses_what_the_api_server_writes() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert parse_microtime(format_microtime(moment)) == moment
    assert parse_microtime("2006-01-02T15:04:05Z") == datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert parse_microtime("2006-01-02T17:04:05.5+02:00") == datetime(2006, 1, 2, 15, 4, 5, 500000, tzinfo=UTC)
    assert parse_microtime("2006-01-02T15:04:05.000000").tzinfo == UTC
    with pytest.raises(ValueError):
        parse_microtime("yesterday")


def lease(holder: str, renew: str = "2026-01-01T00:00:00.000000Z", rv: str = "1", duration: int = 15) -> Obj:
    spec = {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration,
        "acquireTime": "2026-01-01T00:00:00.000000Z",
        "renewTime": renew,
        "leaseTransitions": 0,
    }
    return {"metadata": {"name": "l", "resourceVersion": rv}, "spec": spec}


def test_expiry_counts_from_when_the_record_last_changed_by_the_local_clock() -> None:
    seen = observe(None, lease("a"), now=100.0)
    assert seen.holder == "a" and seen.valid(114.9) and not seen.valid(115.0)
    # The same record read again (a dead holder) does not restart the clock, even with a new resourceVersion.
    again = observe(seen, lease("a", rv="7"), now=110.0)
    assert again.observed_at == 100.0 and again.resource_version == "7" and not again.valid(115.0)
    # A renewal changes the record: the term restarts when it is seen.
    renewed = observe(again, lease("a", renew="2026-01-01T00:00:02.000000Z"), now=110.0)
    assert renewed.observed_at == 110.0 and renewed.valid(124.9) and not renewed.valid(125.0)


def test_expiry_ignores_the_holders_wall_clock() -> None:
    # A holder whose clock is years behind (or ahead) is still alive while its record keeps changing.
    skewed = observe(None, lease("a", renew="2001-01-01T00:00:00.000000Z"), now=50.0)
    assert skewed.valid(64.0)
    ahead = observe(None, lease("a", renew="2099-01-01T00:00:00.000000Z"), now=50.0)
    assert not ahead.valid(65.0)
    assert not Observation({}, "1", 0.0).valid(0.0), "a record without a duration is expired"


def test_records_keep_or_count_transitions() -> None:
    now = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    fresh = next_record("a", 15, now, None)
    assert fresh == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-05-06T07:08:09.000010Z",
        "renewTime": "2026-05-06T07:08:09.000010Z",
        "leaseTransitions": 0,
    }
    later = now + timedelta(seconds=2)
    renewed = next_record("a", 15, later, fresh)
    assert renewed["acquireTime"] == fresh["acquireTime"] and renewed["leaseTransitions"] == 0
    assert renewed["renewTime"] == "2026-05-06T07:08:11.000010Z"
    taken = next_record("b", 15, later, renewed)
    assert taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 1
    assert taken["acquireTime"] == taken["renewTime"]
    released = released_record(later, taken)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 1
    assert next_record("a", 15, later, released)["leaseTransitions"] == 2


def test_settings_from_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    defaults = ElectionSettings.from_env([], {}, missing)
    assert defaults.enabled and defaults.namespace == "default" and defaults.name == DEFAULT_LEASE_NAME
    assert defaults.identity  # the hostname
    assert (defaults.lease_duration, defaults.renew_deadline, defaults.retry_period) == (15.0, 10.0, 2.0)
    assert ElectionSettings.from_env(["team-a", "team-b"], {}, missing).namespace == "team-a"
    sa_namespace = tmp_path / "namespace"
    sa_namespace.write_text("mlops-system\n")
    assert ElectionSettings.from_env(["team-a"], {}, sa_namespace).namespace == "mlops-system"
    env = {
        "MLOPS_LEADER_ELECTION": "false",
        "MLOPS_LEADER_IDENTITY": "pod-1",
        "MLOPS_LEADER_LEASE_NAMESPACE": "ops",
        "MLOPS_LEADER_LEASE_NAME": "mine",
        "MLOPS_LEADER_LEASE_DURATION": "20.5",
        "MLOPS_LEADER_RENEW_DEADLINE": "12",
        "MLOPS_LEADER_RETRY_PERIOD": "3",
    }
    custom = ElectionSettings.from_env(["team-a"], env, sa_namespace)
    assert not custom.enabled and (custom.identity, custom.namespace, custom.name) == ("pod-1", "ops", "mine")
    assert custom.lease_duration_seconds == 21 and (custom.renew_deadline, custom.retry_period) == (12.0, 3.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_LEADER_ELECTION": "maybe"}, "MLOPS_LEADER_ELECTION must be true or false"),
        ({"MLOPS_LEADER_LEASE_DURATION": "10"}, "lease duration must exceed the renew deadline"),
        ({"MLOPS_LEADER_RETRY_PERIOD": "9"}, "renew deadline must exceed 1.2 x the retry period"),
        ({"MLOPS_LEADER_RETRY_PERIOD": "0"}, "retry period must be positive"),
        ({"MLOPS_LEADER_RETRY_PERIOD": "two"}, "could not convert"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        ElectionSettings.from_env([], env, tmp_path / "none")


class FakeLeaseApi:
    """One namespace's Leases with the API server's answers: 404, AlreadyExists, and 409 on a stale resourceVersion."""

    def __init__(self) -> None:
        self.leases: dict[str, Obj] = {}
        self.version = 0
        self.failure: Exception | None = None
        self.requests = 0

    def _check(self) -> None:
        self.requests += 1
        if self.failure is not None:
            raise self.failure

    def _stored(self, body: Obj) -> Obj:
        self.version += 1
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return body

    async def get_or_none(self, path: str) -> Obj | None:
        self._check()
        found = self.leases.get(path)
        return copy.deepcopy(found) if found else None

    async def create(self, collection: str, body: Obj) -> Obj | None:
        self._check()
        path = f"{collection}/{body['metadata']['name']}"
        if path in self.leases:
            return None
        self.leases[path] = self._stored(body)
        return copy.deepcopy(self.leases[path])

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        self._check()
        current = self.leases.get(path)
        if current is None:
            raise ApiError(404, json.dumps({"reason": "NotFound", "message": "not found"}))
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError(409, json.dumps({"reason": "Conflict", "message": "the object has been modified"}))
        merged = copy.deepcopy(current)
        merged["spec"].update(body.get("spec", {}))
        self.leases[path] = self._stored(merged)
        return copy.deepcopy(self.leases[path])

    def spec(self) -> Obj:
        (only,) = self.leases.values()
        return dict(only["spec"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Calls:
    def __init__(self) -> None:
        self.started = 0
        self.stopped = 0

    async def on_started(self) -> None:
        self.started += 1

    def on_stopped(self) -> None:
        self.stopped += 1


def elector(
    api: FakeLeaseApi,
    identity: str,
    clock: Clock | None = None,
    calls: Calls | None = None,
    timings: dict[str, float] | None = None,
) -> LeaderElector:
    settings = ElectionSettings(enabled=True, namespace="ns", name="leader", identity=identity, **(timings or {}))
    calls = calls or Calls()
    if clock is None:
        return LeaderElector(api, settings, calls.on_started, calls.on_stopped)
    return LeaderElector(api, settings, calls.on_started, calls.on_stopped, clock=clock)


def test_a_follower_takes_over_only_after_seeing_the_record_unchanged_for_a_lease_duration() -> None:
    async def scenario() -> None:
        api, clock = FakeLeaseApi(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.acquire_once() and a.is_leader
        assert api.spec()["holderIdentity"] == "a" and api.spec()["leaseTransitions"] == 0
        assert not await b.try_acquire_or_renew() and b.holder == "a"
        clock.now += 10
        assert await a.try_acquire_or_renew()  # a renews: b's clock restarts when it sees the change
        clock.now += 1
        assert not await b.try_acquire_or_renew()
        clock.now += 14.9
        assert not await b.try_acquire_or_renew(), "15 s have not passed since b saw the record change"
        clock.now += 0.1
        assert await b.try_acquire_or_renew()
        spec = api.spec()
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
        assert spec["acquireTime"] == spec["renewTime"]

    asyncio.run(scenario())


def test_the_same_identity_takes_its_lease_back_at_once() -> None:
    async def scenario() -> None:
        api, clock = FakeLeaseApi(), Clock()
        assert await elector(api, "pod-1", clock).acquire_once()
        acquired = api.spec()["acquireTime"]
        restarted = elector(api, "pod-1", clock)  # a restarted container in the same pod
        assert await restarted.acquire_once()
        assert api.spec()["acquireTime"] == acquired and api.spec()["leaseTransitions"] == 0

    asyncio.run(scenario())


def test_a_released_lease_is_taken_at_once() -> None:
    async def scenario() -> None:
        api, clock = FakeLeaseApi(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.acquire_once()
        assert not await b.try_acquire_or_renew()
        assert await a.release()
        assert api.spec()["holderIdentity"] == ""
        assert await b.try_acquire_or_renew()
        assert api.spec()["holderIdentity"] == "b" and api.spec()["leaseTransitions"] == 1
        assert await a.release(), "releasing a Lease one does not hold writes nothing"
        assert api.spec()["holderIdentity"] == "b"

    asyncio.run(scenario())


def test_two_followers_racing_for_an_expired_lease_one_wins() -> None:
    async def scenario() -> None:
        api, clock = FakeLeaseApi(), Clock()
        assert await elector(api, "dead", clock).acquire_once()
        b, c = elector(api, "b", clock), elector(api, "c", clock)
        assert not await b.try_acquire_or_renew() and not await c.try_acquire_or_renew()
        clock.now += 15
        results = await asyncio.gather(b.acquire_once(), c.acquire_once())
        assert sorted(results) == [False, True]
        assert api.spec()["holderIdentity"] == ("b" if results[0] else "c")
        assert api.spec()["leaseTransitions"] == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "failure",
    [
        ApiError(500, json.dumps({"reason": "InternalError", "message": "etcdserver: request timed out"})),
        ApiError(403, json.dumps({"reason": "Forbidden", "message": "leases is forbidden"})),
        httpx.ConnectError("connection refused"),
        OSError("network is unreachable"),
    ],
)
def test_api_failures_never_escape(failure: Exception) -> None:
    async def scenario() -> None:
        api = FakeLeaseApi()
        api.failure = failure
        candidate = elector(api, "a", Clock())
        assert not await candidate.acquire_once() and not candidate.is_leader

    asyncio.run(scenario())


FAST = {"lease_duration": 2.0, "renew_deadline": 1.0, "retry_period": 0.1}


def leader_gauge() -> float | None:
    return REGISTRY.get_sample_value("mlops_operator_leader")


def test_run_leads_then_stops_after_the_renew_deadline_and_leads_again_when_the_api_is_back() -> None:
    async def scenario() -> None:
        api, calls = FakeLeaseApi(), Calls()
        candidate = elector(api, "a", calls=calls, timings=FAST)
        task = asyncio.create_task(candidate.run())
        await asyncio.sleep(0.3)
        assert candidate.is_leader and calls.started == 1 and calls.stopped == 0
        assert leader_gauge() == 1
        api.failure = httpx.ReadTimeout("timed out")
        await asyncio.sleep(0.4)
        assert candidate.is_leader, "still within the renew deadline"
        await asyncio.sleep(0.9)
        assert not candidate.is_leader and calls.stopped == 1
        assert leader_gauge() == 0
        api.failure = None
        await asyncio.sleep(0.6)  # the Lease still names it: taken back at the next attempt
        assert candidate.is_leader and calls.started == 2
        task.cancel()
        await asyncio.wait([task])
        assert calls.stopped == 2 and api.spec()["holderIdentity"] == "", "cancelling releases the Lease"

    asyncio.run(scenario())


def test_a_leader_whose_lease_was_taken_stops_at_once() -> None:
    async def scenario() -> None:
        api, calls = FakeLeaseApi(), Calls()
        candidate = elector(api, "a", calls=calls, timings=FAST)
        task = asyncio.create_task(candidate.run())
        await asyncio.sleep(0.15)
        assert candidate.is_leader
        path = next(iter(api.leases))
        current = api.leases[path]
        await api.merge_patch(
            path,
            {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "spec": {"holderIdentity": "z"}},
        )
        await asyncio.sleep(0.25)
        assert not candidate.is_leader and calls.stopped == 1 and candidate.holder == "z"
        task.cancel()
        await asyncio.wait([task])
        assert api.spec()["holderIdentity"] == "z", "a follower releases nothing"

    asyncio.run(scenario())
