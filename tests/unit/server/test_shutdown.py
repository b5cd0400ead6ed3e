"""SIGTERM on the real `mlops-server` (uvicorn, loopback port): not ready first, serving through the drain, exit 0.

Every request loop below is bounded in count and in time, and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
import uvicorn
from mlops_operator.server.cli import parser, to_env
from mlops_operator.server.config import ConfigError, config_from_env

from ..test_server_registry import IRIS_COLUMNS, Registry, free_port, make_app, registry

__all__ = ["registry"]  # the fixture, imported for pytest

ROW = [5.1, 3.5, 1.4, 0.2]
BODY = orjson.dumps({"instances": [ROW]})


@dataclass
class Served:
    """One `mlops-server` process group on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    fresh: httpx.Client  # keeps no connection alive: every request opens a new one

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text()


def _command() -> list[str]:
    script = Path(sys.executable).parent / "mlops-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlops_operator.server.cli"]


@contextmanager
def served(registry: Registry, tmp_path: Path, *args: str, uri: str = "models:/iris-classifier/1") -> Iterator[Served]:
    """Start the server in its own session (so the whole group can be signalled) and always reap it."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # the CLI makes its own
    env["MLFLOW_TRACKING_URI"] = registry.tracking_uri
    command = [*_command(), "--model-uri", uri, "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    fresh = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, limits=no_keepalive)
    try:
        yield Served(process, port, log, fresh)
    finally:
        fresh.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def ready_status(server: Served) -> int:
    """/v2/health/ready on a fresh connection (so, with workers, on whichever worker accepts it); 0 if refused."""
    try:
        return server.fresh.get("/v2/health/ready").status_code
    except httpx.HTTPError:
        return 0


def wait_ready(server: Served, in_a_row: int) -> None:
    """Ready `in_a_row` times running on fresh connections: with two workers, most likely both have loaded."""
    deadline, streak = time.monotonic() + 90, 0
    while streak < in_a_row and time.monotonic() < deadline:
        assert server.process.poll() is None, server.text()
        streak = streak + 1 if ready_status(server) == 200 else 0
        time.sleep(0.1)
    assert streak >= in_a_row, server.text()


def wait_for(predicate: Callable[[], bool], seconds: float, step: float = 0.02) -> float | None:
    """Poll `predicate` for at most `seconds`; how long until it first held, or None."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None


def refused(server: Served) -> bool:
    """Whether new connections are refused: the listening socket is closed."""
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def partial_request(server: Served, sent: int) -> socket.socket:
    """A POST /invocations whose headers and first `sent` body bytes are sent: a request in flight."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    head = (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[:sent])
    return sock


def finish(sock: socket.socket, sent: int) -> tuple[int, dict[str, str], bytes]:
    """Send the body past `sent`; the status, headers and body (read until the server closes, at most 5 s)."""
    sock.sendall(BODY[sent:])
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def predict(client: httpx.Client) -> httpx.Response:
    """One prediction with the iris row."""
    return client.post("/invocations", content=BODY)


def test_uvicorn_in_this_process_drains_and_is_stopped_without_reraising_sigterm(registry: Registry) -> None:
    """uvicorn.Server on the main thread: SIGTERM makes readiness 503 while inference goes on, then stops it.

    uvicorn re-raises a signal it handled once it has shut down; the drain stops it through
    should_exit instead, so the handler that was there before uvicorn (here a recorder; in a worker
    the default, which would kill it) is never called.
    """
    app = make_app(registry, drain_delay_s=0.6)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                            timeout_graceful_shutdown=1)  # fmt: skip
    server = uvicorn.Server(config)
    reraised: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: reraised.append(signum))

    async def scenario() -> tuple[float, list[httpx.Response]]:
        serving = asyncio.create_task(server.serve())
        for _ in range(250):
            if server.started:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            responses = [await client.get("/v2/health/ready")]
            signalled = time.monotonic()
            signal.raise_signal(signal.SIGTERM)
            responses += [await client.get("/v2/health/ready"), await client.post("/invocations", content=BODY)]
            await asyncio.wait_for(serving, 5)
        return time.monotonic() - signalled, responses

    try:
        stopped_after, (ready_before, ready_after, inference) = asyncio.run(scenario())
    finally:
        signal.signal(signal.SIGTERM, before)
        app.stop()
    assert ready_before.status_code == 200 and "connection" not in ready_before.headers
    assert ready_after.status_code == 503 and ready_after.json()["state"] == "draining"
    assert inference.status_code == 200 and inference.headers["connection"] == "close"
    assert 0.6 <= stopped_after < 2.0, stopped_after
    assert reraised == []


def test_sigterm_drains_then_finishes_requests_in_flight_within_the_bound(registry: Registry, tmp_path: Path) -> None:
    """One worker: 503 on readiness at once, every request served during the drain, then the in-flight bound."""
    drain, timeout = 2.0, 2
    args = ("--workers", "1", "--drain-delay-s", str(drain), "--shutdown-timeout-s", str(timeout))
    with served(registry, tmp_path, *args) as server, httpx.Client(base_url=server.base, timeout=5) as pooled:
        wait_ready(server, 3)
        before = predict(pooled)
        assert before.status_code == 200 and "connection" not in before.headers
        slow = partial_request(server, len(BODY) // 2)  # finishes after the listener has closed
        stalled = partial_request(server, 3)  # never finishes: only the bound ends it
        time.sleep(0.2)  # both requests' headers parsed: uvicorn counts them as in flight
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)

        flipped = wait_for(lambda: ready_status(server) == 503, 1.0)
        assert flipped is not None, server.text()
        ready = server.fresh.get("/v2/health/ready")
        assert ready.json()["state"] == "draining" and ready.headers["connection"] == "close"
        model_ready = server.fresh.get("/v2/models/iris-classifier/ready")
        assert model_ready.status_code == 503

        statuses: list[int] = []
        while time.monotonic() - signalled < drain - 0.4 and len(statuses) < 400:
            for client in (pooled, server.fresh):  # a keep-alive client, and a new connection each time
                response = predict(client)
                statuses.append(response.status_code)
                assert response.headers["connection"] == "close"  # keep-alive clients go elsewhere
            time.sleep(0.01)
        assert len(statuses) >= 10 and set(statuses) == {200}, statuses[-5:]

        closed = wait_for(lambda: refused(server), drain + 1.5, step=0.05)
        assert closed is not None, server.text()
        stopped_accepting = time.monotonic() - signalled
        assert drain - 0.1 <= stopped_accepting <= drain + 1.0, stopped_accepting
        assert server.process.poll() is None  # closed to new connections, still finishing the slow request
        status, headers, body = finish(slow, len(BODY) // 2)
        assert status == 200 and headers["connection"] == "close"
        expected = registry.iris_model.predict(pd.DataFrame([ROW], columns=IRIS_COLUMNS)).tolist()
        assert orjson.loads(body) == {"predictions": expected}

        code = server.process.wait(drain + timeout + 5)
        exited = time.monotonic() - signalled
        stalled.close()
        assert code == 0, server.text()
        # The stalled request held the worker until the bound, no longer.
        assert drain + timeout - 0.3 <= exited <= drain + timeout + 1.5, (exited, server.text())
        assert "timeout graceful shutdown exceeded" in server.text()


@pytest.mark.parametrize("target", ["supervisor", "group"])
def test_two_workers_drain_on_sigterm_to_the_supervisor_or_the_group(
    registry: Registry, tmp_path: Path, target: str
) -> None:
    """The kubelet signals PID 1 (the supervisor forwards it); the local node agent signals the group (twice each)."""
    drain = 2.5
    args = ("--workers", "2", "--drain-delay-s", str(drain), "--shutdown-timeout-s", "1", "--log-level", "info")
    with served(registry, tmp_path, *args) as server:
        wait_ready(server, 10)
        signalled = time.monotonic()
        if target == "group":
            os.killpg(server.process.pid, signal.SIGTERM)
        else:
            server.process.send_signal(signal.SIGTERM)

        # Both workers: fresh connections land on either, and every one must answer 503 to readiness.
        streak = 0
        while streak < 10 and time.monotonic() - signalled < 1.5:  # the supervisor forwards within 0.5 s
            streak = streak + 1 if ready_status(server) == 503 else 0
        flipped = time.monotonic() - signalled
        assert streak >= 10 and flipped < drain - 0.5, (streak, flipped, server.text())

        statuses = []
        while time.monotonic() - signalled < drain - 0.3 and len(statuses) < 400:
            statuses.append(predict(server.fresh).status_code)
            time.sleep(0.01)
        assert len(statuses) >= 10 and set(statuses) == {200}, statuses

        code = server.process.wait(drain + 5)
        exited = time.monotonic() - signalled
        assert code == 0, server.text()
        assert drain <= exited <= drain + 2.0, exited  # + the supervisor's 0.5 s poll and uvicorn's stop
        assert server.text().count("Finished server process") == 2, server.text()  # each worker stopped cleanly
        assert refused(server)


def test_a_worker_that_never_loaded_stops_at_once(registry: Registry, tmp_path: Path) -> None:
    """Nothing routes to a pod that was never ready: a model still loading (or failing) is not waited for."""
    with served(registry, tmp_path, "--drain-delay-s", "30", uri="models:/iris-classifier/99") as server:
        assert wait_for(lambda: ready_status(server) == 503, 60, step=0.1) is not None, server.text()
        response = predict(server.fresh)
        assert response.status_code == 503
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0, server.text()
        assert time.monotonic() - signalled < 3.0


def test_drain_settings_come_from_flags_or_env() -> None:
    base = {"MLOPS_MODEL_URI": "models:/m/1"}
    assert (config_from_env(base).drain_delay_s, config_from_env(base).shutdown_timeout_s) == (5.0, 3)
    args = parser().parse_args(["--model-uri", "models:/m/1", "--drain-delay-s", "0.5", "--shutdown-timeout-s", "7"])
    config = config_from_env(to_env(args))
    assert (config.drain_delay_s, config.shutdown_timeout_s) == (0.5, 7)
    for key, value in (("MLOPS_DRAIN_DELAY_S", "-1"), ("MLOPS_SHUTDOWN_TIMEOUT_S", "2.5")):
        with pytest.raises(ConfigError, match=key):
            config_from_env({**base, key: value})
