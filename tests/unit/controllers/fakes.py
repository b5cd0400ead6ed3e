"""Fakes at the boundary of the Job-driven controllers: an API server and MLflow that answer, or fail on purpose.

Only the calls the Dataset and TrainingRun reconciles make (and `Runtime.apply` after them) are here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mlops_operator.controllers.runtime import Runtime
from mlops_operator.controllers.settings import Settings
from mlops_operator.integrations.mlflow import MlflowError, RunInfo

Obj = dict[str, Any]


class FakeKube:
    """Objects by API path; a path in `failing` raises its error on every read."""

    def __init__(self, objects: dict[str, Obj] | None = None) -> None:
        self.objects: dict[str, Obj] = dict(objects or {})
        self.failing: dict[str, Exception] = {}
        self.patches: list[tuple[str, Obj]] = []
        self.created: list[tuple[str, Obj]] = []
        self.reads: list[str] = []  # every path read, in order
        self.deleted: list[str] = []

    def _read(self, path: str) -> Obj | None:
        self.reads.append(path)
        if path in self.failing:
            raise self.failing[path]
        return self.objects.get(path)

    async def get(self, path: str, **params: Any) -> Obj:
        return self._read(path) or {"items": []}

    async def get_or_none(self, path: str) -> Obj | None:
        return self._read(path)

    async def create(self, collection: str, body: Obj) -> Obj | None:
        if f"{collection}/{body['metadata'].get('name')}" in self.objects:
            return None  # AlreadyExists
        self.created.append((collection, body))
        return body

    async def delete(self, path: str, uid: str | None = None) -> None:
        self.deleted.append(path)
        self.objects.pop(path, None)

    async def merge_patch(self, path: str, patch: Obj) -> Obj:
        self.patches.append((path, patch))
        return {}

    def status_writes(self, path: str) -> list[Obj]:
        """The status bodies merge-patched onto one object's status subresource."""
        return [patch["status"] for written, patch in self.patches if written == f"{path}/status"]


class FakeMlflow:
    """MLflow's run search, registered models and the two writes the runtime makes (tags, alias moves):
    the given ones, or `error` raised while it is down."""

    tracking_uri = "http://mlflow:5000"

    def __init__(self, runs: list[RunInfo] | None = None) -> None:
        self.runs = list(runs or [])
        self.error: MlflowError | None = None
        self.searches = 0
        self.models: dict[str, Obj] = {}  # registered models by name, as MLflow's JSON shows them
        self.effects: list[tuple[Any, ...]] = []  # tags set and aliases moved, in order

    async def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        if self.error is not None:
            raise self.error
        self.effects.append(("tag", name, version, key, value))

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        if self.error is not None:
            raise self.error
        self.effects.append(("alias", name, alias, version))

    async def registered_model(self, name: str) -> Obj | None:
        if self.error is not None:
            raise self.error
        return self.models.get(name)

    async def find_runs(self, experiment: str, tags: dict[str, str], max_results: int = 20) -> list[RunInfo]:
        self.searches += 1
        if self.error is not None:
            raise self.error
        return self.runs


def fake_runtime(kube: FakeKube, mlflow: FakeMlflow) -> Runtime:
    """A Runtime over the fakes (it must be used inside a running event loop: requeues are timers)."""
    settings = Settings(
        tracking_uri=mlflow.tracking_uri,
        worker_image="mlops-operator/trainer:test",
        server_image="mlops-operator/server:test",
        prometheus_url=None,
    )
    return Runtime(kube=kube, mlflow=mlflow, settings=settings)  # type: ignore[arg-type]


def requeued_in(rt: Runtime, key: tuple[str, str, str]) -> float | None:
    """Seconds until the object is looked at again, if a look is scheduled."""
    timer = rt.timers.get(key)
    return None if timer is None else round(timer.when() - asyncio.get_running_loop().time())


def stop_timers(rt: Runtime) -> None:
    """Cancel the scheduled looks, so a test's event loop ends cleanly."""
    for timer in rt.timers.values():
        timer.cancel()
    rt.timers.clear()


def merged(status: Obj, patch: Obj) -> Obj:
    """A status after a merge patch (null deletes)."""
    result = dict(status)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
