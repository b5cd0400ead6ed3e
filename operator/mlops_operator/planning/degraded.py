"""The Degraded condition of the Job-driven kinds (Dataset, TrainingRun): which of a pass's reads failed.

A read that failed (the API server for a Job or its pods, MLflow for a finished Job's run) decides
nothing final: the planner keeps the rest of status, Degraded says what failed, and the object is
looked at again with the back-off ModelVersions use (15 s, growing with the condition's age to 5 min).
Once every read answers again, a Degraded condition that was set turns False.
"""

from __future__ import annotations

from datetime import datetime

from ..api.common import Condition
from ..integrations.mlflow import MlflowError
from .conditions import find_typed, set_typed
from .modelversion import _retry_after
from .observed import WorkerJobObserved
from .plan import Obj

DEGRADED = "Degraded"
MLFLOW_UNAVAILABLE = "MlflowUnavailable"
API_READ_FAILED = "ApiReadFailed"

Problem = tuple[str, str]  # (reason, message)


def mlflow_failure(error: MlflowError) -> str:
    """An MLflow failure in one short line: unreachable and why, or the HTTP status and error code it
    answered (never its response body)."""
    if error.status is None:
        return (str(error) or repr(error)).splitlines()[0][:300]
    code = f" {error.code}" if error.code else ""
    return f"MLflow answered HTTP {error.status}{code}"


def job_problems(job: WorkerJobObserved) -> list[Problem]:
    """The reads of a worker Job that failed this pass, as (reason, message)."""
    problems = []
    if job.job_error is not None:
        problems.append((API_READ_FAILED, job.job_error))
    if job.pods_error is not None:
        problems.append((API_READ_FAILED, job.pods_error))
    if job.run_error is not None:
        problems.append((MLFLOW_UNAVAILABLE, mlflow_failure(job.run_error)))
    return problems


def problem_text(problems: list[Problem]) -> str:
    """The messages of several problems in one line."""
    return "; ".join(message for _, message in problems)


def degraded(
    conditions: list[Condition] | None, problems: list[Problem], *, generation: int, now: str
) -> list[Condition] | None:
    """Degraded True with the first problem's reason and every message; with none, False if it was ever set
    (an object no outside read ever failed for carries no Degraded condition)."""
    if problems:
        reason = problems[0][0]
        return set_typed(conditions, DEGRADED, "True", reason, problem_text(problems), generation=generation, now=now)
    if find_typed(conditions, DEGRADED) is None:
        return conditions
    message = "every outside system answered"
    return set_typed(conditions, DEGRADED, "False", "AsExpected", message, generation=generation, now=now)


def retry_after(status: Obj, now: datetime) -> float:
    """When to look again while Degraded: grows with the condition's age (the ModelVersion back-off)."""
    return _retry_after(status, DEGRADED, now)
