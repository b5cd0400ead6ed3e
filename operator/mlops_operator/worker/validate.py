"""`mlops-worker validate`: read a Dataset source, check it against its schema, profile it, log the result."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from .. import contract
from ..api.dataset import DatasetSpec
from ..profile import Profile
from . import tracking
from .checks import Violation, validate_frame
from .context import read_env
from .errors import PermanentError, RetryableError, WorkerError, describe
from .profiling import profile_frame
from .sourcepolicy import SourcePolicy, policy_from_env
from .sources import load_source

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class ValidationResult:
    """What validating one source found."""

    version: str
    rows: int
    columns: int
    violations: list[Violation]
    profile: Profile

    @property
    def outcome(self) -> str:
        """valid or invalid."""
        return contract.OUTCOME_INVALID if self.violations else contract.OUTCOME_VALID


def dataset_spec(spec: dict[str, object], what: str) -> DatasetSpec:
    """Parse a Dataset spec (defaults applied); a malformed one is a permanent error."""
    try:
        return DatasetSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PermanentError(f"{what}: spec.{where}: {first['msg']}") from error


def validate_source(spec: DatasetSpec, policy: SourcePolicy | None = None, namespace: str = "") -> ValidationResult:
    """Read (as the cluster's source policy allows), check and profile a Dataset's source."""
    loaded = load_source(spec.source, policy, namespace)
    frame = loaded.frame
    return ValidationResult(
        version=loaded.version,
        rows=len(frame),
        columns=len(frame.columns),
        violations=validate_frame(frame, spec),
        profile=profile_frame(frame, spec, loaded.version),
    )


def log_result(mlflow_client: MlflowClient, run_id: str, result: ValidationResult) -> None:
    """Record a validation result on its MLflow run and close the run."""
    mlflow_client.log_dict(run_id, result.profile, contract.PROFILE_ARTIFACT)
    counts = {"rows": result.rows, "columns": result.columns, "violations": len(result.violations)}
    for key, count in counts.items():
        mlflow_client.log_metric(run_id, key, float(count))
    tags = {
        contract.TAG_DATASET_VERSION: result.version,
        contract.TAG_VIOLATIONS: tracking.violations_tag(result.violations),
        contract.TAG_PROFILE_URI: tracking.profile_uri(run_id),
        # The outcome goes last: the operator reads a run with an outcome as complete.
        contract.TAG_OUTCOME: result.outcome,
    }
    for key, value in tags.items():
        mlflow_client.set_tag(run_id, key, value)
    mlflow_client.set_terminated(run_id, status="FINISHED")


def summary(result: ValidationResult) -> str:
    """One line for the pod log."""
    head = f"{result.outcome}: {result.rows} rows, {result.columns} columns, version {result.version}"
    lines = [head, *(f"  {v['message']}" for v in result.violations[: contract.MAX_VIOLATIONS])]
    if len(result.violations) > contract.MAX_VIOLATIONS:
        lines.append(f"  ... and {len(result.violations) - contract.MAX_VIOLATIONS} more")
    return "\n".join(lines)


def run_validate() -> int:
    """The `validate` command: exit 0 for valid and invalid data, 2 or 1 when the source could not be read."""
    env = read_env("Dataset")
    spec = dataset_spec(env.obj.spec, f"Dataset '{env.obj.name}'")
    try:
        mlflow_client = tracking.client(env.tracking_uri)
        identity = env.obj.identity_tags(env.job_name)
        tracking.close_stale_runs(mlflow_client, contract.EXPERIMENT_DATASETS, identity)
        run_id = tracking.start_run(mlflow_client, contract.EXPERIMENT_DATASETS, env.job_name, identity)
    except Exception as error:
        raise tracking.as_worker_error(error, "start the validation run") from error
    try:
        result = validate_source(spec, policy_from_env(), env.obj.namespace)
    except Exception as error:
        failure = error if isinstance(error, WorkerError) else RetryableError(f"validation crashed: {describe(error)}")
        tracking.fail_run(mlflow_client, run_id, describe(failure))
        raise failure from error
    try:
        log_result(mlflow_client, run_id, result)
    except Exception as error:
        failure = tracking.as_worker_error(error, "record the validation result")
        tracking.fail_run(mlflow_client, run_id, describe(failure))
        raise failure from error
    print(summary(result), file=sys.stdout, flush=True)
    return 0
