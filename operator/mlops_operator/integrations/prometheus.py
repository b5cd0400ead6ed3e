"""Canary analysis through the Prometheus HTTP API: builtin queries, custom PromQL, and verdicts."""

from __future__ import annotations

import math
from typing import Any

import httpx

Obj = dict[str, Any]

# Metric names the model server exports (server/metrics.py); labels: model, version, track, deployment, outcome.
REQUESTS = "mlops_server_requests_total"
DURATION = "mlops_server_request_duration_seconds"
FEATURE_BINS = "mlops_server_feature_bin_total"
FEATURE_NULLS = "mlops_server_feature_nulls_total"


class PrometheusError(Exception):
    """Prometheus could not be reached or rejected a query."""


def _selector(namespace: str, deployment: str, track: str, extra: str = "") -> str:
    parts = [f'namespace="{namespace}"', f'deployment="{deployment}"', f'track="{track}"']
    return "{" + ",".join(parts + ([extra] if extra else [])) + "}"


def builtin_query(builtin: str, namespace: str, deployment: str, track: str, window: str) -> str:
    """The PromQL behind a builtin analysis metric, for one track of a Deployment."""
    if builtin == "errorRate":
        errors = _selector(namespace, deployment, track, 'outcome="server_error"')
        every = _selector(namespace, deployment, track)
        # `or vector(0)`: with no server errors yet the error series does not exist at all.
        return f"(sum(rate({REQUESTS}{errors}[{window}])) or vector(0)) / sum(rate({REQUESTS}{every}[{window}]))"
    if builtin == "latencyP99Seconds":
        sel = _selector(namespace, deployment, track)
        return f"histogram_quantile(0.99, sum by (le) (rate({DURATION}_bucket{sel}[{window}])))"
    raise ValueError(f"unknown builtin {builtin!r}")


def drift_queries(namespace: str, deployment: str, version: int, window: str) -> tuple[str, str]:
    """Live bin counts and null counts per feature of the stable track's `version`, summed over replicas."""
    sel = _selector(namespace, deployment, "stable", f'version="{version}"')
    return (
        f"sum by (feature, bin) (increase({FEATURE_BINS}{sel}[{window}]))",
        f"sum by (feature) (increase({FEATURE_NULLS}{sel}[{window}]))",
    )


def custom_query(query: str, namespace: str, deployment: str, track: str, window: str, version: str = "") -> str:
    """A user's PromQL with `{{namespace}}`, `{{deployment}}`, `{{track}}`, `{{window}}`, `{{version}}` filled in."""
    values = (("namespace", namespace), ("deployment", deployment), ("track", track), ("window", window))
    for key, value in (*values, ("version", version)):
        query = query.replace("{{" + key + "}}", value)
    return query


def judge(metric: Obj, value: float | None) -> Obj:
    """One analysis result: passed, failed (with value and threshold), or no data yet (passed unset)."""
    name = metric["name"]
    result: Obj = {"name": name}
    if value is None or math.isnan(value):
        result["message"] = f"{name}: no data yet"
        return result
    result["value"] = round(value, 6)
    if metric.get("max") is not None and value > metric["max"]:
        result.update(passed=False, threshold=metric["max"], message=f"{name} {value:.4g} > max {metric['max']:g}")
    elif metric.get("min") is not None and value < metric["min"]:
        result.update(passed=False, threshold=metric["min"], message=f"{name} {value:.4g} < min {metric['min']:g}")
    else:
        threshold = metric.get("max") if metric.get("max") is not None else metric.get("min")
        result.update(passed=True, threshold=threshold, message=f"{name} {value:.4g} ok")
    return result


class Prometheus:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()

    async def scalar(self, query: str) -> float | None:
        """The value of a query that yields one series (the first, if several); None when empty."""
        series = await self.vector(query)
        return series[0][1] if series else None

    async def vector(self, query: str) -> list[tuple[dict[str, str], float]]:
        """Every series of an instant query as (labels, value); a scalar result has no labels."""
        try:
            response = await self._http.get("/api/v1/query", params={"query": query})
        except httpx.HTTPError as error:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: {error!r}") from error
        payload = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or payload.get("status") != "success":
            raise PrometheusError(f"query {query!r} failed: {payload.get('error') or response.text[:200]}")
        data = payload["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(item.get("metric") or {}), float(item["value"][1])) for item in data["result"]]
