"""`mlops-worker trial` shards and the refit, in-process against a real MLflow (sqlite under tmp, no mocks)."""

# The fixtures of test_worker_commands are imported to be shared; pytest passes them by parameter name.
# ruff: noqa: F811

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlops_operator import contract
from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.planning.trials import candidate_count
from mlops_operator.worker.sources import fingerprint
from mlops_operator.worker.trials import TrialTimeoutError, budget_rows, candidates, time_limit

from .test_worker_commands import Worker, iris_csv, pinned, tracking, training, worker  # noqa: F401

GRID = {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 10]}


def trial_env(worker: Worker, index: int, completions: int, **config: Any) -> None:
    raw = {"round": 0, "rounds": 1, "budget": 1.0, "candidates": None, "completions": completions,
           "parentJob": "search-refit", "timeoutSeconds": 60, **config}  # fmt: skip
    worker.monkeypatch.setenv(contract.ENV_TRIAL, json.dumps(raw))
    worker.monkeypatch.setenv(contract.ENV_COMPLETION_INDEX, str(index))


def trial_runs(client: MlflowClient, uid: str) -> list[Any]:
    exp = client.get_experiment_by_name(contract.EXPERIMENT_TRAINING)
    assert exp is not None
    clause = f"tags.`{contract.TAG_UID}` = '{uid}' and tags.`{contract.TAG_ROLE}` = 'trial'"
    return list(client.search_runs([exp.experiment_id], clause, max_results=100))


def search(uid: str, model: str, **trials: Any) -> str:
    return training(
        uid, model, estimator="sklearn.tree.DecisionTreeClassifier", params={"random_state": 0}, search=GRID,
        trials=trials or {"strategy": "grid", "parallelism": 2},
    )  # fmt: skip


def test_two_shards_log_every_candidate_once_under_one_parent(worker: Worker, iris_csv: Path) -> None:
    obj, dataset = search("tr-shards", "shard-model"), pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    for index in (0, 1):
        trial_env(worker, index, 2)
        code, last = worker("trial", obj, "search-trials-r0", dataset)
        assert code == 0, last
    runs = trial_runs(worker.client, "tr-shards")
    assert sorted(int(r.data.tags[contract.TAG_TRIAL_CANDIDATE]) for r in runs) == list(range(6))
    parents = {r.data.tags[contract.TAG_PARENT_RUN] for r in runs}
    (parent_id,) = parents
    parent = worker.client.get_run(parent_id)
    assert parent.data.tags[contract.TAG_ROLE] == "parent" and parent.data.tags[contract.TAG_JOB] == "search-refit"
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_SUCCEEDED
        folds = [run.data.metrics[f"cv_score_fold_{i}"] for i in range(3)]
        assert run.data.metrics[contract.CV_SCORE] == pytest.approx(sum(folds) / 3)
        assert run.data.metrics["budget_rows"] == 120  # every training row: 150 less the 30 held out
        assert json.loads(run.data.tags[contract.TAG_TRIAL_PARAMS]).keys() == GRID.keys()
        assert run.data.tags[contract.TAG_JOB] == "search-trials-r0"
    # Shard 0 took positions 0, 2, 4; a depth-1 tree scores worst on iris whatever its leaves.
    by_candidate = {int(r.data.tags[contract.TAG_TRIAL_CANDIDATE]): r for r in runs}
    depth_one = [
        c for c, r in by_candidate.items() if json.loads(r.data.tags[contract.TAG_TRIAL_PARAMS])["max_depth"] == 1
    ]
    assert max(by_candidate[c].data.metrics[contract.CV_SCORE] for c in depth_one) < 0.8

    # A retried pod (or a restarted operator's re-created Job) logs nothing twice.
    trial_env(worker, 0, 2)
    assert worker("trial", obj, "search-trials-r0", dataset)[0] == 0
    assert len(trial_runs(worker.client, "tr-shards")) == 6

    # The refit: the chosen params, no search, logged into the parent run and registered.
    worker.monkeypatch.delenv(contract.ENV_TRIAL)
    worker.monkeypatch.setenv(contract.ENV_PARAMS, json.dumps({"max_depth": 3, "min_samples_leaf": 1}))
    code, last = worker("train", obj, "search-refit", dataset)
    assert code == 0, last
    refit = worker.client.get_run(parent_id)
    assert refit.info.status == "FINISHED" and refit.data.tags[contract.TAG_REGISTERED_VERSION] == "1"
    assert json.loads(refit.data.tags[contract.TAG_BEST_PARAMS]) == {"max_depth": 3, "min_samples_leaf": 1}
    assert refit.data.params["max_depth"] == "3" and refit.data.metrics["accuracy"] > 0.8


def test_a_trial_interrupted_mid_way_is_taken_over(worker: Worker, iris_csv: Path) -> None:
    obj, dataset = search("tr-resume", "resume-model"), pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    trial_env(worker, 0, 1)
    assert worker("trial", obj, "resume-trials-r0", dataset)[0] == 0
    first = {r.data.tags[contract.TAG_TRIAL_CANDIDATE]: r.info.run_id for r in trial_runs(worker.client, "tr-resume")}
    # The pod died during candidate 2: its run is left RUNNING without a score.
    worker.client.update_run(first["2"], status="RUNNING")
    worker.client.delete_tag(first["2"], contract.TAG_OUTCOME)
    assert worker("trial", obj, "resume-trials-r0", dataset)[0] == 0
    again = trial_runs(worker.client, "tr-resume")
    assert len(again) == 6 and {r.info.run_id for r in again} == set(first.values())
    taken = worker.client.get_run(first["2"])
    assert taken.info.status == "FINISHED" and taken.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_SUCCEEDED


def test_a_halving_round_fits_its_survivors_on_a_share_of_the_rows(worker: Worker, iris_csv: Path) -> None:
    obj = search("tr-halve", "halve-model", strategy="halving", factor=3)
    dataset = pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    trial_env(worker, 0, 1, round=1, rounds=2, budget=1 / 3, candidates=[4, 5])
    assert worker("trial", obj, "halve-trials-r1", dataset)[0] == 0
    runs = trial_runs(worker.client, "tr-halve")
    assert sorted(r.data.tags[contract.TAG_TRIAL_CANDIDATE] for r in runs) == ["4", "5"]
    assert {r.data.tags[contract.TAG_TRIAL_ROUND] for r in runs} == {"1"}
    assert {r.data.metrics["budget_rows"] for r in runs} == {40}


def test_a_bad_candidate_is_a_permanent_error(worker: Worker, iris_csv: Path) -> None:
    obj = training(
        "tr-bad", "bad-model", estimator="sklearn.tree.DecisionTreeClassifier", search={"max_depth": [0, 2]},
        trials={"strategy": "grid"},
    )  # fmt: skip
    trial_env(worker, 0, 1)
    code, last = worker("trial", obj, "bad-trials-r0", pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes())))
    assert code == contract.EXIT_PERMANENT and "max_depth" in last
    (failed,) = trial_runs(worker.client, "tr-bad")
    assert failed.info.status == "FAILED" and failed.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_FAILED


def test_random_candidates_are_seeded_and_counted_alike() -> None:
    grid = {"a": list(range(10)), "b": list(range(10))}
    body = {"datasetRef": {"name": "d"}, "estimator": "sklearn.tree.DecisionTreeClassifier", "registeredModel": "m",
            "search": grid, "trials": {"strategy": "random", "maxTrials": 7}}  # fmt: skip
    spec = TrainingRunSpec.model_validate(body)
    first, second = candidates(spec), candidates(spec)
    assert first == second and len(first) == candidate_count(spec) == 7 and len({json.dumps(p) for p in first}) == 7
    other = TrainingRunSpec.model_validate({**body, "evaluation": {"seed": 7}})
    assert candidates(other) != first


def test_budget_rows_and_the_time_limit() -> None:
    assert (budget_rows(120, 1 / 27, 18), budget_rows(120, 1 / 3, 18), budget_rows(120, 1.0, 18)) == (18, 40, 120)
    started = time.monotonic()
    with pytest.raises(TrialTimeoutError), time_limit(1):
        time.sleep(5)
    assert time.monotonic() - started < 3
