"""Trial searches planned on plain data: round arithmetic, sharding, halving selection, status, restarts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from mlops_operator import contract
from mlops_operator.api.trainingrun import TrainingRunSpec, Trials
from mlops_operator.integrations.mlflow import MlflowError, RunInfo
from mlops_operator.planning.jobs import JobOutcome
from mlops_operator.planning.observed import TrainingRunObserved, WorkerJobObserved
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.trainingrun import plan_trainingrun, training_job_name
from mlops_operator.planning.trials import (
    budget_fraction,
    candidate_count,
    halving_rounds,
    round_sizes,
    trial_job_name,
    trial_results,
)
from pydantic import ValidationError

from .builders import observe_trainingrun

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
GRID_48 = {"max_depth": [1, 2, 3, 4, 5, 6], "min_samples_leaf": [1, 2, 4, 8], "criterion": ["gini", "entropy"]}
READY = {"phase": "Ready", "version": "sha256:abc", "lastChecked": "2026-12-01T11:00:00Z"}


def dataset() -> dict[str, Any]:
    meta = {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1}
    spec = {"source": {"uri": "file:///d/iris.csv", "format": "csv"}, "target": "species"}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "Dataset", "metadata": meta, "spec": spec, "status": READY}


def trainingrun(trials: dict[str, Any] | None, status: dict[str, Any] | None = None, grid: Any = None) -> dict:
    spec: dict[str, Any] = {
        "datasetRef": {"name": "iris"},
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "search": GRID_48 if grid is None else grid,
        "registeredModel": "iris",
        "pod": {"nodeSelector": {"pool": "train"}},
    }
    if trials is not None:
        spec["trials"] = trials
    meta = {"namespace": "ns", "name": "search", "uid": "0123456789ab", "generation": 1}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "TrainingRun", "metadata": meta, "spec": spec,
            "status": status or {}}  # fmt: skip


def trial_run(round_index: int, candidate: int, score: float | None, status: str = "FINISHED") -> RunInfo:
    outcome = contract.OUTCOME_SUCCEEDED if score is not None else contract.OUTCOME_TIMEOUT
    tags = {
        contract.TAG_TRIAL_ROUND: str(round_index),
        contract.TAG_TRIAL_CANDIDATE: str(candidate),
        contract.TAG_TRIAL_PARAMS: json.dumps({"max_depth": candidate}),
    }
    if status == "FINISHED":
        tags[contract.TAG_OUTCOME] = outcome
    metrics = {contract.CV_SCORE: score} if score is not None else {}
    return RunInfo(run_id=f"r{round_index}-{candidate}", status=status, metrics=metrics, tags=tags)


def searching(
    body: dict[str, Any],
    round_index: int,
    outcome: JobOutcome | None,
    runs: tuple[RunInfo, ...] = (),
    run_error: MlflowError | None = None,
) -> TrainingRunObserved:
    """A pass during the search: no refit Job yet, round `round_index`'s Job as `outcome` says, the trial runs."""
    meta = Meta.of(body)
    name = trial_job_name(meta, round_index)
    job = None if outcome is None else {"metadata": {"name": name}, "status": {}}
    observed = WorkerJobObserved(name, job, outcome, run_error=run_error)
    return dataclasses.replace(observe_trainingrun(body, dataset()), trial_job=observed, trial_runs=runs)


def started(trials: dict[str, Any], grid: Any = None) -> dict[str, Any]:
    """The status after round 0 was created, as the planner wrote it."""
    plan = plan_trainingrun(observe_trainingrun(trainingrun(trials, grid=grid), dataset()), NOW)
    return dict(plan.status)


def env_of(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


# -- arithmetic -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "factor", "sizes"),
    [(48, 3, [48, 16, 6, 2]), (1, 3, [1]), (2, 3, [2]), (3, 3, [3, 1]), (9, 3, [9, 3, 1]), (10, 2, [10, 5, 3, 2])],
    ids=["48-by-3", "one", "fewer-than-factor", "exactly-factor", "power", "halves"],
)
def test_halving_round_sizes(candidates: int, factor: int, sizes: list[int]) -> None:
    assert round_sizes(candidates, Trials(strategy="halving", factor=factor)) == sizes
    assert halving_rounds(candidates, factor) == len(sizes)


def test_halving_rounds_match_scikit_learn() -> None:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.RandomState(0)
    x, y = rng.rand(600, 3), rng.randint(0, 2, 600)
    search = HalvingGridSearchCV(DecisionTreeClassifier(), GRID_48, factor=3, min_resources="exhaust", cv=3).fit(x, y)
    assert round_sizes(48, Trials(strategy="halving")) == list(search.n_candidates_)
    # The same budgets but for rounding: scikit-learn floors the smallest (600 // 27) and multiplies it up,
    # so its last round leaves 6 rows out; fractions of the rows give every row to the last round.
    assert list(search.n_resources_) == [22, 66, 198, 594]
    assert [round(budget_fraction(r, 4, 3) * 600) for r in range(4)] == [22, 67, 200, 600]


def test_candidate_counts_agree_with_the_worker_generators() -> None:
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = TrainingRunSpec.model_validate(trainingrun({"strategy": "grid"})["spec"])
    assert candidate_count(grid) == len(ParameterGrid(GRID_48)) == 48
    sampled = TrainingRunSpec.model_validate(trainingrun({"strategy": "random", "maxTrials": 10})["spec"])
    assert candidate_count(sampled) == len(list(ParameterSampler(GRID_48, n_iter=10, random_state=42))) == 10
    more = TrainingRunSpec.model_validate(trainingrun({"strategy": "random", "maxTrials": 100})["spec"])
    assert candidate_count(more) == 48  # ParameterSampler gives the whole grid when asked for more


@pytest.mark.parametrize(
    ("trials", "message"),
    [
        ({"strategy": "grid", "maxTrials": 5}, "maxTrials applies only to strategy random"),
        ({"strategy": "random"}, "strategy random needs maxTrials"),
        ({"parallelism": 0}, "greater than or equal to 1"),
        ({"parallelism": 33}, "less than or equal to 32"),
    ],
    ids=["max-trials-on-grid", "random-without-max", "parallelism-zero", "parallelism-too-high"],
)
def test_invalid_trials_are_refused(trials: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingRunSpec.model_validate(trainingrun(trials)["spec"])


def test_trials_need_a_grid() -> None:
    spec = trainingrun({"strategy": "grid"})["spec"]
    del spec["search"]
    with pytest.raises(ValidationError, match="trials needs a search grid"):
        TrainingRunSpec.model_validate(spec)


# -- planning ---------------------------------------------------------------------------------------


def test_without_trials_the_search_runs_in_the_one_training_pod() -> None:
    plan = plan_trainingrun(observe_trainingrun(trainingrun(None), dataset()), NOW)
    (job,) = plan.creates
    assert job["metadata"]["name"] == training_job_name(Meta.of(trainingrun(None)))
    assert "completionMode" not in job["spec"] and contract.ENV_TRIAL not in env_of(job)
    assert contract.ENV_PARAMS not in env_of(job) and plan.status.get("trials") is None


def test_grid_starts_one_indexed_job_sharded_by_parallelism() -> None:
    body = trainingrun({"strategy": "grid", "parallelism": 2})
    plan = plan_trainingrun(observe_trainingrun(body, dataset()), NOW)
    (job,) = plan.creates
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert job["metadata"]["name"] == trial_job_name(Meta.of(body), 0) == plan.status["trials"]["jobName"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "0123456789ab"
    assert job["metadata"]["labels"]["mlops.dev/owner-kind"] == "TrainingRun"
    assert spec["template"]["spec"]["nodeSelector"] == {"pool": "train"}  # spec.pod, as the training Job
    assert spec["template"]["spec"]["containers"][0]["command"] == ["mlops-worker", "trial"]
    assert "ttlSecondsAfterFinished" not in spec  # set once the run's result is recorded
    config = json.loads(env_of(job)[contract.ENV_TRIAL])
    assert config == {
        "round": 0, "rounds": 1, "budget": 1.0, "candidates": None, "completions": 2,
        "parentJob": training_job_name(Meta.of(body)), "timeoutSeconds": 600,
    }  # fmt: skip
    assert json.loads(env_of(job)[contract.ENV_DATASET])["status"] == {"version": "sha256:abc"}
    trials = plan.status["trials"]
    assert (trials["strategy"], trials["rounds"], trials["done"], trials["total"]) == ("grid", 1, 0, 48)
    assert plan.status["phase"] == "Pending" and [e.reason for e in plan.events] == ["TrialsStarted"]


def test_shards_never_outnumber_candidates() -> None:
    plan = plan_trainingrun(
        observe_trainingrun(trainingrun({"parallelism": 8}, grid={"max_depth": [1, 2, 3]}), dataset()), NOW
    )
    assert (plan.creates[0]["spec"]["completions"], plan.creates[0]["spec"]["parallelism"]) == (3, 3)


def test_a_running_round_shows_done_total_and_the_best_so_far() -> None:
    status = started({"parallelism": 2})
    body = trainingrun({"parallelism": 2}, status)
    runs = (trial_run(0, 0, 0.8), trial_run(0, 5, 0.95), trial_run(0, 7, None), trial_run(0, 9, 0.9, "RUNNING"))
    plan = plan_trainingrun(searching(body, 0, JobOutcome("Running"), runs), NOW)
    trials = plan.status["trials"]
    assert (trials["done"], trials["total"]) == (3, 48)
    assert trials["best"] == {"candidate": 5, "params": {"max_depth": 5}, "score": 0.95}
    assert plan.status["phase"] == "Running" and plan.requeue_after == 10.0
    assert not plan.creates and "3/48 trials done" in plan.status["message"]


def test_grid_done_refits_the_best_candidate() -> None:
    status = started({"parallelism": 2})
    body = trainingrun({"parallelism": 2}, status)
    runs = tuple(trial_run(0, c, 0.5 + c / 100) for c in range(48))
    plan = plan_trainingrun(
        searching(body, 0, JobOutcome("Succeeded", completion_time="2026-12-01T11:59:00Z"), runs), NOW
    )
    (job,) = plan.creates
    assert job["metadata"]["name"] == training_job_name(Meta.of(body)) == plan.status["jobName"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["mlops-worker", "train"]
    assert json.loads(env_of(job)[contract.ENV_PARAMS]) == {"max_depth": 47}
    assert "completionMode" not in job["spec"]
    assert plan.status["trials"]["done"] == 48 and plan.status["trials"]["best"]["candidate"] == 47


def test_halving_keeps_the_top_third_and_grows_the_budget() -> None:
    trials = {"strategy": "halving", "parallelism": 2}
    status = started(trials)
    assert (status["trials"]["rounds"], status["trials"]["total"]) == (4, 72)
    body = trainingrun(trials, status)
    # Scores fall with the index but odd candidates score best: the survivors are the 16 best odd ones.
    runs = tuple(trial_run(0, c, (1.0 if c % 2 else 0.0) - c / 1000) for c in range(48))
    ended = JobOutcome("Succeeded", completion_time="2026-12-01T11:59:00Z")
    plan = plan_trainingrun(searching(body, 0, ended, runs), NOW)
    (job,) = plan.creates
    assert job["metadata"]["name"] == trial_job_name(Meta.of(body), 1) == plan.status["trials"]["jobName"]
    config = json.loads(env_of(job)[contract.ENV_TRIAL])
    assert config["candidates"] == list(range(1, 32, 2)) and config["budget"] == pytest.approx(1 / 9)
    assert job["metadata"]["labels"]["mlops.dev/trial-round"] == "1"
    assert plan.status["trials"]["round"] == 1 and [e.reason for e in plan.events] == ["TrialRound"]
    # A restart before the status write: the same pass again plans the very same Job (creates are by name).
    again = plan_trainingrun(searching(body, 0, ended, runs), NOW)
    assert again.creates == plan.creates


def test_halving_last_round_refits_its_best_only() -> None:
    trials = {"strategy": "halving"}
    body = trainingrun(trials, started(trials))
    runs = [trial_run(0, c, c / 100) for c in range(48)]  # round 0 keeps 32..47
    runs += [trial_run(1, c, c / 100) for c in range(32, 48)]  # keeps 42..47
    runs += [trial_run(2, c, c / 100) for c in range(42, 48)]  # keeps 46, 47
    runs += [trial_run(3, 46, 0.99), trial_run(3, 47, 0.5)]  # on every row 46 wins
    status = body["status"] | {"trials": body["status"]["trials"] | {"round": 3}}
    plan = plan_trainingrun(
        searching(trainingrun(trials, status), 3, JobOutcome("Succeeded", completion_time="2026-12-01T11:59:00Z"),
                  tuple(runs)), NOW,
    )  # fmt: skip
    (job,) = plan.creates
    assert json.loads(env_of(job)[contract.ENV_PARAMS]) == {"max_depth": 46}
    assert plan.status["trials"]["done"] == plan.status["trials"]["total"] == 72


def test_duplicate_trial_runs_count_once_and_a_finished_one_wins() -> None:
    results = trial_results((trial_run(0, 3, None, "RUNNING"), trial_run(0, 3, 0.7), trial_run(0, 3, None, "RUNNING")))
    assert list(results) == [(0, 3)] and results[(0, 3)].finished and results[(0, 3)].score == 0.7


def test_a_deleted_round_job_is_created_again() -> None:
    status = started({"parallelism": 2})
    plan = plan_trainingrun(searching(trainingrun({"parallelism": 2}, status), 0, None, (trial_run(0, 0, 0.5),)), NOW)
    assert [j["metadata"]["name"] for j in plan.creates] == [status["trials"]["jobName"]]
    assert plan.status["trials"]["done"] == 1  # what the first Job's pods logged still counts


def test_a_failed_round_fails_the_run() -> None:
    status = started({})
    outcome = JobOutcome("Failed", reason="PodFailurePolicy", message="DecisionTreeClassifier: max_depth must be > 0")
    plan = plan_trainingrun(searching(trainingrun({}, status), 0, outcome), NOW)
    assert plan.status["phase"] == "Failed" and "max_depth must be" in plan.status["message"]
    assert not plan.creates and [e.reason for e in plan.events] == ["TrialsFailed"]


def test_unreadable_trial_runs_decide_nothing() -> None:
    status = started({})
    observed = searching(trainingrun({}, status), 0, JobOutcome("Succeeded"), run_error=MlflowError("down"))
    plan = plan_trainingrun(observed, NOW)
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and not plan.creates and plan.status["phase"] != "Failed"
    assert plan.status["trials"]["done"] == 0


def test_missing_results_wait_then_fail() -> None:
    status = started({})
    ended = NOW - timedelta(seconds=30)
    outcome = JobOutcome("Succeeded", completion_time=ended.strftime("%Y-%m-%dT%H:%M:%SZ"))
    runs = tuple(trial_run(0, c, 0.5) for c in range(47))
    waiting = plan_trainingrun(searching(trainingrun({}, status), 0, outcome), NOW)
    assert not waiting.creates and waiting.requeue_after == 3.0
    plan = plan_trainingrun(searching(trainingrun({}, status), 0, outcome, runs), NOW + timedelta(minutes=5))
    assert plan.status["phase"] == "Failed" and "1 of its trial runs" in plan.status["message"]


def test_a_search_too_large_is_refused() -> None:
    grid = {f"p{i}": [1, 2, 3, 4, 5, 6, 7, 8] for i in range(5)}  # 32,768 points
    plan = plan_trainingrun(observe_trainingrun(trainingrun({}, grid=grid), dataset()), NOW)
    assert plan.status["phase"] == "Failed" and "32768 candidates" in plan.status["message"]
    assert not plan.creates and [e.reason for e in plan.events] == ["SearchTooLarge"]


def test_a_finished_search_expires_its_round_jobs() -> None:
    status = started({"strategy": "halving"}) | {"phase": "Succeeded"}
    body = trainingrun({"strategy": "halving"}, status)
    jobs = tuple(
        {"metadata": {"name": trial_job_name(Meta.of(body), r), "namespace": "ns"}, "spec": {}} for r in range(4)
    )
    observed = dataclasses.replace(observe_trainingrun(body), finished_trial_jobs=jobs)
    plan = plan_trainingrun(observed, NOW)
    assert [ref["metadata"]["name"] for ref, _ in plan.patches] == [j["metadata"]["name"] for j in jobs]
