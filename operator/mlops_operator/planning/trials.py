"""Trial searches as pods: the arithmetic of rounds and shards, the trial results in MLflow, the next step.

    candidate_count(spec)          grid points (grid, halving) or samples (random), without scikit-learn
    round_sizes(n, strategy, f)    candidates per round: [n] for grid/random; halving 48, 16, 6, 2 for f=3
    trial_results(runs)            each (round, candidate)'s result, duplicates folded
    next_step(...)                 wait, run round r, refit the best, or fail: decided from the round Job and runs

The operator image has no scikit-learn, so it never lists the candidates: it counts them, and the worker
generates them (ParameterGrid/ParameterSampler with the run's seed) and addresses them by index. A round's
candidates are all indices (round 0) or the survivors of the round before, derived again each pass from the
immutable results of finished rounds, so a restarted operator plans the same Job it planned before.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import contract
from ..api.trainingrun import TrainingRunSpec, Trials
from ..contract import LABEL_TRAINING_RUN
from ..integrations.mlflow import RunInfo
from .jobs import JobOutcome, WorkerSettings, worker_job
from .plan import Meta, Obj, dns_name, parse_time

# Beyond this many candidates one status read of every trial run gets too large; the run is refused instead.
MAX_CANDIDATES = 5000
MAX_TRIAL_RUNS = 10000  # one search_runs page: halving's rounds sum to under 1.5 x the candidates
TRIALS_REFRESH_SECONDS = 10.0  # how often a running round's done count and best-so-far are re-read
RESULTS_RETRY_SECONDS = 3.0
RESULTS_GRACE_SECONDS = 120.0  # a finished round whose trial runs stay missing this long has lost them
LABEL_TRIAL_ROUND = "mlops.dev/trial-round"


def candidate_count(spec: TrainingRunSpec) -> int:
    """How many candidates round 0 has: the grid's size, or maxTrials of it for random (ParameterSampler
    returns the whole grid when asked for more points than it has)."""
    size = math.prod(len(values) for values in (spec.search or {}).values())
    trials = spec.trials
    if trials is not None and trials.strategy == "random" and trials.max_trials is not None:
        return min(size, trials.max_trials)
    return size


def halving_rounds(candidates: int, factor: int) -> int:
    """1 + floor(log_factor(candidates)), as HalvingGridSearchCV's n_required_iterations (in integers)."""
    rounds, left = 1, candidates
    while left >= factor:
        left //= factor
        rounds += 1
    return rounds


def round_sizes(candidates: int, trials: Trials) -> list[int]:
    """Candidates per round: each halving round keeps ceil(n / factor) of the one before."""
    if trials.strategy != "halving":
        return [candidates]
    sizes = [candidates]
    for _ in range(halving_rounds(candidates, trials.factor) - 1):
        sizes.append(math.ceil(sizes[-1] / trials.factor))
    return sizes


def budget_fraction(round_index: int, rounds: int, factor: int) -> float:
    """The share of training rows a round trains on: factor^(r - last), so the last round uses every row."""
    return float(factor) ** (round_index - (rounds - 1))


def trial_job_name(meta: Meta, round_index: int) -> str:
    """Round r's Indexed Job; short enough that `<job>-<index>` pod hostnames stay DNS labels."""
    return dns_name(meta.name, f"trials-r{round_index}", meta.uid[:8], max_length=52)


@dataclass(frozen=True)
class TrialResult:
    """One trial as its child run says: finished (scored, or timed out with no score) or not yet."""

    round: int
    candidate: int
    finished: bool
    score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


def trial_results(runs: tuple[RunInfo, ...]) -> dict[tuple[int, int], TrialResult]:
    """Each (round, candidate)'s result; of duplicates (a retried pod) a finished one wins."""
    results: dict[tuple[int, int], TrialResult] = {}
    for run in runs:
        try:
            key = (int(run.tags[contract.TAG_TRIAL_ROUND]), int(run.tags[contract.TAG_TRIAL_CANDIDATE]))
            params = json.loads(run.tags.get(contract.TAG_TRIAL_PARAMS) or "{}")
        except (KeyError, ValueError):
            continue  # not a trial this operator's workers wrote
        outcome = run.tags.get(contract.TAG_OUTCOME)
        finished = run.status == "FINISHED" and outcome in (contract.OUTCOME_SUCCEEDED, contract.OUTCOME_TIMEOUT)
        score = run.metrics.get(contract.CV_SCORE) if outcome == contract.OUTCOME_SUCCEEDED else None
        result = TrialResult(key[0], key[1], finished, score, params if isinstance(params, dict) else {})
        if key not in results or (finished and not results[key].finished):
            results[key] = result
    return results


def ranked(results: list[TrialResult]) -> list[TrialResult]:
    """Best first: greatest mean CV score, unscored (timed out) last, ties to the lower candidate index."""
    return sorted(results, key=lambda r: (r.score is None, -(r.score or 0.0), r.candidate))


def round_candidates(sizes: list[int], results: dict[tuple[int, int], TrialResult]) -> tuple[list[list[int]], bool]:
    """The candidates of round 0 and of every round whose predecessor finished, and whether the last of
    those finished too (then, unless it is the search's last round, the next is listed)."""
    rounds = [list(range(sizes[0]))]
    while True:
        current = len(rounds) - 1
        finished = [r for c in rounds[-1] if (r := results.get((current, c))) is not None and r.finished]
        if len(finished) < len(rounds[-1]):
            return rounds, False
        if current + 1 == len(sizes):
            return rounds, True
        rounds.append(sorted(r.candidate for r in ranked(finished)[: sizes[current + 1]]))


@dataclass(frozen=True)
class TrialStep:
    """What a trial search does next: `wait`, `run` round `round` (its Job), `refit` `best`, or `fail`."""

    action: str  # wait | run | refit | fail
    message: str
    done: int
    total: int
    round: int
    best: TrialResult | None = None
    job: Obj | None = None
    reason: str = ""
    requeue_after: float | None = None


def next_step(
    meta: Meta,
    spec: TrainingRunSpec,
    current_round: int,
    job: Obj | None,
    outcome: JobOutcome | None,
    runs: tuple[RunInfo, ...],
    runs_read: bool,
    now: datetime,
) -> TrialStep:
    """From round `current_round`'s Job and the trial runs: the step, the counts and the best so far."""
    assert spec.trials is not None
    sizes = round_sizes(candidate_count(spec), spec.trials)
    results = trial_results(runs)
    rounds, complete = round_candidates(sizes, results)
    done, total = sum(1 for r in results.values() if r.finished and r.round < len(sizes)), sum(sizes)
    best = _best_so_far(results, len(rounds) - 1)
    progress = f"round {current_round + 1}/{len(sizes)}, {done}/{total} trials done"
    if best is not None and best.score is not None:
        progress += f", best {best.score:.4f}"

    def step(action: str, message: str, **extra: Any) -> TrialStep:
        return TrialStep(action, message, done, total, current_round, best, **extra)

    if job is None or outcome is None:  # not created yet, or gone before its results were read: (re)create it
        return step("run", f"trial {progress}")
    if outcome.state in ("Pending", "Running"):
        return step("wait", f"trial {progress}", requeue_after=TRIALS_REFRESH_SECONDS)
    if outcome.state == "Failed":
        why = outcome.message or "a trial pod failed"
        return step("fail", f"trial round {current_round + 1} failed: {why}", reason=outcome.reason or "TrialsFailed")
    if not runs_read:
        return step("wait", f"trial round {current_round + 1} finished; its results cannot be read yet")
    if current_round < len(rounds) - 1:  # this round's results decided the next one's candidates
        return TrialStep("run", f"trial {progress}", done, total, current_round + 1, best)
    if current_round == len(rounds) - 1 and complete:  # the last round: only a refit remains
        if best is None or best.score is None:
            return step("fail", "no trial produced a score (every one timed out)", reason="NoTrialScored")
        return step("refit", f"refit the best candidate {best.candidate} (mean CV score {best.score:.4f})")
    expected = len(rounds[current_round]) if current_round < len(rounds) else sizes[current_round]
    seen = sum(1 for r in results.values() if r.round == current_round and r.finished)
    missing = max(expected - seen, 1)
    ended = parse_time(outcome.completion_time)
    if ended is not None and (now - ended).total_seconds() > RESULTS_GRACE_SECONDS:
        message = f"trial round {current_round + 1} finished but {missing} of its trial runs are not in MLflow"
        return step("fail", message, reason="TrialResultsMissing")
    return step(
        "wait",
        f"trial round {current_round + 1} finished; waiting for {missing} trial result(s)",
        requeue_after=RESULTS_RETRY_SECONDS,
    )


def _best_so_far(results: dict[tuple[int, int], TrialResult], round_index: int) -> TrialResult | None:
    # Scores of different budgets do not compare: the best of the newest round that has any.
    for r in range(round_index, -1, -1):
        scored = ranked([t for t in results.values() if t.round == r and t.score is not None])
        if scored:
            return scored[0]
    return None


def trial_job(
    obs_body: Obj,
    meta: Meta,
    spec: TrainingRunSpec,
    settings: WorkerSettings,
    round_index: int,
    runs: tuple[RunInfo, ...],
    dataset_env: str,
    parent_job: str,
) -> Obj:
    """Round r's Indexed Job: one index per shard, index i evaluating positions p with p % shards == i."""
    assert spec.trials is not None
    trials = spec.trials
    sizes = round_sizes(candidate_count(spec), trials)
    rounds, _ = round_candidates(sizes, trial_results(runs))
    candidates = rounds[round_index] if round_index < len(rounds) else []
    shards = max(1, min(trials.parallelism, len(candidates)))
    config = {
        "round": round_index,
        "rounds": len(sizes),
        "budget": budget_fraction(round_index, len(sizes), trials.factor) if trials.strategy == "halving" else 1.0,
        "candidates": None if round_index == 0 else candidates,
        "completions": shards,
        "parentJob": parent_job,
        "timeoutSeconds": trials.trial_timeout_seconds,
    }
    name = trial_job_name(meta, round_index)
    job = worker_job(
        owner=obs_body,
        name=name,
        command="trial",
        settings=settings,
        extra_env={
            contract.ENV_DATASET: dataset_env,
            contract.ENV_TRIAL: json.dumps(config, separators=(",", ":"), sort_keys=True),
        },
        resources=spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True) if spec.resources else None,
        backoff_limit=spec.backoff_limit,
        active_deadline_seconds=spec.active_deadline_seconds,
        ttl_seconds_after_finished=None,
        pod=spec.pod,
    )
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        labels[LABEL_TRIAL_ROUND] = str(round_index)
        labels[LABEL_TRAINING_RUN] = meta.name[:63].strip("-_.")
    job["spec"].update({"completionMode": "Indexed", "completions": shards, "parallelism": shards})
    return job
