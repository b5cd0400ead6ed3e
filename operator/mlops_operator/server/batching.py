"""Dynamic batching without a timer: the predictions waiting at one point run as one predict call.

scikit-learn spends most of a small predict in input validation, whatever the row count (about
0.3 ms for one iris row, +2.5 us per further row), so eight single-row requests that arrive
together cost one predict instead of eight. Nothing waits for a batch to fill: a flush takes what
is pending when the event loop gets to it (inline models), or when the prediction thread is free
again (slow models), so a lone request pays no extra latency.

A merged predict that fails is retried request by request, so one bad request cannot fail the
others that happened to share its batch. Rows and drift bins are counted per predicted group too:
one searchsorted per feature for the whole group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .schema import Batch

Outputs = list[tuple[str, np.ndarray]]
Compute = Callable[[Batch, list[str] | None], Outputs]
Observe = Callable[[Batch], None]
MAX_BATCH_ROWS = 4096


@dataclass
class _Item:
    batch: Batch
    requested: tuple[str, ...] | None
    future: asyncio.Future[Outputs]


def merge(batches: list[Batch]) -> Batch | None:
    """One batch of all rows, in order; None when the batches are of different forms."""
    matrices = [b.matrix for b in batches if b.matrix is not None]
    if len(matrices) == len(batches):
        return Batch(rows=sum(b.rows for b in batches), matrix=np.vstack(matrices))
    if all(b.columns is not None for b in batches):
        width = len(batches[0].columns or [])
        columns = [np.concatenate([(b.columns or [])[j] for b in batches]) for j in range(width)]
        return Batch(rows=sum(b.rows for b in batches), columns=columns)
    return None


def split(outputs: Outputs, sizes: list[int]) -> list[Outputs] | None:
    """Per-request outputs of a merged prediction; None when an output is not one entry per row."""
    total = sum(sizes)
    if any(array.ndim == 0 or array.shape[0] != total for _, array in outputs):
        return None
    bounds = np.cumsum([0, *sizes]).tolist()
    return [[(name, array[bounds[i] : bounds[i + 1]]) for name, array in outputs] for i in range(len(sizes))]


def compute_group(compute: Compute, items: list[_Item], scored: Observe | None = None) -> list[Outputs | BaseException]:
    """Predict a group of requests together, falling back to one by one; an exception per failed request.

    `scored` sees every successfully predicted batch once: the merged one, or each that succeeded alone.
    """
    requested = list(items[0].requested) if items[0].requested else None
    if len(items) > 1:
        merged = merge([item.batch for item in items])
        if merged is not None:
            try:
                parts = split(compute(merged, requested), [item.batch.rows for item in items])
            except Exception:  # some request in the group is bad: find out which, one by one
                parts = None
            if parts is not None:
                if scored is not None:
                    scored(merged)
                return list(parts)
    results: list[Outputs | BaseException] = []
    for item in items:
        try:
            results.append(compute(item.batch, requested))
        except Exception as error:
            results.append(error)
        else:
            if scored is not None:
                scored(item.batch)
    return results


class Batcher:
    """Collects predictions and runs them in groups, inline or on the prediction thread."""

    def __init__(
        self,
        inline: Callable[[int, int], bool],
        executor: Executor,
        scored: Observe | None = None,
        max_rows: int = MAX_BATCH_ROWS,
    ) -> None:
        self._inline = inline  # (rows, outputs) -> whether it fits the inline budget
        self._scored = scored  # drift counting, once per predicted group rather than per request
        self._executor = executor
        self._max_rows = max_rows
        self._pending: list[_Item] = []
        self._scheduled = False
        self._busy = False  # the prediction thread is running a group

    async def predict(self, compute: Compute, batch: Batch, requested: list[str] | None) -> Outputs:
        """The outputs for one request, computed with whatever else is pending."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._pending.append(_Item(batch, tuple(requested) if requested else None, future))
        self._schedule(loop, compute)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop, compute: Compute) -> None:
        if not self._scheduled and not self._busy and self._pending:
            self._scheduled = True
            loop.call_soon(self._flush, loop, compute)

    def _next_group(self) -> list[_Item]:
        first = self._pending[0]
        group, rows = [first], first.batch.rows
        for item in self._pending[1:]:
            same_form = (item.batch.matrix is None) == (first.batch.matrix is None)
            if item.requested != first.requested or not same_form or rows + item.batch.rows > self._max_rows:
                break
            group.append(item)
            rows += item.batch.rows
        del self._pending[: len(group)]
        return group

    def _flush(self, loop: asyncio.AbstractEventLoop, compute: Compute) -> None:
        self._scheduled = False
        while self._pending:
            group = self._next_group()
            rows = sum(item.batch.rows for item in group)
            if self._inline(rows, len(group[0].requested or ()) or 1):
                _deliver(group, compute_group(compute, group, self._scored))
                continue
            self._busy = True
            running = loop.run_in_executor(self._executor, compute_group, compute, group, self._scored)

            def finished(done: Any, group: list[_Item] = group) -> None:
                self._finished(loop, compute, group, done)

            running.add_done_callback(finished)
            return

    def _finished(self, loop: asyncio.AbstractEventLoop, compute: Compute, group: list[_Item], done: Any) -> None:
        self._busy = False
        if done.cancelled():
            results: list[Any] = [asyncio.CancelledError()] * len(group)
        elif done.exception() is not None:
            results = [done.exception()] * len(group)
        else:
            results = done.result()
        _deliver(group, results)
        self._schedule(loop, compute)


def _deliver(group: list[_Item], results: list[Any]) -> None:
    for item, result in zip(group, results, strict=True):
        if item.future.done():  # the request went away meanwhile
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)
