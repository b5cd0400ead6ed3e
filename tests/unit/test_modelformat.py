"""Model artifacts are not code: the safe format's trusted types, the digest, and the server's refusals.

The registry is real (sqlite, file artifacts under tmp); the hostile model is a real cloudpickle whose
load would write a file, and the test shows the file is written only when the Deployment opted in.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlops_operator import contract, modelformat
from mlops_operator.server.model import LoadError, load_model
from mlops_operator.worker.errors import PermanentError
from mlops_operator.worker.estimators import ALLOWED_MODULES, resolve_estimator
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression

from tests.fixtures.models import register_logged_as

MARKER = "hostile-model-ran"


class Hostile:
    """Unpickling it writes a file: what a crafted pickle in a shared artifact store could do instead."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path(self.path).write_text, (MARKER,))


class NotAnEstimator:
    """A type skops would construct only if told to trust it."""

    def __init__(self) -> None:
        self.value = 1


def _allowed_estimators() -> list[str]:
    """Every import path the worker's allow-list accepts."""
    paths = []
    for module_name in ALLOWED_MODULES:
        module = importlib.import_module(f"sklearn.{module_name}")
        for name, _ in inspect.getmembers(module, inspect.isclass):
            try:
                paths.append(resolve_estimator(f"sklearn.{module_name}.{name}").path)
            except PermanentError:
                continue
    return sorted(paths)


def test_every_allow_listed_estimator_fitted_with_defaults_needs_only_trusted_types() -> None:
    iris, diabetes = load_iris(), load_diabetes()
    checked, outside = 0, {}
    for path in _allowed_estimators():
        estimator = resolve_estimator(path)
        x, y = (iris.data, iris.target) if estimator.task == "classification" else (diabetes.data, diabetes.target)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = estimator.cls().fit(x, y)
        except (TypeError, ValueError):
            continue  # needs params to fit at all (multi-output targets, required arguments)
        checked += 1
        extra = modelformat.untrusted(modelformat.types_needed(fitted))
        if extra:
            outside[path] = extra
    assert checked >= 60, f"only {checked} estimators fitted: the check lost its coverage"
    assert outside == {}, "add these to modelformat.TRUSTED_TYPES (after checking they hold no code): " + str(outside)


def test_neighbour_metrics_a_run_can_name_are_trusted() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    iris = load_iris()
    for algorithm in ("ball_tree", "kd_tree"):
        for metric in ("euclidean", "manhattan", "chebyshev", "minkowski"):
            fitted = KNeighborsClassifier(algorithm=algorithm, metric=metric).fit(iris.data, iris.target)
            assert modelformat.untrusted(modelformat.types_needed(fitted)) == [], (algorithm, metric)


def test_judge_lets_only_skops_sklearn_models_load_without_opt_in() -> None:
    skops = {"sklearn": {"serialization_format": "skops", "pickled_model": "model.skops"}, "python_function": {}}
    assert modelformat.judge(skops).safe
    for fmt in ("pickle", "cloudpickle"):
        flavors = {"sklearn": {"serialization_format": fmt, "pickled_model": "model.pkl"}}
        verdict = modelformat.judge(flavors)
        assert not verdict.safe and fmt in verdict.why
    with_code = {"sklearn": {"serialization_format": "skops", "pickled_model": "m.skops", "code": "code"}}
    assert "code_paths" in modelformat.judge(with_code).why
    assert "pyfunc" in modelformat.judge({"python_function": {"loader_module": "my.loader"}}).why
    assert not modelformat.judge({"transformers": {}, "python_function": {}}).safe


def test_the_artifact_digest_covers_every_file_and_its_path(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.skops").write_bytes(b"\x00\x01")
    first = modelformat.artifact_sha256(tmp_path)
    assert first == modelformat.artifact_sha256(tmp_path) and len(first) == 64
    (tmp_path / "registered_model_meta").write_text("added by MLflow on download")
    assert modelformat.artifact_sha256(tmp_path) == first, "MLflow's download-side file is not registered content"
    (tmp_path / "MLmodel").write_text("flavors: {sklearn: {serialization_format: cloudpickle}}\n")
    assert modelformat.artifact_sha256(tmp_path) != first
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "sub" / "model.skops").rename(tmp_path / "model.skops")
    assert modelformat.artifact_sha256(tmp_path) != first, "a moved file changes the digest"


class Store:
    """A real sqlite registry with file artifacts under tmp, and MLflow's fluent URI set while logging."""

    def __init__(self, root: Path) -> None:
        import mlflow

        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = mlflow.MlflowClient(self.uri, registry_uri=self.uri)
        self.experiment = self.client.create_experiment("formats", artifact_location=(root / "artifacts").as_uri())

    def register(self, name: str, model: Any, frame: pd.DataFrame, **kwargs: Any) -> int:
        """`register_logged_as` with MLflow's fluent tracking URI pointed here while it logs."""
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _use_tracking_uri(self.uri):
            return register_logged_as(self.client, self.experiment, name, model, frame, **kwargs)

    def model_files(self, name: str, version: int) -> Path:
        source = self.client.get_model_version_download_uri(name, str(version))
        return Path(source.removeprefix("file://"))


def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    iris = load_iris()
    return pd.DataFrame(iris.data, columns=["a", "b", "c", "d"]), iris.target


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("formats"))


def test_a_hostile_pickle_never_runs_unless_the_deployment_opted_in(store: Store, tmp_path: Path) -> None:
    frame, target = iris_frame()
    model = LogisticRegression(max_iter=500).fit(frame.to_numpy(), target)
    marker = tmp_path / "ran.txt"
    model.hostile_ = Hostile(str(marker))  # rides along in the pickle; unpickling calls write_text
    version = store.register("hostile", model, frame, serialization_format="cloudpickle")
    with pytest.raises(LoadError) as refused:
        load_model(f"models:/hostile/{version}", store.uri)
    assert not refused.value.retryable and "cloudpickle" in str(refused.value)
    assert "allowUnsafeModelFormats" in str(refused.value)
    assert not marker.exists(), "the pickle ran although the Deployment did not opt in"
    with contextlib.suppress(LoadError):  # the estimator may load or not: what matters is the unpickler ran
        load_model(f"models:/hostile/{version}", store.uri, allow_unsafe=True)
    assert marker.read_text() == MARKER, "the test's payload is real: with the opt-in it runs"


def test_a_skops_file_is_read_with_our_trusted_types_not_the_ones_in_its_mlmodel(store: Store) -> None:
    import yaml

    frame, target = iris_frame()
    model = LogisticRegression(max_iter=500).fit(frame.to_numpy(), target)
    model.extra_ = NotAnEstimator()  # a type outside skops' defaults and our list
    # The worker's path refuses to log it at all (safe_types raises); log it the way an attacker would.
    wanted = f"{NotAnEstimator.__module__}.NotAnEstimator"
    version = store.register("untrusted-type", model, frame, serialization_format="skops", trusted_types=[wanted])
    mlmodel = yaml.safe_load((store.model_files("untrusted-type", version) / "MLmodel").read_text())
    assert wanted in mlmodel["flavors"]["sklearn"]["skops_trusted_types"]
    with pytest.raises(LoadError) as refused:
        load_model(f"models:/untrusted-type/{version}", store.uri)
    assert not refused.value.retryable and "NotAnEstimator" in str(refused.value)


def test_a_model_changed_after_registration_or_without_a_digest_is_refused(store: Store) -> None:
    frame, target = iris_frame()
    model = LogisticRegression(max_iter=500).fit(frame.to_numpy(), target)
    version = store.register("tampered", model, frame, serialization_format="skops")
    assert load_model(f"models:/tampered/{version}", store.uri).flavor == "sklearn", "safe and verified: loads"
    files = store.model_files("tampered", version)
    requirements = files / "requirements.txt"
    requirements.write_text(requirements.read_text() + "evil-package==1.0\n")
    with pytest.raises(LoadError) as refused:
        load_model(f"models:/tampered/{version}", store.uri)
    assert not refused.value.retryable and "not the ones registered" in str(refused.value)

    unverified = store.register("no-digest", model, frame, serialization_format="cloudpickle", digest=False)
    with pytest.raises(LoadError) as missing:
        load_model(f"models:/no-digest/{unverified}", store.uri)
    assert contract.TAG_MODEL_SHA256 in str(missing.value) and not missing.value.retryable
    opted_in = load_model(f"models:/no-digest/{unverified}", store.uri, allow_unsafe=True)
    assert opted_in.flavor == "sklearn", "opted in, a model registered outside the worker loads unverified"
