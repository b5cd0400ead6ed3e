"""A TrainingRun's trial search (spec.trials): start round 0, follow each round's Indexed Job, refit the best.

    start_search(...)   the Dataset is Ready: round 0's Job and status.trials (counts, no best yet)
    plan_search(...)    each later pass: round r still running, round r+1's Job, the refit Job, or Failed

The arithmetic and the decision are in planning/trials.py; this module turns a `TrialStep` into status,
Jobs and Events. The refit is the ordinary training Job told the chosen params, so from there on the run
is planned exactly as one without a search.
"""

from __future__ import annotations

from datetime import datetime

from ..api.trainingrun import BestTrial, TrainingRunStatus, TrialsStatus
from .degraded import Problem, problem_text
from .observed import TrainingDataset, TrainingRunObserved
from .plan import Event, Meta, Plan, rfc3339
from .trainingjob import pinned_dataset, set_run_conditions, training_job, training_job_name
from .trials import MAX_CANDIDATES, TrialStep, candidate_count, next_step, round_sizes, trial_job

SEARCH_TOO_LARGE = "SearchTooLarge"


def start_search(
    plan: Plan, status: TrainingRunStatus, obs: TrainingRunObserved, dataset: TrainingDataset, version: str, stamp: str
) -> None:
    """Round 0's Indexed Job on the pinned version, and status.trials saying what the search will do."""
    meta, spec = obs.meta, obs.spec
    assert spec.trials is not None
    candidates = candidate_count(spec)
    if candidates > MAX_CANDIDATES:
        message = (
            f"search has {candidates} candidates, more than the {MAX_CANDIDATES} a trial search runs; "
            "use trials.strategy random with maxTrials, or a smaller grid"
        )
        status.phase, status.message, status.completion_time = "Failed", message, stamp
        set_run_conditions(status, meta, stamp, "False", SEARCH_TOO_LARGE, message)
        plan.events.append(Event(SEARCH_TOO_LARGE, message, "Warning"))
        return
    sizes = round_sizes(candidates, spec.trials)
    job = trial_job(obs.body, meta, spec, obs.worker, 0, (), pinned_dataset(dataset, version), training_job_name(meta))
    plan.creates.append(job)
    name = job["metadata"]["name"]
    status.dataset_version = version
    status.trials = TrialsStatus(
        strategy=spec.trials.strategy, rounds=len(sizes), candidates=candidates, total=sum(sizes), job_name=name
    )
    status.message = f"trial Job {name} created: {candidates} candidates in {len(sizes)} round(s)"
    set_run_conditions(status, meta, stamp, "Unknown", "TrialsStarted", status.message)
    shards = job["spec"]["completions"]
    plan.events.append(
        Event("TrialsStarted", f"{spec.trials.strategy} search: {status.message}, {shards} pod(s) in parallel")
    )


def plan_search(
    plan: Plan, status: TrainingRunStatus, obs: TrainingRunObserved, problems: list[Problem], now: datetime
) -> None:
    """The next step of a search under way, from its current round's Job and every trial run."""
    meta, spec, trials, stamp = obs.meta, obs.spec, status.trials, rfc3339(now)
    assert trials is not None and spec.trials is not None
    observed = obs.trial_job
    if observed is None or observed.job_error is not None:
        return  # the round's Job is not known: Degraded says why, nothing is created
    runs_read = observed.run_error is None
    step = next_step(meta, spec, trials.round, observed.job, observed.outcome, obs.trial_runs, runs_read, now)
    if runs_read:
        _record(trials, step)
    if step.action == "fail":
        _fail(plan, status, meta, step, stamp, observed.outcome.completion_time if observed.outcome else None)
        return
    status.phase = "Running" if observed.outcome and observed.outcome.state == "Running" else status.phase
    if step.action == "wait":
        status.message = step.message if not problems else f"{step.message} ({problem_text(problems)})"
        state = observed.outcome.state if observed.outcome else "Pending"
        set_run_conditions(status, meta, stamp, "Unknown", "Trials" + state, status.message)
        if step.requeue_after is not None:
            plan.requeue_after = step.requeue_after
        return
    dataset, version = obs.dataset, status.dataset_version
    if dataset is None or version is None:
        status.message = f"{step.message}; waiting for Dataset '{spec.dataset_ref.name}' to create the next Job"
        return
    if step.action == "run":
        pinned = pinned_dataset(dataset, version)
        job = trial_job(obs.body, meta, spec, obs.worker, step.round, obs.trial_runs, pinned, training_job_name(meta))
        plan.creates.append(job)
        if step.round != trials.round:
            round_text = f"round {step.round + 1}/{trials.rounds}: Job {job['metadata']['name']}"
            plan.events.append(Event("TrialRound", round_text))
        trials.round, trials.job_name = step.round, job["metadata"]["name"]
        status.phase, status.message = "Running", step.message
        set_run_conditions(status, meta, stamp, "Unknown", "TrialsRunning", status.message)
        return
    assert step.best is not None
    name = training_job_name(meta)
    plan.creates.append(training_job(obs, dataset, name, version, params=step.best.params))
    status.job_name = name
    status.message = f"{step.message}: Job {name}"
    set_run_conditions(status, meta, stamp, "Unknown", "JobCreated", status.message)
    plan.events.append(Event("JobCreated", f"refit Job {name} with {step.best.params} after {step.done} trials"))


def _record(trials: TrialsStatus, step: TrialStep) -> None:
    trials.done, trials.total = step.done, step.total
    best = step.best
    if best is not None and best.score is not None:
        trials.best = BestTrial(candidate=best.candidate, params=best.params, score=round(best.score, 6))


def _fail(plan: Plan, status: TrainingRunStatus, meta: Meta, step: TrialStep, stamp: str, ended: str | None) -> None:
    # A trial pod's own reason (deadline, memory) says what to change; any other pod failure is TrialsFailed.
    reason = step.reason if step.reason in (*_OWN_REASONS, "DeadlineExceeded", "OOMKilled") else "TrialsFailed"
    status.phase, status.message, status.completion_time = "Failed", step.message, ended or stamp
    set_run_conditions(status, meta, stamp, "False", reason, step.message)
    plan.events.append(Event(reason, step.message, "Warning"))


_OWN_REASONS = ("NoTrialScored", "TrialResultsMissing")
