"""`mlops-operator traffic DEPLOYMENT`: prediction traffic to a Deployment's pods, round-robin as kube-proxy would.

Rows come from a CSV (the columns the model takes); options shift a feature by a number of its
standard deviations (to simulate drift) and make a fraction of requests malformed.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .kubeapi import Kube, connection_from_env, connection_from_kubeconfig

Obj = dict[str, Any]


@dataclass
class TrafficReport:
    """What was sent and how the servers answered."""

    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> str:
        """One human-readable paragraph."""
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.by_status.items()))
        endpoints = ", ".join(f"{ep}: {n}" for ep, n in sorted(self.by_endpoint.items()))
        return (
            f"sent {self.sent} requests ({statuses}; connection errors: {self.errors}); "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; per endpoint: {endpoints}"
        )


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
) -> TrafficReport:
    """Send `rate` requests per second for `duration` seconds; endpoints are re-read every 2 seconds."""
    columns, rows = load_rows(data, drop or set())
    rows = shift_rows(columns, rows, shifts or {})
    rng, report = random.Random(seed), TrafficReport()
    kube = Kube(connection_from_kubeconfig(kubeconfig) if kubeconfig else connection_from_env())
    targets: list[str] = []
    cycle: itertools.cycle[str] | None = None
    in_flight: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(timeout=5.0) as http:

        async def one(target: str, body: bytes) -> None:
            started = time.perf_counter()
            try:
                response = await http.post(
                    f"http://{target}/invocations", content=body, headers={"Content-Type": "application/json"}
                )
                report.by_status[response.status_code] += 1
                report.latencies.append(time.perf_counter() - started)
            except httpx.HTTPError:
                report.errors += 1

        start, refreshed, interval = time.monotonic(), 0.0, 1.0 / rate
        try:
            for n in itertools.count():
                now = time.monotonic()
                if now - start >= duration:
                    break
                if now - refreshed > 2.0:
                    targets, refreshed = await endpoints(kube, namespace, deployment), now
                    cycle = itertools.cycle(targets) if targets else None
                if cycle is not None:
                    target = next(cycle)
                    body = request_body(columns, rng.choice(rows), rng.random() < malformed, rng)
                    task = asyncio.create_task(one(target, body))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    report.sent += 1
                    report.by_endpoint[target] += 1
                await asyncio.sleep(max(0.0, start + (n + 1) * interval - time.monotonic()))
            if in_flight:
                await asyncio.wait(in_flight, timeout=10)
        finally:
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
