"""Trial searches on the real local cluster: a 48-candidate grid on two pods, and successive halving.

Asserts the objects the design promises: one Indexed Job per round (not one object per trial), every trial
an MLflow child run of the refit's parent run, status trials done/total, and the registered best model.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Kube, OperatorProcess, condition
from .test_training import get, iris_dataset, mlflow_versions, sample_data, wait_phase

SEARCH_TIMEOUT = 900  # 48 + 16 + 6 + 2 trials and a refit, on the shared 2-core machine
GRID_48 = "{max_depth: [1, 2, 3, 4, 5, 6], min_samples_leaf: [1, 2, 4, 8], criterion: [gini, entropy]}"


def search_run(name: str, model: str, trials: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: TrainingRun
        metadata: {{name: {name}}}
        spec:
          datasetRef: {{name: iris}}
          estimator: sklearn.tree.DecisionTreeClassifier
          params: {{random_state: 0}}
          search: {GRID_48}
          trials: {trials}
          registeredModel: {model}
          backoffLimit: 1
          activeDeadlineSeconds: 900
        """
    )


def trial_runs(kube: Kube, uid: str) -> list[dict[str, Any]]:
    """Every trial child run of a TrainingRun, from MLflow's REST API."""
    api = f"{kube.mlflow_url}/api/2.0/mlflow"
    experiment = httpx.get(f"{api}/experiments/get-by-name", params={"experiment_name": "mlops-training"}).json()
    body = {
        "experiment_ids": [experiment["experiment"]["experiment_id"]],
        "filter": f"tags.`mlops.dev/uid` = '{uid}' and tags.`mlops.dev/role` = 'trial'",
        "max_results": 1000,
    }
    return list(httpx.post(f"{api}/runs/search", json=body).json().get("runs", []))


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def jobs_of(kube: Kube, namespace: str, run: str) -> list[dict[str, Any]]:
    found = kube.json("get", "jobs", "-n", namespace, "-l", f"mlops.dev/owner-name={run}")["items"]
    return sorted(found, key=lambda j: j["metadata"]["name"])


def finish(kube: Kube, namespace: str, name: str, op: OperatorProcess) -> dict[str, Any]:
    ref = f"trainingrun/{name}"
    assert wait_phase(kube, ref, namespace, {"Succeeded", "Failed"}, op, SEARCH_TIMEOUT) == "Succeeded", get(
        kube, ref, namespace
    )["status"]
    return get(kube, ref, namespace)


@pytest.fixture
def iris_ready(crds_installed: Kube, namespace: str, operator_process: OperatorProcess, tmp_path: Path) -> Kube:
    csv = sample_data("iris", tmp_path / "iris.csv")
    crds_installed.apply(iris_dataset(f"file://{csv}"), namespace)
    wait_phase(crds_installed, "datasets.mlops.dev/iris", namespace, {"Ready"}, operator_process, 240)
    return crds_installed


def test_a_48_candidate_grid_runs_on_two_pods_of_one_indexed_job(
    iris_ready: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube, model = iris_ready, f"grid-{namespace}"
    kube.apply(search_run("grid", model, "{strategy: grid, parallelism: 2}"), namespace)
    run = finish(kube, namespace, "grid", operator_process)
    status = run["status"]
    trials = status["trials"]
    assert (trials["strategy"], trials["rounds"], trials["done"], trials["total"]) == ("grid", 1, 48, 48), trials
    assert trials["best"]["score"] > 0.9 and set(trials["best"]["params"]) == {
        "max_depth",
        "min_samples_leaf",
        "criterion",
    }

    # One Indexed Job for all 48 trials (two pods), and the refit Job: two Jobs, not 48 objects.
    trial_jobs = [j for j in jobs_of(kube, namespace, "grid") if "mlops.dev/trial-round" in j["metadata"]["labels"]]
    (trial_job,) = trial_jobs
    spec = trial_job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert trial_job["status"]["succeeded"] == 2
    assert trial_job["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    assert len(jobs_of(kube, namespace, "grid")) == 2 and status["jobName"] != trial_job["metadata"]["name"]

    # Every trial is a child run of the refit's run, each candidate once, with its fold scores.
    children = trial_runs(kube, run["metadata"]["uid"])
    assert sorted(int(tags(r)["mlops.dev/trial-candidate"]) for r in children) == list(range(48))
    assert {tags(r)["mlflow.parentRunId"] for r in children} == {status["mlflowRunId"]}
    metrics = {m["key"] for m in children[0]["data"]["metrics"]}
    assert {"cv_score", "cv_score_fold_0", "cv_score_fold_1", "cv_score_fold_2"} <= metrics

    # The best candidate was refitted once and registered as any TrainingRun's model.
    assert mlflow_versions(kube, model) == [1]
    assert status["modelVersion"] and status["metrics"]["accuracy"] > 0.85
    mv = get(kube, f"modelversion/{status['modelVersion']}", namespace)
    assert mv["spec"]["source"]["runId"] == status["mlflowRunId"]
    events = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert {"TrialsStarted", "JobCreated", "Succeeded"} <= set(events)
    assert condition(run, "Succeeded")["status"] == "True"


def test_successive_halving_runs_one_job_per_round(
    iris_ready: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube, model = iris_ready, f"halving-{namespace}"
    kube.apply(search_run("halving", model, "{strategy: halving, factor: 3, parallelism: 2}"), namespace)
    run = finish(kube, namespace, "halving", operator_process)
    status = run["status"]
    trials = status["trials"]
    assert (trials["rounds"], trials["round"], trials["done"], trials["total"]) == (4, 3, 72, 72), trials

    rounds = [j for j in jobs_of(kube, namespace, "halving") if "mlops.dev/trial-round" in j["metadata"]["labels"]]
    assert sorted(j["metadata"]["labels"]["mlops.dev/trial-round"] for j in rounds) == ["0", "1", "2", "3"]
    assert [
        j["spec"]["completions"] for j in sorted(rounds, key=lambda j: j["metadata"]["labels"]["mlops.dev/trial-round"])
    ] == [2, 2, 2, 2]

    children = trial_runs(kube, run["metadata"]["uid"])
    per_round = Counter(tags(r)["mlops.dev/trial-round"] for r in children)
    assert per_round == {"0": 48, "1": 16, "2": 6, "3": 2}
    budgets = {
        tags(r)["mlops.dev/trial-round"]: next(m["value"] for m in r["data"]["metrics"] if m["key"] == "budget_rows")
        for r in children
    }
    # 120 training rows: 1/27 and 1/9 of them are under the 18 rows 3-fold CV of 3 classes needs, then 1/3, all.
    assert budgets == {"0": 18, "1": 18, "2": 40, "3": 120}
    # Survivors are the best of the round before: round 3's two candidates were among round 2's six.
    in_round = {
        k: {tags(r)["mlops.dev/trial-candidate"] for r in children if tags(r)["mlops.dev/trial-round"] == k}
        for k in per_round
    }
    assert in_round["3"] <= in_round["2"] <= in_round["1"]
    assert str(trials["best"]["candidate"]) in in_round["3"]
    assert {tags(r)["mlflow.parentRunId"] for r in children} == {status["mlflowRunId"]}
    assert mlflow_versions(kube, model) == [1] and status["modelVersion"]
