"""The estimator allow-list and parameter checks."""

from __future__ import annotations

import pytest
from mlops_operator.worker.errors import PermanentError
from mlops_operator.worker.estimators import build_estimator, resolve_estimator


@pytest.mark.parametrize(
    ("path", "task"),
    [
        ("sklearn.ensemble.RandomForestClassifier", "classification"),
        ("sklearn.linear_model.LogisticRegression", "classification"),
        ("sklearn.linear_model.Ridge", "regression"),
        ("sklearn.tree.DecisionTreeRegressor", "regression"),
        ("sklearn.dummy.DummyClassifier", "classification"),
        ("sklearn.kernel_ridge.KernelRidge", "regression"),
    ],
)
def test_allowed_estimators_resolve_with_their_task(path: str, task: str) -> None:
    resolved = resolve_estimator(path)
    assert resolved.task == task and resolved.path == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("sklearn.pipeline.Pipeline", "sklearn.pipeline is not an allowed module"),
        ("sklearn.utils.Bunch", "sklearn.utils is not an allowed module"),
        ("sklearn.cluster.KMeans", "sklearn.cluster is not an allowed module"),
        ("sklearn.ensemble.IsolationForest", "neither a classifier nor a regressor"),
        ("sklearn.ensemble.NoSuchForest", "has no class NoSuchForest"),
        ("sklearn.ensemble._forest.RandomForestClassifier", "must be sklearn.<module>.<Class>"),
        ("sklearn.linear_model._base", "private names are not allowed"),
        ("os.system", "must be sklearn.<module>.<Class>"),
    ],
)
def test_everything_else_is_rejected_naming_what_is_allowed(path: str, why: str) -> None:
    with pytest.raises(PermanentError) as caught:
        resolve_estimator(path)
    assert why in caught.value.message
    assert f"estimator {path!r} is not allowed" in caught.value.message
    assert "sklearn.ensemble, sklearn.linear_model" in caught.value.message


def test_unknown_parameter_names_the_estimator_and_what_it_accepts() -> None:
    with pytest.raises(PermanentError, match=r"^RandomForestClassifier: unknown parameter\(s\) n_trees \(it accepts"):
        build_estimator(resolve_estimator("sklearn.ensemble.RandomForestClassifier"), {"n_trees": 3})


def test_meta_estimators_without_their_estimators_fail_permanently() -> None:
    with pytest.raises(PermanentError, match=r"^StackingClassifier: "):
        build_estimator(resolve_estimator("sklearn.ensemble.StackingClassifier"), {})


def test_names_a_module_only_imports_are_not_estimators() -> None:
    import inspect

    import sklearn.dummy

    imported = [
        name
        for name, cls in inspect.getmembers(sklearn.dummy, inspect.isclass)
        if not cls.__module__.startswith("sklearn.dummy")
    ]
    assert imported, "sklearn.dummy imports no foreign class any more: pick another module"
    for name in imported:
        with pytest.raises(PermanentError, match="is not an estimator of"):
            resolve_estimator(f"sklearn.dummy.{name}")
