"""Datasets, training runs and promotion on the real local cluster with the real MLflow server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from .conftest import Kube, OperatorProcess, condition, wait_for

PIPELINE_TIMEOUT = 240


def sample_data(name: str, out: Path, *extra: str) -> Path:
    subprocess.run(
        [str(Path(sys.executable).parent / "mlops-worker"), "sample-data", name, "--out", str(out), *extra], check=True
    )
    return out


def iris_dataset(uri: str, name: str = "iris", extra_schema: str = "") -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Dataset
        metadata: {{name: {name}}}
        spec:
          source: {{uri: "{uri}", format: csv}}
          target: species
          schema:
            - {{name: sepal_length, type: float, min: 0, max: 20}}
            - {{name: sepal_width, type: float, min: 0, max: 20}}
            - {{name: petal_length, type: float, min: 0, max: 20}}
            - {{name: petal_width, type: float, min: 0, max: 20}}
            - {{name: species, type: category, values: [setosa, versicolor, virginica]}}{extra_schema}
          validation: {{minRows: 100}}
        """
    )


def training_run(
    name: str,
    model: str,
    estimator: str = "sklearn.ensemble.RandomForestClassifier",
    params: str = "{n_estimators: 30, max_depth: 4, random_state: 0}",
    dataset: str = "iris",
    gates: str = "[{metric: accuracy, min: 0.9}, {metric: f1_macro, minImprovement: 0.0}]",
    extra: str = "",
) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: TrainingRun
        metadata: {{name: {name}}}
        spec:
          datasetRef: {{name: {dataset}}}
          estimator: {estimator}
          params: {params}
          registeredModel: {model}
          promotion: {{alias: production, mode: auto, gates: {gates}}}
          backoffLimit: 1
          activeDeadlineSeconds: 300{extra}
        """
    )


def get(kube: Kube, ref: str, namespace: str) -> dict[str, Any]:
    return kube.json("get", ref, "-n", namespace)


def phase(kube: Kube, ref: str, namespace: str) -> str | None:
    result = kube.run("get", ref, "-n", namespace, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout.strip() or None


class RunningOperator(Protocol):
    """What waiting asks of an operator: a subprocess (OperatorProcess) or the chart's pod."""

    def running(self) -> bool: ...

    def log_tail(self, lines: int = 60) -> str: ...


def wait_phase(kube: Kube, ref: str, namespace: str, wanted: set[str], op: RunningOperator, timeout: float) -> str:
    def reached() -> str | None:
        assert op.running(), f"the operator exited:\n{op.log_tail()}"
        current = phase(kube, ref, namespace)
        return current if current in wanted else None

    try:
        return str(wait_for(f"{ref} to reach {sorted(wanted)}", reached, timeout=timeout, interval=0.3))
    except AssertionError:
        print(kube.run("get", "mlops,jobs,pods", "-n", namespace, "-o", "wide", check=False).stdout)
        print(op.log_tail())
        raise


def mlflow_alias(kube: Kube, model: str, alias: str = "production") -> int | None:
    response = httpx.get(
        f"{kube.mlflow_url}/api/2.0/mlflow/registered-models/alias", params={"name": model, "alias": alias}
    )
    return int(response.json()["model_version"]["version"]) if response.status_code == 200 else None


def mlflow_versions(kube: Kube, model: str) -> list[int]:
    response = httpx.get(
        f"{kube.mlflow_url}/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{model}'"}
    )
    return sorted(int(v["version"]) for v in response.json().get("model_versions", []))


def ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    return sample_data("iris", tmp_path / "iris.csv")


def test_iris_pipeline_promotes_and_a_worse_model_is_rejected(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path
) -> None:
    kube, model = crds_installed, f"iris-{namespace}"
    started = time.monotonic()
    kube.apply(iris_dataset(f"file://{iris_csv}") + "---\n" + training_run("iris-train", model), namespace)
    wait_phase(kube, "datasets.mlops.dev/iris", namespace, {"Ready"}, operator_process, PIPELINE_TIMEOUT)
    ds = get(kube, "datasets.mlops.dev/iris", namespace)
    assert ds["status"]["rows"] == 150 and ds["status"]["version"].startswith("sha256:")
    assert ds["status"]["profileUri"].startswith("runs:/")
    assert wait_phase(kube, "trainingrun/iris-train", namespace, {"Succeeded", "Failed"}, operator_process, 240) == (
        "Succeeded"
    )
    run = get(kube, "trainingrun/iris-train", namespace)
    status = run["status"]
    assert status["metrics"]["accuracy"] >= 0.9, status
    assert status["datasetVersion"] == ds["status"]["version"]
    assert status["mlflowRunId"] and status["startTime"] and status["completionTime"]
    assert condition(run, "Succeeded")["status"] == "True"
    mv_name = status["modelVersion"]
    wait_phase(kube, f"modelversion/{mv_name}", namespace, {"Promoted"}, operator_process, 60)
    pipeline_seconds = time.monotonic() - started
    mv = get(kube, f"modelversion/{mv_name}", namespace)
    assert mv["metadata"]["labels"]["mlops.dev/training-run"] == "iris-train"
    assert all(r["passed"] for r in mv["status"]["gateResults"])
    assert mlflow_alias(kube, model) == mv["spec"]["version"] == 1
    job = get(kube, f"job/{status['jobName']}", namespace)
    latency = ts(condition(run, "Succeeded")["lastTransitionTime"]) - ts(job["status"]["completionTime"])
    print(f"\niris pipeline: apply -> Promoted {pipeline_seconds:.1f}s; Job complete -> status {latency:.0f}s")
    assert latency <= 5

    # A clearly worse model fails the minImprovement gate; the alias stays where it is.
    kube.apply(
        training_run(
            "iris-stump",
            model,
            estimator="sklearn.tree.DecisionTreeClassifier",
            params="{max_depth: 1, random_state: 0}",
            gates="[{metric: f1_macro, minImprovement: 0.0}]",
        ),
        namespace,
    )
    wait_phase(kube, "trainingrun/iris-stump", namespace, {"Succeeded", "Failed"}, operator_process, 240)
    stump_mv = get(kube, "trainingrun/iris-stump", namespace)["status"]["modelVersion"]
    wait_phase(kube, f"modelversion/{stump_mv}", namespace, {"Rejected"}, operator_process, 60)
    rejected = get(kube, f"modelversion/{stump_mv}", namespace)
    assert "f1_macro" in rejected["status"]["message"]
    (gate,) = rejected["status"]["gateResults"]
    assert gate["passed"] is False and gate["value"] < gate["threshold"]
    assert mlflow_alias(kube, model) == 1
    assert phase(kube, f"modelversion/{mv_name}", namespace) == "Promoted"
    events = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert {"NewVersion", "JobCreated", "Succeeded", "Promoted", "Rejected"} <= set(events)
    # GitOps: `kubectl wait` works on every kind, and the operator left spec and labels as applied (no diff).
    for ref in ("datasets.mlops.dev/iris", "trainingrun/iris-train", f"modelversion/{mv_name}"):
        kube.run("wait", "--for=condition=Ready", ref, "-n", namespace, "--timeout=10s")
    manifest = iris_dataset(f"file://{iris_csv}") + "---\n" + training_run("iris-train", model)
    diff = kube.run("diff", "-n", namespace, "-f", "-", input_text=manifest, check=False)
    assert diff.returncode == 0, f"the operator changed what the user applied:\n{diff.stdout}{diff.stderr}"
    # The operator's own metrics saw the same.
    assert operator_process.metric("mlops_operator_jobs_launched_total", kind="TrainingRun") == 2
    assert operator_process.metric("mlops_operator_jobs_launched_total", kind="Dataset") == 1
    assert operator_process.metric("mlops_operator_promotions_total", via="direct") == 1
    assert operator_process.metric("mlops_operator_reconciles_total", kind="ModelVersion") >= 2


def test_invalid_dataset_and_a_run_that_waits_without_a_job(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, tmp_path: Path
) -> None:
    kube = crds_installed
    bad = tmp_path / "bad.csv"
    rows = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    rows += [f"{-1 if i % 50 == 0 else 5.1},3.5,1.4,0.2,{'daisy' if i % 40 == 0 else 'setosa'}" for i in range(120)]
    bad.write_text("\n".join(rows) + "\n")
    kube.apply(iris_dataset(f"file://{bad}") + "---\n" + training_run("waits", f"w-{namespace}"), namespace)
    wait_phase(kube, "datasets.mlops.dev/iris", namespace, {"Invalid"}, operator_process, PIPELINE_TIMEOUT)
    violations = get(kube, "datasets.mlops.dev/iris", namespace)["status"]["violations"]
    by_rule = {(v.get("column"), v["rule"]) for v in violations}
    assert ("sepal_length", "min") in by_rule and ("species", "values") in by_rule, violations
    run = wait_for(
        "the TrainingRun to say it waits",
        lambda: (r := get(kube, "trainingrun/waits", namespace)) and condition(r, "Ready") and r,
        timeout=30,
    )
    assert condition(run, "Ready")["reason"] == "DatasetNotReady" and run["status"]["phase"] == "Pending"
    assert kube.json("get", "jobs", "-n", namespace, "-l", "mlops.dev/owner-kind=TrainingRun")["items"] == []


def test_bad_estimator_param_fails_with_the_reason(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path
) -> None:
    kube = crds_installed
    manifest = iris_dataset(f"file://{iris_csv}") + "---\n"
    manifest += training_run("bad", f"bad-{namespace}", params="{n_estimators: -3}")
    kube.apply(manifest, namespace)
    assert wait_phase(kube, "trainingrun/bad", namespace, {"Succeeded", "Failed"}, operator_process, 240) == "Failed"
    run = get(kube, "trainingrun/bad", namespace)
    assert "n_estimators" in run["status"]["message"], run["status"]
    assert condition(run, "Succeeded")["reason"] == "TrainingFailed"
    job = get(kube, f"job/{run['status']['jobName']}", namespace)
    assert job["status"].get("failed") == 1, "a permanent error must not be retried"


def test_operator_killed_during_training_creates_no_second_job(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path
) -> None:
    kube, model = crds_installed, f"crash-{namespace}"
    kube.apply(iris_dataset(f"file://{iris_csv}") + "---\n" + training_run("crash", model), namespace)
    wait_phase(kube, "trainingrun/crash", namespace, {"Running", "Succeeded"}, operator_process, PIPELINE_TIMEOUT)
    operator_process.kill()
    time.sleep(2)
    operator_process.start()
    assert wait_phase(kube, "trainingrun/crash", namespace, {"Succeeded", "Failed"}, operator_process, 240) == (
        "Succeeded"
    )
    jobs = kube.json("get", "jobs", "-n", namespace, "-l", "mlops.dev/owner-kind=TrainingRun")["items"]
    assert len(jobs) == 1
    mv_name = get(kube, "trainingrun/crash", namespace)["status"]["modelVersion"]
    wait_phase(kube, f"modelversion/{mv_name}", namespace, {"Promoted"}, operator_process, 60)
    assert mlflow_versions(kube, model) == [1]
    assert len(kube.json("get", "modelversions", "-n", namespace)["items"]) == 1
    # Deleting the run deletes its Job (garbage collection by ownerReference); the version outlives it.
    kube.run("delete", "trainingrun/crash", "-n", namespace, "--wait=true")
    wait_for(
        "the Job to be garbage-collected",
        lambda: not kube.json("get", "jobs", "-n", namespace, "-l", "mlops.dev/owner-kind=TrainingRun")["items"],
        timeout=60,
    )
    assert phase(kube, f"modelversion/{mv_name}", namespace) == "Promoted"


def test_regression_on_diabetes(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"diabetes-{namespace}"
    data = sample_data("diabetes", tmp_path / "diabetes.csv")
    manifest = textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Dataset
        metadata: {{name: diabetes}}
        spec:
          source: {{uri: "file://{data}"}}
          target: progression
          validation: {{minRows: 400}}
        """
    )
    manifest += "---\n" + training_run(
        "ridge",
        model,
        estimator="sklearn.linear_model.Ridge",
        params="{alpha: 0.5}",
        dataset="diabetes",
        gates="[{metric: r2, min: 0.3}, {metric: rmse, minImprovement: 0.0}]",
        extra="\n  evaluation: {primaryMetric: rmse}",
    )
    kube.apply(manifest, namespace)
    assert wait_phase(kube, "trainingrun/ridge", namespace, {"Succeeded", "Failed"}, operator_process, 300) == (
        "Succeeded"
    )
    metrics = get(kube, "trainingrun/ridge", namespace)["status"]["metrics"]
    assert set(metrics) == {"rmse", "mae", "r2"} and metrics["r2"] > 0.3, metrics
    mv_name = get(kube, "trainingrun/ridge", namespace)["status"]["modelVersion"]
    wait_phase(kube, f"modelversion/{mv_name}", namespace, {"Promoted"}, operator_process, 60)
    assert mlflow_alias(kube, model) == 1


def test_refresh_interval_makes_a_new_version_when_the_content_changes(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path
) -> None:
    kube = crds_installed
    manifest = iris_dataset(f"file://{iris_csv}").replace(
        "validation: {minRows: 100}", "validation: {minRows: 100}\n  refreshInterval: 5s"
    )
    kube.apply(manifest, namespace)
    wait_phase(kube, "datasets.mlops.dev/iris", namespace, {"Ready"}, operator_process, PIPELINE_TIMEOUT)
    first = get(kube, "datasets.mlops.dev/iris", namespace)["status"]
    lines = iris_csv.read_text().splitlines()
    iris_csv.write_text("\n".join(lines[:-10]) + "\n")  # new content: ten rows fewer
    changed = wait_for(
        "a new dataset version",
        lambda: (
            (s := get(kube, "datasets.mlops.dev/iris", namespace)["status"]).get("version") != first["version"] and s
        ),
        timeout=120,
    )
    assert changed["rows"] == 140 and changed["phase"] == "Ready" and changed["jobName"] != first["jobName"]
    events = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert events.count("NewVersion") == 2
