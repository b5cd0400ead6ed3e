"""The operator's view of MLflow: runs, registered versions and aliases over MLflow's REST API.

The operator only reads results and moves aliases, so it speaks the documented REST API with
httpx instead of importing the `mlflow` package (hundreds of modules, ~100 MiB of memory).
Workers and the model server, which log and load models, use the `mlflow` package itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Obj = dict[str, Any]


class MlflowError(Exception):
    """MLflow could not be reached or refused a request; the message says which and why."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class RunInfo:
    """What the operator needs of a run: status, metrics, params and tags."""

    run_id: str
    status: str  # RUNNING | FINISHED | FAILED | KILLED | SCHEDULED
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    start_time: int | None = None
    end_time: int | None = None


def run_from_json(run: Obj) -> RunInfo:
    """A RunInfo from MLflow's JSON `run` object."""
    info, data = run.get("info", {}), run.get("data", {})
    return RunInfo(
        run_id=info["run_id"],
        status=info.get("status", ""),
        metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
        params={p["key"]: p["value"] for p in data.get("params", [])},
        tags={t["key"]: t["value"] for t in data.get("tags", [])},
        start_time=int(info["start_time"]) if info.get("start_time") else None,
        end_time=int(info["end_time"]) if info.get("end_time") else None,
    )


def credentials_from_env(env: Mapping[str, str]) -> tuple[httpx.Auth | None, dict[str, str]]:
    """The MLflow client's own variables, so one Secret serves the operator, the Jobs and the servers:
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth), or MLFLOW_TRACKING_TOKEN (bearer)."""
    username, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if username and password:
        return httpx.BasicAuth(username, password), {}
    token = env.get("MLFLOW_TRACKING_TOKEN")
    return None, ({"Authorization": f"Bearer {token}"} if token else {})


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


KEEPALIVE_SECONDS = 1.0


class Mlflow:
    """A small async client for the MLflow tracking server and model registry."""

    def __init__(
        self,
        tracking_uri: str,
        timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        auth, headers = credentials_from_env(os.environ if env is None else env)
        self._http = httpx.AsyncClient(
            base_url=f"{self.tracking_uri}/api/2.0/mlflow",
            timeout=timeout,
            auth=auth,
            headers=headers,
            # Below the server's keep-alive (uvicorn, which `mlflow server` runs: 5 s; gunicorn: 2 s): httpx's
            # default is 5 s too, so a pooled connection was reused as the server closed it.
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
            transport=transport,
        )

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; a read that found its pooled connection closed by the server is sent once more
        (nothing was answered; a write is not repeated, since it may have been carried out)."""
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.RemoteProtocolError:
            if method != "GET":
                raise
            return await self._http.request(method, url, **kwargs)

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, params: Obj | None = None, body: Obj | None = None) -> Obj:
        try:
            response = await self._send(method, path, params=params, json=body)
        except httpx.HTTPError as error:
            raise MlflowError(f"MLflow at {self.tracking_uri} is unreachable: {error!r}") from error
        if response.status_code >= 400:
            try:
                payload = response.json()
                code, message = payload.get("error_code", ""), payload.get("message", response.text)
            except ValueError:
                code, message = "", response.text[:300]
            raise MlflowError(f"MLflow {path}: {message}", status=response.status_code, code=code)
        return response.json() if response.content else {}

    async def experiment_id(self, name: str) -> str | None:
        """The id of an experiment by name; None if it does not exist yet."""
        try:
            payload = await self._call("GET", "/experiments/get-by-name", params={"experiment_name": name})
        except MlflowError as error:
            if error.code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return str(payload["experiment"]["experiment_id"])

    async def find_runs(self, experiment: str, tags: dict[str, str], max_results: int = 20) -> list[RunInfo]:
        """Runs of an experiment whose tags all match, newest first."""
        experiment_id = await self.experiment_id(experiment)
        if experiment_id is None:
            return []
        clause = " and ".join(f"tags.`{key}` = {_quote(value)}" for key, value in tags.items())
        payload = await self._call(
            "POST",
            "/runs/search",
            body={
                "experiment_ids": [experiment_id],
                "filter": clause,
                "order_by": ["attributes.start_time DESC"],
                "max_results": max_results,
            },
        )
        return [run_from_json(run) for run in payload.get("runs", [])]

    async def get_run(self, run_id: str) -> RunInfo:
        """One run by id."""
        payload = await self._call("GET", "/runs/get", params={"run_id": run_id})
        return run_from_json(payload["run"])

    async def model_version(self, name: str, version: int | str) -> Obj | None:
        """A registered model version (name, version, run_id, tags, aliases); None if it does not exist."""
        try:
            payload = await self._call("GET", "/model-versions/get", params={"name": name, "version": str(version)})
        except MlflowError as error:
            if error.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or error.status == 404:
                return None
            raise
        return dict(payload["model_version"])

    async def registered_model(self, name: str) -> Obj | None:
        """A registered model (name, tags, aliases); None if it does not exist."""
        try:
            payload = await self._call("GET", "/registered-models/get", params={"name": name})
        except MlflowError as error:
            if error.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or error.status == 404:
                return None
            raise
        return dict(payload["registered_model"])

    async def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Set one tag on a registered model."""
        await self._call("POST", "/registered-models/set-tag", body={"name": name, "key": key, "value": value})

    async def alias_version(self, name: str, alias: str) -> int | None:
        """The version that holds `alias` for a registered model; None if no version does."""
        try:
            payload = await self._call("GET", "/registered-models/alias", params={"name": name, "alias": alias})
        except MlflowError as error:
            if error.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or error.status == 404:
                return None
            raise
        return int(payload["model_version"]["version"])

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` at `version` (MLflow moves it from any previous holder)."""
        await self._call(
            "POST", "/registered-models/alias", body={"name": name, "alias": alias, "version": str(version)}
        )

    async def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set one tag on a registered model version."""
        await self._call(
            "POST", "/model-versions/set-tag", body={"name": name, "version": str(version), "key": key, "value": value}
        )

    async def version_metrics(self, name: str, version: int) -> tuple[Obj | None, dict[str, float]]:
        """A registered version and the metrics of the run that produced it."""
        registered = await self.model_version(name, version)
        if registered is None or not registered.get("run_id"):
            return registered, {}
        return registered, (await self.get_run(registered["run_id"])).metrics

    async def run_artifact_json(self, runs_uri: str) -> Obj:
        """A JSON artifact at a `runs:/<run id>/<path>` URI, read through the server's artifact proxy."""
        run_id, _, path = runs_uri.removeprefix("runs:/").partition("/")
        if not runs_uri.startswith("runs:/") or not run_id or not path:
            raise MlflowError(f"not a runs:/<run id>/<path> URI: {runs_uri!r}", code="INVALID_PARAMETER_VALUE")
        try:
            response = await self._send(
                "GET", f"{self.tracking_uri}/get-artifact", params={"run_uuid": run_id, "path": path}
            )
        except httpx.HTTPError as error:
            raise MlflowError(f"MLflow at {self.tracking_uri} is unreachable: {error!r}") from error
        if response.status_code >= 400:
            raise MlflowError(f"MLflow artifact {runs_uri}: {response.text[:300]}", status=response.status_code)
        try:
            payload = response.json()
        except ValueError as error:
            raise MlflowError(f"MLflow artifact {runs_uri} is not JSON", code="INVALID_PARAMETER_VALUE") from error
        if not isinstance(payload, dict):
            raise MlflowError(f"MLflow artifact {runs_uri} is not a JSON object", code="INVALID_PARAMETER_VALUE")
        return payload
