"""A real MLflow registry (sqlite, no server) with an iris classifier and a diabetes regressor, and loading from it.

The fixtures here are shared by the other test_server_* modules (they import them by name).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlops_operator.profile import build_profile
from mlops_operator.server.app import ServerApp, prepare
from mlops_operator.server.config import ServerConfig
from mlops_operator.server.model import LoadError, load_model, parse_model_uri

from tests.fixtures.models import register_model

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Registry:
    """Where the test models live, plus the frames and estimators to compare predictions with."""

    tracking_uri: str
    iris_x: pd.DataFrame
    iris_model: Any
    iris_profile: dict[str, Any]
    diabetes_x: pd.DataFrame
    diabetes_model: Any
    pets_x: pd.DataFrame
    pets_model: Any


def _register(client: Any, experiment: str, name: str, model: Any, frame: pd.DataFrame, profile: Any) -> str:
    """One model version, logged and registered as the worker does it (skops, the files' digest)."""
    return str(register_model(client, experiment, name, model, frame, owner="ns", profile=profile))


def _pets() -> tuple[pd.DataFrame, Any]:
    """A model with a string input (one-hot encoded): the DataFrame path and categorical bins."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    colour = rng.choice(["blue", "green", "red"], size=120)
    weight = rng.normal(10, 3, size=120)
    frame = pd.DataFrame({"colour": colour, "weight": weight})
    target = np.where((colour == "red") | (weight > 11), "cat", "dog")
    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["colour"]), remainder="passthrough")
    return frame, make_pipeline(encode, LogisticRegression()).fit(frame, target)


_REGISTRY: list[Registry] = []


def build_registry(root: Path) -> Registry:
    """Build the registry with `root` as the working directory.

    The sqlite store gives the default experiment ./mlruns (resolved when the store is created), and
    log_model files logged models there: that stays under tmp as well.
    """
    cwd = Path.cwd()
    os.chdir(root)
    try:
        return _build_registry(root)
    finally:
        os.chdir(cwd)


def _build_registry(root: Path) -> Registry:
    """iris-classifier v1 (alias 'production', with a profile), diabetes-regressor v1 (no profile), pets v1."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LinearRegression, LogisticRegression

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    # Artifacts under tmp too: a sqlite store would otherwise put them in ./mlruns.
    experiment = client.create_experiment("server-tests", artifact_location=(root / "artifacts").as_uri())

    iris = load_iris()
    iris_x = pd.DataFrame(iris.data, columns=IRIS_COLUMNS)
    species = np.asarray(iris.target_names)[iris.target]
    iris_model = LogisticRegression(max_iter=500).fit(iris_x, species)
    columns = {c: (iris_x[c].tolist(), False) for c in IRIS_COLUMNS}
    columns["species"] = (species.tolist(), True)
    profile = build_profile(columns, rows=len(iris_x), dataset_version="sha256:test")
    diabetes = load_diabetes()
    diabetes_x = pd.DataFrame(diabetes.data, columns=diabetes.feature_names)
    diabetes_model = LinearRegression().fit(diabetes_x, diabetes.target)
    pets_x, pets_model = _pets()
    pets_columns = {"colour": (pets_x["colour"].tolist(), True), "weight": (pets_x["weight"].tolist(), False)}
    pets_profile = build_profile(pets_columns, rows=len(pets_x), dataset_version="sha256:pets")
    with _use_tracking_uri(tracking_uri):  # log_model's fluent internals; restored afterwards
        _register(client, experiment, "iris-classifier", iris_model, iris_x, profile)
        client.set_registered_model_alias("iris-classifier", "production", "1")
        _register(client, experiment, "diabetes-regressor", diabetes_model, diabetes_x, None)
        _register(client, experiment, "pets", pets_model, pets_x, pets_profile)
    return Registry(tracking_uri, iris_x, iris_model, profile, diabetes_x, diabetes_model, pets_x, pets_model)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The test registry, built once per process (the other modules import this fixture, so it is cached here)."""
    if not _REGISTRY:
        _REGISTRY.append(build_registry(tmp_path_factory.mktemp("mlflow")))
    return _REGISTRY[0]


def make_app(registry: Registry, uri: str = "models:/iris-classifier/1", **overrides: Any) -> ServerApp:
    """A loaded app (loading waited for) with test-friendly settings."""
    settings = {"track": "canary", "deployment": "iris", **overrides}
    config = ServerConfig(model_uri=uri, tracking_uri=registry.tracking_uri, **settings)
    app = ServerApp(config)
    app.start()
    assert app.loader.wait(60), app.loader.reason
    assert app.model is not None, app.loader.reason
    return app


_APPS: dict[str, ServerApp] = {}


@pytest.fixture(scope="session")
def iris_app(registry: Registry) -> ServerApp:
    """The iris classifier, loaded once per process (tests must not depend on its counters)."""
    if "iris" not in _APPS:
        _APPS["iris"] = make_app(registry)
    return _APPS["iris"]


def test_parse_model_uri() -> None:
    assert parse_model_uri("models:/iris/3").version == "3"
    assert parse_model_uri("models:/iris@production").alias == "production"
    assert parse_model_uri("models:/iris/latest").version == "latest"
    for bad in ("runs:/abc/model", "models:/iris", "models:/iris/three", "s3://bucket/model"):
        with pytest.raises(LoadError) as caught:
            parse_model_uri(bad)
        assert not caught.value.retryable


def test_load_by_version_and_alias(registry: Registry) -> None:
    by_version = prepare(load_model("models:/iris-classifier/1", registry.tracking_uri))
    by_alias = load_model("models:/iris-classifier@production", registry.tracking_uri)
    latest = load_model("models:/iris-classifier/latest", registry.tracking_uri)
    for model in (by_version, by_alias, latest):
        assert (model.name, model.version, model.flavor) == ("iris-classifier", "1", "sklearn")
        assert model.schema.names == IRIS_COLUMNS
        assert model.profile is not None and set(model.profile["features"]) >= set(IRIS_COLUMNS)
    assert by_version.cost is not None and by_version.cost.fixed_s < 0.05
    assert by_version.outputs == [("predict", "BYTES"), ("predict_proba", "FP64")]
    x = registry.iris_x.to_numpy()[:5]
    from mlops_operator.server.schema import Batch

    assert list(by_version.predict(Batch(rows=5, matrix=x))) == list(registry.iris_model.predict(registry.iris_x[:5]))


def test_model_without_profile_loads(registry: Registry) -> None:
    model = load_model("models:/diabetes-regressor/1", registry.tracking_uri)
    assert model.profile is None and len(model.schema.columns) == 10


def test_missing_version_is_a_retryable_error(registry: Registry) -> None:
    with pytest.raises(LoadError) as caught:
        load_model("models:/iris-classifier/99", registry.tracking_uri)
    assert caught.value.retryable and "not found" in str(caught.value)


def test_unreachable_registry_is_reported_and_retried(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    config = ServerConfig(model_uri="models:/iris-classifier/1", tracking_uri="http://127.0.0.1:9",
                          retry_initial_s=0.05, retry_max_s=0.2)  # fmt: skip
    app = ServerApp(config)
    with TestClient(app) as client:  # lifespan startup starts the loader
        assert client.get("/v2/health/live").status_code == 200
        deadline = time.monotonic() + 30
        while app.loader.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["state"] == "loading"
        assert "127.0.0.1:9" in body["reason"] and "retrying" in body["reason"], body
        infer = client.post("/v2/models/iris-classifier/infer", json={"inputs": []})
        assert infer.status_code == 503 and infer.headers["retry-after"]
    assert app.loader.attempts >= 2


def test_bad_uri_fails_for_good_but_stays_live(registry: Registry) -> None:
    from starlette.testclient import TestClient

    app = ServerApp(ServerConfig(model_uri="runs:/abc/model", tracking_uri=registry.tracking_uri))
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["state"] == "failed"
        assert "models:/" in ready.json()["reason"]


def test_readiness_flips_after_load(registry: Registry) -> None:
    from starlette.testclient import TestClient

    release = __import__("threading").Event()

    def slow_load() -> Any:
        release.wait(10)
        return prepare(load_model("models:/iris-classifier/1", registry.tracking_uri))

    app = ServerApp(ServerConfig(model_uri="models:/iris-classifier/1", tracking_uri=registry.tracking_uri), slow_load)
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/models/iris-classifier/ready").status_code == 503
        release.set()
        assert app.loader.wait(30)
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/iris-classifier/ready").status_code == 200


def profile_json(registry: Registry) -> str:
    """The iris profile, for tests that compare bins."""
    return json.dumps(registry.iris_profile)


def free_port() -> int:
    """A free loopback TCP port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_text(path: Path, text: str) -> Path:
    """Write and return a path (small helper for subprocess tests)."""
    path.write_text(text)
    return path
