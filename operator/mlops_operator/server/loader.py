"""Loading in the background: liveness answers at once, readiness says why the model is not there yet.

An unreachable registry is retried with doubling, jittered delays (capped), each failure logged and
shown in the ready endpoint's body; a permanent failure (bad URI, unusable model) stops retrying
but keeps the process up so that the reason stays visible rather than a crash loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable

from .model import LoadedModel, LoadError

log = logging.getLogger("mlops_operator.server")

LOADING, READY, FAILED = "loading", "ready", "failed"


def backoff_delays(initial: float, maximum: float) -> Callable[[int], float]:
    """Delay before retry n (1-based): initial * 2^(n-1), capped, with +-20% jitter so replicas spread out."""

    def delay(attempt: int) -> float:
        base = min(initial * 2 ** min(attempt - 1, 30), maximum)
        return base * random.uniform(0.8, 1.2)

    return delay


class BackgroundLoader:
    """Runs `load` in a daemon thread until it succeeds, fails permanently, or is stopped."""

    def __init__(
        self,
        load: Callable[[], LoadedModel],
        on_loaded: Callable[[LoadedModel], None],
        *,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self._load = load
        self._on_loaded = on_loaded
        self._delay = backoff_delays(retry_initial_s, retry_max_s)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = LOADING
        self.reason = "loading the model"
        self.attempts = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start loading; with `loop`, the result is handed over on that loop's thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(loop,), name="model-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop retrying (a load in progress finishes in the background)."""
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        """Block until loading ended (loaded or failed for good); False on timeout."""
        return self._done.wait(timeout)

    def _run(self, loop: asyncio.AbstractEventLoop | None) -> None:
        while not self._stop.is_set():
            self.attempts += 1
            try:
                model = self._load()
            except LoadError as error:
                if not error.retryable:
                    self.state, self.reason = FAILED, f"cannot load the model: {error}"
                    log.error("%s (not retrying)", self.reason)
                    self._done.set()
                    return
                message = str(error)
            except Exception as error:  # an unexpected failure is reported and retried like the rest
                message = f"{type(error).__name__}: {error}"
            else:
                self._hand_over(model, loop)
                return
            delay = self._delay(self.attempts)
            self._failed(message, delay)
            self._stop.wait(delay)
        self._done.set()

    def _failed(self, message: str, delay: float) -> None:
        self.reason = f"{message} (attempt {self.attempts}, retrying in about {delay:.0f}s)"
        log.warning("model not loaded: %s", self.reason)

    def _hand_over(self, model: LoadedModel, loop: asyncio.AbstractEventLoop | None) -> None:
        def finish() -> None:
            self._on_loaded(model)
            self.state, self.reason = READY, ""
            self._done.set()

        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(finish)
                return
            except RuntimeError:  # the loop closed meanwhile
                pass
        finish()
