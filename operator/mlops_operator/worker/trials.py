"""`mlops-worker trial`: this pod's share of a trial round, each candidate cross-validated into an MLflow child run.

The candidates are scikit-learn's ParameterGrid (grid, halving) or ParameterSampler with the run's seed
(random), so the worker lists them in the order the operator counted and addresses them by index. Index i
of a round's Indexed Job evaluates the positions p of the round's candidates with p % completions == i.
Every trial of a round sees the same rows and the same folds: the held-out split of the refit (never seen
by the search), its first `budget` share in a seeded permutation, and (Stratified)KFold shuffled with the seed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import contract
from ..api.trainingrun import TrainingRunSpec
from . import tracking
from .context import WorkerEnv, read_env
from .errors import PermanentError, RetryableError, WorkerError, describe
from .estimators import CLASSIFICATION, EstimatorClass, build_estimator, resolve_estimator
from .modeling import CV_FOLDS, TrainingData, make_model, prepare_data, primary_metric, scorer, split
from .profiling import column_kinds
from .train import load_pinned, trainingrun_spec
from .validate import dataset_spec

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class TrialConfig:
    """What the operator told this round's pods (contract.ENV_TRIAL), and which shard this pod is."""

    round: int
    rounds: int
    budget: float  # share of the training rows each trial of this round fits on
    candidates: list[int] | None  # indices into the candidate list; None: all of them
    completions: int
    parent_job: str
    timeout_seconds: int
    index: int


def trial_config(environ: Mapping[str, str]) -> TrialConfig:
    """Parse MLOPS_TRIAL and JOB_COMPLETION_INDEX; a malformed value is a permanent error."""
    try:
        raw = json.loads(environ.get(contract.ENV_TRIAL) or "")
        index = int(environ.get(contract.ENV_COMPLETION_INDEX, ""))
        config = TrialConfig(
            round=int(raw["round"]),
            rounds=int(raw["rounds"]),
            budget=float(raw["budget"]),
            candidates=None if raw.get("candidates") is None else [int(c) for c in raw["candidates"]],
            completions=int(raw["completions"]),
            parent_job=str(raw["parentJob"]),
            timeout_seconds=int(raw["timeoutSeconds"]),
            index=index,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise PermanentError(
            f"env {contract.ENV_TRIAL} and {contract.ENV_COMPLETION_INDEX} must describe a trial round: {error}"
        ) from error
    if not 0 <= index < config.completions or not 0 < config.budget <= 1:
        raise PermanentError(f"trial shard {index} of {config.completions} with budget {config.budget} is out of range")
    return config


def candidates(spec: TrainingRunSpec) -> list[dict[str, Any]]:
    """Every candidate of the search, in the order both sides count (sorted keys, as ParameterGrid does)."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = {key: list(values) for key, values in (spec.search or {}).items()}
    trials = spec.trials
    if trials is not None and trials.strategy == "random" and trials.max_trials is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The total space of parameters")  # asked for more than exist
            sampled = ParameterSampler(grid, n_iter=trials.max_trials, random_state=spec.evaluation.seed)
            return [dict(point) for point in sampled]
    return [dict(point) for point in ParameterGrid(grid)]


def shard(config: TrialConfig, count: int) -> list[int]:
    """The candidate indices this pod evaluates: positions p of the round with p % completions == index."""
    listed = config.candidates if config.candidates is not None else list(range(count))
    outside = [c for c in listed if not 0 <= c < count]
    if outside:
        raise PermanentError(f"trial candidates {outside[:5]} are not among the search's {count}")
    return [c for position, c in enumerate(listed) if position % config.completions == config.index]


def budget_rows(rows: int, fraction: float, minimum: int) -> int:
    """Rows a trial fits on: its share of the training rows, at least what CV needs, at most all of them."""
    return min(rows, max(math.ceil(rows * fraction), minimum))


def folds(task: str, seed: int) -> Any:
    """The one CV split of every trial: shuffled with the run's seed, stratified for classifiers."""
    from sklearn.model_selection import KFold, StratifiedKFold

    kind = StratifiedKFold if task == CLASSIFICATION else KFold
    return kind(n_splits=CV_FOLDS, shuffle=True, random_state=seed)


class TrialTimeoutError(Exception):
    """A trial ran longer than trials.trialTimeoutSeconds."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise TrialTimeoutError in the main thread after `seconds` (the worker is single-threaded Python)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TrialTimeoutError(f"over {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cross_validate_candidate(
    estimator: EstimatorClass, base: dict[str, Any], point: dict[str, Any], data: TrainingData, rows: Any, cv: Any,
    scoring: str,
) -> list[float]:  # fmt: skip
    """Per-fold scores of one candidate (greater is better); scikit-learn's refusals are permanent."""
    from sklearn.model_selection import cross_val_score

    model = make_model(build_estimator(estimator, {**base, **point}), data)
    x, y = rows
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            scores = cross_val_score(model, x, y, cv=cv, scoring=scoring, error_score="raise")
    except (ValueError, TypeError) as error:
        raise PermanentError(f"{estimator.name} with {point}: {' '.join(str(error).split())}") from error
    return [float(s) for s in scores]


def find_trial_run(mlflow_client: MlflowClient, experiment_id: str, uid: str, round_index: int, candidate: int) -> Any:
    """This trial's child run if an earlier pod (or a retry of this one) created it: finished runs first."""
    keys = {
        contract.TAG_UID: uid,
        contract.TAG_ROLE: contract.ROLE_TRIAL,
        contract.TAG_TRIAL_ROUND: str(round_index),
        contract.TAG_TRIAL_CANDIDATE: str(candidate),
    }
    clause = " and ".join(f"tags.`{k}` = {tracking.quote(v)}" for k, v in keys.items())
    runs = mlflow_client.search_runs([experiment_id], clause, max_results=10)
    return min(runs, key=lambda r: (r.info.status != "FINISHED", r.info.start_time), default=None)


def run_one(
    mlflow_client: MlflowClient, experiment_id: str, env: WorkerEnv, config: TrialConfig, parent: str, candidate: int,
    point: dict[str, Any], rows: Any, evaluate: Any,
) -> str:  # fmt: skip
    """One trial into its child run, unless it already finished there; returns what the log line says."""
    found = find_trial_run(mlflow_client, experiment_id, env.obj.uid, config.round, candidate)
    if found is not None and found.info.status == "FINISHED":
        return f"candidate {candidate}: done before ({found.data.tags.get(contract.TAG_OUTCOME)})"
    if found is not None:
        run_id = found.info.run_id  # a pod died mid-trial: this run is taken over, not duplicated
    else:
        tags = {
            **env.obj.identity_tags(env.job_name),
            contract.TAG_PARENT_RUN: parent,
            contract.TAG_ROLE: contract.ROLE_TRIAL,
            contract.TAG_TRIAL_ROUND: str(config.round),
            contract.TAG_TRIAL_CANDIDATE: str(candidate),
            contract.TAG_TRIAL_PARAMS: json.dumps(point, sort_keys=True, default=str),
        }
        name = f"{env.job_name}-c{candidate}"
        run_id = mlflow_client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    for key, value in point.items():
        mlflow_client.log_param(run_id, key, tracking.param_value(value))
    mlflow_client.log_metric(run_id, "budget_fraction", config.budget)
    mlflow_client.log_metric(run_id, "budget_rows", len(rows))
    started = time.monotonic()
    try:
        with time_limit(config.timeout_seconds):
            scores = evaluate(point)
    except TrialTimeoutError:
        mlflow_client.set_tag(run_id, contract.TAG_OUTCOME, contract.OUTCOME_TIMEOUT)
        mlflow_client.log_metric(run_id, "fit_seconds", time.monotonic() - started)
        mlflow_client.set_terminated(run_id, status="FINISHED")
        return f"candidate {candidate}: timed out after {config.timeout_seconds}s"
    except WorkerError as error:
        tracking.fail_run(mlflow_client, run_id, describe(error))
        raise
    for fold, score in enumerate(scores):
        mlflow_client.log_metric(run_id, f"{contract.CV_SCORE}_fold_{fold}", score)
    mean = float(np.mean(scores))
    mlflow_client.log_metric(run_id, contract.CV_SCORE, mean)
    mlflow_client.log_metric(run_id, "fit_seconds", time.monotonic() - started)
    mlflow_client.set_tag(run_id, contract.TAG_OUTCOME, contract.OUTCOME_SUCCEEDED)
    mlflow_client.set_terminated(run_id, status="FINISHED")
    return f"candidate {candidate}: {contract.CV_SCORE} {mean:.4f}"


def run_trials(environ: Mapping[str, str] | None = None) -> int:
    """The `trial` command: exit 0 once this shard's trials are in MLflow, 2 for a spec/data problem, 1 else."""
    environ = os.environ if environ is None else environ
    env = read_env("TrainingRun", environ)
    spec = trainingrun_spec(env.obj.spec, env.obj.name)
    config = trial_config(environ)
    assert env.dataset is not None
    ds_spec = dataset_spec(env.dataset.spec, f"Dataset '{env.dataset.name}'")
    estimator = resolve_estimator(spec.estimator)
    points = candidates(spec)
    mine = shard(config, len(points))
    try:
        mlflow_client = tracking.client(env.tracking_uri)
        experiment_id = tracking.ensure_experiment(mlflow_client, contract.EXPERIMENT_TRAINING)
        parent = tracking.ensure_parent_run(
            mlflow_client, contract.EXPERIMENT_TRAINING, config.parent_job, env.obj.identity_tags(config.parent_job)
        )
    except Exception as error:
        raise tracking.as_worker_error(error, "find the search's parent run") from error
    frame, _ = load_pinned(env, ds_spec)
    assert ds_spec.target is not None
    data = prepare_data(frame, ds_spec.target, column_kinds(frame, ds_spec), estimator.task)
    x_train, _, y_train, _ = split(data, estimator.task, spec.evaluation.test_fraction, spec.evaluation.seed)
    classes = len({str(label) for label in data.y})
    # HalvingGridSearchCV's smallest budget: two rows per fold (per class, for classifiers).
    minimum = 2 * CV_FOLDS * (classes if estimator.task == CLASSIFICATION else 1)
    rows = budget_rows(len(y_train), config.budget, minimum)
    order = np.random.RandomState(spec.evaluation.seed).permutation(len(y_train))[:rows]
    subset = (x_train[order], y_train[order])
    scoring = scorer(primary_metric(estimator.task, spec.evaluation.primary_metric, estimator), classes)
    cv = folds(estimator.task, spec.evaluation.seed)
    base = dict(spec.params or {})

    def evaluate(point: dict[str, Any]) -> list[float]:
        return cross_validate_candidate(estimator, base, point, data, subset, cv, scoring)

    print(f"round {config.round + 1}/{config.rounds}, shard {config.index}: {len(mine)} trial(s) on {rows} rows")
    for candidate in mine:
        point = points[candidate]
        try:
            line = run_one(mlflow_client, experiment_id, env, config, parent, candidate, point, order, evaluate)
        except WorkerError:
            raise
        except Exception as error:
            raise _classify(error) from error
        print(line, flush=True)
    return 0


def _classify(error: Exception) -> WorkerError:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return tracking.as_worker_error(error, "record a trial")
    return RetryableError(f"a trial crashed: {describe(error)}")
