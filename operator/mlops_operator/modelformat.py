"""The model format the worker writes and the server reads without running code from the artifact.

scikit-learn models are stored with skops (`model.skops` in MLflow's sklearn flavor), which rebuilds
objects from a tree of type names and only constructs types it trusts: its own defaults (builtins,
numpy and scipy containers, every public scikit-learn estimator) plus a list the caller passes.
That list is fixed here, in code. MLflow's own loader takes it from the MLmodel file, which travels
with the artifact, so a crafted model could widen it; the server never reads it from there.

TRUSTED_TYPES holds the scikit-learn internals that the worker's allow-listed estimators
(worker/estimators.py) keep in a fitted model, as `skops.io.get_untrusted_types` reports them for
scikit-learn 1.9.1 and skops 0.16.0: trees, neighbour indexes and their distance metrics, losses and
links, Gaussian-process kernels, MLP optimisers. tests/unit/test_modelformat.py fits every allow-listed
estimator and fails when one needs a type outside the list (for instance after an upgrade). The worker
refuses to log a model that does (a permanent error), so what it registers always loads here.

A digest of the model's stored files (`artifact_sha256`: MLmodel, the serialized model, its
requirements) is recorded on the registered version (contract.TAG_MODEL_SHA256) when the worker
registers it, and verified by the server before anything in the download is read, so a model file or
an MLmodel swapped in the artifact store after registration is refused.

What loads how (`judge`): skops files of the sklearn flavor load with TRUSTED_TYPES; pickle and
cloudpickle files, sklearn models that ship code paths, and every other flavor (pyfunc runs the
model's own Python) are unsafe and load only when the Deployment opts in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# MLflow writes this into a models:/ download on the caller's side; it is not part of what was registered.
_NOT_REGISTERED = frozenset({"registered_model_meta"})

SAFE_FORMAT = "skops"  # mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS
UNSAFE_FORMATS = ("pickle", "cloudpickle")  # unpickling runs whatever the file says

TRUSTED_TYPES: tuple[str, ...] = (
    # Tweedie losses of generalised linear models (skops trusts the other losses and links itself)
    "sklearn._loss.loss.HalfTweedieLoss",
    "sklearn._loss.loss.HalfTweedieLossIdentity",
    # Trees (decision trees, forests, bagging, boosting) and histogram gradient boosting
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # Gaussian processes with their default kernels (a kernel is an object: not a TrainingRun param)
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.Product",
    "sklearn.gaussian_process.kernels.RBF",
    # Nearest neighbours: the indexes and the metrics a `metric` param can name
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.metrics._dist_metrics.BrayCurtisDistance64",
    "sklearn.metrics._dist_metrics.CanberraDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.DiceDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.HammingDistance64",
    "sklearn.metrics._dist_metrics.JaccardDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.metrics._dist_metrics.RogersTanimotoDistance64",
    "sklearn.metrics._dist_metrics.RussellRaoDistance64",
    "sklearn.metrics._dist_metrics.SokalMichenerDistance64",
    "sklearn.metrics._dist_metrics.SokalSneathDistance64",
    # Multi-layer perceptrons
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes (what `sha256sum` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def types_needed(model: Any) -> list[str]:
    """The types beyond skops' defaults that loading `model` back from skops would construct."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def untrusted(types: list[str]) -> list[str]:
    """Those of `types` that TRUSTED_TYPES does not hold, sorted."""
    return sorted(set(types) - set(TRUSTED_TYPES))


def artifact_sha256(directory: str | Path) -> str:
    """One sha256 over a model directory: every file's relative path and sha256, in path order."""
    root = Path(directory)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in _NOT_REGISTERED)
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Verdict:
    """How a model directory may be loaded: safely, or only with the Deployment's opt-in (and why)."""

    safe: bool
    why: str  # for an unsafe model: what in it would run code


def judge(flavors: dict[str, Any]) -> Verdict:
    """Whether the MLmodel's flavors load without running code from the artifact."""
    sklearn = flavors.get("sklearn")
    if sklearn is None:
        names = ", ".join(sorted(f for f in flavors if f != "python_function")) or "python_function"
        return Verdict(False, f"flavor {names} loads through the model's own Python code (pyfunc)")
    if sklearn.get("code"):
        return Verdict(False, "the model ships Python code (code_paths) that loading imports")
    fmt = sklearn.get("serialization_format", "pickle")
    if fmt != SAFE_FORMAT:
        return Verdict(False, f"serialization format {fmt} runs whatever the file says when it is unpickled")
    return Verdict(True, "")
