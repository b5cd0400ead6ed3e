"""The ASGI app in-process over httpx's ASGI transport: OIP v2, /invocations, errors, limits and shedding."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from mlops_operator.server.app import ServerApp
from mlops_operator.server.config import ServerConfig
from mlops_operator.server.metrics import ERROR_OUTCOMES, OUTCOME_CLIENT_ERROR, OUTCOME_SUCCESS, OUTCOMES

from .test_server_registry import IRIS_COLUMNS, Registry, iris_app, make_app, registry

__all__ = ["iris_app", "registry"]  # fixtures, imported for pytest

INFER = "/v2/models/iris-classifier/infer"


async def _send(app: ServerApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
        return await client.request(method, path, **kwargs)


def call(app: ServerApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the app, in-process."""
    return asyncio.run(_send(app, method, path, **kwargs))


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def columns_request(frame: Any, datatype: str = "FP64", cast: Any = float) -> dict[str, Any]:
    """One tensor per column (the pandas codec of MLServer/KServe)."""
    inputs = [
        {"name": c, "shape": [len(frame)], "datatype": datatype, "data": [cast(v) for v in frame[c]]}
        for c in frame.columns
    ]
    return {"id": "req-1", "inputs": inputs}


@pytest.fixture(scope="module")
def pets_app(registry: Registry) -> Iterator[ServerApp]:
    app = make_app(registry, "models:/pets/1")
    yield app
    app.stop()


def test_health_and_metadata(iris_app: ServerApp) -> None:
    assert call(iris_app, "GET", "/v2/health/live").json() == {"live": True}
    assert call(iris_app, "GET", "/v2/health/ready").json() == {"ready": True}
    assert call(iris_app, "GET", "/v2/models/iris-classifier/ready").status_code == 200
    assert call(iris_app, "GET", "/v2").json()["name"] == "mlops-server"
    meta = call(iris_app, "GET", "/v2/models/iris-classifier").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "sklearn"
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [(c, "FP64") for c in IRIS_COLUMNS]
    assert meta["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}
    assert call(iris_app, "GET", "/v2/models/iris-classifier/versions/1").status_code == 200
    assert call(iris_app, "GET", "/v2/models/iris-classifier/versions/7").status_code == 404
    assert call(iris_app, "GET", "/v2/models/other").status_code == 404
    assert call(iris_app, "GET", "/nowhere").status_code == 404
    assert call(iris_app, "GET", INFER).status_code == 405


@pytest.mark.parametrize(("datatype", "cast"), [("FP64", float), ("FP32", float), ("INT64", round), ("INT32", round)])
def test_oip_classification_per_column(registry: Registry, iris_app: ServerApp, datatype: str, cast: Any) -> None:
    frame = registry.iris_x.iloc[::10]
    response = call(iris_app, "POST", INFER, json=columns_request(frame, datatype, cast))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris-classifier" and body["model_version"] == "1" and body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "predict" and output["datatype"] == "BYTES" and output["shape"] == [len(frame)]
    expected = registry.iris_model.predict(frame.map(cast).astype(float))
    assert output["data"] == expected.tolist()


def test_oip_single_matrix_tensor_and_proba(registry: Registry, iris_app: ServerApp) -> None:
    frame = registry.iris_x.iloc[:7]
    request = {
        "inputs": [{"name": "input-0", "shape": [7, 4], "datatype": "FP32", "data": frame.to_numpy().tolist()}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    body = call(iris_app, "POST", "/v2/models/iris-classifier/versions/1/infer", json=request).json()
    predict, proba = body["outputs"]
    assert predict["data"] == registry.iris_model.predict(frame).tolist()
    assert proba["datatype"] == "FP64" and proba["shape"] == [7, 3]
    np.testing.assert_allclose(np.reshape(proba["data"], (7, 3)), registry.iris_model.predict_proba(frame))


def test_oip_regression(registry: Registry) -> None:
    app = make_app(registry, "models:/diabetes-regressor/1")
    try:
        frame = registry.diabetes_x.iloc[:20]
        body = call(app, "POST", "/v2/models/diabetes-regressor/infer", json=columns_request(frame)).json()
        (output,) = body["outputs"]
        assert output["datatype"] == "FP64" and output["shape"] == [20]
        np.testing.assert_allclose(output["data"], registry.diabetes_model.predict(frame))
        assert call(app, "GET", "/metrics").text.count("mlops_server_feature_bin_total{") == 0  # no profile
    finally:
        app.stop()


def test_oip_bytes_input(registry: Registry, pets_app: ServerApp) -> None:
    frame = registry.pets_x.iloc[:10]
    request = {
        "inputs": [
            {"name": "colour", "shape": [10, 1], "datatype": "BYTES", "data": frame["colour"].tolist()},
            {"name": "weight", "shape": [10], "datatype": "FP64", "data": frame["weight"].tolist()},
        ]
    }
    body = call(pets_app, "POST", "/v2/models/pets/infer", json=request).json()
    assert body["outputs"][0]["data"] == registry.pets_model.predict(frame).tolist()
    meta = call(pets_app, "GET", "/v2/models/pets").json()
    assert [i["datatype"] for i in meta["inputs"]] == ["BYTES", "FP64"]
    wrong = {"inputs": [{**request["inputs"][0], "datatype": "FP64", "data": [1.0] * 10}, request["inputs"][1]]}
    response = call(pets_app, "POST", "/v2/models/pets/infer", json=wrong)
    assert response.status_code == 422 and "colour" in response.json()["error"]
    records = frame.to_dict(orient="records")
    body = call(pets_app, "POST", "/invocations", json={"dataframe_records": records}).json()
    assert body["predictions"] == registry.pets_model.predict(frame).tolist()


def test_invocations_all_formats(registry: Registry, iris_app: ServerApp) -> None:
    frame = registry.iris_x.iloc[::15]
    expected = registry.iris_model.predict(frame).tolist()
    shuffled = frame[list(reversed(IRIS_COLUMNS))]
    bodies = [
        {"dataframe_split": {"columns": list(shuffled.columns), "data": shuffled.to_numpy().tolist()}},
        {"dataframe_records": frame.to_dict(orient="records")},
        {"instances": frame.to_dict(orient="records")},
        {"instances": frame.to_numpy().tolist()},
        {"inputs": {c: frame[c].tolist() for c in IRIS_COLUMNS}},
        {"inputs": frame.to_numpy().tolist(), "params": {}},
    ]
    for body in bodies:
        response = call(iris_app, "POST", "/invocations", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"dataframe_split": {"columns": IRIS_COLUMNS[:3], "data": [[1, 2, 3]]}}, 422, "petal_width"),
        ({"dataframe_records": [{**dict.fromkeys(IRIS_COLUMNS, 1.0), "colour": 2}]}, 422, "colour"),
        ({"dataframe_records": [{**dict.fromkeys(IRIS_COLUMNS, 1.0), "petal_width": "wide"}]}, 422, "petal_width"),
        ({"instances": [[1.0, 2.0, 3.0]]}, 422, "4 values"),
        ({"dataframe_records": [], "instances": []}, 400, "exactly one"),
        ({"rows": []}, 400, "rows"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_invocations_bad_input(iris_app: ServerApp, body: Any, status: int, needle: str) -> None:
    response = call(iris_app, "POST", "/invocations", json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["message"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r["inputs"].pop(), "petal_width"),
        (lambda r: r["inputs"].append({"name": "colour", "shape": [1], "datatype": "FP64", "data": [1]}), "colour"),
        (lambda r: r["inputs"][0].update(datatype="BYTES", data=["x"]), "sepal_length"),
        (lambda r: r["inputs"][1].update(data=["x"]), "sepal_width"),
        (lambda r: r["inputs"][2].update(shape=[2]), "petal_length"),
        (lambda r: r["inputs"][3].update(shape=[1, 2], data=[1, 2]), "petal_width"),
        (lambda r: r["inputs"][3].update(datatype="INT64", data=[1.5]), "petal_width"),
        (lambda r: r["inputs"][3].update(datatype="FP128"), "petal_width"),
        (lambda r: r.update(inputs={}), "inputs"),
    ],
)
def test_oip_bad_input_names_the_field(iris_app: ServerApp, mutate: Any, needle: str) -> None:
    request = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in IRIS_COLUMNS]}
    mutate(request)
    response = call(iris_app, "POST", INFER, json=request)
    assert response.status_code in (400, 422), response.text
    assert needle in response.json()["error"]


def test_not_json_and_content_type(iris_app: ServerApp) -> None:
    response = call(iris_app, "POST", INFER, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    response = call(iris_app, "POST", "/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert response.status_code == 415 and "application/json" in response.json()["message"]


def test_body_limit(registry: Registry) -> None:
    app = make_app(registry, max_body_bytes=200)
    try:
        big = {"instances": [[1.0, 2.0, 3.0, 4.0]] * 50}
        response = call(app, "POST", "/invocations", json=big)
        assert response.status_code == 413 and "200" in response.json()["message"]

        async def chunked() -> httpx.Response:  # no Content-Length: the limit applies while reading
            async def body() -> Any:
                for _ in range(50):
                    yield b"[1.0, 2.0, 3.0, 4.0],"

            return await _send(app, "POST", "/invocations", content=body())

        assert asyncio.run(chunked()).status_code == 413
        assert call(app, "POST", "/invocations", json={"instances": [[1.0, 2.0, 3.0, 4.0]]}).status_code == 200
    finally:
        app.stop()


def test_overload_is_shed_fast(registry: Registry) -> None:
    """max-inflight 1 and a slow model: the second request gets 503 + Retry-After at once, not after the first."""
    app = make_app(registry, max_inflight=1, inline_budget_ms=0.0)
    assert app.model is not None
    fast_predict = app.model.predict

    def slow_predict(batch: Any) -> Any:
        time.sleep(0.5)
        return fast_predict(batch)

    app.model.predict = slow_predict
    request = {"instances": [[5.1, 3.5, 1.4, 0.2]]}

    async def scenario() -> tuple[httpx.Response, httpx.Response, float]:
        first = asyncio.create_task(_send(app, "POST", "/invocations", json=request))
        await asyncio.sleep(0.1)  # the first is now predicting in its thread
        start = time.perf_counter()
        second = await _send(app, "POST", "/invocations", json=request)
        elapsed = time.perf_counter() - start
        return await first, second, elapsed

    try:
        first, second, elapsed = asyncio.run(scenario())
        assert first.status_code == 200
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert "overloaded" in second.json()["message"]
        assert elapsed < 0.05, elapsed
        assert call(app, "GET", "/v2/health/live").status_code == 200
        assert sample(call(app, "GET", "/metrics").text, "mlops_server_requests_total", outcome="rejected") == 1
    finally:
        app.stop()


# The operator's errorRate builtin selects these (integrations/prometheus.py); PromQL anchors the regex.
ERROR_SELECTOR = 'outcome=~"server_error|rejected|not_ready"'


def error_rate(text: str) -> float:
    """What the errorRate builtin computes from one scrape: requests the selector counts over all requests."""
    pattern = re.compile(ERROR_SELECTOR.split("=~", 1)[1].strip('"'))
    from prometheus_client.parser import text_string_to_metric_families

    samples = [
        s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "mlops_server_requests_total"
    ]
    total = sum(s.value for s in samples)
    return sum(s.value for s in samples if pattern.fullmatch(s.labels["outcome"])) / total


def test_error_rate_selector_counts_every_server_failure() -> None:
    from mlops_operator.integrations.prometheus import builtin_query

    assert ERROR_SELECTOR in builtin_query("errorRate", "ns", "iris", "canary", "30s")  # what the operator asks
    assert set(ERROR_SELECTOR.split('"')[1].split("|")) == set(ERROR_OUTCOMES)
    assert set(ERROR_OUTCOMES) | {OUTCOME_SUCCESS, OUTCOME_CLIENT_ERROR} == set(OUTCOMES)


def test_an_overloaded_canary_fails_its_error_rate(registry: Registry) -> None:
    """Shed requests are errors to the client: 1 admitted and 4 shed is an error rate of 0.8, not 0."""
    app = make_app(registry, max_inflight=1, inline_budget_ms=0.0)
    assert app.model is not None
    fast_predict = app.model.predict

    def slow_predict(batch: Any) -> Any:
        time.sleep(0.3)
        return fast_predict(batch)

    app.model.predict = slow_predict
    request = {"instances": [[5.1, 3.5, 1.4, 0.2]]}

    async def scenario() -> list[httpx.Response]:
        first = asyncio.create_task(_send(app, "POST", "/invocations", json=request))
        await asyncio.sleep(0.1)
        shed = [await _send(app, "POST", "/invocations", json=request) for _ in range(4)]
        return [await first, *shed]

    try:
        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200, 503, 503, 503, 503]
        text = call(app, "GET", "/metrics").text
        assert sample(text, "mlops_server_requests_total", outcome="rejected") == 4
        assert sample(text, "mlops_server_requests_total", outcome="server_error") == 0  # the old selector saw 0
        assert error_rate(text) == 0.8
    finally:
        app.stop()


def test_requests_before_the_model_loads_count_as_not_ready(registry: Registry) -> None:
    """A worker without its model answers 503 + Retry-After, counted apart from shedding and from failures."""
    release = threading.Event()

    def blocked_load() -> Any:
        release.wait(10)
        raise RuntimeError("never loads in this test")

    app = ServerApp(ServerConfig(model_uri="models:/iris-classifier/1", tracking_uri=registry.tracking_uri),
                    blocked_load)  # fmt: skip
    app.start()
    try:
        response = call(app, "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "not loaded yet" in response.json()["message"]
        text = call(app, "GET", "/metrics").text
        assert sample(text, "mlops_server_requests_total", outcome="not_ready") == 1
        assert sample(text, "mlops_server_requests_total", outcome="rejected") == 0
        assert error_rate(text) == 1.0
    finally:
        release.set()
        app.stop()


async def _raw_asgi(app: ServerApp, receive: Any) -> tuple[int, dict[str, Any]]:
    """One POST /invocations through the ASGI interface with a caller-made `receive` (a slow client)."""
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": [], "query_string": b""}
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_a_slow_body_gets_408_and_holds_no_in_flight_slot_meanwhile(registry: Registry) -> None:
    app = make_app(registry, max_inflight=1, body_timeout_s=0.3)

    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(5)  # the client never finishes its body in time
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def scenario() -> tuple[tuple[int, dict[str, Any]], httpx.Response]:
        slow = asyncio.create_task(_raw_asgi(app, trickle))
        await asyncio.sleep(0.05)  # the slow request is reading its body now
        fast = await _send(app, "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        return await slow, fast

    try:
        (status, body), fast = asyncio.run(scenario())
        assert fast.status_code == 200, "the one in-flight slot was free while the slow body was read"
        assert status == 408 and "did not arrive within 0.3s" in body["message"]
        assert app.limiter.inflight == 0 and app.body_budget.in_use == 0
        assert sample(call(app, "GET", "/metrics").text, "mlops_server_requests_total", outcome="client_error") >= 1
    finally:
        app.stop()


def test_bodies_beyond_the_bytes_in_flight_budget_are_shed_and_the_budget_is_given_back(registry: Registry) -> None:
    app = make_app(registry, max_body_bytes=10_000, max_inflight_bytes=200)
    rows = [[5.1, 3.5, 1.4, 0.2]] * 20  # ≈ 500 bytes: fits the body limit, not the budget
    try:
        shed = call(app, "POST", "/invocations", json={"instances": rows})
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert "bytes of request bodies" in shed.json()["message"] and app.body_budget.in_use == 0
        ok = call(app, "POST", "/invocations", json={"instances": rows[:2]})
        assert ok.status_code == 200 and app.body_budget.in_use == 0
        assert sample(call(app, "GET", "/metrics").text, "mlops_server_requests_total", outcome="rejected") == 1
    finally:
        app.stop()
