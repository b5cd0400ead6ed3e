"""The Prometheus HTTP API: builtin queries, custom PromQL, and instant queries whose failures say why."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from .. import contract

Obj = dict[str, Any]
log = logging.getLogger("mlops.prometheus")
# The errorType values of the Prometheus HTTP API: safe to show, since no server can put its own text there.
ERROR_TYPES = frozenset({"bad_data", "timeout", "canceled", "execution", "unavailable", "internal", "not_found"})

# Metric names the model server exports live in contract.py.
REQUESTS = contract.METRIC_REQUESTS
DURATION = contract.METRIC_DURATION
FEATURE_BINS = contract.METRIC_FEATURE_BINS
FEATURE_NULLS = contract.METRIC_FEATURE_NULLS
FEEDBACK = contract.METRIC_FEEDBACK
FEEDBACK_CONFUSION = contract.METRIC_FEEDBACK_CONFUSION
FEEDBACK_ABSOLUTE_ERROR = contract.METRIC_FEEDBACK_ABSOLUTE_ERROR
FEEDBACK_SQUARED_ERROR = contract.METRIC_FEEDBACK_SQUARED_ERROR


class PrometheusError(Exception):
    """Prometheus could not be reached or rejected a query; `invalid_query` when the query itself is wrong."""

    def __init__(self, message: str, *, invalid_query: bool = False) -> None:
        super().__init__(message)
        self.invalid_query = invalid_query


def _selector(namespace: str, deployment: str, track: str, extra: str = "") -> str:
    parts = [f'namespace="{namespace}"', f'deployment="{deployment}"', f'track="{track}"']
    return "{" + ",".join(parts + ([extra] if extra else [])) + "}"


def builtin_query(builtin: str, namespace: str, deployment: str, track: str, window: str) -> str:
    """The PromQL behind a builtin analysis metric, for one track of a Deployment."""
    if builtin == "errorRate":
        # Shed (rejected) and not-ready 503s count: an overloaded canary must not pass on the requests it admitted.
        errors = _selector(namespace, deployment, track, 'outcome=~"server_error|rejected|not_ready"')
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


def feedback_queries(namespace: str, deployment: str, window: str, needs: str) -> dict[str, str]:
    """Labelled-feedback counts over `window` per (version, track) of a Deployment, by what the judgement needs:
    "outcomes" (correct/incorrect), "confusion" (true and predicted class) or "errors" (regression sums and the
    |error| histogram). Keyed by reading name; each is one query for every version and track at once."""
    sel = "{" + f'namespace="{namespace}",deployment="{deployment}"' + "}"

    def by(labels: str, metric: str) -> str:
        return f"sum by (version, track{labels}) (increase({metric}{sel}[{window}]))"

    if needs == "outcomes":
        return {"outcomes": by(", outcome", FEEDBACK)}
    if needs == "confusion":
        return {"confusion": by(", true_class, predicted_class", FEEDBACK_CONFUSION)}
    if needs == "errors":
        return {
            "count": by("", f"{FEEDBACK_ABSOLUTE_ERROR}_count"),
            "abs_sum": by("", f"{FEEDBACK_ABSOLUTE_ERROR}_sum"),
            "squared_sum": by("", FEEDBACK_SQUARED_ERROR),
            "buckets": by(", le", f"{FEEDBACK_ABSOLUTE_ERROR}_bucket"),
        }
    raise ValueError(f"unknown feedback reading {needs!r}")


def custom_query(query: str, namespace: str, deployment: str, track: str, window: str, version: str = "") -> str:
    """A user's PromQL with `{{namespace}}`, `{{deployment}}`, `{{track}}`, `{{window}}`, `{{version}}` filled in."""
    values = (("namespace", namespace), ("deployment", deployment), ("track", track), ("window", window))
    for key, value in (*values, ("version", version)):
        query = query.replace("{{" + key + "}}", value)
    return query


def redacted(url: str) -> str:
    """`url` without the user and password it may carry (they are credentials, and status is public)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}" if sep else url


class Prometheus:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.shown = redacted(self.url)  # what messages (and so status) may name: no userinfo
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
        except httpx.TimeoutException as error:
            raise PrometheusError(f"Prometheus at {self.shown} timed out ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise PrometheusError(f"Prometheus at {self.shown} is unreachable ({type(error).__name__})") from error
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code != 200 or payload.get("status") != "success":
            # Nothing the server wrote reaches status (it is shown to every reader of the object, and the URL
            # may not be a Prometheus at all): only the HTTP code and a known errorType. The text goes to the log.
            error_type = str(payload.get("errorType") or "")
            known = f", {error_type}" if error_type in ERROR_TYPES else ""
            log.warning("Prometheus at %s answered %s: %.300s", self.shown, response.status_code, payload.get("error"))
            invalid = response.status_code == 400 or error_type == "bad_data"
            detail = f"Prometheus answered HTTP {response.status_code}{known}"
            raise PrometheusError(
                f"invalid query: {detail}" if invalid else f"query failed: {detail}", invalid_query=invalid
            )
        try:
            data = payload["data"]
            if data["resultType"] == "scalar":
                return [({}, float(data["result"][1]))]
            return [({str(k): str(v) for k, v in (item.get("metric") or {}).items()}, float(item["value"][1]))
                    for item in data["result"]]  # fmt: skip
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise PrometheusError(f"Prometheus at {self.shown} answered a malformed query result") from error
