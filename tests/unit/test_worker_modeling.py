"""The scikit-learn side of training on plain data: features, split, scorers, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlops_operator.worker.errors import PermanentError
from mlops_operator.worker.estimators import build_estimator, resolve_estimator
from mlops_operator.worker.modeling import (
    classification_metrics,
    fit,
    make_model,
    prepare_data,
    primary_metric,
    scorer,
    split,
)
from mlops_operator.worker.sample_data import sample_frame


def iris_data() -> pd.DataFrame:
    return sample_frame("iris")


def test_prepare_data_drops_datetimes_and_unlabelled_rows() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-01"] * 4),
            "colour": ["red", None, "blue", "red"],
            "x": ["1.5", "2", "3", "4"],
            "label": [1.0, 0.0, None, 1.0],
        }
    )
    kinds = {"when": "datetime", "colour": "categorical", "x": "numeric", "label": "numeric"}
    data = prepare_data(frame, "label", kinds, "classification")
    assert data.features == ["colour", "x"] and data.categorical == ["colour"]
    assert data.dropped == ["when"] and data.dropped_rows == 1
    assert data.x.dtype == object and data.x.tolist() == [["red", 1.5], ["", 2.0], ["red", 4.0]]
    assert data.y.dtype == np.int64 and data.y.tolist() == [1, 0, 1]  # whole-number float labels are classes


def test_all_numeric_features_are_a_float64_matrix_and_the_bare_estimator() -> None:
    frame = iris_data()
    kinds = {name: "numeric" for name in frame.columns[:-1]} | {"species": "categorical"}
    data = prepare_data(frame, "species", kinds, "classification")
    assert data.x.dtype == np.float64 and data.x.shape == (150, 4)
    estimator = build_estimator(resolve_estimator("sklearn.tree.DecisionTreeClassifier"), {})
    assert make_model(estimator, data) is estimator


def test_regression_target_must_be_numeric() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": ["3.5", "lots"]})
    with pytest.raises(PermanentError, match=r"target column 'y' holds non-numbers \(e.g. 'lots'\)"):
        prepare_data(frame, "y", {"x": "numeric", "y": "categorical"}, "regression")


def test_split_is_stratified_and_seeded() -> None:
    frame = iris_data()
    kinds = {name: "numeric" for name in frame.columns[:-1]} | {"species": "categorical"}
    data = prepare_data(frame, "species", kinds, "classification")
    _, _, _, y_test = split(data, "classification", 0.2, seed=7)
    assert sorted(pd.Series(y_test).value_counts().tolist()) == [10, 10, 10]
    again = split(data, "classification", 0.2, seed=7)[3]
    assert list(again) == list(y_test)


def test_too_few_rows_to_hold_out_is_permanent() -> None:
    frame = pd.DataFrame({"x": [1.0], "y": [2.0]})
    data = prepare_data(frame, "y", {"x": "numeric", "y": "numeric"}, "regression")
    with pytest.raises(PermanentError, match=r"cannot hold out 0\.2 of 1 rows"):
        split(data, "regression", 0.2, seed=0)


def test_primary_metric_defaults_and_scorers() -> None:
    forest = resolve_estimator("sklearn.ensemble.RandomForestClassifier")
    ridge = resolve_estimator("sklearn.linear_model.Ridge")
    assert primary_metric("classification", None, forest) == "accuracy"
    assert primary_metric("regression", None, ridge) == "rmse"
    with pytest.raises(PermanentError, match="use one of rmse, mae, r2"):
        primary_metric("regression", "accuracy", ridge)
    assert scorer("roc_auc", classes=2) == "roc_auc" and scorer("roc_auc", classes=3) == "roc_auc_ovr"
    assert scorer("rmse", classes=0) == "neg_root_mean_squared_error"


def test_roc_auc_only_with_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array(["no", "no", "no", "yes", "yes", "yes"], dtype=object)
    with_proba = classification_metrics(LogisticRegression().fit(x, y), x, y)
    assert with_proba["roc_auc"] == pytest.approx(1.0) and with_proba["accuracy"] == 1.0
    assert "roc_auc" not in classification_metrics(SVC().fit(x, y), x, y)


def test_search_reports_best_params_without_the_pipeline_prefix() -> None:
    frame = pd.DataFrame({"c": ["a", "b"] * 30, "x": np.arange(60, dtype=float), "y": ["p", "q"] * 30})
    data = prepare_data(frame, "y", {"c": "categorical", "x": "numeric", "y": "categorical"}, "classification")
    estimator = build_estimator(resolve_estimator("sklearn.tree.DecisionTreeClassifier"), {"random_state": 0})
    model = make_model(estimator, data)
    fitted, best = fit(model, data.x, data.y, {"max_depth": [1, 2]}, "accuracy", "DecisionTreeClassifier", "model__")
    assert set(best) == {"max_depth"}
    assert list(fitted.predict(np.array([["a", 3.0], ["b", 4.0]], dtype=object))) == ["p", "q"]


def test_invalid_grid_parameter_is_permanent_and_names_the_estimator() -> None:
    frame = iris_data()
    kinds = {name: "numeric" for name in frame.columns[:-1]} | {"species": "categorical"}
    data = prepare_data(frame, "species", kinds, "classification")
    estimator = build_estimator(resolve_estimator("sklearn.tree.DecisionTreeClassifier"), {})
    with pytest.raises(PermanentError, match=r"^DecisionTreeClassifier: Invalid parameter 'max_dept'"):
        fit(estimator, data.x, data.y, {"max_dept": [1]}, "accuracy", "DecisionTreeClassifier", "")
