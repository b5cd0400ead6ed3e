"""Prometheus is bounded, on the real cluster: a Deployment may not point the operator at a URL the chart
does not allow; a custom drift query of team A reaches Prometheus only with namespace="A" in every
selector (a recording endpoint sees exactly what is sent), a query naming team B's namespace is never
sent, the real Prometheus accepts the rewritten PromQL, and no text a Prometheus answered reaches status."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.fixtures.cluster import Kube, OperatorProcess, condition, wait_for
from tests.integration.test_serving import fitted_forest, register

SECRET = "token=THE-SECRET-FROM-AN-INTERNAL-SERVICE"


class Recorder:
    """An HTTP endpoint on loopback that records every PromQL query and answers with an error carrying SECRET."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.queries.extend(parse_qs(urlparse(self.path).query).get("query", []))
                body = json.dumps({"status": "error", "errorType": "bad_data", "error": SECRET}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    endpoint = Recorder()
    yield endpoint
    endpoint.close()


def unused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def deployment(name: str, model: str, query: str, prometheus_url: str | None = None) -> str:
    url = f"prometheusUrl: {json.dumps(prometheus_url)}" if prometheus_url else ""
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          model: {{registeredModel: {model}, version: 1}}
          replicas: 0
          monitoring:
            {url}
            drift: {{query: {json.dumps(query)}, interval: 1m, window: 5m}}
        """
    )


def status_of(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    return kube.json("get", f"mldeploy/{name}", "-n", namespace).get("status") or {}


def drift_message(kube: Kube, name: str, namespace: str) -> str | None:
    return (status_of(kube, name, namespace).get("drift") or {}).get("message")


def test_prometheus_urls_and_custom_queries_stay_inside_the_namespace(
    crds_installed: Kube, namespace: str, other_namespace: str, recorder: Recorder, tmp_path: Path
) -> None:
    kube = crds_installed
    model = f"prom-{namespace}"
    register(kube, model, fitted_forest(5, 1), namespace)
    elsewhere = unused_url()
    env = {"MLOPS_PROMETHEUS_ALLOWED_URLS": recorder.url}
    op = OperatorProcess(kube, namespace, tmp_path / "operator.log", extra_env=env).start()
    try:
        kube.apply(
            "---\n".join(
                [
                    deployment("scoped", model, "sum by (feature) (rate(mlops_requests_total[5m]))", recorder.url),
                    deployment("theirs", model, f'max(mlops_requests_total{{namespace="{other_namespace}"}})'),
                    deployment("elsewhere", model, "sum(up)", elsewhere),
                    deployment("real", model, "sum by (feature) (rate(mlops_requests_total[5m])) or vector(0)"),
                ]
            ),
            namespace,
        )
        # Team A's query reaches the (allowed) endpoint scoped to team A, and nothing it answered is shown.
        sent = wait_for("the scoped query sent", lambda: list(recorder.queries), timeout=90)
        assert sent[0] == f'sum by (feature) (rate(mlops_requests_total{{namespace="{namespace}"}}[5m]))', sent
        message = wait_for("the scoped check's result", lambda: drift_message(kube, "scoped", namespace), timeout=60)
        assert "Prometheus answered HTTP 400, bad_data" in message, message
        assert SECRET not in json.dumps(status_of(kube, "scoped", namespace))

        # A query naming team B's namespace is refused with the rule and never sent anywhere.
        message = wait_for("the refused query", lambda: drift_message(kube, "theirs", namespace), timeout=60)
        assert f'a selector matches namespace="{other_namespace}"' in message
        assert f"custom queries see only namespace {namespace}" in message
        assert condition({"status": status_of(kube, "theirs", namespace)}, "Degraded")["reason"] == "DriftCheckFailed"
        assert not [q for q in recorder.queries if other_namespace in q]

        # A URL the chart does not allow is not asked at all.
        degraded = wait_for(
            "PrometheusNotAllowed",
            lambda: (
                (c := condition({"status": status_of(kube, "elsewhere", namespace)}, "Degraded"))
                and c["reason"] == "PrometheusNotAllowed"
                and c
            ),
            timeout=60,
        )
        assert elsewhere in degraded["message"] and "prometheus.allowedUrls" in degraded["message"]

        # The real Prometheus takes the rewritten PromQL: the check runs (no data yet), it does not fail.
        message = wait_for("the real Prometheus's answer", lambda: drift_message(kube, "real", namespace), timeout=60)
        assert not message.startswith("drift check failed"), message
        assert all(f'namespace="{namespace}"' in q for q in recorder.queries)
    except (AssertionError, subprocess.SubprocessError):
        print(kube.run("get", "mldeploy", "-n", namespace, "-o", "yaml", check=False).stdout[-6000:])
        print(op.log_tail(80))
        raise
    finally:
        op.stop()
