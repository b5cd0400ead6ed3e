"""Worker failures, classified by whether a retried pod could succeed."""

from __future__ import annotations

from .. import contract


class WorkerError(Exception):
    """A failure with a sentence a person can act on and the exit code the Job's failure policy reads."""

    exit_code = contract.EXIT_RETRYABLE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentError(WorkerError):
    """Retrying cannot help: bad data, bad spec, changed source (exit 2 fails the Job at once)."""

    exit_code = contract.EXIT_PERMANENT


class RetryableError(WorkerError):
    """Transient: I/O or MLflow trouble (exit 1, retried up to the Job's backoffLimit)."""

    exit_code = contract.EXIT_RETRYABLE


def describe(error: BaseException) -> str:
    """One line for any exception: the worker's own message, or the type and text of anything else."""
    if isinstance(error, WorkerError):
        return error.message
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def exit_code(error: BaseException) -> int:
    """The exit code for an exception; anything unclassified is treated as transient and retried."""
    return error.exit_code if isinstance(error, WorkerError) else contract.EXIT_RETRYABLE
