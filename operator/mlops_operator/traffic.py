"""`mlops-operator traffic DEPLOYMENT`: prediction traffic to a Deployment's pods, round-robin as kube-proxy would.

Rows come from a CSV (the columns the model takes); options shift a feature by a number of its
standard deviations (to simulate drift) and make a fraction of requests malformed. With `--labels COLUMN`
the true label of each predicted row is sent back as feedback (`POST /feedback`) for the id the server
returned, in batches, to the next pod in the round: any replica verifies any other's ids.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .kubeapi import Kube, connection_from_env, connection_from_kubeconfig

Obj = dict[str, Any]
FEEDBACK_BATCH = 50  # labels per feedback request


@dataclass
class TrafficReport:
    """What was sent and how the servers answered."""

    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    labels: bool = False  # --labels: feedback was sent
    labels_sent: int = 0
    labels_accepted: int = 0
    labels_rejected: Counter[str] = field(default_factory=Counter)  # by the server's reason
    feedback_failures: int = 0  # feedback requests without a 200 (connection errors included)
    without_ids: int = 0  # predictions answered without an id: the server has no feedback key

    def summary(self) -> str:
        """One human-readable paragraph."""
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.by_status.items()))
        endpoints = ", ".join(f"{ep}: {n}" for ep, n in sorted(self.by_endpoint.items()))
        text = (
            f"sent {self.sent} requests ({statuses}; connection errors: {self.errors}); "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; per endpoint: {endpoints}"
        )
        if not self.labels:
            return text
        rejected = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.labels_rejected.items())) or "none"
        text += (
            f"; feedback: {self.labels_sent} labels sent, {self.labels_accepted} accepted, rejected: {rejected}; "
            f"failed feedback requests: {self.feedback_failures}"
        )
        if self.without_ids:
            text += f"; {self.without_ids} predictions came without an id (no MLOPS_FEEDBACK_KEY on the server?)"
        return text


def load_rows(path: Path, drop: set[str]) -> tuple[list[str], list[list[float | str]]]:
    """Columns and rows of a CSV, without the dropped (target) columns; numbers parsed as floats."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name not in drop]
        rows = []
        for record in reader:
            row: list[float | str] = []
            for i in keep:
                try:
                    row.append(float(record[i]))
                except ValueError:
                    row.append(record[i])
            rows.append(row)
    return [header[i] for i in keep], rows


def load_labels(path: Path, column: str) -> list[float | str]:
    """One CSV column, row for row as load_rows reads them; numbers as floats (1 and 1.0 are one class)."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if column not in header:
            raise ValueError(f"--labels {column}: no such column (columns: {', '.join(header)})")
        i = header.index(column)
        labels: list[float | str] = []
        for record in reader:
            try:
                labels.append(float(record[i]))
            except ValueError:
                labels.append(record[i])
    return labels


def shift_rows(columns: list[str], rows: list[list[float | str]], shifts: dict[str, float]) -> list[list[float | str]]:
    """Add `delta` standard deviations to each shifted numeric column."""
    shifted = [list(r) for r in rows]
    for name, delta in shifts.items():
        if name not in columns:
            raise ValueError(f"--shift {name}: no such column (columns: {', '.join(columns)})")
        i = columns.index(name)
        values = [float(r[i]) for r in rows]
        offset = delta * (statistics.pstdev(values) or 1.0)
        for row in shifted:
            row[i] = float(row[i]) + offset
    return shifted


def request_body(columns: list[str], row: list[float | str], malformed: bool, rng: random.Random) -> bytes:
    """An MLflow `/invocations` body (dataframe_split); malformed ones drop a column or send text."""
    if not malformed:
        return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
    kind = rng.choice(("missing-column", "wrong-type", "not-json"))
    if kind == "missing-column":
        return json.dumps({"dataframe_split": {"columns": columns[1:], "data": [row[1:]]}}).encode()
    if kind == "wrong-type":
        return json.dumps({"dataframe_split": {"columns": columns, "data": [["x"] * len(row)]}}).encode()
    return b"{not json"


async def endpoints(kube: Kube, namespace: str, service: str) -> list[str]:
    """Ready `ip:port` addresses of the Service, from its EndpointSlices."""
    slices = await kube.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        labelSelector=f"kubernetes.io/service-name={service}",
    )
    found = []
    for item in slices.get("items", []):
        ports = [p["port"] for p in item.get("ports") or [] if p.get("port")]
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            found += [f"{address}:{port}" for address in endpoint.get("addresses", []) for port in ports[:1]]
    return sorted(found)


async def send_traffic(
    namespace: str,
    deployment: str,
    data: Path,
    *,
    rate: float = 20.0,
    duration: float = 30.0,
    shifts: dict[str, float] | None = None,
    malformed: float = 0.0,
    drop: set[str] | None = None,
    seed: int = 0,
    kubeconfig: Path | None = None,
    labels: str | None = None,
    discover: Callable[[], Awaitable[list[str]]] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TrafficReport:
    """Send `rate` requests per second for `duration` seconds; endpoints are re-read every 2 seconds.

    `labels`: the CSV column of true labels, sent as feedback for the returned ids (and never as an input).
    `discover` and `transport` replace the EndpointSlice lookup and the network (tests: an in-process app)."""
    columns, rows = load_rows(data, (drop or set()) | ({labels} if labels else set()))
    truth = load_labels(data, labels) if labels else None
    rows = shift_rows(columns, rows, shifts or {})
    rng, report = random.Random(seed), TrafficReport(labels=labels is not None)
    kube = None
    if discover is None:
        kube = Kube(connection_from_kubeconfig(kubeconfig) if kubeconfig else connection_from_env())

    async def find() -> list[str]:
        if discover is not None:
            return await discover()
        assert kube is not None
        return await endpoints(kube, namespace, deployment)

    targets: list[str] = []
    cycle: itertools.cycle[str] | None = None
    in_flight: set[asyncio.Task[None]] = set()
    pending: list[Obj] = []  # labels waiting for their feedback request
    async with httpx.AsyncClient(timeout=5.0, transport=transport) as http:

        def start(job: Coroutine[Any, Any, None]) -> None:
            task = asyncio.create_task(job)
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        async def one(target: str, body: bytes, label: float | str | None) -> None:
            started = time.perf_counter()
            try:
                response = await http.post(
                    f"http://{target}/invocations", content=body, headers={"Content-Type": "application/json"}
                )
                report.by_status[response.status_code] += 1
                report.latencies.append(time.perf_counter() - started)
            except httpx.HTTPError:
                report.errors += 1
                return
            if label is None or response.status_code != 200:
                return
            try:
                ids = response.json().get("prediction_ids")
            except (ValueError, AttributeError):  # not the JSON object a model server answers
                ids = None
            if not isinstance(ids, list) or not ids:
                report.without_ids += 1
                return
            pending.append({"id": ids[0], "label": label})
            if len(pending) >= FEEDBACK_BATCH:
                flush()

        def flush() -> None:
            if pending and cycle is not None:
                start(feedback(next(cycle), pending[:]))
                pending.clear()

        async def feedback(target: str, items: list[Obj]) -> None:
            report.labels_sent += len(items)
            try:
                response = await http.post(f"http://{target}/feedback", json={"feedback": items})
            except httpx.HTTPError:
                report.feedback_failures += 1
                return
            try:
                if response.status_code != 200:
                    raise ValueError(response.status_code)
                answer = response.json()
                accepted, rejected = int(answer["accepted"]), [str(r["reason"]) for r in answer["rejected"]]
            except (ValueError, KeyError, TypeError):  # not a feedback answer (a 4xx, or another server)
                report.feedback_failures += 1
                return
            report.labels_accepted += accepted
            report.labels_rejected.update(rejected)

        began, refreshed, interval = time.monotonic(), 0.0, 1.0 / rate
        try:
            for n in itertools.count():
                now = time.monotonic()
                if now - began >= duration:
                    break
                if now - refreshed > 2.0:
                    targets, refreshed = await find(), now
                    cycle = itertools.cycle(targets) if targets else None
                if cycle is not None:
                    target = next(cycle)
                    k = rng.randrange(len(rows))  # what rng.choice(rows) draws: seeds replay the same rows
                    bad = rng.random() < malformed
                    body = request_body(columns, rows[k], bad, rng)
                    start(one(target, body, truth[k] if truth is not None and not bad else None))
                    report.sent += 1
                    report.by_endpoint[target] += 1
                await asyncio.sleep(max(0.0, began + (n + 1) * interval - time.monotonic()))
            if in_flight:  # the predictions still out, then the labels they left
                await asyncio.wait(in_flight, timeout=10)
            flush()
            if in_flight:
                await asyncio.wait(in_flight, timeout=10)
        finally:
            if kube is not None:
                await kube.aclose()
    return report


def parse_shifts(values: list[str]) -> dict[str, float]:
    """`FEATURE=DELTA` options into a mapping."""
    shifts = {}
    for value in values:
        name, _, delta = value.partition("=")
        if not name or not delta:
            raise ValueError(f"--shift {value!r}: use FEATURE=DELTA_STD, e.g. petal_length=0.5")
        shifts[name] = float(delta)
    return shifts
