"""Registers the handler of every kind. Later issues replace these shells with real controllers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api import ALL_KINDS, GROUP, VERSION
from ..planning.conditions import status_changed
from ..planning.initial import initial_status
from . import main  # noqa: F401  (startup settings)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _register(kind: str, plural: str) -> None:
    @kopf.on.resume(GROUP, VERSION, plural)
    @kopf.on.create(GROUP, VERSION, plural)
    @kopf.on.update(GROUP, VERSION, plural, field="spec")
    async def acknowledge(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        desired = initial_status(kind, dict(body), _now())
        if status_changed(dict(body.get("status") or {}), desired):
            patch.status.update(desired)


for _kind in ALL_KINDS:
    _register(_kind.kind, _kind.plural)
