"""The few MLflow operations both commands share: experiments, runs, tags, and classifying MLflow failures."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from .. import contract
from .errors import PermanentError, RetryableError, WorkerError, describe

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow stores tag values up to 8000 characters; errors are kept to a readable sentence.
MAX_ERROR_CHARS = 1000
MAX_VIOLATIONS_CHARS = 5000
MAX_PARAM_CHARS = 500
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}
# MLflow error codes that no retry can cure: the request itself is wrong.
PERMANENT_MLFLOW_CODES = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED"}


def client(tracking_uri: str) -> MlflowClient:
    """An MLflow client for `tracking_uri`; the fluent API (log_model) is pointed there too."""
    # MLflow retries an unreachable server for minutes by default; the Job's own backoff retries the pod.
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


def as_worker_error(error: Exception, doing: str) -> WorkerError:
    """An MLflow failure while `doing` something, classified: bad requests are permanent, the rest retried."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, WorkerError):
        return error
    if isinstance(error, MlflowException) and error.error_code in PERMANENT_MLFLOW_CODES:
        return PermanentError(f"MLflow refused to {doing}: {error.message}")
    text = describe(error)
    if "Max retries exceeded" in text or "Failed to establish a new connection" in text:
        # requests' own message is a URL-encoded wall of text; the errno sentence is what helps.
        cause = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
        text = f"the server is unreachable ({cause.group(0) if cause else 'connection failed'})"
    return RetryableError(f"MLflow could not {doing}: {text}"[:MAX_ERROR_CHARS])


def ensure_experiment(mlflow_client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (a concurrent creator may win the race)."""
    from mlflow.exceptions import MlflowException

    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    try:
        return str(mlflow_client.create_experiment(name))
    except MlflowException:
        existing = mlflow_client.get_experiment_by_name(name)
        if existing is None:
            raise
        return str(existing.experiment_id)


def start_run(mlflow_client: MlflowClient, experiment: str, run_name: str, tags: dict[str, str]) -> str:
    """Create a run in `experiment` named after the Job, with the identity tags the operator searches by."""
    experiment_id = ensure_experiment(mlflow_client, experiment)
    return str(mlflow_client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id)


def profile_uri(run_id: str) -> str:
    """Where a run's reference profile lives, as MLflow resolves it."""
    return f"runs:/{run_id}/{contract.PROFILE_ARTIFACT}"


def violations_tag(violations: list[Any]) -> str:
    """The violations tag: JSON of at most MAX_VIOLATIONS entries, under the size MLflow stores comfortably."""
    from .checks import fit_tag

    return json.dumps(fit_tag(violations, contract.MAX_VIOLATIONS, MAX_VIOLATIONS_CHARS))


def param_value(value: Any) -> str:
    """A parameter as MLflow shows it: JSON for structures, cut to a readable length."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_CHARS]


def fail_run(mlflow_client: MlflowClient, run_id: str, message: str) -> None:
    """Record a failure on the run (outcome failed, the error sentence) and close it; best effort."""
    try:
        mlflow_client.set_tag(run_id, contract.TAG_OUTCOME, contract.OUTCOME_FAILED)
        mlflow_client.set_tag(run_id, contract.TAG_ERROR, message[:MAX_ERROR_CHARS])
        mlflow_client.set_terminated(run_id, status="FAILED")
    except Exception:  # the original error is what the pod reports; MLflow may be its cause
        return


def quote(value: str) -> str:
    """A string literal for MLflow's search filter syntax."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def close_stale_runs(mlflow_client: MlflowClient, experiment: str, identity: dict[str, str]) -> None:
    """Mark runs of this Job's earlier pods that died mid-way (still RUNNING) as failed, so none looks live."""
    existing = mlflow_client.get_experiment_by_name(experiment)
    if existing is None:
        return
    keys = (contract.TAG_UID, contract.TAG_JOB)
    clause = " and ".join(f"tags.`{key}` = {quote(identity[key])}" for key in keys)
    runs = mlflow_client.search_runs([existing.experiment_id], f"{clause} and attributes.status = 'RUNNING'")
    for run in runs:
        fail_run(mlflow_client, run.info.run_id, "the pod running this stopped before it finished; a retry took over")


def ensure_parent_run(mlflow_client: MlflowClient, experiment: str, run_name: str, identity: dict[str, str]) -> str:
    """The parent run of a trial search (the refit's run too), found by its tags or created.

    Shards start at once, so two may both find none and both create one: each then keeps the oldest
    (start time, then id) and deletes its own if it lost, so every pod ends up logging under one parent.
    """
    tags = {**identity, contract.TAG_ROLE: contract.ROLE_PARENT}
    experiment_id = ensure_experiment(mlflow_client, experiment)
    clause = " and ".join(f"tags.`{key}` = {quote(value)}" for key, value in sorted(tags.items()))

    def oldest() -> str | None:
        runs = mlflow_client.search_runs([experiment_id], clause, max_results=50)
        live = [r for r in runs if r.info.status in ("RUNNING", "FINISHED")]
        return min(live, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id if live else None

    found = oldest()
    if found is not None:
        return found
    mine = str(mlflow_client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id)
    chosen = oldest() or mine
    if chosen != mine:
        mlflow_client.delete_run(mine)
    return chosen
