"""The shadow mirror on the real ASGI apps (real sqlite MLflow models): a stable server mirrors sampled requests
to a shadow-track server, counts agreement per shadow version, and never makes users wait for the shadow."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlops_operator import contract
from mlops_operator.server.app import ServerApp
from mlops_operator.server.config import ConfigError, ServerConfig, config_from_env
from mlops_operator.server.model import load_model
from mlops_operator.server.outputs import prepare
from mlops_operator.server.shadow import (
    OUTCOME_COMPARED,
    OUTCOME_DROPPED,
    OUTCOME_ERROR,
    OUTCOME_TIMEOUT,
    Mirror,
    compare,
    parse_target,
    shadow_prediction,
)

from ..test_server_app import _send, sample
from ..test_server_registry import Registry, iris_app, make_app, registry

__all__ = ["iris_app", "registry"]  # fixtures, imported for pytest

INFER = "/v2/models/iris-classifier/infer"
SHADOW_URL = "http://iris-shadow.team.svc"


def iris_rows(registry: Registry, rows: int = 5) -> dict[str, Any]:
    frame = registry.iris_x.head(rows)
    inputs = [{"name": c, "shape": [rows], "datatype": "FP64", "data": [float(v) for v in frame[c]]} for c in frame]
    return {"inputs": inputs}


def stable_app(registry: Registry) -> ServerApp:
    return make_app(registry, track="stable", shadow_url=SHADOW_URL)


def shadow_app(registry: Registry, *, disagree: bool = False, sample_fraction: float = 1.0) -> ServerApp:
    """A shadow-track server of iris; `disagree`: one whose model answers 'setosa' whatever it is asked."""
    config = ServerConfig(
        model_uri="models:/iris-classifier/1",
        tracking_uri=registry.tracking_uri,
        track="shadow",
        deployment="iris",
        shadow_sample=sample_fraction,
        shadow_tolerance=0.0,
    )

    def load() -> Any:
        model = load_model(config.model_uri, registry.tracking_uri)
        if disagree:
            model.version = "2"
            model.predict = lambda batch: np.full(batch.rows, "setosa", dtype=object)
        return prepare(model)

    app = ServerApp(config, load=load)
    app.start()
    assert app.loader.wait(60), app.loader.reason
    return app


def mirrored_text(stable: ServerApp) -> str:
    assert stable.metrics is not None
    stable.metrics.flush()
    return stable.metrics.exposition()[0].decode()


async def _mirror_requests(
    stable: ServerApp, shadow: Any, requests: int, body: dict[str, Any], **mirror: Any
) -> list[float]:
    """Attach a mirror whose network is `shadow` (an ASGI app), send `requests` predictions to the stable
    server, wait (bounded) for the copies, and give each prediction's latency as users saw it."""
    assert stable.metrics is not None
    stable.mirror = Mirror(SHADOW_URL, stable.metrics.shadow, transport=httpx.ASGITransport(app=shadow), **mirror)
    stable.mirror.start()
    try:
        await stable.mirror.poll_once()
        latencies = []
        for _ in range(requests):
            started = time.perf_counter()
            answer = await _send(stable, "POST", INFER, json=body)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while stable.mirror._queue.qsize() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the last copies in flight
        return latencies
    finally:
        await stable.mirror.stop()


def test_an_agreeing_shadow_is_counted_row_by_row_for_its_version(registry: Registry) -> None:
    stable, shadow = stable_app(registry), shadow_app(registry)
    asyncio.run(_mirror_requests(stable, shadow, 8, iris_rows(registry, 5)))
    text = mirrored_text(stable)
    labels = {"shadow_version": "1", "version": "1", "track": "stable", "deployment": "iris"}
    assert sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_COMPARED, **labels) == 8
    assert sample(text, contract.METRIC_SHADOW_ROWS, **labels) == 40
    assert sample(text, contract.METRIC_SHADOW_AGREED_ROWS, **labels) == 40
    # The shadow's own answers count as the shadow track, never as stable or canary traffic.
    assert shadow.metrics is not None
    shadow_text = shadow.metrics.exposition()[0].decode()
    assert sample(shadow_text, contract.METRIC_REQUESTS, track="shadow", outcome="success") == 8


def test_a_disagreeing_shadow_counts_the_rows_it_got_wrong(registry: Registry) -> None:
    stable, shadow = stable_app(registry), shadow_app(registry, disagree=True)
    body = iris_rows(registry, 150)
    truth = registry.iris_model.predict(registry.iris_x.head(150))
    asyncio.run(_mirror_requests(stable, shadow, 3, body))
    text = mirrored_text(stable)
    labels = {"shadow_version": "2", "deployment": "iris"}
    assert sample(text, contract.METRIC_SHADOW_ROWS, **labels) == 450
    assert sample(text, contract.METRIC_SHADOW_AGREED_ROWS, **labels) == 3 * int(np.sum(truth == "setosa"))


def test_users_never_wait_for_a_slow_shadow_and_its_timeouts_and_drops_are_counted(registry: Registry) -> None:
    stable = stable_app(registry)

    async def slow_shadow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/v2/shadow":
            body = orjson.dumps({"version": "3", "sample": 1.0, "tolerance": 0.0})
        else:
            await asyncio.sleep(5)  # cancelled by the mirror's timeout
            body = b"{}"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    latencies = asyncio.run(
        _mirror_requests(stable, slow_shadow, 40, iris_rows(registry, 3), timeout_s=0.3, senders=1, queue_size=2)
    )
    assert max(latencies) < 0.25, latencies  # each request is answered without waiting for a 5 s shadow
    text = mirrored_text(stable)
    timeouts = sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_TIMEOUT, shadow_version="3")
    dropped = sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_DROPPED, shadow_version="3")
    assert timeouts >= 1 and dropped >= 30, (timeouts, dropped)
    assert sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_COMPARED, shadow_version="3") == 0


def test_sampling_mirrors_about_the_fraction_the_shadow_asks_for(registry: Registry) -> None:
    stable, shadow = stable_app(registry), shadow_app(registry, sample_fraction=0.25)
    draws = iter([0.1, 0.9, 0.3, 0.2, 0.6, 0.24, 0.26, 0.0] * 4)
    asyncio.run(_mirror_requests(stable, shadow, 32, iris_rows(registry, 1), draw=lambda: next(draws)))
    text = mirrored_text(stable)
    assert sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_COMPARED) == 4 * 4  # draws below 0.25


def test_no_shadow_no_mirroring_and_only_a_shadow_answers_the_shadow_page(
    registry: Registry, iris_app: ServerApp
) -> None:
    stable = stable_app(registry)
    assert asyncio.run(_send(iris_app, "GET", "/v2/shadow")).status_code == 404  # a canary is no shadow
    asyncio.run(_mirror_requests(stable, iris_app, 3, iris_rows(registry, 2)))
    assert stable.mirror is not None and stable.mirror.target is None
    assert sample(mirrored_text(stable), contract.METRIC_SHADOW_REQUESTS) == 0
    page = asyncio.run(_send(shadow_app(registry, sample_fraction=0.5), "GET", "/v2/shadow"))
    assert page.status_code == 200 and page.json() == {"version": "1", "sample": 0.5, "tolerance": 0.0}


def test_a_shadow_answering_errors_or_another_shape_counts_as_error(registry: Registry) -> None:
    stable = stable_app(registry)
    answers = iter([(500, b'{"error":"boom"}'), (200, b'{"outputs":[{"name":"predict","data":["a"]}]}')] * 3)

    async def broken_shadow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status, body = (200, orjson.dumps({"version": "4", "sample": 1.0, "tolerance": 0.0}))
        if scope["path"] != "/v2/shadow":
            status, body = next(answers)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    asyncio.run(_mirror_requests(stable, broken_shadow, 6, iris_rows(registry, 3), senders=1))
    text = mirrored_text(stable)
    assert sample(text, contract.METRIC_SHADOW_REQUESTS, outcome=OUTCOME_ERROR, shadow_version="4") == 6


def test_compare_classes_and_values() -> None:
    assert compare(np.asarray(["a", "b", "c"], dtype=object), ["a", "x", "c"], True, 0.0).agreed == 2  # type: ignore[union-attr]
    assert compare(np.asarray([1, 2]), [1, "2"], True, 0.0).agreed == 2  # type: ignore[union-attr]
    assert compare(np.asarray([1, 2]), [1], True, 0.0) is None  # another number of rows
    values = compare(np.asarray([100.0, 10.0, 0.0, 5.0]), [104.0, 12.0, 0.01, None], False, 0.05)
    assert (
        values is not None and values.rows == 4 and values.agreed == 2
    )  # 4 % and 0 -> 0.01 (absolute below 1) yes; 20 %, null: no
    assert values.relative_difference == pytest.approx(0.04 + 0.2 + 0.01)
    exact_zero = compare(np.asarray([0.0, 2.0]), [0.0, 2.0], False, 0.0)
    assert exact_zero is not None and exact_zero.agreed == 2


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0, 1))
def test_values_agree_with_themselves_at_any_tolerance(values: list[float], tolerance: float) -> None:
    result = compare(np.asarray(values), list(values), False, tolerance)
    assert result is not None and result.agreed == result.rows == len(values)


def test_parse_target_and_shadow_prediction() -> None:
    assert parse_target(b'{"version":"2","sample":0.1,"tolerance":0.05}') is not None
    for bad in (
        b"",
        b"[]",
        b'{"version":"2","sample":0,"tolerance":0}',
        b'{"version":"2","sample":2,"tolerance":0}',
        b'{"version":"","sample":0.5,"tolerance":0}',
        b'{"version":"2","sample":0.5,"tolerance":-1}',
    ):
        assert parse_target(bad) is None, bad
    v2 = b'{"outputs":[{"name":"predict_proba","data":[0.1]},{"name":"predict","data":["a","b"]}]}'
    assert shadow_prediction(v2, "v2", "predict") == ["a", "b"]
    assert shadow_prediction(b'{"predictions":[1,2]}', "mlflow", "predict") == [1, 2]
    records = b'{"predictions":[{"predict":"a","predict_proba":[0.9]}]}'
    assert shadow_prediction(records, "mlflow", "predict") == ["a"]
    assert shadow_prediction(b"not json", "v2", "predict") is None


def test_shadow_settings_from_env() -> None:
    env = {"MLOPS_MODEL_URI": "models:/iris/1", "MLOPS_SHADOW_SAMPLE": "0.2", "MLOPS_SHADOW_TOLERANCE": "0.05"}
    config = config_from_env({**env, "MLOPS_SHADOW_URL": SHADOW_URL})
    assert (config.shadow_url, config.shadow_sample, config.shadow_tolerance) == (SHADOW_URL, 0.2, 0.05)
    with pytest.raises(ConfigError, match="MLOPS_SHADOW_SAMPLE"):
        config_from_env({**env, "MLOPS_SHADOW_SAMPLE": "20"})
