"""Notifications on the real cluster: a real pipeline (train → approve → promote → canary steps → promoted, and a
rejected version) notifies a signed webhook and a Slack-style receiver, both local HTTP servers started here."""

from __future__ import annotations

import json
import secrets
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlops_operator.notify.signing import verify

from .conftest import Kube, OperatorProcess, wait_for
from .test_serving import Traffic
from .test_training import iris_dataset, mlflow_alias, sample_data, training_run, wait_phase


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """An HTTP server on loopback that records every POST and answers 200 (the operator runs as a local process
    in tests, so loopback reaches it)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.received.append(Received(self.path, dict(self.headers.items()), body, time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def policy(receiver: Receiver, name: str = "ml-events", path: str = "/hook") -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: NotificationPolicy
        metadata: {{name: {name}}}
        spec:
          destinations:
            - {{name: webhook, type: webhook, url: "{receiver.url}{path}", signingSecretKey: hmac}}
            - {{name: slack, type: slack, url: "{receiver.url}/slack", triggers: [Promoted, Rejected, RolledBack]}}
        """
    )


def deployment(model: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: iris}}
        spec:
          model: {{registeredModel: {model}, alias: production}}
          replicas: 2
          strategy:
            canary:
              steps: [{{weight: 10, pause: 10s}}, {{weight: 50, pause: 10s}}, {{weight: 100}}]
              analysis:
                interval: 5s
                failureLimit: 2
                metrics:
                  - {{name: error-rate, builtin: errorRate, max: 0.05}}
                  - {{name: latency-p99, builtin: latencyP99Seconds, max: 2.0}}
        """
    )


def triggers(received: list[Received]) -> list[tuple[str, str]]:
    return [(r.json["trigger"], r.json["object"]["name"]) for r in received]


def test_a_pipeline_notifies_a_signed_webhook_and_slack(
    crds_installed: Kube, namespace: str, other_namespace: str, tmp_path: Path, receiver: Receiver, monkeypatch: Any
) -> None:
    kube, model = crds_installed, f"notify-{namespace}"
    key = secrets.token_hex(32).encode()
    mounted = tmp_path / "notification-secret"  # what the chart mounts from notifications.secretName
    mounted.mkdir()
    (mounted / f"{namespace}.hmac").write_bytes(key + b"\n")
    (mounted / f"{other_namespace}.hmac").write_bytes(b"o" * 64)
    op = OperatorProcess(
        kube,
        namespace,
        tmp_path / "operator.log",
        extra_env={"MLOPS_NOTIFICATION_SECRETS_DIR": str(mounted)},
        also_watch=(other_namespace,),
    ).start()
    try:
        # Another team's policy on the same operator: it must receive none of this namespace's events.
        kube.apply(policy(receiver, "theirs", "/other"), other_namespace)
        kube.apply(policy(receiver), namespace)
        wait_phase(kube, "notificationpolicy/ml-events", namespace, {"Ready"}, op, 60)
        csv = sample_data("iris", tmp_path / "iris.csv")

        # 1. Train and promote the first version directly (no Deployment follows the alias yet).
        kube.apply(iris_dataset(f"file://{csv}") + "---\n" + training_run("first", model), namespace)
        assert wait_phase(kube, "trainingrun/first", namespace, {"Succeeded", "Failed"}, op, 240) == "Succeeded"
        wait_phase(kube, f"modelversion/{model}-1", namespace, {"Promoted"}, op, 60)
        # 2. Serve it; then a second version goes through the canary while a third fails its gate.
        kube.apply(deployment(model), namespace)
        wait_for("version 1 to serve", lambda: _deployment(kube, namespace).get("phase") == "Healthy", timeout=120)
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))  # the traffic tool finds the Service's endpoints
        with Traffic(namespace, csv, duration=200):
            params = "{n_estimators: 40, max_depth: 5, random_state: 1}"
            second = training_run("second", model, params=params, gates="[{metric: accuracy, min: 0.8}]")
            kube.apply(second, namespace)
            kube.apply(training_run("worse", model, gates="[{metric: accuracy, min: 1.01}]"), namespace)
            wait_phase(kube, "trainingrun/second", namespace, {"Succeeded", "Failed"}, op, 240)
            version = kube.json("get", "trainingrun/second", "-n", namespace)["status"]["modelVersion"]
            wait_phase(kube, f"modelversion/{version}", namespace, {"Promoted", "RolledBack"}, op, 240)
        wait_phase(kube, "trainingrun/worse", namespace, {"Succeeded", "Failed"}, op, 60)
        worse = kube.json("get", "trainingrun/worse", "-n", namespace)["status"]["modelVersion"]
        wait_phase(kube, f"modelversion/{worse}", namespace, {"Rejected"}, op, 60)
        promoted_version = int(version.rsplit("-", 1)[1])
        assert mlflow_alias(kube, model) == promoted_version

        def all_arrived() -> bool:
            got = set(triggers(receiver.at("/hook")))
            return {("Promoted", version), ("Rejected", worse), ("CanaryStep", "iris")} <= got

        wait_for("the notifications of the pipeline", all_arrived, timeout=30)
        time.sleep(2)  # let any late duplicate arrive before counting
        hook, slack = receiver.at("/hook"), receiver.at("/slack")

        # Every webhook body is signed with this namespace's key, within the replay window.
        for r in hook:
            assert verify(key, r.body, r.headers, now=time.time()), r.headers
            assert not verify(b"o" * 64, r.body, r.headers, now=time.time())
        ids = [r.json["id"] for r in hook]
        assert len(ids) == len(set(ids)), "a notification was delivered twice"
        seen = triggers(hook)
        for expected in [
            ("Trained", "first"),
            ("Approved", f"{model}-1"),
            ("Promoted", f"{model}-1"),
            ("Trained", "second"),
            ("Approved", version),
            ("CanaryStep", "iris"),
            ("Promoted", version),
            ("Trained", "worse"),
            ("Rejected", worse),
        ]:
            assert expected in seen, f"{expected} not notified; got {seen}"
        assert receiver.at("/other") == [], "another namespace's policy received this namespace's events"

        # The ML facts.
        by = {(r.json["trigger"], r.json["object"]["name"], r.json["reason"]): r.json for r in hook}
        trained = by["Trained", "first", "Succeeded"]
        assert trained["model"] == {"name": model, "version": 1} and trained["metrics"]["accuracy"] >= 0.9
        assert trained["dataset"]["version"].startswith("sha256:")
        rejected = by["Rejected", worse, "Rejected"]
        (gate,) = rejected["gates"]
        assert gate["metric"] == "accuracy" and gate["threshold"] == 1.01 and gate["passed"] is False
        assert gate["value"] == rejected["metrics"]["accuracy"] and rejected["severity"] == "Warning"
        steps = [r.json for r in hook if r.json["trigger"] == "CanaryStep"]
        assert [s["reason"] for s in steps] == ["CanaryStarted", "CanaryStep", "CanaryStep", "CanaryCompleted"]
        weights = [s["canary"]["weight"] for s in steps if "canary" in s and "weight" in s["canary"]]
        assert weights[:2] == [10, 50], weights
        judged = [a for s in steps for a in s.get("analysis") or [] if a.get("value") is not None]
        assert {a["name"] for a in judged} >= {"error-rate", "latency-p99"}, steps
        assert all(a["value"] <= a["threshold"] for a in judged if a.get("passed"))
        assert by["Promoted", version, "Promoted"]["model"]["version"] == promoted_version

        # Slack gets only its triggers, as incoming-webhook text and blocks.
        texts = [r.json["text"] for r in slack]
        assert any(t.startswith(":white_check_mark: Promoted: ModelVersion") for t in texts), texts
        assert any(t.startswith(":warning: Rejected: ModelVersion") for t in texts), texts
        assert not any("Trained" in t or "CanaryStep" in t for t in texts), texts
        for r in slack:
            assert set(r.json) == {"text", "blocks"} and r.json["blocks"][0]["type"] == "section"
        assert op.metric(
            "mlops_operator_notifications_delivered_total", namespace=namespace, destination="webhook"
        ) == len(hook)
        assert op.metric("mlops_operator_notifications_dropped_total") == 0

        # Measured: from the pass that posted the Event (payload time, whole seconds) to the receiver.
        lags = sorted(
            r.at - datetime.strptime(r.json["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() for r in hook
        )
        p50, worst = lags[len(lags) // 2], lags[-1]
        print(
            f"\n{len(hook)} webhook + {len(slack)} slack notifications; "
            f"event -> received p50 {p50:.2f}s, max {worst:.2f}s"
        )
        assert lags[-1] < 5, "a notification waited (no receiver was down)"

        # A restarted operator relists and reconciles everything, and sends none of it again.
        count = len(receiver.received)
        op.kill()
        op.start()
        wait_for("the restarted operator to reconcile", lambda: _reconciled(op, "Deployment"), timeout=60)
        time.sleep(10)
        assert len(receiver.received) == count, triggers(receiver.received[count:])
    finally:
        op.stop()
        print(f"--- operator log (tail) ---\n{op.log_tail()}")


def _reconciled(op: OperatorProcess, kind: str) -> bool:
    try:
        return op.metric("mlops_operator_reconciles_total", kind=kind) > 0
    except httpx.TransportError:  # its metrics port is not listening yet
        return False


def _deployment(kube: Kube, namespace: str) -> dict[str, Any]:
    return kube.json("get", "mldeploy/iris", "-n", namespace).get("status", {})
