"""The Prometheus client's failures as status may show them: an HTTP code and a known errorType, never
text the server wrote (the server may not be a Prometheus at all), and a malformed answer is an error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from mlops_operator.integrations.prometheus import Prometheus, PrometheusError, redacted

SECRET = "aws_secret_access_key=AKIA-THE-SECRET"


def answered(status: int, body: Any) -> Prometheus:
    """A client whose every request gets this answer (httpx's transport boundary, nothing else faked)."""
    prometheus = Prometheus("http://prometheus:9090")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    prometheus._http = httpx.AsyncClient(base_url=prometheus.url, transport=transport)
    return prometheus


def failure(prometheus: Prometheus) -> PrometheusError:
    async def ask() -> None:
        try:
            await prometheus.vector("up")
        finally:
            await prometheus.aclose()

    with pytest.raises(PrometheusError) as error:
        asyncio.run(ask())
    return error.value


@pytest.mark.parametrize(
    ("status", "body", "message", "invalid"),
    [
        (400, {"status": "error", "errorType": "bad_data", "error": SECRET}, "HTTP 400, bad_data", True),
        (422, {"status": "error", "errorType": "execution", "error": SECRET}, "HTTP 422, execution", False),
        (
            500,
            {"status": "error", "errorType": SECRET, "error": SECRET},
            "query failed: Prometheus answered HTTP 500",
            False,
        ),
        (200, SECRET.encode(), "HTTP 200", False),  # not JSON at all
        (403, f"<html>{SECRET}</html>".encode(), "HTTP 403", False),
    ],
)
def test_no_text_of_the_server_reaches_the_error(status: int, body: Any, message: str, invalid: bool) -> None:
    error = failure(answered(status, body))
    assert message in str(error) and SECRET not in str(error) and error.invalid_query is invalid


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "vector", "result": [{"metric": {}, "value": [1, SECRET]}]},
        {"resultType": "vector", "result": "nope"},
        {"resultType": "scalar", "result": []},
        "not-an-object",
    ],
)
def test_a_malformed_success_is_an_error_not_a_crash(data: Any) -> None:
    error = failure(answered(200, {"status": "success", "data": data}))
    assert str(error) == "Prometheus at http://prometheus:9090 answered a malformed query result"


def test_credentials_in_the_url_never_reach_an_error() -> None:
    prometheus = Prometheus("http://reader:hunter2@prometheus:9090/")
    transport = httpx.MockTransport(lambda request: httpx.Response(503, content=b"down"))
    prometheus._http = httpx.AsyncClient(base_url=prometheus.url, transport=transport)
    error = failure(prometheus)
    assert "hunter2" not in str(error) and "reader" not in str(error)
    assert redacted("https://u:p@prom.example:9090/sub") == "https://prom.example:9090/sub"


def test_a_good_answer_is_read() -> None:
    body = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "1"}, "value": [1, "2.5"]}]},
    }
    prometheus = answered(200, body)

    async def ask() -> list[tuple[dict[str, str], float]]:
        try:
            return await prometheus.vector("up")
        finally:
            await prometheus.aclose()

    assert asyncio.run(ask()) == [({"a": "1"}, 2.5)]
