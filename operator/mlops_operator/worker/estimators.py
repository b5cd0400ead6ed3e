"""The estimator allow-list: which import paths a TrainingRun may name, and building one with its params."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from .errors import PermanentError

# Modules whose public classifiers and regressors take plain JSON-able parameters. Meta-estimators
# that need other estimator objects (pipelines, stacking) and anything that is not a model are out.
ALLOWED_MODULES = (
    "ensemble",
    "linear_model",
    "tree",
    "svm",
    "neighbors",
    "naive_bayes",
    "neural_network",
    "discriminant_analysis",
    "gaussian_process",
    "kernel_ridge",
    "dummy",
)
CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class EstimatorClass:
    """An allow-listed estimator class and the task it solves."""

    path: str
    cls: type
    task: str  # classification | regression

    @property
    def name(self) -> str:
        """The class name, used to prefix scikit-learn's own messages."""
        return self.cls.__name__


def _rejected(path: str, why: str) -> PermanentError:
    modules = ", ".join(f"sklearn.{m}" for m in ALLOWED_MODULES)
    return PermanentError(
        f"estimator {path!r} is not allowed: {why}; use a classifier or regressor class from "
        f"{modules} (e.g. sklearn.ensemble.RandomForestClassifier)"
    )


def resolve_estimator(path: str) -> EstimatorClass:
    """Check an import path against the allow-list and import the class."""
    from sklearn.base import ClassifierMixin, RegressorMixin

    parts = path.split(".")
    if len(parts) != 3 or parts[0] != "sklearn":
        raise _rejected(path, "it must be sklearn.<module>.<Class>")
    _, module_name, class_name = parts
    if module_name not in ALLOWED_MODULES:
        raise _rejected(path, f"sklearn.{module_name} is not an allowed module")
    if class_name.startswith("_"):
        raise _rejected(path, "private names are not allowed")
    module = importlib.import_module(f"sklearn.{module_name}")
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise _rejected(path, f"sklearn.{module_name} has no class {class_name}")
    if not cls.__module__.startswith(f"sklearn.{module_name}") or not callable(getattr(cls, "fit", None)):
        # Names a module merely imports (sklearn.linear_model.ClassifierMixin) are not its estimators.
        raise _rejected(path, f"{class_name} is not an estimator of sklearn.{module_name}")
    if issubclass(cls, ClassifierMixin):
        return EstimatorClass(path, cls, CLASSIFICATION)
    if issubclass(cls, RegressorMixin):
        return EstimatorClass(path, cls, REGRESSION)
    raise _rejected(path, f"{class_name} is neither a classifier nor a regressor")


def build_estimator(estimator: EstimatorClass, params: dict[str, Any]) -> Any:
    """An unfitted estimator with `params`; unknown parameters are a permanent error naming the estimator."""
    accepted = [name for name in inspect.signature(estimator.cls).parameters if name not in ("self", "args", "kwargs")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise PermanentError(
            f"{estimator.name}: unknown parameter(s) {', '.join(unknown)} (it accepts {', '.join(sorted(accepted))})"
        )
    try:
        return estimator.cls(**params)
    except (TypeError, ValueError) as error:
        raise PermanentError(f"{estimator.name}: {error}") from error
