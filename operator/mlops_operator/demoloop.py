"""The whole loop, staged and watched: train, serve, measure drift, shift the data, retrain, roll out again;
then (demoquality.py) judge the answers: labels, a concept change, PerformanceDegraded, shadow, live-accuracy canary.

Used by `mlops-operator demo` and by the end-to-end test, which asserts on the LoopResult it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import contract
from .demoview import drift_figures, list_objects, render_table, rows_of
from .localcluster.kubeclient import ApiError, KubeClient
from .localcluster.kubeconfig import read_credentials
from .traffic import TrafficReport, send_traffic

Obj = dict[str, Any]
TRIGGER_LABEL = contract.LABEL_TRIGGER
Check = Callable[["Snapshot"], Any]


@dataclass
class LoopSettings:
    """Where the loop runs and how hard it pushes."""

    kubeconfig: Path
    mlflow_url: str
    prometheus_url: str
    namespace: str
    data: Path  # the Dataset's source file; the loop rewrites it with shifted data
    log_file: Path
    deployment: str = "iris"
    target: str = "species"
    shift: tuple[str, float] = ("petal_length", 1.0)  # feature, standard deviations
    rate: float = 40.0  # requests (one row each) per second
    timeout: float = 540.0
    liveness_port: int = 18081
    metrics_port: int = 18091
    feedback_secret: str = "mlops-feedback"  # prediction-id keys; created with a random key when absent


@dataclass
class Snapshot:
    """One poll of the namespace."""

    objects: dict[str, list[Obj]]

    def of(self, kind: str) -> list[Obj]:
        """Objects of a kind, oldest first."""
        return self.objects.get(kind, [])

    @property
    def deployment(self) -> Obj:
        """The Deployment's status (empty before it exists)."""
        items = self.of("Deployment")
        return (items[0].get("status") or {}) if items else {}

    def condition(self, ctype: str) -> str | None:
        """A condition status of the Deployment."""
        return next((c["status"] for c in self.deployment.get("conditions") or [] if c["type"] == ctype), None)

    def retraining_runs(self, cause: str = "drift") -> list[Obj]:
        """TrainingRuns the operator created whose first cause is `cause` (drift, performance, ...)."""
        return [r for r in self.of("TrainingRun") if (r["metadata"].get("labels") or {}).get(TRIGGER_LABEL) == cause]

    def model_version(self, name: str | None) -> Obj | None:
        """A ModelVersion by name."""
        return next((m for m in self.of("ModelVersion") if m["metadata"]["name"] == name), None)


@dataclass
class LoopResult:
    """What happened, when (seconds since start), and what the objects said."""

    ok: bool = False
    failure: str = ""
    marks: dict[str, float] = field(default_factory=dict)
    drift_checks: list[Obj] = field(default_factory=list)  # every distinct status.drift seen, in order
    canary_weights: list[int] = field(default_factory=list)
    performance_checks: list[Obj] = field(default_factory=list)  # every distinct status.performance
    shadow_checks: list[Obj] = field(default_factory=list)  # every distinct status.shadow
    live_accuracy: list[Obj] = field(default_factory=list)  # every distinct canary analysis result of liveAccuracy
    retraining_runs_seen: int = 0
    final: dict[str, list[Obj]] = field(default_factory=dict)
    traffic: TrafficReport = field(default_factory=TrafficReport)

    def between(self, start: str, end: str) -> float:
        """Seconds from one mark to another."""
        return self.marks[end] - self.marks[start]


class Traffic:
    """Prediction traffic in a background thread, re-reading the data file every few seconds."""

    def __init__(self, settings: LoopSettings, report: TrafficReport) -> None:
        self.settings, self.report = settings, report
        self.stop_event = threading.Event()
        self.labels: str | None = None  # a CSV column: from then on its values go back as feedback
        self.last_error = ""
        self.thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        """Begin sending."""
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current chunk."""
        self.stop_event.set()
        self.thread.join(timeout=15)

    def _run(self) -> None:
        s = self.settings
        chunk_number = 0
        while not self.stop_event.is_set():
            chunk_number += 1  # a new seed per chunk: the same seed would replay the same rows every chunk
            try:
                chunk = asyncio.run(
                    send_traffic(
                        s.namespace,
                        s.deployment,
                        s.data,
                        rate=s.rate,
                        duration=3.0,
                        drop={s.target},
                        kubeconfig=s.kubeconfig,
                        seed=chunk_number,
                        labels=self.labels,
                    )
                )
            except Exception as error:  # keep sending: a blip in the API server must not end the demo's traffic
                self.report.errors += 1
                self.last_error = repr(error)
                time.sleep(1.0)
                continue
            self.report.sent += chunk.sent
            self.report.errors += chunk.errors
            self.report.by_status.update(chunk.by_status)
            self.report.by_endpoint.update(chunk.by_endpoint)
            self.report.latencies.extend(chunk.latencies)
            self.report.labels = self.report.labels or chunk.labels
            self.report.labels_sent += chunk.labels_sent
            self.report.labels_accepted += chunk.labels_accepted
            self.report.labels_rejected.update(chunk.labels_rejected)
            self.report.feedback_failures += chunk.feedback_failures
            self.report.without_ids += chunk.without_ids
            if not chunk.sent:
                time.sleep(1.0)


def start_operator(s: LoopSettings) -> subprocess.Popen[bytes]:
    """`mlops-operator run` for the namespace, logging to the settings' log file."""
    env = {
        **os.environ,
        "KUBECONFIG": str(s.kubeconfig),
        "MLFLOW_TRACKING_URI": s.mlflow_url,
        "MLOPS_PROMETHEUS_URL": s.prometheus_url,
        "MLOPS_FEEDBACK_SECRET": s.feedback_secret,
    }
    argv = [sys.executable, "-m", "mlops_operator", "run", "-n", s.namespace]
    argv += ["--liveness", f"http://127.0.0.1:{s.liveness_port}/healthz", "--metrics-port", str(s.metrics_port)]
    s.log_file.parent.mkdir(parents=True, exist_ok=True)
    with s.log_file.open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def failure_of(snap: Snapshot) -> str:
    """Why the loop cannot complete any more, or ''."""
    for ds in snap.of("Dataset"):
        if (ds.get("status") or {}).get("phase") == "Invalid":
            return f"Dataset {ds['metadata']['name']} is Invalid: {ds['status'].get('message')}"
    for run in snap.of("TrainingRun"):
        if (run.get("status") or {}).get("phase") == "Failed":
            return f"TrainingRun {run['metadata']['name']} failed: {run['status'].get('message')}"
    for mv in snap.of("ModelVersion"):
        if (mv.get("status") or {}).get("phase") in ("Rejected", "RolledBack"):
            return f"ModelVersion {mv['metadata']['name']} is {mv['status']['phase']}: {mv['status'].get('message')}"
    return ""


def served(snap: Snapshot) -> int | None:
    """The stable version when the Deployment is Healthy with no canary running."""
    status = snap.deployment
    if status.get("phase") == "Healthy" and status.get("canaryVersion") is None:
        return status.get("stableVersion")
    return None


def promoted_and_served(snap: Snapshot) -> int | None:
    """A version this namespace trained and promoted, once it serves alone (an older alias holder does not count)."""
    version = served(snap)
    promoted = {
        int(m["spec"]["version"]) for m in snap.of("ModelVersion") if (m.get("status") or {}).get("phase") == "Promoted"
    }
    return version if version in promoted else None


def no_drift_on(version: int | None) -> Check:
    """A check that passes once a drift verdict on `version` says: no drift."""

    def check(snap: Snapshot) -> bool:
        drift = snap.deployment.get("drift") or {}
        return (
            version is not None
            and drift.get("version") == version
            and drift.get("score") is not None
            and snap.condition("DriftDetected") == "False"
        )

    return check


def retrained_and_promoted(snap: Snapshot, cause: str = "drift") -> int | None:
    """The version the last run retrained for `cause` made, once it serves alone (promoted through the canary)."""
    runs = snap.retraining_runs(cause)
    mv = snap.model_version(((runs[-1].get("status") or {}).get("modelVersion")) if runs else None)
    if mv is None or (mv.get("status") or {}).get("phase") != "Promoted":
        return None
    version = int(mv["spec"]["version"])
    return version if served(snap) == version else None


def ensure_feedback_secret(client: KubeClient, namespace: str, name: str) -> None:
    """The namespace's Secret of prediction-id keys, created with a random key unless it exists (ids stay valid)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "mlops-operator"}},
        "type": "Opaque",
        "stringData": {contract.FEEDBACK_SECRET_KEY: secrets.token_hex(32)},
    }
    try:
        client.create(f"/api/v1/namespaces/{namespace}/secrets", body)
    except ApiError as error:
        if error.status != 409:
            raise


class Loop:
    """Runs the stages in order, polling the namespace every second and drawing the live table."""

    def __init__(self, settings: LoopSettings, out: Callable[[str], None]) -> None:
        self.s, self.out = settings, out
        self.result = LoopResult()
        self.client = KubeClient(read_credentials(settings.kubeconfig), timeout=10)
        self.started = time.monotonic()
        self.shown = ""
        self.stage = ""
        self.tty = sys.stdout.isatty()

    def mark(self, name: str) -> None:
        """Record that a milestone was reached now."""
        self.result.marks[name] = round(time.monotonic() - self.started, 1)

    def poll(self) -> Snapshot:
        """Read the namespace, record drift checks and canary weights, redraw."""
        try:
            snap = Snapshot(list_objects(self.client, self.s.namespace))
        except ApiError as error:
            self.out(f"(API error: {error})")
            return Snapshot({})
        status = snap.deployment
        _append_new(self.result.drift_checks, status.get("drift"))
        _append_new(self.result.performance_checks, status.get("performance"))
        _append_new(self.result.shadow_checks, status.get("shadow"))
        for analysis in status.get("analysis") or []:
            if analysis.get("name") == LIVE_ACCURACY_METRIC:
                _append_new(self.result.live_accuracy, {**analysis, "version": status.get("canaryVersion")})
        weight = status.get("canaryWeight")
        if weight and (not self.result.canary_weights or self.result.canary_weights[-1] != weight):
            self.result.canary_weights.append(int(weight))
        self.result.retraining_runs_seen = max(self.result.retraining_runs_seen, len(snap.retraining_runs()))
        self.result.final = snap.objects
        table = render_table(rows_of(snap.objects), time.monotonic() - self.started, self.stage)
        if self.tty:
            self.out(("\033[H\033[2J" if self.shown else "") + table)
        elif table.rsplit("\n", 1)[0] != self.shown.rsplit("\n", 1)[0]:
            self.out(table + "\n")
        self.shown = table
        return snap

    def wait(self, stage: str, check: Check, operator: subprocess.Popen[bytes], allow_failure: bool = False) -> Any:
        """Poll until `check` passes; raise StageError on a failure, an exited operator, or the deadline."""
        self.stage = stage
        while time.monotonic() - self.started < self.s.timeout:
            snap = self.poll()
            value = check(snap)
            if value:
                self.mark(stage)
                return value
            failure = "" if allow_failure else failure_of(snap)
            if failure:
                raise StageError(f"{stage}: {failure}")
            if operator.poll() is not None:
                raise StageError(f"the operator exited with {operator.returncode}; see {self.s.log_file}")
            time.sleep(1.0)
        raise StageError(f"{stage}: not reached within {self.s.timeout:.0f}s")


def _append_new(seen: list[Obj], value: Obj | None) -> None:
    if value and (not seen or seen[-1] != value):
        seen.append(value)


LIVE_ACCURACY_METRIC = "accuracy"  # the name the demo gives its liveAccuracy analysis metric


class StageError(Exception):
    """The loop stopped short; the message says at which stage and why."""


def run_loop(
    settings: LoopSettings,
    manifests: list[Obj],
    apply: Callable[[Obj], None],
    out: Callable[[str], None],
    quality_deployment: Obj | None = None,
) -> LoopResult:
    """Apply the manifests and drive the loop to its end; never raises for a failed stage (see result.failure).

    With `quality_deployment` (the Deployment with label-based quality settings) the quality stage follows."""
    from .demoquality import run_quality_stage  # it builds on this module
    from .worker.sample_data import write_sample

    loop = Loop(settings, out)
    result = loop.result
    ensure_feedback_secret(loop.client, settings.namespace, settings.feedback_secret)
    operator = start_operator(settings)
    traffic = Traffic(settings, result.traffic)
    feature, delta = settings.shift
    try:
        for manifest in manifests:
            apply(manifest)
        first = loop.wait("first version trained, promoted and served", promoted_and_served, operator)
        traffic.start()
        loop.wait("drift measured on live traffic: none", no_drift_on(first), operator)
        shifted = settings.data.with_suffix(".shifted.csv")
        write_sample("iris", shifted, [f"{feature}={delta}"])
        os.replace(shifted, settings.data)  # atomic: the validator never reads half a file
        loop.mark("shift")
        out(f"==> shifted {feature} by {delta} standard deviations in the data set and in the traffic")
        loop.wait("drift detected", lambda snap: snap.condition("DriftDetected") == "True", operator)
        loop.wait("retraining TrainingRun created", lambda snap: bool(snap.retraining_runs()), operator)
        second = loop.wait("retrained version promoted through the canary", retrained_and_promoted, operator)
        loop.wait("drift measured on the new version: none", no_drift_on(second), operator)
        if quality_deployment is not None:
            run_quality_stage(loop, operator, traffic, apply, quality_deployment, second)
        result.ok = True
    except StageError as error:
        result.failure = str(error)
    finally:
        traffic.stop()
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        loop.client.close()
    return result


def summary_lines(result: LoopResult) -> list[str]:
    """The closing summary: versions, metrics, drift scores, rollout steps and timings."""
    lines = [f"==> {'the loop is closed' if result.ok else 'FAILED: ' + result.failure}"]
    for run in result.final.get("TrainingRun", []):
        status = run.get("status") or {}
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted((status.get("metrics") or {}).items()))
        why = _cause_of(run["metadata"].get("annotations") or {})
        made = f"{status.get('phase')} -> {status.get('modelVersion')}"
        lines.append(f"  {run['metadata']['name']}{why}: {made} {metrics}")
    judged = [d for d in result.drift_checks if d.get("score") is not None]
    if judged:
        peak = max(judged, key=lambda d: d["score"])
        lines.append(f"  drift before the shift: {drift_figures(judged[0])}")
        lines.append(f"  drift at its peak:      {drift_figures(peak)} on v{peak.get('version')}")
        lines.append(f"  drift at the end:       {drift_figures(judged[-1])} on v{judged[-1].get('version')}")
    lines.append(f"  canary steps seen: {' -> '.join(f'{w}%' for w in result.canary_weights) or 'none'}")
    for mark, seconds in result.marks.items():
        lines.append(f"  {seconds:6.1f}s  {mark}")
    if {"shift", "retraining TrainingRun created"} <= result.marks.keys():
        took = result.between("shift", "retraining TrainingRun created")
        lines.append(f"  shift -> TrainingRun created: {took:.1f}s")
    if {"retraining TrainingRun created", "retrained version promoted through the canary"} <= result.marks.keys():
        took = result.between("retraining TrainingRun created", "retrained version promoted through the canary")
        lines.append(f"  TrainingRun created -> new version at 100%: {took:.1f}s")
    from .demoquality import quality_summary_lines  # it builds on this module

    lines += quality_summary_lines(result)
    lines.append(f"  traffic: {result.traffic.summary()}")
    return lines


def _cause_of(annotations: dict[str, str]) -> str:
    """' (drift in petal_length)', ' (degraded accuracy 0.81)', or '' for a run nobody triggered."""
    drift = annotations.get(f"{contract.ANNOTATION_DRIFT_PREFIX}feature")
    metric = annotations.get(f"{contract.ANNOTATION_PERFORMANCE_PREFIX}metric")
    parts = [f"drift in {drift}" if drift else ""]
    if metric:
        value = annotations.get(f"{contract.ANNOTATION_PERFORMANCE_PREFIX}value", "")
        with contextlib.suppress(ValueError):  # not a number: shown as written
            value = f"{float(value):.3f}"
        parts.append(f"degraded {metric} {value}")
    found = " and ".join(p for p in parts if p)
    return f" ({found})" if found else ""
