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
