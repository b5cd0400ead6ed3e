"""Graceful shutdown of one server worker: not ready at once, still serving for a drain delay, then uvicorn's stop.

Kubernetes takes a terminating pod out of its EndpointSlices asynchronously (the endpoint
controller, then every kube-proxy or client that reads them), so a pod that stopped on SIGTERM at
once would still be sent requests for a moment: connection errors during canary steps and
rollbacks. The timeline after SIGTERM, in every uvicorn worker:

  t = 0      readiness (/v2/health/ready, /ping, /health, /v2/models/NAME/ready) answers 503
             {"state": "draining"}; inference is served as before, and every response carries
             `Connection: close`, so keep-alive clients reconnect (through the Service, to a pod
             still in the endpoints) rather than keep a connection that is about to end.
  t = drain  (--drain-delay-s, MLOPS_DRAIN_DELAY_S, default 5 s) the worker stops its uvicorn
             server the way uvicorn stops on a signal: no new connections, idle ones closed,
             requests in flight given --shutdown-timeout-s (MLOPS_SHUTDOWN_TIMEOUT_S, default 3 s;
             uvicorn's timeout_graceful_shutdown) before they are cancelled, then the lifespan
             shutdown (metrics flushed) and exit status 0.

How SIGTERM arrives: the kubelet signals the container's PID 1, which with --workers N is
uvicorn's supervisor; it forwards SIGTERM to each worker within 0.5 s (its loop polls twice a
second) and waits for them. The local cluster's node agent signals the whole process group, so a
worker gets it directly and again from the supervisor: the repeat is ignored. Worst case with the
defaults: 0.5 + 5 + 0.2 (uvicorn's 0.1 s tick and 0.1 s pause) + 3 s = 8.7 s, within
terminationGracePeriodSeconds 10. A worker whose model never loaded skips the delay: it answers
every request 503 anyway. SIGINT (Ctrl-C) stays uvicorn's own: a graceful stop without the delay.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("mlops_operator.server")


def _stopper(handler: Any) -> Callable[[], None] | None:
    """How to stop the server that installed `handler` for SIGTERM, or None when there is none to stop."""
    server = getattr(handler, "__self__", None)
    if isinstance(server, uvicorn.Server):
        # should_exit is uvicorn's programmatic stop. Its handle_exit would also record the signal,
        # which uvicorn re-raises once shut down: the worker would then die of SIGTERM (status 143)
        # after a clean shutdown, and a pod whose PID 1 does that reports an Error.
        def stop() -> None:
            server.should_exit = True

        return stop
    if callable(handler):
        return lambda: handler(signal.SIGTERM, None)
    return None  # SIG_DFL or SIG_IGN: not run by a server that shuts down gracefully


class Drain:
    """Holds back a worker's SIGTERM for the drain delay while `begin` has the app report not ready."""

    def __init__(self, delay_s: float, begin: Callable[[], bool]) -> None:
        self.delay_s = delay_s
        self._begin = begin  # marks the app draining; True when it has traffic to drain (a loaded model)
        self._stop: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.signalled_at: float | None = None  # time.monotonic() of the first SIGTERM

    def install(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Take SIGTERM over from the server running this worker; False where signals are not ours to take."""
        if threading.current_thread() is not threading.main_thread():
            return False  # e.g. a test server in a thread: no signals there, uvicorn does the same
        stop = _stopper(signal.getsignal(signal.SIGTERM))
        if stop is None:
            return False
        self._loop, self._stop = loop, stop
        # uvicorn restores its predecessor's handlers when it returns, which also removes this one.
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # A handler runs between two bytecodes of whatever the main thread was doing: set the flag
        # (readiness is 503 from the next request on) and leave the rest to the event loop.
        if self.signalled_at is not None or self._loop is None:
            return  # the process group's signal and the supervisor's forward: one drain
        self.signalled_at = time.monotonic()
        has_traffic = self._begin()
        self._loop.call_soon_threadsafe(self._schedule, self.delay_s if has_traffic else 0.0)

    def _schedule(self, delay: float) -> None:
        assert self._loop is not None and self._stop is not None
        if delay:
            log.info("SIGTERM: not ready now; serving for %g s more, then stopping", delay)
        self._loop.call_later(delay, self._stop)
