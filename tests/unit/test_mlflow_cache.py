"""The operator's MLflow reads are shared: one request for many objects on one model, none kept past the TTL,
no error kept, and a write drops what it changes (httpx's transport boundary stands in for MLflow)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mlops_operator.integrations.mlflow import MlflowError
from mlops_operator.integrations.mlflowcache import CachedMlflow


class Registry:
    """MLflow's registry answers for one model whose 'production' alias names `holder`; `down` answers 503."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.holder = 1
        self.down = False

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(f"{request.method} {request.url.path}")
        if self.down:
            return httpx.Response(503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "down"})
        if request.url.path.endswith("/registered-models/get"):
            return httpx.Response(
                200, json={"registered_model": {"name": "iris", "tags": [{"key": "k", "value": "v"}]}}
            )
        if request.url.path.endswith("/registered-models/alias") and request.method == "GET":
            return httpx.Response(200, json={"model_version": {"version": str(self.holder)}})
        if request.url.path.endswith("/registered-models/alias"):
            self.holder = 2
            return httpx.Response(200, json={})
        return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"})


def client(registry: Registry, ttl: float = 60.0) -> CachedMlflow:
    mlflow = CachedMlflow("http://mlflow:5000", ttl=ttl, env={})
    mlflow._http._transport = httpx.MockTransport(registry.answer)
    return mlflow


def test_many_passes_on_one_model_ask_once_and_get_their_own_copy() -> None:
    async def scenario() -> None:
        registry = Registry()
        mlflow = client(registry)
        models = await asyncio.gather(*(mlflow.registered_model("iris") for _ in range(50)))
        assert registry.asked == ["GET /api/2.0/mlflow/registered-models/get"]
        models[0]["tags"].clear()
        assert (await mlflow.registered_model("iris"))["tags"] == [{"key": "k", "value": "v"}]
        assert len(registry.asked) == 1
        await mlflow.aclose()

    asyncio.run(scenario())


def test_entries_expire_and_an_alias_move_is_read_back_from_the_registry() -> None:
    async def scenario() -> None:
        registry = Registry()
        mlflow = client(registry, ttl=0.05)
        assert await mlflow.alias_version("iris", "production") == 1
        await asyncio.sleep(0.06)
        assert await mlflow.alias_version("iris", "production") == 1 and len(registry.asked) == 2, "expired"
        mlflow.ttl = 60.0
        await mlflow.set_alias("iris", "production", 2)
        assert await mlflow.alias_version("iris", "production") == 2, "the move drops the entry it changes"
        await mlflow.aclose()

    asyncio.run(scenario())


def test_an_error_is_never_kept() -> None:
    async def scenario() -> None:
        registry = Registry()
        mlflow = client(registry)
        registry.down = True
        with pytest.raises(MlflowError):
            await mlflow.registered_model("iris")
        registry.down = False
        assert (await mlflow.registered_model("iris"))["name"] == "iris"
        assert await mlflow.model_version("iris", 7) is None
        assert len(registry.asked) == 3
        await mlflow.aclose()

    asyncio.run(scenario())
