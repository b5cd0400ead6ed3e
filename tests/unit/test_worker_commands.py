"""`mlops-worker validate` and `train` end to end against a real MLflow (sqlite under tmp, no server, no mocks)."""

from __future__ import annotations

import json
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlops_operator import contract
from mlops_operator.worker.cli import run
from mlops_operator.worker.sample_data import sample_frame, write_sample
from mlops_operator.worker.sources import fingerprint

IRIS_SCHEMA = [
    *({"name": n, "type": "float", "min": 0, "max": 20} for n in ("sepal_length", "sepal_width", "petal_length")),
    {"name": "petal_width", "type": "float", "min": 0, "max": 20},
    {"name": "species", "type": "category", "values": ["setosa", "versicolor", "virginica"]},
]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    """One sqlite tracking store for the module; experiments keep their artifacts under the same temp folder."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    for name in (contract.EXPERIMENT_DATASETS, contract.EXPERIMENT_TRAINING):
        client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    yield client
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    write_sample("iris", path)
    return path


def body(kind: str, name: str, uid: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> str:
    meta = {"namespace": "ns", "name": name, "uid": uid, "generation": 1}
    obj: dict[str, Any] = {"apiVersion": "mlops.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}
    if status is not None:
        obj["status"] = status
    return json.dumps(obj)


class Worker:
    """Runs one worker command in-process with the env a Job pod gets."""

    def __init__(self, client: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.client, self.monkeypatch, self.capsys = client, monkeypatch, capsys

    def __call__(self, command: str, obj: str, job: str, dataset: str | None = None) -> tuple[int, str]:
        self.monkeypatch.setenv(contract.ENV_TRACKING_URI, self.client.tracking_uri)
        self.monkeypatch.setenv(contract.ENV_OBJECT, obj)
        self.monkeypatch.setenv(contract.ENV_JOB_NAME, job)
        if dataset is not None:
            self.monkeypatch.setenv(contract.ENV_DATASET, dataset)
        code = run([command])
        err = [line for line in self.capsys.readouterr().err.splitlines() if line.strip()]
        return code, err[-1] if err else ""

    def run_of(self, experiment: str, uid: str, job: str) -> Any:
        """The newest run the operator would find for (uid, job)."""
        exp = self.client.get_experiment_by_name(experiment)
        assert exp is not None
        clause = f"tags.`{contract.TAG_UID}` = '{uid}' and tags.`{contract.TAG_JOB}` = '{job}'"
        runs = self.client.search_runs([exp.experiment_id], clause, order_by=["attributes.start_time DESC"])
        assert runs, f"no run for {uid}/{job}"
        return runs[0]

    def profile(self, uri: str, tmp_path: Path) -> dict[str, Any]:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "dl"))
        return dict(json.loads(Path(local).read_text()))


@pytest.fixture
def worker(tracking: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Worker:
    return Worker(tracking, monkeypatch, capsys)


def dataset_spec(uri: str, **extra: Any) -> dict[str, Any]:
    return {"source": {"uri": uri}, "target": "species", "schema": IRIS_SCHEMA, **extra}


# -- validate -------------------------------------------------------------------------------------


def test_validate_iris_ok(worker: Worker, iris_csv: Path, tmp_path: Path) -> None:
    code, _ = worker("validate", body("Dataset", "iris", "ds-ok", dataset_spec(iris_csv.as_uri())), "iris-check-1")
    assert code == 0
    found = worker.run_of(contract.EXPERIMENT_DATASETS, "ds-ok", "iris-check-1")
    tags, metrics = found.data.tags, found.data.metrics
    assert found.info.status == "FINISHED" and found.info.run_name == "iris-check-1"
    assert tags[contract.TAG_OUTCOME] == contract.OUTCOME_VALID
    assert tags[contract.TAG_DATASET_VERSION] == fingerprint(iris_csv.read_bytes())
    assert (tags[contract.TAG_KIND], tags[contract.TAG_NAMESPACE], tags[contract.TAG_NAME]) == ("Dataset", "ns", "iris")
    assert json.loads(tags[contract.TAG_VIOLATIONS]) == []
    assert metrics == {"rows": 150.0, "columns": 5.0, "violations": 0.0}
    assert tags[contract.TAG_PROFILE_URI] == f"runs:/{found.info.run_id}/{contract.PROFILE_ARTIFACT}"
    profile = worker.profile(tags[contract.TAG_PROFILE_URI], tmp_path)
    assert profile["rows"] == 150 and profile["datasetVersion"] == tags[contract.TAG_DATASET_VERSION]
    assert list(profile["features"]) == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    species = profile["features"]["species"]
    assert species == {
        "kind": "categorical",
        "values": ["setosa", "versicolor", "virginica"],
        "counts": [50, 50, 50, 0],
        "nulls": 0,
    }
    petal = profile["features"]["petal_length"]
    assert petal["kind"] == "numeric" and len(petal["counts"]) == len(petal["edges"]) + 1 <= 10
    assert sum(petal["counts"]) == 150


def test_validate_invalid_data_reports_violations_per_column(worker: Worker, tmp_path: Path) -> None:
    frame = sample_frame("iris")
    frame.loc[[0, 1, 2], "sepal_length"] = -1.0
    frame.loc[3, "species"] = "daisy"
    frame.loc[4, "petal_width"] = None
    frame = frame.drop(columns=["sepal_width"])
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    code, _ = worker("validate", body("Dataset", "bad", "ds-bad", dataset_spec(path.as_uri())), "bad-check-1")
    assert code == 0
    found = worker.run_of(contract.EXPERIMENT_DATASETS, "ds-bad", "bad-check-1")
    assert found.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_INVALID
    violations = json.loads(found.data.tags[contract.TAG_VIOLATIONS])
    assert [(v["column"], v["rule"]) for v in violations] == [
        ("sepal_length", "min"),
        ("sepal_width", "missing"),
        ("petal_width", "nullable"),
        ("species", "values"),
    ]
    assert violations[0]["message"] == "column 'sepal_length': 3 values below min 0 (e.g. -1.0)"
    assert found.data.metrics["violations"] == 4.0
    assert found.data.tags[contract.TAG_PROFILE_URI].startswith("runs:/")


def test_validate_missing_file_fails_permanently(worker: Worker, tmp_path: Path) -> None:
    uri = (tmp_path / "gone.csv").as_uri()
    code, last = worker("validate", body("Dataset", "gone", "ds-gone", dataset_spec(uri)), "gone-check-1")
    assert code == contract.EXIT_PERMANENT
    assert last.startswith("error: source file://") and "does not exist" in last
    found = worker.run_of(contract.EXPERIMENT_DATASETS, "ds-gone", "gone-check-1")
    assert found.info.status == "FAILED"
    assert found.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_FAILED
    assert found.data.tags[contract.TAG_ERROR] == last.removeprefix("error: ")


def test_validate_retry_closes_the_run_a_dead_pod_left_running(worker: Worker, iris_csv: Path) -> None:
    exp = worker.client.get_experiment_by_name(contract.EXPERIMENT_DATASETS)
    assert exp is not None
    tags = {contract.TAG_UID: "ds-retry", contract.TAG_JOB: "retry-check-1"}
    stale = worker.client.create_run(exp.experiment_id, run_name="retry-check-1", tags=tags)
    code, _ = worker("validate", body("Dataset", "iris", "ds-retry", dataset_spec(iris_csv.as_uri())), "retry-check-1")
    assert code == 0
    closed = worker.client.get_run(stale.info.run_id)
    assert closed.info.status == "FAILED" and closed.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_FAILED
    newest = worker.run_of(contract.EXPERIMENT_DATASETS, "ds-retry", "retry-check-1")
    assert newest.info.run_id != stale.info.run_id and newest.info.status == "FINISHED"


def test_validate_http_source_and_parquet(worker: Worker, iris_csv: Path, tmp_path: Path) -> None:
    import http.server
    import threading
    from functools import partial

    parquet = tmp_path / "iris.parquet"
    sample_frame("iris").to_parquet(parquet)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/iris.parquet"
        spec = dataset_spec(uri) | {"source": {"uri": uri, "format": "parquet"}}
        code, _ = worker("validate", body("Dataset", "web", "ds-web", spec), "web-check-1")
        missing = dataset_spec(uri.replace("iris.parquet", "nope.csv"))
        code_404, last = worker("validate", body("Dataset", "web", "ds-web404", missing), "web-check-2")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    found = worker.run_of(contract.EXPERIMENT_DATASETS, "ds-web", "web-check-1")
    assert found.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_VALID
    assert found.data.tags[contract.TAG_DATASET_VERSION] == fingerprint(parquet.read_bytes())
    assert found.data.metrics["rows"] == 150.0
    assert code_404 == contract.EXIT_PERMANENT and "HTTP 404" in last


def test_mlflow_unreachable_is_retryable(worker: Worker, iris_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    worker.client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    validate = body("Dataset", "iris", "ds-x", dataset_spec(iris_csv.as_uri()))
    code, last = worker("validate", validate, "x-check-1")
    assert code == contract.EXIT_RETRYABLE
    assert last.startswith("error: MLflow could not start the validation run: the server is unreachable ([Errno 111]")
    dataset = pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    code, last = worker("train", training("tr-x", "x-model"), "x-train-1", dataset)
    assert code == contract.EXIT_RETRYABLE
    assert last.startswith("error: MLflow could not start the training run: the server is unreachable")


# -- train ----------------------------------------------------------------------------------------


def pinned(uri: str, version: str, **spec: Any) -> str:
    return body(
        "Dataset", "iris", "ds-uid", {"source": {"uri": uri}, "target": "species", **spec}, {"version": version}
    )


def training(uid: str, model: str, estimator: str = "sklearn.ensemble.RandomForestClassifier", **spec: Any) -> str:
    full = {"datasetRef": {"name": "iris"}, "estimator": estimator, "registeredModel": model, **spec}
    return body("TrainingRun", f"train-{uid}", uid, full)


def test_train_iris_with_search_registers_a_tagged_version(worker: Worker, iris_csv: Path, tmp_path: Path) -> None:
    obj = training(
        "tr-iris",
        "iris-classifier",
        params={"n_estimators": 20, "random_state": 0},
        search={"max_depth": [2, 4]},
        evaluation={"primaryMetric": "f1_macro"},
    )
    dataset = pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    code, last = worker("train", obj, "iris-train-job", dataset)
    assert code == 0, last
    found = worker.run_of(contract.EXPERIMENT_TRAINING, "tr-iris", "iris-train-job")
    tags, metrics = found.data.tags, found.data.metrics
    assert found.info.status == "FINISHED" and found.info.run_name == "iris-train-job"
    assert metrics["accuracy"] >= 0.9 and set(metrics) == set(contract.CLASSIFICATION_METRICS)
    assert tags[contract.TAG_OUTCOME] == contract.OUTCOME_SUCCEEDED
    assert (tags[contract.TAG_REGISTERED_MODEL], tags[contract.TAG_REGISTERED_VERSION]) == ("iris-classifier", "1")
    assert tags[contract.TAG_TASK] == "classification"
    assert tags[contract.TAG_DATASET_VERSION] == fingerprint(iris_csv.read_bytes())
    best = json.loads(tags[contract.TAG_BEST_PARAMS])
    assert set(best) == {"max_depth"} and found.data.params["max_depth"] == str(best["max_depth"])
    assert found.data.params["n_estimators"] == "20"
    version = worker.client.get_model_version("iris-classifier", "1")
    assert version.run_id == found.info.run_id
    assert version.tags[contract.TAG_UID] == "tr-iris"
    assert (version.tags[contract.TAG_NAMESPACE], version.tags[contract.TAG_NAME]) == ("ns", "train-tr-iris")
    assert version.tags[contract.TAG_DATASET_VERSION] == tags[contract.TAG_DATASET_VERSION]
    profile = worker.profile(version.tags[contract.TAG_PROFILE_URI], tmp_path)
    assert profile["rows"] == 150 and set(profile["features"]) >= {"petal_length", "species"}
    model = mlflow.sklearn.load_model("models:/iris-classifier/1")
    predictions = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=float))
    assert list(predictions) == ["setosa", "virginica"]
    signature = mlflow.models.get_model_info("models:/iris-classifier/1").signature
    assert signature.inputs.input_names() == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_train_retry_reuses_the_registered_version(worker: Worker, iris_csv: Path) -> None:
    obj = training("tr-retry", "retry-model", params={"n_estimators": 5, "random_state": 0})
    dataset = pinned(iris_csv.as_uri(), fingerprint(iris_csv.read_bytes()))
    assert worker("train", obj, "retry-job", dataset)[0] == 0
    first = worker.run_of(contract.EXPERIMENT_TRAINING, "tr-retry", "retry-job")
    # The pod died after registering, before its run was complete: tags missing, run still RUNNING.
    for key in (contract.TAG_REGISTERED_VERSION, contract.TAG_OUTCOME):
        worker.client.delete_tag(first.info.run_id, key)
    worker.client.update_run(first.info.run_id, status="RUNNING")
    code, _ = worker("train", obj, "retry-job", dataset)
    assert code == 0
    assert len(worker.client.search_model_versions("name = 'retry-model'")) == 1
    again = worker.run_of(contract.EXPERIMENT_TRAINING, "tr-retry", "retry-job")
    assert again.info.run_id == first.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags[contract.TAG_REGISTERED_VERSION] == "1"
    assert again.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_SUCCEEDED


def test_train_diabetes_regression(worker: Worker, tmp_path: Path) -> None:
    path = tmp_path / "diabetes.csv"
    write_sample("diabetes", path)
    dataset = body(
        "Dataset",
        "diabetes",
        "ds-diab",
        {"source": {"uri": path.as_uri()}, "target": "progression"},
        {"version": fingerprint(path.read_bytes())},
    )
    obj = training("tr-diab", "diabetes-regressor", "sklearn.linear_model.Ridge", params={"alpha": 1.0})
    code, last = worker("train", obj, "diab-job", dataset)
    assert code == 0, last
    found = worker.run_of(contract.EXPERIMENT_TRAINING, "tr-diab", "diab-job")
    assert set(found.data.metrics) == set(contract.REGRESSION_METRICS)
    assert 30 < found.data.metrics["rmse"] < 80 and 0.2 < found.data.metrics["r2"] < 0.8
    assert found.data.tags[contract.TAG_TASK] == "regression"


def test_train_one_hot_encodes_categorical_features(worker: Worker, tmp_path: Path) -> None:
    frame = sample_frame("iris")
    frame.insert(0, "colour", np.where(frame["sepal_width"] > 3.0, "blue", "red"))
    path = tmp_path / "coloured.csv"
    frame.to_csv(path, index=False)
    obj = training(
        "tr-cat",
        "coloured",
        "sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        search={"C": [0.1, 1.0]},
    )
    code, last = worker("train", obj, "cat-job", pinned(path.as_uri(), fingerprint(path.read_bytes())))
    assert code == 0, last
    model = mlflow.sklearn.load_model("models:/coloured/1")
    row = np.array([["blue", 5.1, 3.5, 1.4, 0.2], ["green", 6.7, 3.0, 5.2, 2.3]], dtype=object)
    assert list(model.predict(row)) == ["setosa", "virginica"]
    with warnings.catch_warnings():  # fitted on an array by design; a DataFrame in the same order works too
        warnings.filterwarnings("ignore", message="X has feature names")
        by_frame = model.predict(pd.DataFrame(row, columns=list(frame.columns[:-1])))
    assert list(by_frame) == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("estimator", "spec", "dataset_change", "fragment"),
    [
        pytest.param(
            "sklearn.ensemble.RandomForestClassifier",
            {"params": {"n_estimators": -1}},
            {},
            "RandomForestClassifier: The 'n_estimators' parameter",
            id="bad-param",
        ),
        pytest.param(
            "sklearn.pipeline.Pipeline", {}, {}, "estimator 'sklearn.pipeline.Pipeline' is not allowed", id="pipeline"
        ),
        pytest.param("sklearn.utils.Bunch", {}, {}, "sklearn.utils is not an allowed module", id="utils"),
        pytest.param(
            "sklearn.ensemble.RandomForestClassifier",
            {},
            {"version": "sha256:0"},
            "changed since it was validated",
            id="fingerprint",
        ),
        pytest.param(
            "sklearn.ensemble.RandomForestClassifier",
            {},
            {"target": None},
            "Dataset 'iris' has no target column; a TrainingRun needs one",
            id="no-target",
        ),
        pytest.param(
            "sklearn.ensemble.RandomForestClassifier",
            {},
            {"target": "label"},
            "column 'label' not found in file://",
            id="absent-target",
        ),
        pytest.param(
            "sklearn.ensemble.RandomForestClassifier",
            {"evaluation": {"primaryMetric": "rmse"}},
            {},
            "primaryMetric 'rmse' does not apply",
            id="metric-task",
        ),
    ],
)
def test_train_permanent_errors(
    worker: Worker, iris_csv: Path, estimator: str, spec: dict[str, Any], dataset_change: dict[str, Any], fragment: str
) -> None:
    uid = f"tr-err-{abs(hash((estimator, json.dumps(spec), json.dumps(dataset_change)))) % 10**8}"
    version = dataset_change.get("version", fingerprint(iris_csv.read_bytes()))
    target = {"target": dataset_change["target"]} if "target" in dataset_change else {}
    dataset = pinned(iris_csv.as_uri(), version, **target)
    code, last = worker("train", training(uid, f"m-{uid}", estimator, **spec), f"{uid}-job", dataset)
    assert code == contract.EXIT_PERMANENT
    assert last.startswith("error: ") and fragment in last
    found = worker.run_of(contract.EXPERIMENT_TRAINING, uid, f"{uid}-job")
    assert found.info.status == "FAILED" and found.data.tags[contract.TAG_OUTCOME] == contract.OUTCOME_FAILED
    assert found.data.tags[contract.TAG_ERROR] == last.removeprefix("error: ")
    assert worker.client.search_model_versions(f"name = 'm-{uid}'") == []
