"""Deployment rollout planning: which version serves, the canary's step, verdicts, deadlines, rollback, alias.

All rollout state lives in status; the serving objects are derived from (spec, status) alone, so a
restarted operator continues exactly where the status says — it never repeats or reverses a step.
Outside effects are recorded first: an alias move is written to `status.aliasMove` (intent), made
after that write succeeded, and cleared once MLflow shows it (done); a rollback is recorded in
`status.rollbacks`, from which the ModelVersion controller marks the version RolledBack.
"""

from __future__ import annotations

from datetime import datetime

from ..api.common import parse_duration
from ..api.deployment import (
    AnalysisResult,
    CanaryStep,
    DeploymentSpec,
    DeploymentStatus,
    Rollback,
    ServedInterval,
    ShadowStatus,
)
from .aliasmove import alias_effects, alias_intent, finish_first_rollout, wake_version
from .analysis import StepContext, judge_all, step_metrics
from .observed import DeploymentObserved
from .plan import Event, Plan, parse_time, rfc3339
from .qualitytests import max_looks
from .scaling import track_replicas
from .shadow import in_shadow, judge_shadow, shadow_of, shadow_seconds
from .steering import by_request, hold_clock, pending_request, record_request, request_problem

STEADY_RESYNC_SECONDS = 60.0
MAX_HISTORY = 20
MAX_ROLLBACKS = 10
CANARY_FIELDS = ("canary_version", "canary_weight", "step", "step_started_at", "step_analysis_passed")


def seconds(duration: str | None) -> float:
    """A duration field in seconds (0 when unset)."""
    return parse_duration(duration).total_seconds() if duration else 0.0


def step_weight(spec: DeploymentSpec, status: DeploymentStatus) -> int:
    """The canary weight of the current step."""
    steps = spec.strategy.canary.steps
    return steps[min(int(status.step or 0), len(steps) - 1)].weight


def step_seconds(status: DeploymentStatus, now: datetime) -> float:
    """Seconds since the current step started (0 when unknown)."""
    started = parse_time(status.step_started_at)
    return max(0.0, (now - started).total_seconds()) if started else 0.0


def step_context(spec: DeploymentSpec, status: DeploymentStatus) -> StepContext:
    """The versions a live-quality verdict compares, and how many analyses the step can run (alpha spending)."""
    canary_spec = spec.strategy.canary
    step = canary_spec.steps[min(int(status.step or 0), len(canary_spec.steps) - 1)]
    looks = max_looks(
        seconds(canary_spec.analysis.interval), seconds(step.pause), seconds(canary_spec.progress_deadline)
    )
    return StepContext(int(status.canary_version or 0), status.stable_version, looks)


def analysis_due(spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> bool:
    """True while a canary runs with metrics for this step and the last analysis is at least one interval old."""
    analysis = spec.strategy.canary.analysis
    if status.canary_version is None or in_shadow(status) or not step_metrics(analysis, step_weight(spec, status)):
        return False
    since = parse_time(status.last_analysis_at) or parse_time(status.step_started_at)
    return since is None or (now - since).total_seconds() >= seconds(analysis.interval)


def rolled_back_versions(status: DeploymentStatus) -> set[int]:
    """Every version whose canary this Deployment aborted (and still remembers)."""
    versions = {r.version for r in status.rollbacks or []}
    return versions | ({status.rolled_back_version} if status.rolled_back_version is not None else set())


def choose_target(obs: DeploymentObserved, status: DeploymentStatus) -> int | None:
    """The version that should serve: the pinned one, else the newest Approved candidate, else the alias holder."""
    if obs.spec.model.version:
        return obs.spec.model.version
    skip = rolled_back_versions(status) | {status.stable_version}
    candidates = [v for v in obs.approved if v not in skip]
    return max(candidates) if candidates else obs.holder_version


def plan_rollout(
    plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime, problems: list[tuple[str, str]]
) -> None:
    """Advance the rollout one pass: first version, canary start, step, verdict, deadline, completion, alias.

    `problems` collects (reason, message) for the Degraded condition: what holds the rollout that a person must fix.
    """
    stamp = rfc3339(now)
    hold_clock(plan, obs.spec, status, now)
    if not _steer(plan, status, obs, stamp):  # an applied request decides this pass; the rollout goes on next pass
        _advance(plan, status, obs, now, problems)
    finish_first_rollout(plan, status, obs, stamp)
    alias_effects(plan, status, obs)


def _advance(
    plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime, problems: list[tuple[str, str]]
) -> None:
    """Serve the first version, start, replace or cancel the canary, or progress it (a pause holds the first two)."""
    stamp, paused = rfc3339(now), obs.spec.paused
    target = choose_target(obs, status)
    stable, canary = status.stable_version, status.canary_version
    if stable is None:
        if target is not None:
            _serve(status, target, stamp)
            plan.events.append(Event("Serving", f"serving version {target} as stable"))
    elif canary is None:
        if target is not None and target != stable and target not in rolled_back_versions(status) and not paused:
            _start_canary(plan, status, obs, target, stamp, problems)
    elif target is not None and target not in (canary, stable):
        if not paused:  # a newer candidate replaces the running canary, unless a person holds the rollout
            _start_canary(plan, status, obs, target, stamp, problems)
        else:
            _progress_canary(plan, status, obs, now)
    elif target == stable:  # going back to stable is never held by a pause
        _clear_canary(status)
        why = (
            "pinned in spec.model.version"
            if obs.spec.model.version
            else f"the alias names it and no other version is Approved (approved: {sorted(obs.approved) or 'none'})"
        )
        plan.events.append(
            Event("CanaryCancelled", f"version {stable} is wanted again ({why}); canary {canary} removed")
        )
    else:
        _progress_canary(plan, status, obs, now)


def _steer(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, stamp: str) -> bool:
    """Handle a pending spec.rolloutRequest: record it, then apply it to the canary it names. True: it applied."""
    request = pending_request(obs.spec, status)
    if request is None:
        return False
    problem = request_problem(request, status)
    canary = int(status.canary_version or 0)
    by = obs.requested_by
    record_request(plan, status, request, problem, f"{request.action} of version {canary} applied", stamp, by)
    if problem is not None:
        return False
    if request.action == "Abort":
        _abort(
            plan, status, obs, canary, "AbortedByRequest", by_request(request, "aborted", by), stamp, "AbortedByRequest"
        )
        return True
    steps, step = obs.spec.strategy.canary.steps, int(status.step or 0)
    if request.action == "Promote" and step + 1 < len(steps):
        weight = _next_step(status, steps, step, stamp)
        what = f"version {canary}: step {step + 1} ended, now at {weight}% (step {step + 2})"
        plan.events.append(Event("PromotedByRequest", by_request(request, what, by)))
        plan.events.append(Event("CanaryStep", f"version {canary} at {weight}%"))  # a step as any other
        return True
    skipped = "every remaining step skipped" if request.action == "PromoteFull" else "last step ended"
    _complete(plan, status, obs, canary, stamp, by_request(request, f"version {canary} is stable ({skipped})", by))
    plan.events.append(Event("PromotedByRequest", by_request(request, f"version {canary} promoted, {skipped}", by)))
    return True


def _next_step(status: DeploymentStatus, steps: list[CanaryStep], step: int, stamp: str) -> int:
    """Move to step + 1 with fresh step state; a paused rollout stays paused there, its clock stopped from now."""
    status.step, status.canary_weight = step + 1, steps[step + 1].weight
    status.step_started_at, status.step_analysis_passed = stamp, False
    if status.paused_at is not None:
        status.paused_at = stamp
    return steps[step + 1].weight


def _serve(status: DeploymentStatus, version: int, stamp: str) -> None:
    history = [h.model_copy() for h in status.history or []]
    if history and history[-1].to is None:
        history[-1].to = stamp
    history.append(ServedInterval.model_validate({"version": version, "from": stamp}))
    status.stable_version, status.history = version, history[-MAX_HISTORY:]


def _clear_canary(status: DeploymentStatus) -> None:
    for name in CANARY_FIELDS:
        setattr(status, name, None)


def _start_canary(
    plan: Plan,
    status: DeploymentStatus,
    obs: DeploymentObserved,
    version: int,
    stamp: str,
    problems: list[tuple[str, str]],
) -> None:
    canary = obs.spec.strategy.canary
    if canary.analysis.metrics and not obs.prometheus_url:
        # Configuration that can never work holds the candidate where it is and says so, instead of a silent wait.
        problems.append(
            ("AnalysisNotConfigured", f"canary of version {version} not started: {obs.no_prometheus_reason}")
        )
        return
    if canary.shadow is not None and not obs.prometheus_url:
        problems.append(
            ("AnalysisNotConfigured", f"shadow of version {version} not started: {obs.no_prometheus_reason}")
        )
        return
    first = 0 if canary.shadow is not None else canary.steps[0].weight  # a shadow step serves no user
    status.canary_version, status.step, status.canary_weight, status.step_started_at = version, 0, first, stamp
    status.step_analysis_passed, status.analysis_failures, status.analysis_errors = False, 0, 0
    status.last_analysis_at, status.analysis, status.rolled_back_version = None, None, None
    if canary.shadow is not None:
        status.shadow = ShadowStatus(version=version, phase="Running", started_at=stamp)
        sample = f"{canary.shadow.sample:.0%}"
        plan.events.append(Event("ShadowStarted", f"version {version} answers {sample} of requests as a shadow"))
        return
    status.shadow = None
    plan.events.append(Event("CanaryStarted", f"canary of version {version} at {first}%"))


def _progress_canary(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> None:
    canary_spec, stamp = obs.spec.strategy.canary, rfc3339(now)
    analysis, steps = canary_spec.analysis, canary_spec.steps
    canary, step = int(status.canary_version or 0), min(int(status.step or 0), len(steps) - 1)
    if in_shadow(status):
        _progress_shadow(plan, status, obs, now)
        return
    results = _analysis_results(obs, now)
    if results is not None:
        failed = [r for r in results if r.passed is False]
        erred = [r for r in results if r.error is not None]
        status.analysis, status.last_analysis_at = results, stamp
        status.analysis_failures = int(status.analysis_failures or 0) + (1 if failed else 0)
        status.analysis_errors = int(status.analysis_errors or 0) + 1 if erred else 0
        if failed and status.analysis_failures >= max(1, analysis.failure_limit):
            _abort(plan, status, obs, canary, "AnalysisFailed", _reasons(failed), stamp)
            return
        if erred and status.analysis_errors >= analysis.consecutive_error_limit:
            why = f"{status.analysis_errors} analyses in a row could not run: {_reasons(erred)}"
            _abort(plan, status, obs, canary, "AnalysisErrors", why, stamp)
            return
        if results and all(r.passed is True for r in results):
            status.step_analysis_passed = True
    if obs.spec.paused:  # the step's clocks are stopped: no deadline runs out and no step ends
        return
    wanted = track_replicas(obs.spec, steps[step].weight, obs.tracks.stable, obs.tracks.canary).canary
    started = parse_time(status.step_started_at) or now
    elapsed, pause = (now - started).total_seconds(), seconds(steps[step].pause)
    deadline = seconds(canary_spec.progress_deadline)
    if obs.tracks.canary_ready < wanted:
        if elapsed > deadline:
            why = (
                f"{obs.tracks.canary_ready}/{wanted} canary pods Ready {canary_spec.progress_deadline} after step"
                f" {step + 1} started (progressDeadline)"
            )
            _abort(plan, status, obs, canary, "CanaryNotReady", why, stamp)
        return
    if elapsed < pause:
        return
    # "No data yet" is not a pass: a step with analysis ends only after one analysis judged every metric
    # and all passed; past the deadline the canary aborts instead of waiting forever.
    if step_metrics(analysis, steps[step].weight) and not status.step_analysis_passed:
        if elapsed > pause + deadline:
            missing = [r for r in status.analysis or [] if r.passed is None and r.error is None]
            reason = "NoAnalysisData" if missing or not status.analysis else "ProgressDeadlineExceeded"
            detail = _reasons(missing) if missing else "no analysis passed"
            why = f"{detail} within {canary_spec.progress_deadline} of step {step + 1} (progressDeadline)"
            _abort(plan, status, obs, canary, reason, why, stamp)
        return
    if step + 1 < len(steps):
        weight = _next_step(status, steps, step, stamp)
        plan.events.append(Event("CanaryStep", f"version {canary} at {weight}%"))
        return
    _complete(plan, status, obs, canary, stamp, f"version {canary} is stable")


def _complete(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, canary: int, stamp: str, why: str) -> None:
    """The canary becomes stable; the alias move is recorded before it is made."""
    _serve(status, canary, stamp)
    _clear_canary(status)
    if obs.spec.model.alias:
        status.alias_move = alias_intent(obs, canary, stamp, "canary completed")
    plan.events.append(Event("CanaryCompleted", why))
    wake_version(plan, obs, canary)


def _progress_shadow(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime) -> None:
    """Judge the shadow step once its duration passed; pass: the first canary step starts; else abort."""
    shadow, canary_spec, stamp = shadow_of(obs.spec), obs.spec.strategy.canary, rfc3339(now)
    current, canary = status.shadow, int(status.canary_version or 0)
    if shadow is None or current is None:  # the shadow was removed from the spec mid-step: go on as a canary
        status.canary_weight, status.step_started_at = canary_spec.steps[0].weight, stamp
        return
    elapsed, deadline = shadow_seconds(status, now), seconds(canary_spec.progress_deadline)
    if obs.spec.paused:  # held: no verdict, no hand-over and no deadline until resumed
        return
    if obs.tracks.shadow_ready < 1:
        if elapsed > deadline:
            why = (
                f"no shadow pod Ready {canary_spec.progress_deadline} after the shadow step started (progressDeadline)"
            )
            _abort(plan, status, obs, canary, "ShadowNotReady", why, stamp)
        return
    readings = obs.shadow
    if readings is None:
        return
    if readings.error is not None:
        status.analysis_errors = int(status.analysis_errors or 0) + 1
        status.shadow = current.model_copy(update={"checked_at": stamp, "message": f"check failed: {readings.error}"})
        if status.analysis_errors >= canary_spec.analysis.consecutive_error_limit:
            why = f"{status.analysis_errors} shadow checks in a row could not run: {readings.error}"
            _abort(plan, status, obs, canary, "AnalysisErrors", why, stamp)
        return
    status.analysis_errors = 0
    verdict = judge_shadow(shadow, current, readings, stamp)
    status.shadow = verdict.figures
    if not verdict.judged:
        if elapsed > seconds(shadow.duration) + deadline:
            why = f"shadow step: {verdict.message} within {shadow.duration} + {canary_spec.progress_deadline}"
            _abort(plan, status, obs, canary, "NoShadowTraffic", why, stamp)
        return
    if verdict.failure is not None:
        _abort(plan, status, obs, canary, verdict.failure, f"shadow step: {verdict.message}", stamp)
        return
    first = canary_spec.steps[0].weight
    status.canary_weight, status.step_started_at, status.step_analysis_passed = first, stamp, False
    status.last_analysis_at = None
    plan.events.append(Event("ShadowPassed", f"version {canary}: {verdict.message}; canary at {first}%"))


def _analysis_results(obs: DeploymentObserved, now: datetime) -> list[AnalysisResult] | None:
    """This pass's verdicts, if an analysis was due and could be judged (readings, or no Prometheus at all)."""
    analysis = obs.spec.strategy.canary.analysis
    if not analysis_due(obs.spec, obs.status, now):
        return None
    if not obs.prometheus_url:
        return [
            AnalysisResult(name=m.name, error=obs.no_prometheus_reason, message=f"{m.name}: {obs.no_prometheus_reason}")
            for m in step_metrics(analysis, step_weight(obs.spec, obs.status))
        ]
    if obs.analysis is None:  # not read: no canary pod was Ready yet
        return None
    return judge_all(analysis, obs.analysis, step_weight(obs.spec, obs.status), step_context(obs.spec, obs.status))


def _reasons(results: list[AnalysisResult]) -> str:
    return "; ".join(r.message or r.name for r in results)


def _abort(
    plan: Plan,
    status: DeploymentStatus,
    obs: DeploymentObserved,
    canary: int,
    reason: str,
    why: str,
    stamp: str,
    event: str = "RolledBack",
) -> None:
    _clear_canary(status)
    message = f"canary of version {canary} rolled back: {why}"
    rollbacks = [*(status.rollbacks or []), Rollback(version=canary, reason=reason, message=message, at=stamp)]
    status.rollbacks, status.rolled_back_version, status.message = rollbacks[-MAX_ROLLBACKS:], canary, message
    plan.events.append(Event(event, message, "Warning"))
    wake_version(plan, obs, canary)
