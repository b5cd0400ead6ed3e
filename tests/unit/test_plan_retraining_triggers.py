"""Retraining on a schedule and on a new Dataset version: the same single decision as drift and degradation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.controllers.store import summary
from mlops_operator.planning.deployment import plan_deployment, reads_due
from mlops_operator.planning.observed import RetrainingObserved, Tracks, WatchedDataset
from mlops_operator.planning.plan import Meta, Plan, parse_time
from mlops_operator.planning.triggers import watched_dataset, watched_dataset_name

from .builders import condition, observe, track
from .test_plan_retraining import (
    SOURCE,
    T0,
    degrading,
    deployment,
    drifting,
    modelversion,
    plan_for,
    stamp,
    trainingrun,
)

SETTLED = RetrainingObserved(trainingrun("Succeeded", "iris-classifier-4"), modelversion("Promoted"), SOURCE)


def scheduled(cron: str, zone: str | None = None, cooldown: str = "10m", **triggers: Any) -> dict[str, Any]:
    schedule = {"cron": cron} if zone is None else {"cron": cron, "timeZone": zone}
    return {"enabled": True, "cooldown": cooldown, "triggers": {"schedule": schedule, **triggers}}


def serving(**extra: Any) -> dict[str, Any]:
    """A status serving version 3 with no drift or degradation."""
    return {"stableVersion": 3, **extra}


def then(body: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The Deployment as the next pass reads it: the planned status written."""
    return {**body, "status": {**body["status"], **plan.status}}


def runs(plan: Plan) -> list[dict[str, Any]]:
    return [c for c in plan.creates_after_status if c["kind"] == "TrainingRun"]


def test_a_schedule_fires_once_at_its_fire_time_and_not_before() -> None:
    body = deployment(serving(), scheduled("0 3 * * *"))
    first = plan_for(body, SETTLED, T0)  # 2026-11-23 12:00 UTC: first sight, no backlog for 03:00 today
    assert runs(first) == [] and first.events == []
    known = first.status["retraining"]
    assert (known["schedule"], known["scheduleSince"]) == ("0 3 * * * UTC", stamp(T0))
    assert known["nextScheduledAt"] == "2026-11-24T03:00:00Z"
    body = then(body, first)
    fire = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    early = plan_for(body, SETTLED, fire - timedelta(seconds=1))
    assert runs(early) == [] and early.requeue_after == 1.0
    body = then(body, early)
    on_time = plan_for(body, SETTLED, fire)
    (run,) = runs(on_time)
    assert run["metadata"]["name"] == "iris-retrain-20261124-030000"
    status = on_time.status["retraining"]
    assert (status["causes"], status["scheduledFor"], status["cron"], status["timeZone"]) == (
        ["schedule"],
        "2026-11-24T03:00:00Z",
        "0 3 * * *",
        "UTC",
    )
    assert status["scheduleSince"] == stamp(T0), "first sight outlives the decision"
    assert status["nextScheduledAt"] == "2026-11-25T03:00:00Z"
    assert run["metadata"]["labels"]["mlops.dev/triggered-by"] == "schedule"
    notes = run["metadata"]["annotations"]
    assert notes["mlops.dev/retraining-causes"] == "schedule"
    assert (notes["mlops.dev/schedule-fire-time"], notes["mlops.dev/schedule-cron"]) == (
        "2026-11-24T03:00:00Z",
        "0 3 * * *",
    )
    assert notes["mlops.dev/schedule-time-zone"] == "UTC"
    (event,) = on_time.events
    assert (
        event.reason == "RetrainingTriggered"
        and "schedule '0 3 * * *' (UTC) fired at 2026-11-24T03:00:00Z" in event.message
    )
    body = then(body, on_time)
    running = RetrainingObserved(trainingrun("Running"), None, SOURCE)
    assert runs(plan_for(body, running, fire + timedelta(seconds=30))) == []
    assert runs(plan_for(body, SETTLED, fire + timedelta(hours=5))) == [], "the decision consumed the fire"


def test_a_zone_with_dst_fires_at_the_local_time_on_both_sides_of_the_change() -> None:
    # Europe/Berlin moves from CET (UTC+1) to CEST (UTC+2) on Sunday 28 March 2027 at 02:00.
    since = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)
    body = deployment(serving(), scheduled("0 3 * * *", "Europe/Berlin"))
    body = then(body, plan_for(body, SETTLED, since))
    assert body["status"]["retraining"]["nextScheduledAt"] == "2027-03-27T02:00:00Z"
    saturday = plan_for(body, SETTLED, datetime(2027, 3, 27, 2, 0, tzinfo=UTC))
    assert [r["metadata"]["name"] for r in runs(saturday)] == ["iris-retrain-20270327-020000"]
    assert saturday.status["retraining"]["nextScheduledAt"] == "2027-03-28T01:00:00Z"  # 03:00 CEST
    body = then(body, saturday)
    assert runs(plan_for(body, SETTLED, datetime(2027, 3, 28, 0, 59, 59, tzinfo=UTC))) == []
    sunday = plan_for(body, SETTLED, datetime(2027, 3, 28, 1, 0, tzinfo=UTC))
    (run,) = runs(sunday)
    assert run["metadata"]["annotations"]["mlops.dev/schedule-time-zone"] == "Europe/Berlin"
    assert sunday.status["retraining"]["scheduledFor"] == "2027-03-28T01:00:00Z"


def test_any_number_of_missed_fires_make_one_run_for_the_latest() -> None:
    week_ago = T0 - timedelta(days=7)
    known = {"schedule": "0 * * * * UTC", "scheduleSince": stamp(week_ago)}
    body = deployment(serving(retraining=known), scheduled("0 * * * *"))
    now = T0 + timedelta(minutes=20)
    plan = plan_for(body, RetrainingObserved(source_spec=SOURCE), now)
    assert len(runs(plan)) == 1  # 168 hourly fires missed (the operator was down): one run
    assert plan.status["retraining"]["scheduledFor"] == stamp(T0)
    assert plan.status["retraining"]["nextScheduledAt"] == stamp(T0 + timedelta(hours=1))
    after = plan_for(then(body, plan), SETTLED, now + timedelta(minutes=15))
    assert runs(after) == [], "the decision consumed every fire before it"


def test_a_fire_inside_the_cooldown_waits_for_its_end_and_is_not_dropped() -> None:
    drift_decision = T0.replace(hour=2, minute=30)
    status = serving(
        retraining={
            "run": "iris-retrain-1",
            "decidedAt": stamp(drift_decision),
            "causes": ["drift"],
            "phase": "Pending",
        },
        lastRetrainingRun="iris-retrain-1",
        lastRetrainingAt=stamp(drift_decision),
    )
    status["retraining"].update(schedule="0 3 * * * UTC", scheduleSince=stamp(T0 - timedelta(days=1)))
    body = deployment(status, scheduled("0 3 * * *", cooldown="1h"))
    fire = T0.replace(hour=3, minute=0)
    held = plan_for(body, SETTLED, fire)
    assert runs(held) == []
    assert held.status["retraining"]["nextScheduledAt"] == stamp(drift_decision + timedelta(hours=1))
    assert held.requeue_after == 1800.0, "woken at the cooldown's end, not by a resync"
    body = then(body, held)
    assert runs(plan_for(body, SETTLED, fire + timedelta(minutes=29, seconds=59))) == []
    released = plan_for(body, SETTLED, drift_decision + timedelta(hours=1))
    assert len(runs(released)) == 1
    assert released.status["retraining"]["causes"] == ["schedule"]
    assert released.status["retraining"]["scheduledFor"] == stamp(fire)


def full_pass(body: dict[str, Any], now: datetime, obs: RetrainingObserved = SETTLED) -> Plan:
    """A whole Deployment pass (rollout, monitoring, retraining, conditions), the stable track ready."""
    return plan_deployment(observe(body, retraining=replace(obs, source_read=True), stable_ready=2), now)


def test_an_unknown_zone_or_a_cron_only_python_refuses_is_said_once_and_starts_nothing() -> None:
    for schedule, why in (
        (scheduled("0 3 * * *", "Mars/Olympus_Mons"), "unknown time zone 'Mars/Olympus_Mons'"),
        (scheduled("61 * * * *"), "cron '61 * * * *' is not valid: Bad minute"),
    ):
        body = deployment(serving(), schedule)
        first = full_pass(body, T0)
        assert runs(first) == []
        message = first.status["retraining"]["message"]
        assert message.startswith("spec.retraining.triggers.schedule is ignored: ") and why in message
        assert first.status["retraining"]["nextScheduledAt"] is None
        degraded = condition(first.status, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSchedule") and why in degraded["message"]
        assert [(e.reason, e.type) for e in first.events] == [("InvalidSchedule", "Warning")]
        second = full_pass(then(body, first), T0 + timedelta(hours=1))
        assert second.events == [] and second.status["retraining"]["message"] == message


def test_an_invalid_schedule_leaves_the_other_triggers_working_and_their_reports_said_once() -> None:
    body = deployment(drifting(), scheduled("0 3 * * *", "Nowhere/Land"))
    drift = plan_for(body, RetrainingObserved(source_spec=SOURCE), T0)
    (run,) = runs(drift)
    message = drift.status["retraining"]["message"]
    assert message.startswith(f"TrainingRun {run['metadata']['name']} created because of drift in petal_length; ")
    assert message.endswith("unknown time zone 'Nowhere/Land' (use an IANA name such as UTC or Europe/Berlin)")
    failed = RetrainingObserved(trainingrun("Failed", message="boom"), None, SOURCE)
    body = then(body, drift)
    first = plan_for(body, failed, T0 + timedelta(minutes=1))
    assert [e.reason for e in first.events] == ["RetrainingFailed"]
    second = plan_for(then(body, first), failed, T0 + timedelta(minutes=2))
    assert second.events == [], "the note does not make the failure look new"
    assert second.status["retraining"]["message"].count("is ignored") == 1


def test_the_next_wakeup_is_the_next_fire_time() -> None:
    body = deployment(serving(), scheduled("42 12 * * *"))
    assert plan_for(body, SETTLED, T0).requeue_after == 42 * 60.0
    body = deployment(serving(), scheduled("0 4 * * *"))
    assert plan_for(body, SETTLED, T0).requeue_after == 16 * 3600.0
    soon = T0.replace(hour=12, minute=41, second=18)
    quiet = deployment(serving(), scheduled("42 12 * * *"))
    del quiet["spec"]["monitoring"]  # no drift check of its own to wake for
    whole = full_pass(quiet, soon)
    assert whole.requeue_after == 42.0, "sooner than the steady resync: the fire time wins"


def test_a_fire_makes_the_serving_run_be_read_in_the_same_pass() -> None:
    status = serving(retraining={"schedule": "0 3 * * * UTC", "scheduleSince": stamp(T0)})
    body = deployment(status, scheduled("0 3 * * *"))
    spec, typed = DeploymentSpec.model_validate(body["spec"]), DeploymentStatus.model_validate(status)
    meta, tracks, fire = Meta.of(body), Tracks(stable=track(2)), datetime(2026, 11, 24, 3, tzinfo=UTC)
    assert reads_due(meta, spec, typed, tracks, None, "iris-run", False, fire - timedelta(seconds=1)).source is None
    due = reads_due(meta, spec, typed, tracks, None, "iris-run", False, fire).source
    assert due is not None and due.run_name == "iris-run"
    new_data = deployment(serving(), {"enabled": True, "triggers": {"onNewData": True}})
    spec = DeploymentSpec.model_validate(new_data["spec"])
    data = WatchedDataset("iris", "Ready", "sha256:new", trained_on="sha256:old")
    assert reads_due(meta, spec, typed, tracks, None, "iris-run", False, T0, data=data).source is not None
    same = replace(data, version="sha256:old")
    assert reads_due(meta, spec, typed, tracks, None, "iris-run", False, T0, data=same).source is None


ON_NEW_DATA = {"enabled": True, "cooldown": "10m", "triggers": {"onNewData": True}}


def with_data(data: WatchedDataset | None, base: RetrainingObserved | None = None) -> RetrainingObserved:
    return replace(base or RetrainingObserved(source_spec=SOURCE), dataset=data)


def test_a_new_ready_dataset_version_starts_one_run_naming_both_versions() -> None:
    data = WatchedDataset("iris", "Ready", "sha256:bbb", trained_on="sha256:aaa")
    plan = plan_for(deployment(serving(), ON_NEW_DATA), with_data(data), T0)
    (run,) = runs(plan)
    status = plan.status["retraining"]
    assert status["causes"] == ["newData"]
    assert (status["dataset"], status["datasetVersion"], status["previousDatasetVersion"]) == (
        "iris",
        "sha256:bbb",
        "sha256:aaa",
    )
    assert status["message"].endswith("created because of a new version of Dataset iris")
    assert run["metadata"]["labels"]["mlops.dev/triggered-by"] == "newData"
    notes = run["metadata"]["annotations"]
    assert notes["mlops.dev/retraining-causes"] == "newData"
    assert (notes["mlops.dev/new-data-dataset"], notes["mlops.dev/new-data-version"]) == ("iris", "sha256:bbb")
    assert notes["mlops.dev/new-data-previous-version"] == "sha256:aaa"
    assert "Dataset iris is Ready at sha256:bbb (the serving version trained on sha256:aaa)" in plan.events[0].message


def test_no_run_for_the_same_version_a_dataset_not_ready_or_nothing_to_compare_with() -> None:
    body = deployment(serving(), ON_NEW_DATA)
    for data in (
        WatchedDataset("iris", "Ready", "sha256:aaa", trained_on="sha256:aaa"),  # what the serving version knows
        WatchedDataset("iris", "Validating", "sha256:bbb", trained_on="sha256:aaa"),
        WatchedDataset("iris", "Invalid", "sha256:bbb", trained_on="sha256:aaa"),
        WatchedDataset("iris", None, None, trained_on="sha256:aaa"),  # absent from the store
        WatchedDataset("iris", "Ready", "sha256:bbb"),  # no run to say what the serving version trained on
        WatchedDataset("iris", "Ready", "sha256:bbb", "sha256:aaa", last_run_trained_on="sha256:bbb"),
        None,
    ):
        plan = plan_for(body, with_data(data), T0)
        assert runs(plan) == [] and plan.events == [], data
    off = deployment(serving(), {"enabled": True, "cooldown": "10m"})
    new = WatchedDataset("iris", "Ready", "sha256:bbb", trained_on="sha256:aaa")
    assert runs(plan_for(off, with_data(new), T0)) == [], "onNewData is off by default"


def test_a_version_the_last_decision_recorded_is_not_new_again() -> None:
    # The retrained version on sha256:bbb was rejected: the serving version still trained on aaa, but bbb
    # was tried; only a later version asks again.
    data = WatchedDataset("iris", "Ready", "sha256:bbb", trained_on="sha256:aaa")
    first = plan_for(deployment(serving(), ON_NEW_DATA), with_data(data), T0)
    body = then(deployment(serving(), ON_NEW_DATA), first)
    rejected = RetrainingObserved(trainingrun("Succeeded", "iris-classifier-4"), modelversion("Rejected"), SOURCE)
    later = T0 + timedelta(hours=1)
    assert runs(plan_for(body, with_data(data, rejected), later)) == []
    newer = replace(data, version="sha256:ccc")
    (run,) = runs(plan_for(body, with_data(newer, rejected), later))
    assert run["metadata"]["annotations"]["mlops.dev/new-data-version"] == "sha256:ccc"


def test_the_watched_dataset_is_the_templates_and_only_its_own_runs_count() -> None:
    serving_run = summary("TrainingRun", {"metadata": {"name": "r"}, **SERVING_RUN})
    spec = DeploymentSpec.model_validate(deployment(serving(), ON_NEW_DATA)["spec"])
    assert watched_dataset_name(spec, serving_run) == "iris"
    assert watched_dataset_name(spec, None) is None
    explicit = {**ON_NEW_DATA, "trainingRunTemplate": {**SOURCE, "datasetRef": {"name": "iris-fresh"}}}
    spec_explicit = DeploymentSpec.model_validate(deployment(serving(), explicit)["spec"])
    assert watched_dataset_name(spec_explicit, serving_run) == "iris-fresh"
    off = DeploymentSpec.model_validate(deployment(serving())["spec"])
    assert watched_dataset_name(off, serving_run) is None
    dataset = summary("Dataset", {"metadata": {"name": "iris"}, "spec": {}, "status": DATASET_STATUS})
    assert dataset["status"] == {"phase": "Ready", "version": "sha256:bbb"}
    assert watched_dataset("iris", dataset, serving_run, None) == WatchedDataset(
        "iris", "Ready", "sha256:bbb", "sha256:aaa", None
    )
    # The serving run trained on another Dataset: its version says nothing about this one.
    assert watched_dataset("iris-fresh", None, serving_run, None) == WatchedDataset("iris-fresh")


SERVING_RUN = {
    "spec": {"datasetRef": {"name": "iris"}},
    "status": {"phase": "Succeeded", "datasetVersion": "sha256:aaa"},
}
DATASET_STATUS = {"phase": "Ready", "version": "sha256:bbb", "rows": 150, "profileUri": "runs:/x"}


def everything(at: datetime) -> dict[str, Any]:
    """Drift and degradation on version 3, and a schedule known since the day before."""
    status = drifting()
    status["performance"] = degrading()["performance"]
    status["conditions"] += degrading()["conditions"]
    status["retraining"] = {"schedule": "0 12 * * * UTC", "scheduleSince": stamp(at - timedelta(days=1))}
    body = deployment(status, scheduled("0 12 * * *", onNewData=True))
    body["spec"]["monitoring"]["performance"] = {"metric": "accuracy", "min": 0.9}
    return body


def test_drift_degradation_schedule_and_new_data_together_make_exactly_one_run_naming_all() -> None:
    data = WatchedDataset("iris", "Ready", "sha256:bbb", trained_on="sha256:aaa")
    body = everything(T0)
    plan = plan_for(body, with_data(data), T0)
    (run,) = runs(plan)
    assert plan.status["retraining"]["causes"] == ["drift", "performance", "schedule", "newData"]
    assert run["metadata"]["labels"]["mlops.dev/triggered-by"] == "drift"
    notes = run["metadata"]["annotations"]
    assert notes["mlops.dev/retraining-causes"] == "drift,performance,schedule,newData"
    for key in ("drift-feature", "performance-metric", "schedule-fire-time", "new-data-version"):
        assert f"mlops.dev/{key}" in notes
    assert [e.reason for e in plan.events] == ["RetrainingTriggered"]
    again = plan_for(then(body, plan), with_data(data, RetrainingObserved(trainingrun("Running"))), T0)
    assert runs(again) == [] and again.events == []


def test_a_restart_after_the_decision_creates_the_same_run_with_the_same_evidence() -> None:
    data = WatchedDataset("iris", "Ready", "sha256:bbb", trained_on="sha256:aaa")
    body = everything(T0)
    decided = plan_for(body, with_data(data), T0)
    (run,) = runs(decided)
    # Status was written, then the operator stopped before the create: the run is missing.
    restarted = plan_for(then(body, decided), with_data(data), T0 + timedelta(minutes=4))
    (again,) = runs(restarted)
    assert again == run
    assert restarted.events == [] and restarted.status["lastRetrainingRun"] == run["metadata"]["name"]


CRONS = ["*/7 * * * *", "0 * * * *", "15 3 * * *", "0 0 * * MON", "*/30 9-17 * * MON-FRI", "0 12 1 * *"]


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(CRONS),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    cooldown_minutes=st.integers(min_value=1, max_value=600),
    gaps=st.lists(st.integers(min_value=1, max_value=6 * 3600), min_size=1, max_size=60),
    drifts=st.booleans(),
    start=st.integers(min_value=0, max_value=365 * 24 * 3600),
)
def test_never_more_than_one_decision_per_cooldown_and_never_a_scheduled_run_before_its_fire(
    cron: str, zone: str, cooldown_minutes: int, gaps: list[int], drifts: bool, start: int
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start)
    body = deployment(drifting() if drifts else serving(), scheduled(cron, zone, cooldown=f"{cooldown_minutes}m"))
    decisions: list[dict[str, Any]] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        plan = plan_for(body, SETTLED, now)
        assert len(runs(plan)) <= 1
        if runs(plan):
            decisions.append(plan.status["retraining"])
        body = then(body, plan)
    times = [parse_time(d["decidedAt"]) for d in decisions]
    for earlier, later in pairwise(times):
        assert later is not None and earlier is not None
        assert (later - earlier).total_seconds() >= cooldown_minutes * 60
    previous = None
    for decision, decided_at in zip(decisions, times, strict=True):
        if "schedule" in decision["causes"]:
            fire = parse_time(decision["scheduledFor"])
            assert fire is not None and decided_at is not None and fire <= decided_at
            assert previous is None or fire > previous, "a fire before the last decision was consumed by it"
        previous = decided_at
