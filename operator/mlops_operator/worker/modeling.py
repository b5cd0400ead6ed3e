"""The scikit-learn side of training, without MLflow: features, the model, the split, the search, the metrics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import contract
from .checks import numeric, show
from .errors import PermanentError
from .estimators import CLASSIFICATION, EstimatorClass
from .profiling import ColumnKind

MODEL_STEP = "model"
CV_FOLDS = 3
# GridSearchCV scorers per primary metric; errors are negated so that greater is better.
SCORERS = {
    "accuracy": "accuracy",
    "f1_macro": "f1_macro",
    "roc_auc": "roc_auc",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}
DEFAULT_PRIMARY = {CLASSIFICATION: "accuracy", "regression": "rmse"}


@dataclass(frozen=True)
class TrainingData:
    """Features and labels in the form the model is fitted on, and the raw columns a caller sends."""

    features: list[str]
    categorical: list[str]
    x: np.ndarray  # float64 when every feature is numeric, else object (numbers as float, categories as str)
    y: np.ndarray
    inputs: pd.DataFrame  # the same rows as named columns, for the signature and input example
    dropped: list[str] = field(default_factory=list)
    dropped_rows: int = 0


def _labels(series: pd.Series, task: str, target: str) -> np.ndarray:
    if task != CLASSIFICATION:
        values = numeric(series)
        bad = values.isna()
        if bad.any():
            example = show(series[bad].iloc[0])
            raise PermanentError(
                f"target column {target!r} holds non-numbers (e.g. {example}); a regressor needs numbers"
            )
        return values.to_numpy(dtype="float64")
    if pd.api.types.is_float_dtype(series) and bool((series == np.floor(series)).all()):
        return series.to_numpy(dtype="int64")  # 0.0/1.0 labels read as floats are still classes
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return series.to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64")
    return series.astype(str).to_numpy(dtype=object)


def prepare_data(frame: pd.DataFrame, target: str, kinds: dict[str, ColumnKind], task: str) -> TrainingData:
    """Split a table into features (every other column, datetimes left out) and the target."""
    labelled = frame[frame[target].notna()]
    features = [name for name, kind in kinds.items() if name != target and kind != "datetime"]
    if not features:
        raise PermanentError(f"no feature columns: the data has only the target column {target!r}")
    categorical = [name for name in features if kinds[name] == "categorical"]
    inputs = pd.DataFrame(
        {
            name: labelled[name].astype(str).where(labelled[name].notna(), "")
            if name in categorical
            else numeric(labelled[name])
            for name in features
        }
    ).reset_index(drop=True)
    x = inputs.to_numpy(dtype=object if categorical else "float64")
    return TrainingData(
        features=features,
        categorical=categorical,
        x=x,
        y=_labels(labelled[target], task, target),
        inputs=inputs,
        dropped=[name for name, kind in kinds.items() if kind == "datetime" and name != target],
        dropped_rows=len(frame) - len(labelled),
    )


def make_model(estimator: Any, data: TrainingData) -> Any:
    """The estimator itself for numeric data; a Pipeline one-hot encoding the categorical columns otherwise.

    Columns are picked by position so the model takes the same 2-D array (features in order) whether
    the caller sends a numpy array or a DataFrame.
    """
    if not data.categorical:
        return estimator
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    positions = [data.features.index(name) for name in data.categorical]
    encode = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), positions)],
        remainder="passthrough",
        sparse_threshold=0.0,
    )
    return Pipeline([("encode", encode), (MODEL_STEP, estimator)])


def primary_metric(task: str, requested: str | None, estimator: EstimatorClass) -> str:
    """The metric that picks the best grid point; it must belong to the estimator's task."""
    allowed = contract.CLASSIFICATION_METRICS if task == CLASSIFICATION else contract.REGRESSION_METRICS
    if requested is None:
        return DEFAULT_PRIMARY[task]
    if requested not in allowed:
        raise PermanentError(
            f"evaluation.primaryMetric {requested!r} does not apply to {estimator.name}, a {task} estimator; "
            f"use one of {', '.join(allowed)}"
        )
    return requested


def scorer(metric: str, classes: int) -> str:
    """The scikit-learn scoring name of a metric (multiclass ROC AUC is one-vs-rest, macro-averaged)."""
    return "roc_auc_ovr" if metric == "roc_auc" and classes > 2 else SCORERS[metric]


def split(data: TrainingData, task: str, test_fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """Held-out split, stratified by class when every class can appear on both sides."""
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == CLASSIFICATION:
        _, counts = np.unique(data.y.astype(str), return_counts=True)
        n_test = int(np.ceil(len(data.y) * test_fraction))
        if counts.min() >= 2 and len(counts) <= n_test <= len(data.y) - len(counts):
            stratify = data.y
    try:
        parts = train_test_split(data.x, data.y, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise PermanentError(f"cannot hold out {test_fraction:g} of {len(data.y)} rows: {error}") from error
    return parts[0], parts[1], parts[2], parts[3]


def fit(
    model: Any, x: Any, y: Any, grid: dict[str, list[Any]] | None, scoring: str, name: str, prefix: str
) -> tuple[Any, dict[str, Any]]:
    """Fit the model, through a grid search when a grid is given; scikit-learn's refusals are permanent."""
    from sklearn.model_selection import GridSearchCV

    try:
        if not grid:
            return model.fit(x, y), {}
        search = GridSearchCV(
            model,
            {prefix + key: list(values) for key, values in grid.items()},
            cv=CV_FOLDS,
            scoring=scoring,
            error_score="raise",
            refit=True,
        )
        with warnings.catch_warnings():
            # Tiny classes make a fold short of members; scikit-learn warns and the search still works.
            warnings.filterwarnings("ignore", message="The least populated class")
            search.fit(x, y)
    except (ValueError, TypeError) as error:
        raise PermanentError(f"{name}: {' '.join(str(error).split())}") from error
    best = {key.removeprefix(prefix): value for key, value in search.best_params_.items()}
    return search.best_estimator_, best


def classification_metrics(model: Any, x: Any, y: Any) -> dict[str, float]:
    """accuracy and f1_macro always; roc_auc when the model gives probabilities and both sides of it exist."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(x)
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
    }
    if not hasattr(model, "predict_proba") or len(np.unique(y.astype(str))) < 2:
        return metrics
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    try:
        if len(classes) == 2:
            metrics["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
        else:
            metrics["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    except ValueError:
        pass  # undefined when a class is absent from the held-out rows; the metric is left out
    return metrics


def regression_metrics(model: Any, x: Any, y: Any) -> dict[str, float]:
    """rmse, mae and r2 on held-out rows."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = model.predict(x)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


def evaluate(model: Any, x: Any, y: Any, task: str) -> dict[str, float]:
    """The contract's metrics for the task, on held-out rows."""
    return classification_metrics(model, x, y) if task == CLASSIFICATION else regression_metrics(model, x, y)
