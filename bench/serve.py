"""Model-server benchmark (not a test): mlops-server against `mlflow models serve` and MLServer on the same model.

Usage: .venv/bin/python bench/serve.py [--duration 20] [--runs 3] [--concurrency 8]
       [--servers ours,ours-constant,ours-nometrics,mlflow,mlserver]

The iris classifier (scikit-learn LogisticRegression, the test suite's model) is registered in a
sqlite MLflow under ~/.cache/mlops-operator/bench; MLServer (mlserver-sklearn) gets the same
fitted estimator as a joblib file and runs from its own venv (~/.cache/mlops-operator/bench-venv,
created on first use). "ours-constant" is the same mlops-server stack serving a scikit-learn
DummyClassifier registered the same way (skops, digest, profile): its predict costs a few
microseconds whatever the input, so it measures the most the HTTP path (parse, decode, validate,
batch, drift counters, encode) can do, and the real model's figures are a share of that.

Each server runs one worker process pinned to CPU 1 with `taskset`; the load generator (a
callback-based HTTP/1.1 keep-alive client on uvloop, fixed concurrency, closed loop) is pinned to
CPU 0, and reports its own CPU use so that a saturated client shows. Every point runs `--duration`
seconds after a 2 s warm-up; the table gives medians over `--runs` runs, then the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "mlops-operator"
WORK = CACHE / "bench"
BENCH_VENV = CACHE / "bench-venv"
BENCH_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1"]
VENV_BIN = Path(sys.executable).parent
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MODEL = "iris-bench"
CONSTANT_MODEL = "iris-bench-constant"  # served under MODEL's name, so its requests are byte for byte the same
SERVER_CPU, CLIENT_CPU = "1", "0"


# -- the model --------------------------------------------------------------------------------------
def prepare_model() -> str:
    """Register the iris model and its constant twin once (cached), write MLServer's copy; returns the tracking URI."""
    WORK.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{WORK / 'mlflow.db'}"
    if (WORK / "model.joblib").exists() and (WORK / "constant.registered").exists():
        return tracking_uri
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import joblib
    import mlflow

    from tests.unit.test_server_registry import build_registry  # the test suite's models, same code path

    if not (WORK / "model.joblib").exists():
        registry = build_registry(WORK)
        client = mlflow.MlflowClient(registry.tracking_uri, registry_uri=registry.tracking_uri)
        client.rename_registered_model("iris-classifier", MODEL)
        joblib.dump(registry.iris_model, WORK / "model.joblib")
    register_constant(tracking_uri)
    (WORK / "constant.registered").touch()
    return tracking_uri


def register_constant(tracking_uri: str) -> None:
    """A DummyClassifier on the same data, signature and profile as the iris model, registered the same way."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    from mlops_operator import contract
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    from tests.fixtures.models import register_model

    client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
    real = client.get_model_version(MODEL, "1")
    profile_path = mlflow.artifacts.download_artifacts(
        artifact_uri=real.tags[contract.TAG_PROFILE_URI], dst_path=tempfile.mkdtemp(dir=WORK), tracking_uri=tracking_uri
    )
    profile = json.loads(Path(profile_path).read_text())
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=COLUMNS)
    species = np.asarray(iris.target_names)[iris.target]
    model = DummyClassifier(strategy="prior").fit(frame, species)  # predict: np.tile of one label
    experiment = client.create_experiment("bench-constant", artifact_location=(WORK / "constant").as_uri())
    with _use_tracking_uri(tracking_uri):
        version = register_model(client, experiment, CONSTANT_MODEL, model, frame, owner="bench", profile=profile)
    assert version == 1, f"{CONSTANT_MODEL} already had versions: remove {WORK} and rerun"


def ensure_bench_venv() -> Path:
    """MLServer lives in its own venv, outside the repo."""
    mlserver = BENCH_VENV / "bin" / "mlserver"
    if not mlserver.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        pip = [str(BENCH_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *BENCH_PACKAGES]
        subprocess.run(pip, check=True)
    return mlserver


# -- servers ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server under test: how to start it and what it is asked."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    cwd: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, log: Path) -> None:
        handle = log.open("wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.command],
            # mlflow models serve execs `uvicorn` from PATH.
            env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **self.env},
            cwd=self.cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {log.read_text()[-2000:]}")
            if _get(self.port, self.ready_path) == 200:
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after 180 s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None


def _get(port: int, path: str) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return int(s.recv(64).split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        return 0


def ours(tracking_uri: str, metrics: bool = True, max_inflight: int = 16, constant: bool = False) -> Server:
    port = free_port()
    command = [
        str(VENV_BIN / "mlops-server"),
        "--model-uri",
        f"models:/{CONSTANT_MODEL if constant else MODEL}/1",
        "--model-name",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--max-inflight",
        str(max_inflight),
    ]
    if not metrics:
        command.append("--no-metrics")
    name = "mlops-server" if metrics else "mlops-server (metrics off)"
    if constant:
        name += " (constant model)"
    return Server(name, command, {"MLFLOW_TRACKING_URI": tracking_uri}, port, "/v2/health/ready")


def mlflow_serve(tracking_uri: str) -> Server:
    port = free_port()
    command = [
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{MODEL}/1",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    return Server("mlflow models serve", command, {"MLFLOW_TRACKING_URI": tracking_uri}, port, "/ping")


def mlserver(executable: Path) -> Server:
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="mlserver-", dir=WORK))
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0}
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(WORK / "model.joblib"), "version": "1"},
    }
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    return Server("MLServer", [str(executable), "start", str(folder)], {}, port, f"/v2/models/{MODEL}/ready")


# -- requests ---------------------------------------------------------------------------------------
def rows(n: int) -> list[list[float]]:
    from sklearn.datasets import load_iris

    data = load_iris().data
    return [list(map(float, data[i % len(data)])) for i in range(n)]


def oip_body(n: int) -> tuple[str, bytes]:
    """One [n, 4] FP64 tensor: what MLServer's numpy codec and KServe clients send."""
    tensor = {"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": rows(n)}
    return f"/v2/models/{MODEL}/infer", json.dumps({"inputs": [tensor]}).encode()


def invocations_body(n: int) -> tuple[str, bytes]:
    return "/invocations", json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows(n)}}).encode()


def http_request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- the load generator (runs in its own process on CLIENT_CPU) ---------------------------------------
def load(port: int, request: bytes, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """Closed loop: `concurrency` keep-alive connections, each sending its next request on the last response."""
    import asyncio

    import uvloop

    latencies: list[float] = []  # of 200s: shed requests are fast and would flatter the percentiles
    statuses: dict[int, int] = {}
    perf = time.perf_counter

    class Connection(asyncio.Protocol):
        def __init__(self, loop: asyncio.AbstractEventLoop, start: float, end: float, done: asyncio.Future[None]):
            self.loop, self.measure_from, self.end, self.done = loop, start, end, done
            self.buffer = bytearray()
            self.sent = 0.0

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.send()

        def send(self) -> None:
            self.sent = perf()
            self.transport.write(request)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = bytes(self.buffer[:head_end]).lower()
                at = head.find(b"content-length:")
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop > 0 else None]) if at >= 0 else 0
                total = head_end + 4 + length
                if len(self.buffer) < total:
                    return
                status = int(head[9:12])
                del self.buffer[:total]
                now = perf()
                if now >= self.measure_from:
                    if status == 200:
                        latencies.append(now - self.sent)
                    statuses[status] = statuses.get(status, 0) + 1
                if now >= self.end:
                    self.transport.close()
                    return
                self.send()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = perf()
        measure_from, end = start + warmup, start + warmup + duration
        futures = []
        for _ in range(concurrency):
            done: asyncio.Future[None] = loop.create_future()
            await loop.create_connection(lambda d=done: Connection(loop, measure_from, end, d), "127.0.0.1", port)
            futures.append(done)
        await asyncio.wait_for(asyncio.gather(*futures), timeout=warmup + duration + 60)
        return perf() - measure_from

    cpu0 = time.process_time()
    elapsed = uvloop.run(main())
    cpu = (time.process_time() - cpu0) / (elapsed + warmup)
    return {"latencies": sorted(latencies), "statuses": statuses, "elapsed": elapsed, "client_cpu": cpu}


def run_load(port: int, path: str, body: bytes, concurrency: int, duration: float) -> dict[str, Any]:
    """The load generator in a child process pinned to CLIENT_CPU; returns its summary."""
    request = http_request(port, path, body)
    payload = json.dumps({"port": port, "request": request.decode(), "concurrency": concurrency, "duration": duration})
    out = subprocess.run(
        ["taskset", "-c", CLIENT_CPU, sys.executable, __file__, "--client", payload],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 120,
    )
    return dict(json.loads(out.stdout))


def client_main(payload: str) -> None:
    args = json.loads(payload)
    result = load(args["port"], args["request"].encode(), args["concurrency"], args["duration"], warmup=2.0)
    lat = result["latencies"]
    statuses = {int(k): v for k, v in result["statuses"].items()}
    total = sum(statuses.values())
    ok = statuses.get(200, 0)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")

    summary = {
        "rps": ok / result["elapsed"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "shed": statuses.get(503, 0) / total if total else 0.0,
        "errors": total - ok - statuses.get(503, 0),
        "client_cpu": result["client_cpu"],
    }
    print(json.dumps(summary))


# -- memory -----------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Peak RSS (MiB) of a process and all its descendants, sampled every 200 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop_event = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def tree_rss_mib(root: int) -> float:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# -- the benchmark ----------------------------------------------------------------------------------
def points(server: Server, concurrency: int, overload: int) -> list[tuple[str, str, bytes, int]]:
    """(label, path, body, concurrency) for a server: single row, 100 rows, and overload."""
    make = invocations_body if server.name.startswith("mlflow") else oip_body
    result = [("1 row", *make(1), concurrency), ("100 rows", *make(100), concurrency)]
    if server.name.startswith("mlops-server") and not server.name.endswith("(metrics off)"):
        result.insert(1, ("1 row /invocations", *invocations_body(1), concurrency))
        result.insert(0, ("1 row, one client", *make(1), 1))
    if not server.name.endswith("(metrics off)"):
        result.append((f"1 row, overload c={overload}", *make(1), overload))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--overload",
        type=int,
        default=64,
        help="2x capacity: a worker holds 2 x max-inflight (one turn admitted, one arriving)",
    )
    parser.add_argument("--servers", default="ours,ours-constant,mlserver,mlflow")
    parser.add_argument("--max-inflight", type=int, default=16, help="mlops-server's admission bound per worker")
    parser.add_argument("--ab-slices", type=int, default=0, help="only metrics on/off, alternating N slices")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the servers' process groups are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tracking_uri = prepare_model()
    if args.ab_slices:
        ab_metrics(tracking_uri, args.ab_slices, args.duration, args.concurrency)
        return
    factories = {
        "ours": lambda: ours(tracking_uri, max_inflight=args.max_inflight),
        "ours-constant": lambda: ours(tracking_uri, max_inflight=args.max_inflight, constant=True),
        "ours-nometrics": lambda: ours(tracking_uri, metrics=False, max_inflight=args.max_inflight),
        "mlflow": lambda: mlflow_serve(tracking_uri),
        "mlserver": lambda: mlserver(ensure_bench_venv()),
    }
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    keys = args.servers.split(",")
    for run in range(args.runs):
        servers = [factories[key]() for key in keys]
        try:
            for key, server in zip(keys, servers, strict=True):
                server.start(WORK / f"{key}.log")
            # Every point on each server in turn, all up at once: a comparison sees the same background load.
            # The order rotates by run, so no server always runs first (or right after a neighbour's overload).
            order = servers[run % len(servers) :] + servers[: run % len(servers)]
            for label, runs_on in interleaved(servers, order, args.concurrency, args.overload):
                for server, path, body, concurrency in runs_on:
                    assert server.process is not None
                    sampler = RssSampler(server.process.pid)
                    sampler.start()
                    summary = run_load(server.port, path, body, concurrency, args.duration)
                    summary["rss_mib"] = sampler.stop()
                    results.setdefault((server.name, label), []).append(summary)
                    print(f"run {run + 1} {server.name:36s} {label:24s} " + json.dumps(summary), flush=True)
        finally:
            for server in servers:
                server.stop()
    print_table(results, args)


def interleaved(
    servers: list[Server], order: list[Server], concurrency: int, overload: int
) -> list[tuple[str, list[tuple[Server, str, bytes, int]]]]:
    """Each point's label (in the order `servers` list them) with the servers that run it, in `order`."""
    by_label: dict[str, list[tuple[Server, str, bytes, int]]] = {
        label: [] for server in servers for label, *_ in points(server, concurrency, overload)
    }
    for server in order:
        for label, path, body, conc in points(server, concurrency, overload):
            by_label[label].append((server, path, body, conc))
    return list(by_label.items())


def ab_metrics(tracking_uri: str, slices: int, seconds: float, concurrency: int) -> None:
    """Metrics+drift on vs off, both servers up at once, load alternating in short slices.

    The machine is shared: load from other work comes and goes within minutes, so two 20 s points
    taken minutes apart can differ by more than the cost being measured. Alternating slices sees
    the same background on both sides.
    """
    servers = [ours(tracking_uri), ours(tracking_uri, metrics=False)]
    path, body = oip_body(1)
    samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    try:
        for server in servers:
            server.start(WORK / f"ab-{server.port}.log")
        for i in range(slices):
            for server in servers if i % 2 == 0 else reversed(servers):
                samples[server.name].append(run_load(server.port, path, body, concurrency, seconds))
    finally:
        for server in servers:
            server.stop()
    print("\n| server | slices | requests/s (median) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, runs in samples.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
        cells = f"{med['rps']:,.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f}"
        print(f"| {name} | {len(runs)} x {seconds:g} s | {cells} |")
    on, off = (statistics.median(r["rps"] for r in samples[s.name]) for s in servers)
    print(f"metrics+drift cost: {1 - on / off:.1%} of throughput")


def print_table(results: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print("\n| server | request | concurrency | requests/s | p50 ms | p99 ms | shed | peak RSS MiB | client CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    names = list(dict.fromkeys(name for name, _ in results))  # the servers in the order they first ran
    for (name, label), runs in sorted(results.items(), key=lambda item: names.index(item[0][0])):
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        conc = args.overload if "overload" in label else 1 if "one client" in label else args.concurrency
        print(
            f"| {name} | {label} | {conc} | {med['rps']:,.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | "
            f"{med['shed']:.0%} | {med['rss_mib']:.0f} | {med['client_cpu']:.0%} |"
        )
    print(f"\nmedians of {args.runs} run(s), {args.duration:g} s each")
    print_ratios(results)


def print_ratios(results: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """The real model as a share of the constant one (the HTTP path's limit), and against MLServer, per point.

    Medians of the per-run ratios: within a run the two sides of a ratio ran one right after the other.
    """
    ours, limit, peer = "mlops-server", "mlops-server (constant model)", "MLServer"

    def ratio(label: str, other: str, key: str) -> float | None:
        mine, theirs = results.get((ours, label)), results.get((other, label))
        if not mine or not theirs or len(mine) != len(theirs):
            return None
        return statistics.median(a[key] / b[key] for a, b in zip(mine, theirs, strict=True))

    labels = [label for name, label in results if name == ours]
    if not labels:
        return
    print("\n| request | ours / constant model (share of the limit) | ours / MLServer: requests/s | p99 |")
    print("|---|---|---|---|")
    for label in labels:
        share, times, p99 = ratio(label, limit, "rps"), ratio(label, peer, "rps"), ratio(label, peer, "p99_ms")
        cells = [f"{share:.0%}" if share else "-", f"{times:.1f}x" if times else "-", f"{p99:.2f}x" if p99 else "-"]
        print(f"| {label} | {' | '.join(cells)} |")
    print("(medians of per-run ratios; p99 below 1x: ours is lower)")


if __name__ == "__main__":
    main()
