"""The operator's MLflow client authenticates with the MLflow client's own variables (one Secret for all)."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from mlops_operator.integrations.mlflow import Mlflow, MlflowError


def seen_authorization(env: dict[str, str]) -> str | None:
    """The Authorization header a request of the client carries (httpx's transport boundary)."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."})

    client = Mlflow("http://mlflow:5000", env=env)
    client._http._transport = httpx.MockTransport(answer)

    async def ask() -> None:
        try:
            await client.registered_model("iris")
        finally:
            await client.aclose()

    with pytest.raises(MlflowError) as error:
        asyncio.run(ask())
    assert error.value.status == 401 and "not authenticated" in str(error.value)
    return seen[0]


def test_basic_auth_token_or_nothing() -> None:
    basic = seen_authorization({"MLFLOW_TRACKING_USERNAME": "team-a", "MLFLOW_TRACKING_PASSWORD": "s3cret"})
    assert basic == "Basic " + base64.b64encode(b"team-a:s3cret").decode()
    assert seen_authorization({"MLFLOW_TRACKING_TOKEN": "tok"}) == "Bearer tok"
    assert seen_authorization({"MLFLOW_TRACKING_USERNAME": "only-a-name"}) is None
    assert seen_authorization({}) is None


def flaky_server(failures: int) -> tuple[httpx.MockTransport, list[str]]:
    """A transport whose first `failures` requests find their connection closed by the server, unanswered."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= failures:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"registered_model": {"name": "iris", "aliases": []}})

    return httpx.MockTransport(answer), seen


def test_a_read_on_a_connection_the_server_just_closed_is_sent_once_more() -> None:
    async def scenario() -> None:
        transport, seen = flaky_server(failures=1)
        client = Mlflow("http://mlflow:5000", env={}, transport=transport)
        assert (await client.registered_model("iris")) == {"name": "iris", "aliases": []}
        assert seen == ["GET", "GET"]

        transport, seen = flaky_server(failures=2)  # twice in a row is an outage, and says so
        client = Mlflow("http://mlflow:5000", env={}, transport=transport)
        with pytest.raises(MlflowError, match="unreachable: RemoteProtocolError"):
            await client.registered_model("iris")
        assert seen == ["GET", "GET"]

    asyncio.run(scenario())


def test_a_write_is_never_sent_twice() -> None:
    async def scenario() -> None:
        transport, seen = flaky_server(failures=1)
        client = Mlflow("http://mlflow:5000", env={}, transport=transport)
        with pytest.raises(MlflowError, match="unreachable"):
            await client.set_alias("iris", "production", 3)  # it may have been carried out: not repeated
        assert seen == ["POST"]

    asyncio.run(scenario())
