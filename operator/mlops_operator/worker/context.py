"""What a worker pod is told through its env: the object it acts for, the Job, where MLflow is."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import contract
from .errors import PermanentError


@dataclass(frozen=True)
class WorkerObject:
    """The identity and spec of the Dataset or TrainingRun a worker acts for."""

    kind: str
    namespace: str
    name: str
    uid: str
    spec: dict[str, Any]
    generation: int | None = None
    status: dict[str, Any] = field(default_factory=dict)

    def identity_tags(self, job_name: str) -> dict[str, str]:
        """The tags the operator finds this worker's MLflow run by."""
        return {
            contract.TAG_KIND: self.kind,
            contract.TAG_NAMESPACE: self.namespace,
            contract.TAG_NAME: self.name,
            contract.TAG_UID: self.uid,
            contract.TAG_JOB: job_name,
        }


def json_object(text: str, variable: str) -> dict[str, Any]:
    """The JSON object an env var holds; anything else is a permanent error naming the variable."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise PermanentError(f"env {variable} is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise PermanentError(f"env {variable} must hold a JSON object, not {type(body).__name__}")
    return body


def parse_object(text: str | None, variable: str, kind: str) -> WorkerObject:
    """Parse the JSON of one object from env `variable`, checking it is of `kind`."""
    if not text:
        raise PermanentError(f"env {variable} is not set; the operator passes the {kind} as JSON there")
    body = json_object(text, variable)
    if body.get("kind") != kind:
        raise PermanentError(f"env {variable} holds a {body.get('kind')!r}, expected a {kind}")
    meta = body.get("metadata") or {}
    missing = [key for key in ("namespace", "name", "uid") if not meta.get(key)]
    if missing:
        raise PermanentError(f"env {variable}: metadata lacks {', '.join(missing)}")
    return WorkerObject(
        kind=kind,
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta["uid"]),
        generation=meta.get("generation"),
        spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
    )


@dataclass(frozen=True)
class WorkerEnv:
    """Everything the env says, parsed once."""

    tracking_uri: str
    job_name: str
    obj: WorkerObject
    dataset: WorkerObject | None = None


def read_env(kind: str, environ: Mapping[str, str] | None = None) -> WorkerEnv:
    """Read the worker env for a command acting on `kind` (TrainingRun also needs the pinned Dataset)."""
    env = os.environ if environ is None else environ
    tracking_uri = env.get(contract.ENV_TRACKING_URI, "")
    if not tracking_uri:
        raise PermanentError(f"env {contract.ENV_TRACKING_URI} is not set; the worker logs its results to MLflow")
    obj = parse_object(env.get(contract.ENV_OBJECT), contract.ENV_OBJECT, kind)
    job_name = env.get(contract.ENV_JOB_NAME) or f"{obj.name}-local"
    dataset = None
    if kind == "TrainingRun":
        dataset = parse_object(env.get(contract.ENV_DATASET), contract.ENV_DATASET, "Dataset")
    return WorkerEnv(tracking_uri=tracking_uri, job_name=job_name, obj=obj, dataset=dataset)
