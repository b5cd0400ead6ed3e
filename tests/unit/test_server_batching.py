"""Dynamic batching: merge and split (pure), and concurrent requests sharing one predict call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
from mlops_operator.server.app import ServerApp
from mlops_operator.server.batching import _Item, compute_group, merge, split
from mlops_operator.server.schema import Batch

from .test_server_app import _send
from .test_server_registry import Registry, make_app, registry

__all__ = ["registry"]


def _item(batch: Batch) -> _Item:
    return _Item(batch, None, asyncio.get_event_loop_policy().new_event_loop().create_future())


def test_merge_and_split() -> None:
    a, b = Batch(rows=1, matrix=np.ones((1, 2))), Batch(rows=2, matrix=np.zeros((2, 2)))
    merged = merge([a, b])
    assert merged is not None and merged.rows == 3 and merged.matrix is not None and merged.matrix.shape == (3, 2)
    assert merge([a, Batch(rows=1, columns=[np.ones(1), np.ones(1)])]) is None
    parts = split([("predict", np.arange(3)), ("proba", np.arange(6).reshape(3, 2))], [1, 2])
    assert parts is not None
    assert [p[0][1].tolist() for p in parts] == [[0], [1, 2]] and parts[1][1][1].shape == (2, 2)
    assert split([("predict", np.arange(2))], [1, 2]) is None  # not one entry per row: no split


def test_a_bad_request_does_not_fail_its_batch() -> None:
    def compute(batch: Batch, requested: Any) -> list[tuple[str, np.ndarray]]:
        assert batch.matrix is not None
        if np.isnan(batch.matrix).any():
            raise ValueError("NaN")
        return [("predict", batch.matrix.sum(axis=1))]

    good, bad = Batch(rows=1, matrix=np.ones((1, 2))), Batch(rows=1, matrix=np.full((1, 2), np.nan))
    results = compute_group(compute, [_item(good), _item(bad), _item(good)])
    assert isinstance(results[1], ValueError)
    assert [r[0][1].tolist() for r in (results[0], results[2])] == [[2.0], [2.0]]  # type: ignore[index]


def test_concurrent_requests_share_a_predict(registry: Registry) -> None:
    app: ServerApp = make_app(registry, max_inflight=64)
    assert app.model is not None
    calls: list[int] = []
    predict = app.model.predict

    def counting(batch: Batch) -> Any:
        calls.append(batch.rows)
        return predict(batch)

    app.model.predict = counting
    rows = registry.iris_x.to_numpy()[:20].tolist()

    async def burst() -> list[httpx.Response]:
        sends = [_send(app, "POST", "/invocations", json={"instances": [row]}) for row in rows]
        sends.append(_send(app, "POST", "/invocations", json={"instances": [[None, 1.0, 1.0, 1.0]]}))
        return await asyncio.gather(*sends)

    try:
        responses = asyncio.run(burst())
        expected = registry.iris_model.predict(registry.iris_x.iloc[:20]).tolist()
        assert all(r.status_code == 200 for r in responses[:20]), [r.text for r in responses[:3]]
        assert [r.json()["predictions"][0] for r in responses[:20]] == expected
        assert responses[20].status_code == 422  # the NaN row: the model refuses it, alone
        assert max(calls) > 1 and len(calls) < 21 + 21, calls  # merged at least once
    finally:
        app.stop()
