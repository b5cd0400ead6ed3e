"""Steering a rollout by hand: spec.paused stops the step's clocks, spec.rolloutRequest promotes, promotes fully
or aborts the canary it names — once, recorded in status, never applied to a later canary or step."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.plan import Plan

from .builders import condition, observe
from .test_plan_rollout import APPROVED, T0, canary_status, children, deployment, error_rate, events, stamp, steady
from .test_plan_shadow import in_shadow_status, looked, readings, shadowed

APPROVED_3 = {**APPROVED, 3: "iris-classifier-3"}


def steered(status: dict, paused: bool = False, request: dict | None = None, body: dict | None = None) -> dict:
    """A Deployment (test_plan_rollout's: steps 10/50/100 with 20 s pauses, 4 replicas) with steering fields."""
    manifest = body or deployment(status)
    manifest["spec"]["paused"] = paused
    if request is not None:
        manifest["spec"]["rolloutRequest"] = request
    manifest["metadata"]["generation"] = 3
    return manifest


def run(body: dict, at: datetime, approved: dict[int, str] = APPROVED, **reads: Any) -> Plan:
    """One pass over a canary with its pods Ready (3 stable, 1 canary unless given)."""
    reads = {"stable_ready": 3, "canary_ready": 1, **reads}
    return plan_deployment(observe(body, holder=1, approved=approved, **reads), at)


def request(action: str, version: int = 2, step: int | None = None, at: datetime = T0) -> dict:
    wanted: dict[str, Any] = {"action": action, "version": version, "requestedAt": stamp(at)}
    if step is not None:
        wanted["step"] = step
    return wanted


def replicas(plan: Plan) -> tuple[int, int]:
    objs = children(plan)
    return objs["iris-stable"]["spec"]["replicas"], objs["iris-canary"]["spec"]["replicas"]


# --- pause ---------------------------------------------------------------------------------------------------


def test_a_pause_holds_the_weight_past_the_pause_and_the_progress_deadline_and_says_so() -> None:
    body = steered(canary_status(0, T0, stepAnalysisPassed=True, lastAnalysisAt=stamp(T0)), paused=True)
    first = run(body, T0 + timedelta(seconds=5))
    status = first.status
    assert status["pausedAt"] == stamp(T0 + timedelta(seconds=5)) and "Paused" in events(first)
    assert status["phase"] == "Paused" and status["observedGeneration"] == 3
    paused = condition(status, "Paused")
    assert paused["status"] == "True" and paused["reason"] == "SpecPaused" and "held at 10%" in paused["message"]
    # Far past the 20 s pause (step would end) and the 10 m progressDeadline (a canary not Ready would abort).
    later = run(steered(status, paused=True), T0 + timedelta(minutes=30), canary_ready=0)
    assert (later.status["step"], later.status["canaryVersion"], later.status["canaryWeight"]) == (0, 2, 10)
    assert replicas(later) == (3, 1) and "Paused" not in events(later) and not later.status.get("rollbacks")
    assert later.status["pausedAt"] == status["pausedAt"]  # the clock stopped once, at the first paused pass


def test_resume_moves_the_step_clock_on_by_the_time_paused() -> None:
    # Step 1 ran 5 s of its 20 s pause, then was paused for 10 minutes.
    start = canary_status(
        0, T0, stepAnalysisPassed=True, lastAnalysisAt=stamp(T0), pausedAt=stamp(T0 + timedelta(seconds=5))
    )
    resumed = run(steered(start), T0 + timedelta(minutes=10, seconds=5))
    status = resumed.status
    assert status["pausedAt"] is None and "Resumed" in events(resumed)
    assert status["stepStartedAt"] == stamp(T0 + timedelta(minutes=10))  # 5 s of the step already ran
    assert status["step"] == 0 and status["phase"] == "Progressing"
    assert condition(status, "Paused")["status"] == "False"
    # 15 s of pause remain: not yet at +10 s, the next step at +16 s.
    assert run(steered(status), T0 + timedelta(minutes=10, seconds=15)).status["step"] == 0
    moved = run(steered(status), T0 + timedelta(minutes=10, seconds=21))
    assert (moved.status["step"], moved.status["canaryWeight"]) == (1, 50)


def test_a_resumed_canary_that_is_still_not_ready_aborts_only_when_its_unpaused_time_exceeds_the_deadline() -> None:
    start = canary_status(0, T0, pausedAt=stamp(T0 + timedelta(minutes=9)))  # 9 of the 10 minutes had run
    resumed = run(steered(start), T0 + timedelta(hours=1), canary_ready=0)
    assert resumed.status["canaryVersion"] == 2  # 9 minutes ran, not 60
    late = run(steered(resumed.status), T0 + timedelta(hours=1, minutes=1, seconds=1), canary_ready=0)
    assert late.status["canaryVersion"] is None and late.status["rollbacks"][-1]["reason"] == "CanaryNotReady"


def test_analysis_keeps_running_while_paused_and_a_failing_canary_is_still_rolled_back() -> None:
    body = steered({**canary_status(0, T0), "analysisFailures": 1}, paused=True)
    plan = run(body, T0 + timedelta(seconds=30), readings=error_rate(0.5))
    status = plan.status
    assert status["canaryVersion"] is None and status["rollbacks"][-1]["reason"] == "AnalysisFailed"
    assert replicas(plan) == (4, 0) and status["stableVersion"] == 1
    # A pass seen while paused is recorded but ends no step until resumed.
    ok = run(steered(canary_status(0, T0), paused=True), T0 + timedelta(seconds=30), readings=error_rate(0.0))
    assert ok.status["stepAnalysisPassed"] is True and ok.status["step"] == 0


def test_no_canary_starts_while_paused_and_resume_starts_it() -> None:
    body = steered(steady(), paused=True)
    held = plan_deployment(observe(body, holder=1, approved=APPROVED, stable_ready=4), T0)
    assert held.status["canaryVersion"] is None and held.status["phase"] == "Paused"
    assert "no canary starts" in condition(held.status, "Paused")["message"] and replicas(held) == (4, 0)
    go = plan_deployment(observe(steered(held.status), holder=1, approved=APPROVED, stable_ready=4), T0 + timedelta(1))
    assert go.status["canaryVersion"] == 2 and "CanaryStarted" in events(go) and "Resumed" in events(go)


def test_a_newer_candidate_does_not_replace_a_paused_canary() -> None:
    body = steered(canary_status(0, T0), paused=True)
    plan = run(body, T0 + timedelta(seconds=30), approved=APPROVED_3)
    assert plan.status["canaryVersion"] == 2
    resumed = run(steered(plan.status), T0 + timedelta(seconds=40), approved=APPROVED_3)
    assert resumed.status["canaryVersion"] == 3


def test_a_paused_shadow_step_gives_no_verdict_and_never_times_out() -> None:
    body = steered({}, paused=True, body=shadowed(in_shadow_status()))
    plan = plan_deployment(looked(body, readings(compared=10)), T0 + timedelta(hours=2))
    assert plan.status["shadow"]["phase"] == "Running" and plan.status["canaryVersion"] == 2


# --- promote, promote --full, abort -----------------------------------------------------------------------------


def test_promote_ends_the_named_step_once_and_a_repeated_click_does_not_skip_the_next() -> None:
    body = steered(canary_status(0, T0), request=request("Promote", step=0))
    plan = run(body, T0 + timedelta(seconds=2))  # pause not over, no analysis passed: promote ends it anyway
    status = plan.status
    assert (status["step"], status["canaryWeight"], status["stepAnalysisPassed"]) == (1, 50, False)
    assert status["lastRequest"]["outcome"] == "Applied" and status["lastRequest"]["step"] == 0
    assert {"PromotedByRequest", "CanaryStep"} <= set(events(plan)) and replicas(plan) == (2, 2)
    # The same request seen again (a restart, a resync): already handled, nothing happens.
    again = run(steered(status, request=request("Promote", step=0)), T0 + timedelta(seconds=3))
    assert again.status["step"] == 1 and not {"PromotedByRequest", "RequestIgnored"} & set(events(again))
    # A second click written from the same stale view (step 0, a new time): ignored, and said so.
    click = run(steered(status, request=request("Promote", step=0, at=T0 + timedelta(1))), T0 + timedelta(seconds=4))
    assert click.status["step"] == 1 and click.status["lastRequest"]["outcome"] == "Ignored"
    assert "version 2 is at step 2" in click.status["lastRequest"]["message"] and "RequestIgnored" in events(click)


def test_promote_at_the_last_step_completes_the_canary() -> None:
    plan = run(steered(canary_status(2, T0), request=request("Promote", step=2)), T0 + timedelta(seconds=1))
    assert plan.status["stableVersion"] == 2 and plan.status["canaryVersion"] is None
    assert plan.alias_moves == [("iris-classifier", "production", 2)]


def test_promote_full_from_ten_percent_makes_the_canary_stable_and_moves_the_alias_after_recording_it() -> None:
    plan = run(steered(canary_status(0, T0), request=request("PromoteFull")), T0 + timedelta(seconds=1))
    status = plan.status
    assert status["stableVersion"] == 2 and status["canaryVersion"] is None and status["step"] is None
    assert status["aliasMove"]["version"] == 2 and plan.alias_moves == [("iris-classifier", "production", 2)]
    assert status["history"][-1]["version"] == 2 and plan.wake == [("ModelVersion", "ns", "iris-classifier-2")]
    assert {"PromotedByRequest", "CanaryCompleted"} <= set(events(plan))
    # The canary's one pod keeps serving while the stable track rolls to version 2 (the usual hand-over).
    objs = children(plan)
    assert objs["iris-stable"]["spec"]["replicas"] == 4


def test_abort_rolls_back_as_a_failed_analysis_does_and_the_next_candidate_still_rolls_out() -> None:
    body = steered(canary_status(1, T0), request=request("Abort"))
    plan = run(body, T0 + timedelta(seconds=1), canary_ready=2, stable_ready=2)
    status = plan.status
    assert status["canaryVersion"] is None and status["stableVersion"] == 1 and replicas(plan) == (4, 0)
    rollback = status["rollbacks"][-1]
    assert (rollback["version"], rollback["reason"]) == (2, "AbortedByRequest") and "aborted by request" in rollback[
        "message"
    ]
    assert status["phase"] == "RolledBack" and condition(status, "RolledBack")["reason"] == "AbortedByRequest"
    assert "AbortedByRequest" in events(plan) and plan.wake == [("ModelVersion", "ns", "iris-classifier-2")]
    assert not plan.alias_moves
    # Version 2 is not tried again while it stays Approved; version 3 starts its canary at once.
    still = plan_deployment(
        observe(steered(status, request=request("Abort")), holder=1, approved=APPROVED, stable_ready=4),
        T0 + timedelta(seconds=2),
    )
    assert still.status["canaryVersion"] is None
    nxt = plan_deployment(
        observe(steered(status, request=request("Abort")), holder=1, approved=APPROVED_3, stable_ready=4),
        T0 + timedelta(seconds=3),
    )
    assert nxt.status["canaryVersion"] == 3 and nxt.status["step"] == 0


@pytest.mark.parametrize(
    ("status", "wanted", "why", "approved"),
    [
        (steady(), request("Abort"), "no canary runs", {}),
        (canary_status(0, T0), request("Abort", version=1), "the canary is version 2", APPROVED),
        (canary_status(1, T0), request("PromoteFull", version=5), "the canary is version 2", APPROVED),
        (canary_status(1, T0), request("Promote", step=0), "at step 2", APPROVED),
    ],
    ids=["no-canary", "abort-other-version", "promote-full-other-version", "promote-passed-step"],
)
def test_a_stale_request_is_recorded_as_ignored_and_changes_nothing(
    status: dict, wanted: dict, why: str, approved: dict[int, str]
) -> None:
    plan = run(steered(status, request=wanted), T0 + timedelta(seconds=1), approved, stable_ready=4)
    handled = plan.status["lastRequest"]
    assert handled["outcome"] == "Ignored" and why in handled["message"] and "RequestIgnored" in events(plan)
    assert plan.status["canaryVersion"] == status.get("canaryVersion")
    assert not plan.status.get("rollbacks") and plan.status["stableVersion"] == 1


def test_a_request_left_in_the_spec_never_applies_to_a_later_canary() -> None:
    done = run(steered(canary_status(0, T0), request=request("Abort")), T0 + timedelta(seconds=1))
    later = plan_deployment(
        observe(steered(done.status, request=request("Abort")), holder=1, approved=APPROVED_3, stable_ready=4),
        T0 + timedelta(minutes=1),
    )
    assert later.status["canaryVersion"] == 3  # the version-2 abort did not touch version 3
    step = run(steered(later.status, request=request("Abort")), T0 + timedelta(minutes=2), approved=APPROVED_3)
    assert step.status["canaryVersion"] == 3 and step.status["lastRequest"]["version"] == 2


def test_promote_while_paused_moves_one_step_and_stays_paused_with_the_clock_stopped() -> None:
    start = canary_status(0, T0, pausedAt=stamp(T0 + timedelta(seconds=1)))
    plan = run(steered(start, paused=True, request=request("Promote", step=0)), T0 + timedelta(minutes=5))
    status = plan.status
    assert status["step"] == 1 and status["phase"] == "Paused"
    assert status["pausedAt"] == status["stepStartedAt"] == stamp(T0 + timedelta(minutes=5))
    held = run(steered(status, paused=True), T0 + timedelta(minutes=50), readings=error_rate(0.0))
    assert held.status["step"] == 1


def test_the_request_record_and_events_name_who_asked() -> None:
    body = steered(canary_status(0, T0), request={**request("Abort"), "reason": "latency spikes"})
    obs = replace(
        observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1), requested_by="kubectl-mlops"
    )
    plan = plan_deployment(obs, T0 + timedelta(seconds=1))
    assert plan.status["lastRequest"]["by"] == "kubectl-mlops"
    message = next(e.message for e in plan.events if e.reason == "AbortedByRequest")
    assert "aborted by request of kubectl-mlops (latency spikes)" in message


def test_in_the_shadow_step_promote_is_ignored_and_promote_full_or_abort_end_it() -> None:
    body = shadowed(in_shadow_status())
    ignored = plan_deployment(looked(steered({}, request=request("Promote", step=0), body=body), None), T0)
    assert (
        ignored.status["lastRequest"]["outcome"] == "Ignored"
        and "shadow step" in ignored.status["lastRequest"]["message"]
    )
    full = plan_deployment(
        looked(steered({}, request=request("PromoteFull"), body=shadowed(in_shadow_status())), None), T0
    )
    assert full.status["stableVersion"] == 2 and full.status["canaryVersion"] is None
    abort = plan_deployment(looked(steered({}, request=request("Abort"), body=shadowed(in_shadow_status())), None), T0)
    assert abort.status["rollbacks"][-1]["reason"] == "AbortedByRequest"
