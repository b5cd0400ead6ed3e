"""The operator's MLflow client: registry reads shared for a few seconds, one request in flight per read.

Thousands of ModelVersions and Deployments often name one registered model; without sharing, every pass of
each asks MLflow the same three questions (owner, version, alias holder), and a restart over 10,000 objects
spends most of its time waiting for MLflow. MLflow sends no events, so the planners already poll it: a read
up to `ttl` seconds old is what the next poll would have seen. A write through this client drops the entries
it changes, so the pass that confirms an alias move reads the registry, not the cache.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .mlflow import Mlflow, Obj, RunInfo

T = TypeVar("T")
DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 4096  # past this, entries older than the TTL are dropped (each is a small dict)


class CachedMlflow(Mlflow):
    """`Mlflow` with registry and run reads shared for `ttl` seconds; errors are never kept."""

    def __init__(self, tracking_uri: str, ttl: float = DEFAULT_TTL_SECONDS, **kwargs: Any) -> None:
        super().__init__(tracking_uri, **kwargs)
        self.ttl = ttl
        self._entries: dict[tuple[str, ...], tuple[float, asyncio.Task[Any]]] = {}

    async def _shared(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or not _usable(entry, now, self.ttl):
            self._prune(now)
            entry = (now, asyncio.ensure_future(fetch()))
            self._entries[key] = entry
        try:
            # Shielded: a waiter cancelled (its pass ended) must not cancel the read others wait for too.
            value = await asyncio.shield(entry[1])
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
        return copy.deepcopy(value)  # callers may change what they got; the shared copy stays as read

    def _prune(self, now: float) -> None:
        if len(self._entries) < MAX_ENTRIES:
            return
        for key, entry in list(self._entries.items()):
            if entry[1].done() and now - entry[0] >= self.ttl:
                del self._entries[key]

    def _forget(self, model: str, version: int | None = None) -> None:
        for key in list(self._entries):
            if len(key) > 1 and key[1] == model and (version is None or key[0] != "version" or key[2] == str(version)):
                del self._entries[key]

    async def experiment_id(self, name: str) -> str | None:
        """As `Mlflow.experiment_id`, shared."""
        return await self._shared(("experiment", name), lambda: super(CachedMlflow, self).experiment_id(name))

    async def get_run(self, run_id: str) -> RunInfo:
        """As `Mlflow.get_run`, shared."""
        return await self._shared(("run", run_id), lambda: super(CachedMlflow, self).get_run(run_id))

    async def model_version(self, name: str, version: int | str) -> Obj | None:
        """As `Mlflow.model_version`, shared."""
        fetch = lambda: super(CachedMlflow, self).model_version(name, version)  # noqa: E731
        return await self._shared(("version", name, str(version)), fetch)

    async def registered_model(self, name: str) -> Obj | None:
        """As `Mlflow.registered_model`, shared."""
        return await self._shared(("model", name), lambda: super(CachedMlflow, self).registered_model(name))

    async def alias_version(self, name: str, alias: str) -> int | None:
        """As `Mlflow.alias_version`, shared."""
        return await self._shared(("alias", name, alias), lambda: super(CachedMlflow, self).alias_version(name, alias))

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        """Move the alias; the model's entries are dropped (aliases show in the model and its versions)."""
        try:
            await super().set_alias(name, alias, version)
        finally:  # a failed write may still have been made: read again either way
            self._forget(name)

    async def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Tag a version; that version's entry is dropped."""
        try:
            await super().set_version_tag(name, version, key, value)
        finally:
            self._forget(name, version)

    async def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Tag a registered model; the model's entries are dropped."""
        try:
            await super().set_registered_model_tag(name, key, value)
        finally:
            self._forget(name)


def _usable(entry: tuple[float, asyncio.Task[Any]], now: float, ttl: float) -> bool:
    """An entry still in flight, or read successfully less than `ttl` ago."""
    started, task = entry
    if not task.done():
        return True
    return now - started < ttl and not task.cancelled() and task.exception() is None
