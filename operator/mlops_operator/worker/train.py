"""`mlops-worker train`: fit the TrainingRun's estimator on the pinned Dataset version, evaluate, register."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .. import contract, modelformat
from ..api.dataset import DatasetSpec
from ..api.trainingrun import TrainingRunSpec
from . import tracking
from .context import WorkerEnv, json_object, read_env
from .errors import PermanentError, RetryableError, WorkerError, describe
from .estimators import build_estimator, resolve_estimator
from .modeling import MODEL_STEP, TrainingData, evaluate, fit, make_model, prepare_data, primary_metric, scorer, split
from .ownership import claim_model
from .profiling import column_kinds, profile_frame
from .sourcepolicy import policy_from_env
from .sources import load_source
from .validate import dataset_spec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

# Pinned in the model's requirements instead of letting MLflow infer them (slow, and it guesses).
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
INPUT_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class TrainingResult:
    """What one training produced."""

    run_id: str
    registered_model: str
    version: int
    metrics: dict[str, float]
    reused: bool = False


def trainingrun_spec(spec: dict[str, Any], name: str) -> TrainingRunSpec:
    """Parse a TrainingRun spec (defaults applied); a malformed one is a permanent error."""
    try:
        return TrainingRunSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PermanentError(f"TrainingRun '{name}': spec.{where}: {first['msg']}") from error


def pinned_version(env: WorkerEnv) -> str:
    """The Dataset version the operator pinned for this run."""
    assert env.dataset is not None
    version = env.dataset.status.get("version")
    if not version:
        raise PermanentError(f"env {contract.ENV_DATASET} carries no status.version: the Dataset version is not pinned")
    return str(version)


def find_registered(mlflow_client: MlflowClient, registered_model: str, uid: str) -> ModelVersion | None:
    """A version of `registered_model` this TrainingRun already registered (a retried pod finds its own)."""
    clause = f"name = {tracking.quote(registered_model)} and tags.`{contract.TAG_UID}` = {tracking.quote(uid)}"
    versions = list(mlflow_client.search_model_versions(clause))
    return min(versions, key=lambda v: int(v.version)) if versions else None


def complete_reused(mlflow_client: MlflowClient, env: WorkerEnv, found: ModelVersion) -> TrainingResult:
    """Finish the run that registered `found` before its pod died: the tags the operator reads, FINISHED."""
    tags = {
        contract.TAG_REGISTERED_MODEL: found.name,
        contract.TAG_REGISTERED_VERSION: str(found.version),
        contract.TAG_OUTCOME: contract.OUTCOME_SUCCEEDED,
    }
    for key in (contract.TAG_DATASET_VERSION, contract.TAG_PROFILE_URI):
        if found.tags.get(key):
            tags[key] = found.tags[key]
    run_id = found.run_id
    if run_id:
        run = mlflow_client.get_run(run_id)
        missing = {k: v for k, v in env.obj.identity_tags(env.job_name).items() if k not in run.data.tags}
        metrics = dict(run.data.metrics)
        if contract.TAG_ERROR in run.data.tags:
            mlflow_client.delete_tag(run_id, contract.TAG_ERROR)
    else:  # registered without a run: give the operator one to read
        run_id = tracking.start_run(
            mlflow_client, contract.EXPERIMENT_TRAINING, env.job_name, env.obj.identity_tags(env.job_name)
        )
        missing, metrics = {}, {}
    for key, value in {**missing, **tags}.items():
        mlflow_client.set_tag(run_id, key, value)
    mlflow_client.set_terminated(run_id, status="FINISHED")
    return TrainingResult(run_id, found.name, int(found.version), metrics, reused=True)


def load_pinned(env: WorkerEnv, spec: DatasetSpec) -> tuple[Any, str]:
    """The pinned Dataset's table; refused when the source no longer holds the validated bytes."""
    assert env.dataset is not None
    name = env.dataset.name
    if not spec.target:
        raise PermanentError(f"Dataset '{name}' has no target column; a TrainingRun needs one")
    pinned = pinned_version(env)
    loaded = load_source(spec.source, policy_from_env(), env.dataset.namespace)
    if loaded.version != pinned:
        raise PermanentError(
            f"Dataset '{name}' changed since it was validated: this run is pinned to {pinned} but "
            f"{spec.source.uri} now holds {loaded.version}; create a new TrainingRun once the Dataset is Ready again"
        )
    if spec.target not in loaded.frame.columns:
        raise PermanentError(f"column {spec.target!r} not found in {spec.source.uri}")
    return loaded.frame, loaded.version


def signature_of(data: TrainingData, model: Any) -> Any:
    """Column names and types in feature order, and the prediction type."""
    from mlflow.models import infer_signature

    sample = data.inputs.head(INPUT_EXAMPLE_ROWS)
    return infer_signature(data.inputs, model.predict(sample.to_numpy(dtype=data.x.dtype)))


def requirements() -> list[str]:
    """Exact pins of what loading the model needs, from this image."""
    pins = []
    for package in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def safe_types(model: Any) -> list[str]:
    """The types beyond skops' defaults that loading `model` needs; all must be in the server's fixed list."""
    needed = modelformat.types_needed(model)
    outside = modelformat.untrusted(needed)
    if outside:
        raise PermanentError(
            f"the fitted model holds type(s) {', '.join(outside)} that the model server does not load from "
            "skops (modelformat.TRUSTED_TYPES); choose other params or another estimator"
        )
    return needed


def stored_sha256(mlflow_client: MlflowClient, info: ModelInfo) -> str:
    """The digest of the model's files as stored (read back: a skops file is not byte-for-byte reproducible)."""
    import mlflow.artifacts

    location = mlflow_client.get_logged_model(info.model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp)
        return modelformat.artifact_sha256(path)


def log_model(mlflow_client: MlflowClient, run_id: str, model: Any, data: TrainingData) -> tuple[str, str]:
    """Log the fitted model in skops format with its signature and an input example.

    Returns its models:/ URI and the digest of its stored files (recorded on the registered version).
    """
    import mlflow.sklearn

    trusted = safe_types(model)
    # The logged model goes to the *active* experiment, not the run's: without this it lands in MLflow's
    # Default experiment (where, with authentication, the team's user may not write).
    mlflow.set_experiment(experiment_id=mlflow_client.get_run(run_id).info.experiment_id)
    with warnings.catch_warnings():
        # MLflow checks the input example through a DataFrame; the model was fitted on an array on purpose.
        warnings.filterwarnings("ignore", message="X has feature names")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        info = mlflow.sklearn.log_model(
            model,
            name=contract.MODEL_ARTIFACT_PATH,
            run_id=run_id,
            signature=signature_of(data, model),
            input_example=data.inputs.head(INPUT_EXAMPLE_ROWS),
            pip_requirements=requirements(),
            serialization_format=modelformat.SAFE_FORMAT,
            skops_trusted_types=trusted or None,  # MLflow loads it back with these to check; the server has its own
        )
    return str(info.model_uri), stored_sha256(mlflow_client, info)


def chosen_params(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The grid point a trial search chose (contract.ENV_PARAMS), or None: search here, as GridSearchCV."""
    text = environ.get(contract.ENV_PARAMS)
    return json_object(text, contract.ENV_PARAMS) if text else None


def train_and_register(
    mlflow_client: MlflowClient,
    run_id: str,
    env: WorkerEnv,
    spec: TrainingRunSpec,
    chosen: dict[str, Any] | None = None,
) -> TrainingResult:
    """Everything between a started run and a registered version, logging as it goes."""
    assert env.dataset is not None
    ds_spec = dataset_spec(env.dataset.spec, f"Dataset '{env.dataset.name}'")
    estimator = resolve_estimator(spec.estimator)
    frame, version = load_pinned(env, ds_spec)
    mlflow_client.set_tag(run_id, contract.TAG_DATASET_VERSION, version)
    mlflow_client.set_tag(run_id, contract.TAG_TASK, estimator.task)
    mlflow_client.set_tag(run_id, contract.TAG_ESTIMATOR, estimator.path)
    assert ds_spec.target is not None
    data = prepare_data(frame, ds_spec.target, column_kinds(frame, ds_spec), estimator.task)
    notes = [f"left out datetime column(s) {', '.join(data.dropped)}"] if data.dropped else []
    notes += [f"dropped {data.dropped_rows} row(s) without a target"] if data.dropped_rows else []
    for note in notes:
        print(f"note: {note}", flush=True)
    metric = primary_metric(estimator.task, spec.evaluation.primary_metric, estimator)
    x_train, x_test, y_train, y_test = split(data, estimator.task, spec.evaluation.test_fraction, spec.evaluation.seed)
    params = {**(spec.params or {}), **(chosen or {})}
    model = make_model(build_estimator(estimator, params), data)
    prefix = f"{MODEL_STEP}__" if data.categorical else ""
    classes = len({str(label) for label in data.y})
    grid = None if chosen is not None else spec.search  # a trial search chose already: refit, no search
    fitted, best = fit(model, x_train, y_train, grid, scorer(metric, classes), estimator.name, prefix)
    best = dict(chosen) if chosen is not None else best
    metrics = evaluate(fitted, x_test, y_test, estimator.task)
    logged = {**params, **best}
    for key, value in logged.items():
        mlflow_client.log_param(run_id, key, tracking.param_value(value))
    if spec.search:  # chosen here by GridSearchCV, or before by the trial search
        mlflow_client.set_tag(run_id, contract.TAG_BEST_PARAMS, json.dumps(best, default=str, sort_keys=True))
    for key, value in metrics.items():
        mlflow_client.log_metric(run_id, key, value)
    mlflow_client.log_dict(run_id, profile_frame(frame, ds_spec, version), contract.PROFILE_ARTIFACT)
    model_uri, sha256 = log_model(mlflow_client, run_id, fitted, data)
    return register(mlflow_client, run_id, env, spec.registered_model, model_uri, sha256, version, metrics)


def register(
    mlflow_client: MlflowClient,
    run_id: str,
    env: WorkerEnv,
    name: str,
    model_uri: str,
    sha256: str,
    version: str,
    metrics: dict[str, float],
) -> TrainingResult:
    """Register the logged model with the tags that tie it to this TrainingRun, then complete the run's tags."""
    import mlflow

    tags = {
        contract.TAG_UID: env.obj.uid,
        contract.TAG_NAMESPACE: env.obj.namespace,
        contract.TAG_NAME: env.obj.name,
        contract.TAG_PROFILE_URI: tracking.profile_uri(run_id),
        contract.TAG_DATASET_VERSION: version,
        contract.TAG_MODEL_SHA256: sha256,
    }
    # Tags go in with the version itself, so a retried pod always recognises a version it registered.
    registered = mlflow.register_model(model_uri, name, tags=tags)
    mlflow_client.set_tag(run_id, contract.TAG_REGISTERED_MODEL, name)
    mlflow_client.set_tag(run_id, contract.TAG_REGISTERED_VERSION, str(registered.version))
    mlflow_client.set_tag(run_id, contract.TAG_OUTCOME, contract.OUTCOME_SUCCEEDED)
    mlflow_client.set_terminated(run_id, status="FINISHED")
    return TrainingResult(run_id, name, int(registered.version), metrics)


def summary(result: TrainingResult) -> str:
    """One line for the pod log."""
    figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
    verb = "reused" if result.reused else "registered"
    return f"{verb} {result.registered_model} version {result.version} (run {result.run_id}; {figures or 'no metrics'})"


def run_train() -> int:
    """The `train` command: exit 0 with a registered version, 2 for a spec or data problem, 1 for transient ones."""
    env = read_env("TrainingRun")
    spec = trainingrun_spec(env.obj.spec, env.obj.name)
    chosen = chosen_params(os.environ)
    try:
        mlflow_client = tracking.client(env.tracking_uri)
        found = find_registered(mlflow_client, spec.registered_model, env.obj.uid)
        if found is not None:
            print(summary(complete_reused(mlflow_client, env, found)), flush=True)
            return 0
        identity = env.obj.identity_tags(env.job_name)
        if chosen is not None:  # the refit logs into the search's parent run, beside its trial children
            run_id = tracking.ensure_parent_run(mlflow_client, contract.EXPERIMENT_TRAINING, env.job_name, identity)
        else:
            tracking.close_stale_runs(mlflow_client, contract.EXPERIMENT_TRAINING, identity)
            run_id = tracking.start_run(mlflow_client, contract.EXPERIMENT_TRAINING, env.job_name, identity)
    except Exception as error:
        raise tracking.as_worker_error(error, "start the training run") from error
    try:
        # Before fitting: a run into another namespace's model fails at once, and nothing is registered.
        claim_model(mlflow_client, spec.registered_model, env.obj.namespace)
        result = train_and_register(mlflow_client, run_id, env, spec, chosen)
    except Exception as error:
        failure = _classify(error)
        tracking.fail_run(mlflow_client, run_id, describe(failure))
        raise failure from error
    print(summary(result), file=sys.stdout, flush=True)
    return 0


def _classify(error: Exception) -> WorkerError:
    from mlflow.exceptions import MlflowException

    if isinstance(error, WorkerError):
        return error
    if isinstance(error, MlflowException):
        return tracking.as_worker_error(error, "record the training result")
    return RetryableError(f"training crashed: {describe(error)}")
