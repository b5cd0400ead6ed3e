"""Loading a registered model: resolve the URI to a version, fetch the model and its reference profile.

Nothing in the download is read before its digest matches the one recorded at registration, and no
code from the artifact runs unless the Deployment opted in (modelformat.judge): scikit-learn models
load from skops with the trusted-type list fixed in modelformat. They are called with a float64
matrix when every input is numeric (no DataFrame per request); other flavors go through pyfunc.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import contract, modelformat
from ..profile import Profile
from .schema import Batch, Column, InputSchema, schema_from_signature

log = logging.getLogger("mlops_operator.server")

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


class LoadError(Exception):
    """Loading failed; `retryable` is False when retrying cannot help (bad URI, unusable model)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ModelRef:
    """A registry model URI, parsed: a version number, 'latest', or an alias."""

    name: str
    version: str | None = None
    alias: str | None = None


def parse_model_uri(uri: str) -> ModelRef:
    """models:/name/3, models:/name/latest or models:/name@alias; anything else is a permanent LoadError."""
    match = _URI.match(uri.strip())
    if not match:
        raise LoadError(f"model URI {uri!r} is not models:/<name>/<version> or models:/<name>@<alias>", retryable=False)
    version = match["version"]
    if version is not None and version != "latest" and not version.isdigit():
        raise LoadError(f"model URI {uri!r}: version must be a number, 'latest' or @alias", retryable=False)
    return ModelRef(name=match["name"], version=version, alias=match["alias"])


Predict = Callable[[Batch], Any]


@dataclass
class LoadedModel:
    """A model ready to serve: identity (for labels), input schema, profile and prediction functions."""

    name: str
    version: str
    run_id: str
    flavor: str  # sklearn | pyfunc
    schema: InputSchema
    profile: Profile | None
    predict: Predict
    predict_proba: Predict | None = None
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (name, OIP datatype), for metadata
    cost: PredictCost | None = None  # measured at load; None: always predict in a thread
    classes: tuple[Any, ...] | None = None  # a classifier's classes_: bounds the feedback confusion labels


def _classify(error: Exception, doing: str) -> LoadError:
    """A registry/artifact failure as a LoadError; every registry failure is retried (it may come back)."""
    if isinstance(error, LoadError):
        return error
    code = getattr(error, "error_code", "")
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else type(error).__name__
    prefix = "not found" if code == "RESOURCE_DOES_NOT_EXIST" else "failed"
    return LoadError(f"{doing} {prefix}: {first_line[:300]}")


def resolve_version(client: Any, ref: ModelRef) -> Any:
    """The registered ModelVersion a reference names (alias and 'latest' resolved now)."""
    if ref.alias is not None:
        return client.get_model_version_by_alias(ref.name, ref.alias)
    if ref.version == "latest" or ref.version is None:
        versions = client.search_model_versions(f"name = '{ref.name}'", max_results=1000)
        if not versions:
            raise LoadError(f"registered model '{ref.name}' has no versions")
        return max(versions, key=lambda v: int(v.version))
    return client.get_model_version(ref.name, ref.version)


def load_profile(profile_uri: str, tracking_uri: str | None, dst: str) -> Profile | None:
    """The reference profile at a runs:/ URI; None (and a log line) when it cannot be read."""
    import mlflow.artifacts

    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=profile_uri, dst_path=dst, tracking_uri=tracking_uri)
        profile: Profile = json.loads(Path(path).read_text())
    except Exception as error:  # availability beats drift: serve without bin counters
        log.warning("reference profile %s unreadable, serving without drift counters: %s", profile_uri, error)
        return None
    if not isinstance(profile, dict) or not isinstance(profile.get("features"), dict):
        log.warning("reference profile %s has no 'features'; serving without drift counters", profile_uri)
        return None
    return profile


def load_model(model_uri: str, tracking_uri: str | None, *, allow_unsafe: bool = False) -> LoadedModel:
    """Resolve, download, verify and load a registered model; raises LoadError saying what failed.

    `allow_unsafe`: the Deployment's `server.allowUnsafeModelFormats` (pickles, code paths, pyfunc)."""
    from mlflow import MlflowClient

    ref = parse_model_uri(model_uri)
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        mv = resolve_version(client, ref)
    except Exception as error:
        raise _classify(error, f"resolving {model_uri} at {tracking_uri or 'the default tracking URI'}") from error
    version = str(mv.version)
    workdir = tempfile.mkdtemp(prefix="mlops-server-")
    keep_files = False
    try:
        import mlflow.artifacts

        uri = f"models:/{ref.name}/{version}"  # the resolved version: an alias may move meanwhile
        try:
            # Through the client, not a models:/ URI: that path consults the default registry, not ours.
            source = client.get_model_version_download_uri(ref.name, version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=workdir, tracking_uri=tracking_uri
            )
        except Exception as error:
            raise _classify(error, f"downloading {uri}") from error
        verify_digest(local, (mv.tags or {}).get(contract.TAG_MODEL_SHA256), uri, allow_unsafe)
        profile_uri = (mv.tags or {}).get(contract.TAG_PROFILE_URI)
        profile = load_profile(profile_uri, tracking_uri, workdir) if profile_uri else None
        model = _load_local(local, ref.name, version, str(mv.run_id or ""), profile, allow_unsafe)
        # pyfunc flavors may read files lazily, so their download stays; sklearn models live in memory.
        keep_files = model.flavor == "pyfunc"
    finally:
        if not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
    return model


def verify_digest(path: str, recorded: str | None, uri: str, allow_unsafe: bool) -> None:
    """Refuse a download whose files differ from what was registered (or, unless opted in, that has no digest)."""
    if not recorded:
        if allow_unsafe:  # the owner accepted models registered outside the worker, unverified
            log.warning("%s has no %s tag: loading it unverified (opted in)", uri, contract.TAG_MODEL_SHA256)
            return
        raise LoadError(
            f"{uri} has no {contract.TAG_MODEL_SHA256} tag, so its files cannot be verified; register it with "
            "the operator (a TrainingRun), or tag the version with modelformat.artifact_sha256 of its files",
            retryable=False,
        )
    actual = modelformat.artifact_sha256(path)
    if actual != recorded.strip().lower():
        raise LoadError(
            f"{uri}: its files (sha256 {actual[:16]}…) are not the ones registered (sha256 {recorded[:16]}…); "
            "refusing to load an artifact changed after registration",
            retryable=False,
        )


def _load_local(
    path: str, name: str, version: str, run_id: str, profile: Profile | None, allow_unsafe: bool = False
) -> LoadedModel:
    from mlflow.models import Model

    meta = Model.load(path)
    verdict = modelformat.judge(meta.flavors)
    if not verdict.safe and not allow_unsafe:
        raise LoadError(
            f"refusing to load models:/{name}/{version}: {verdict.why}; a Deployment that trusts this model's "
            "code sets spec.server.allowUnsafeModelFormats: true (see the README's Security model)",
            retryable=False,
        )
    schema = schema_from_signature(meta.signature)
    if "sklearn" in meta.flavors:
        estimator = load_sklearn(path, meta.flavors["sklearn"])
        schema = schema or _schema_from_estimator(estimator)
        if schema is None:
            raise LoadError("the model has no signature and no feature names; log it with a signature", retryable=False)
        predict, proba = sklearn_predictors(estimator, schema, sample_batch(schema, profile, 16))
        model = LoadedModel(name, version, run_id, "sklearn", schema, profile, predict, proba)
        classes = getattr(estimator, "classes_", None)  # a Pipeline's is its last step's
        model.classes = None if classes is None else tuple(np.asarray(classes).tolist())
    else:
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(path)
        if schema is None:
            raise LoadError("the model has no column signature; log it with one", retryable=False)
        frozen = schema
        model = LoadedModel(name, version, run_id, "pyfunc", schema, profile, lambda b: pyfunc.predict(b.frame(frozen)))
    return model


def load_sklearn(path: str, flavor: dict[str, Any]) -> Any:
    """The estimator of an sklearn-flavor model directory (judged by modelformat.judge before this is called).

    skops files are read with our own trusted-type list, never the one in the MLmodel (it travels with the
    artifact). Pickles are read here directly: mlflow.sklearn.load_model imports skops for every format,
    which costs seconds of startup per worker. Models with code paths go through mlflow.sklearn.
    """
    fmt = flavor.get("serialization_format", "pickle")
    pickled = flavor.get("pickled_model")
    if not pickled:
        raise LoadError("the sklearn flavor names no model file (pickled_model)", retryable=False)
    if fmt == modelformat.SAFE_FORMAT and not flavor.get("code"):
        return load_skops(Path(path) / pickled)
    if fmt not in modelformat.UNSAFE_FORMATS or flavor.get("code"):
        import mlflow.sklearn

        return mlflow.sklearn.load_model(path)
    import cloudpickle

    with open(Path(path) / pickled, "rb") as handle:
        return cloudpickle.load(handle)  # reads plain pickles too


def load_skops(path: Path) -> Any:
    """A skops file, constructing only skops' default types and modelformat.TRUSTED_TYPES."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(path, trusted=list(modelformat.TRUSTED_TYPES))
    except UntrustedTypesFoundException as error:
        raise LoadError(f"the model holds types the server does not trust: {error}"[:500], retryable=False) from error
    except Exception as error:  # a corrupt or foreign file: loading it again will not help
        message = f"the model file {path.name} is not a readable skops file: {error}"[:500]
        raise LoadError(message, retryable=False) from error


def _schema_from_estimator(estimator: Any) -> InputSchema | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    return InputSchema(tuple(Column(str(n), "double") for n in names))


def _strip_feature_names(estimator: Any) -> None:
    """Drop the fitted column names of the step that checks them (the first of a pipeline)."""
    target = estimator
    while hasattr(target, "steps"):
        target = target.steps[0][1]
    if "feature_names_in_" in vars(target):
        del target.feature_names_in_


def sklearn_predictors(estimator: Any, schema: InputSchema, sample: Batch) -> tuple[Predict, Predict | None]:
    """predict (and predict_proba for classifiers) over a batch: a float64 matrix when that gives the same answers.

    The matrix path uses a copy of the estimator without its fitted column names: scikit-learn would
    otherwise warn on every call (about a fifth of a small model's predict time). It is taken only
    when the columns line up with the signature and, on a sample, it predicts what the DataFrame path does.
    """
    proba = getattr(estimator, "predict_proba", None) if hasattr(estimator, "classes_") else None
    frozen = schema
    by_frame: Predict = lambda b: estimator.predict(b.frame(frozen))  # noqa: E731
    proba_by_frame: Predict | None = (lambda b: proba(b.frame(frozen))) if proba else None
    fitted = getattr(estimator, "feature_names_in_", None)
    if not schema.numeric or (fitted is not None and set(map(str, fitted)) != set(schema.names)):
        return by_frame, proba_by_frame
    order = None if fitted is None else [schema.index[str(n)] for n in fitted]
    if order == list(range(len(schema.columns))):
        order = None
    fast = copy.deepcopy(estimator)
    _strip_feature_names(fast)
    fast_proba = getattr(fast, "predict_proba", None) if proba else None

    def matrix(b: Batch) -> np.ndarray:
        assert b.matrix is not None
        return b.matrix if order is None else b.matrix[:, order]

    def by_matrix(b: Batch) -> Any:
        return fast.predict(matrix(b))

    try:
        same = np.array_equal(np.asarray(by_matrix(sample)), np.asarray(by_frame(sample)))
    except Exception as error:
        log.info("the model does not take a plain matrix (%s); predicting on DataFrames", error)
        return by_frame, proba_by_frame
    if not same:
        log.info("matrix and DataFrame predictions differ on a sample; predicting on DataFrames")
        return by_frame, proba_by_frame
    return by_matrix, ((lambda b: fast_proba(matrix(b))) if fast_proba else None)


@dataclass(frozen=True)
class PredictCost:
    """Measured cost of predict: a fixed part and a per-row part, to decide where a batch runs."""

    fixed_s: float
    per_row_s: float

    def estimate(self, rows: int) -> float:
        """Estimated seconds for `rows` rows."""
        return self.fixed_s + self.per_row_s * rows


def sample_batch(schema: InputSchema, profile: Profile | None, rows: int) -> Batch:
    """A plausible batch for warm-up: profile bin edges (medians) where known, else zeros / first values."""
    from .schema import assemble

    features = (profile or {}).get("features", {})
    arrays = []
    for j, column in enumerate(schema.columns):
        feature = features.get(column.name) or {}
        pick = [(i * 3 + j) for i in range(rows)]  # vary rows, so a sample tells models apart
        if column.numeric:
            edges = feature.get("edges") if feature.get("kind") == "numeric" else None
            points = np.asarray(edges or [0.0, 1.0, 2.0], dtype=np.float64)
            values = points[np.asarray(pick) % len(points)]
            if column.type not in ("double", "float"):
                values = np.round(values)
            if column.type == "boolean":
                values = values % 2
            arrays.append(values.astype(np.float64))
        else:
            known = feature.get("values") or [""]
            arrays.append(np.asarray([str(known[p % len(known)]) for p in pick], dtype=object))
    return assemble(schema, arrays, rows)


def measure_cost(model: LoadedModel, repeats: int = 5) -> PredictCost | None:
    """Median time of predict on 1 and 64 rows; None when the warm-up itself fails (then: use a thread)."""

    def median(rows: int) -> float:
        batch = sample_batch(model.schema, model.profile, rows)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(batch)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    try:
        one, many = median(1), median(64)
    except Exception as error:
        log.info("warm-up prediction failed (%s); predictions will run in a thread", error)
        return None
    return PredictCost(fixed_s=one, per_row_s=max(many - one, 0.0) / 63)
