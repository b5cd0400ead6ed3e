"""The model server as a raw ASGI app: Open Inference Protocol v2, MLflow /invocations, health, /metrics.

Raw ASGI rather than a framework: a request is a dict lookup, one JSON parse, one decode into a
numpy matrix, one predict and one orjson dump; nothing else runs per request.

Where a prediction runs: requests waiting together are predicted as one batch (batching.py); a
model measured at load to be fast (estimate <= inline budget, 2 ms by default) predicts on the
event loop, a slow one in a thread so that health checks and shedding (503 to requests past
--max-inflight) stay immediate. On SIGTERM a worker drains before it stops (shutdown.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from .batching import Batcher
from .config import ServerConfig, config_from_env
from .feedback import (
    NOT_CONFIGURED,
    OVERLOADED,
    Feedback,
    FeedbackError,
    ids_header,
    ids_turned_off,
    split_requested,
)
from .invocations import decode_invocations, encode_predictions
from .limits import (
    BodyTooLargeError,
    BudgetExceededError,
    BytesBudget,
    ClientGoneError,
    InflightLimiter,
    declared_length,
    json_content_type,
    read_body,
)
from .loader import FAILED, READY, BackgroundLoader
from .metrics import OUTCOME_NOT_READY, OUTCOME_REJECTED, ServerMetrics, outcome_of
from .model import LoadedModel, LoadError, load_model, parse_model_uri
from .outputs import as_outputs, compute_outputs, prepare
from .protocol_v2 import ID_OUTPUT, decode_infer_request, encode_infer_response, model_metadata
from .schema import Batch, InputError
from .shadow import SHADOW_PATH, Mirror
from .shutdown import Drain

log = logging.getLogger("mlops_operator.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, bytes, Headers]

SERVER_NAME = "mlops-server"
_MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer|/feedback)?/?$"
)
_JSON = b"application/json"
_CLOSE = (b"connection", b"close")
RETRY_AFTER_SHED = b"1"
RETRY_AFTER_LOADING = b"5"
FLUSH_INTERVAL_S = 1.0  # drift counts reach the Prometheus counters at most this late
# Ids of larger answers are minted in the prediction thread, not on the event loop: minting costs 0.8-2 us a row
# (bench/prediction_ids.py: 1.1 ms for 1,000 rows on the 2-core machine), so up to here it stays within the
# 2 ms inline budget of a prediction; beyond, 10,000 rows would hold health checks and shedding for 10-20 ms.
MINT_INLINE_ROWS = 1000


def _error(protocol: str, status: int, message: str, *headers: tuple[bytes, bytes]) -> Answer:
    if protocol == "mlflow":
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
        return status, orjson.dumps({"error_code": code, "message": message}), list(headers)
    return status, orjson.dumps({"error": message}), list(headers)


class ServerApp:
    """One worker's ASGI application."""

    def __init__(self, config: ServerConfig, load: Callable[[], LoadedModel] | None = None) -> None:
        self.config = config
        self.model: LoadedModel | None = None
        self._stopped = False
        self.draining = False  # SIGTERM received: not ready, still serving (shutdown.py)
        self.drain = Drain(config.drain_delay_s, self._begin_drain)
        self.limiter = InflightLimiter(config.max_inflight)
        # Feedback requests are shed by a limiter of their own: a flood of labels gets 503s, never the slots
        # of predictions (which a shared limiter would give it), and at most this many bodies are judged at once.
        self.feedback_limiter = InflightLimiter(config.feedback_max_inflight)
        self.body_budget = BytesBudget(config.max_inflight_bytes)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._inline_budget_s = config.inline_budget_ms / 1000.0
        try:
            registered = parse_model_uri(config.model_uri).name
            bad_uri: LoadError | None = None
        except LoadError as error:
            registered, bad_uri = "", error
        self.model_name = config.model_name or registered
        feedback = bool(config.feedback_key)
        # Only the stable track mirrors: the canary's answers are already judged on live traffic.
        mirrors = bool(config.shadow_url) and config.track == "stable"
        self.metrics = (
            ServerMetrics(
                registered, config.track, config.deployment, drift=config.drift, feedback=feedback, shadow=mirrors
            )
            if config.metrics
            else None
        )
        # Signed prediction ids and labels for them (feedback.py); None without a key: no ids, /feedback 409.
        self.feedback = Feedback.from_config(config, self.model_name, self.metrics.feedback if self.metrics else None)
        self.mirror = Mirror(config.shadow_url, self.metrics.shadow if self.metrics else None) if mirrors else None
        tracking_uri = config.tracking_uri or None
        self.loader = BackgroundLoader(
            load
            or (
                lambda: prepare(
                    load_model(config.model_uri, tracking_uri, allow_unsafe=config.allow_unsafe_model_formats)
                )
            ),
            self._loaded,
            retry_initial_s=config.retry_initial_s,
            retry_max_s=config.retry_max_s,
        )
        self._batcher = Batcher(self._fits_inline, self._executor, self.metrics.scored if self.metrics else None)
        if bad_uri is not None:
            self.loader.state, self.loader.reason = FAILED, f"cannot load the model: {bad_uri}"
        # GET endpoints by exact path; each answers (status, body, content type).
        self._exact: dict[str, Callable[[], tuple[int, bytes, bytes]]] = {
            "/v2/health/live": self._live,
            "/v2/health/ready": self._ready,
            "/v2": self._server_metadata,
            "/ping": self._ready,  # MLflow's scoring server health paths
            "/health": self._ready,
            "/metrics": self._metrics,
            SHADOW_PATH: self._shadow,
        }

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin loading the model in the background (the ASGI lifespan startup does this)."""
        if self.loader.state != FAILED:
            self.loader.start(loop)
        if loop is not None and self.metrics is not None:
            loop.call_later(FLUSH_INTERVAL_S, self._flush_metrics, loop)
        if loop is not None and self.mirror is not None:
            self.mirror.start()

    def _flush_metrics(self, loop: asyncio.AbstractEventLoop) -> None:
        # With several workers a scrape reads the files every worker wrote: each flushes on its own.
        if self._stopped or self.metrics is None:
            return
        self.metrics.flush()
        loop.call_later(FLUSH_INTERVAL_S, self._flush_metrics, loop)

    def stop(self) -> None:
        """Stop retrying and release the prediction thread."""
        self._stopped = True
        if self.metrics is not None:
            self.metrics.flush()
        self.loader.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _begin_drain(self) -> bool:
        self.draining = True
        return self.model is not None

    def _loaded(self, model: LoadedModel) -> None:
        # Everything imported and loaded so far (mlflow, scikit-learn, the model: ~200,000 objects)
        # lives as long as the process: frozen, it is no longer rescanned by each full collection,
        # which took 230-280 ms here and showed up in the latency tail.
        gc.collect()
        gc.freeze()
        self.model = model
        if self.metrics is not None:
            self.metrics.bind(model.version, model.schema, model.profile)
        cost = model.cost
        where = f"inline up to the {self.config.inline_budget_ms:g} ms budget" if cost else "in a thread"
        measured = f"{cost.fixed_s * 1e3:.3f} ms + {cost.per_row_s * 1e6:.2f} us/row" if cost else "unmeasured"
        log.info(
            "serving %s version %s (%s, %d inputs, profile %s); predict %s, %s",
            model.name,
            model.version,
            model.flavor,
            len(model.schema.columns),
            "loaded" if model.profile else "absent: no drift counters",
            measured,
            where,
        )

    # -- ASGI --------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                self.start(loop)
                if self.drain.install(loop):
                    log.info(
                        "on SIGTERM: not ready at once, serving %g s more, then up to %d s for requests in flight",
                        self.config.drain_delay_s,
                        self.config.shutdown_timeout_s,
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.mirror is not None:
                    await self.mirror.stop()
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        content_type = _JSON
        extra: list[tuple[bytes, bytes]] = []
        route = self._exact.get(path)
        if route is not None:
            if method not in ("GET", "HEAD"):
                status, body = 405, orjson.dumps({"error": f"{method} is not allowed on {path}"})
            else:
                status, body, content_type = route()
        elif path == "/invocations":
            status, body, extra = await self._inference(scope, receive, "mlflow", None)
        elif path == "/feedback":
            status, body, extra = await self._feedback(scope, receive, "mlflow")
        elif (match := _MODEL_PATH.match(path)) is not None:
            status, body, extra = await self._model_route(scope, receive, match)
        else:
            status, body = 404, orjson.dumps({"error": f"no route {path}"})
        if status == 503 and not extra:
            extra = [(b"retry-after", RETRY_AFTER_LOADING)]
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
        if self.draining:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- plain endpoints ---------------------------------------------------------------------------
    def _live(self) -> tuple[int, bytes, bytes]:
        return 200, b'{"live":true}', _JSON

    def _ready(self) -> tuple[int, bytes, bytes]:
        if self.draining:
            return 503, b'{"ready":false,"state":"draining","reason":"shutting down"}', _JSON
        if self.model is not None:
            return 200, b'{"ready":true}', _JSON
        body = orjson.dumps({"ready": False, "state": self.loader.state, "reason": self.loader.reason})
        return 503, body, _JSON

    def _shadow(self) -> tuple[int, bytes, bytes]:
        """A shadow-track server tells the stable servers what to mirror to it (shadow.py); others have no such page."""
        config = self.config
        if config.track != "shadow" or config.shadow_sample <= 0:
            return 404, b'{"error":"this server is not a shadow"}', _JSON
        if self.model is None or self.draining:
            return 503, b'{"error":"the shadow is not ready"}', _JSON
        body = {"version": self.model.version, "sample": config.shadow_sample, "tolerance": config.shadow_tolerance}
        return 200, orjson.dumps(body), _JSON

    def _server_metadata(self) -> tuple[int, bytes, bytes]:
        from .. import __version__ as version

        return 200, orjson.dumps({"name": SERVER_NAME, "version": version, "extensions": []}), _JSON

    def _metrics(self) -> tuple[int, bytes, bytes]:
        if self.metrics is None:
            return 200, b"", b"text/plain; version=0.0.4; charset=utf-8"
        body, content_type = self.metrics.exposition()
        return 200, body, content_type.encode()

    async def _model_route(self, scope: Scope, receive: Receive, match: re.Match[str]) -> Answer:
        name, version, action = match["name"], match["version"], match["action"]
        model = self.model
        if name != self.model_name:
            status, body = (
                404,
                orjson.dumps({"error": f"model '{name}' not found; this server serves '{self.model_name}'"}),
            )
            return status, body, []
        if action == "/feedback":  # for any version this Deployment served: each id names its own
            if version is not None:
                return _error("v2", 404, f"no versioned feedback: POST /v2/models/{name}/feedback")
            return await self._feedback(scope, receive, "v2")
        if version is not None and model is not None and version != model.version:
            return 404, orjson.dumps({"error": f"version '{version}' not found; serving {model.version}"}), []
        if action == "/infer":
            if scope["method"] != "POST":
                return 405, orjson.dumps({"error": "infer takes POST"}), []
            return await self._inference(scope, receive, "v2", version)
        if scope["method"] not in ("GET", "HEAD"):
            return 405, orjson.dumps({"error": f"{scope['method']} is not allowed here"}), []
        if model is None:
            reason = {"name": name, "ready": False, "reason": self.loader.reason}
            return 503, orjson.dumps(reason), []
        if action == "/ready":
            if self.draining:
                return 503, orjson.dumps({"name": name, "ready": False, "reason": "shutting down"}), []
            return 200, orjson.dumps({"name": name, "ready": True}), []
        platform = "sklearn" if model.flavor == "sklearn" else "mlflow"
        outputs = [*model.outputs, (ID_OUTPUT, "BYTES")] if self.feedback is not None else model.outputs
        return 200, model_metadata(name, model.version, platform, model.schema, outputs), []

    # -- inference ---------------------------------------------------------------------------------
    async def _inference(self, scope: Scope, receive: Receive, protocol: str, version: str | None) -> Answer:
        if scope["method"] != "POST":
            return _error(protocol, 405, "use POST")
        start = time.perf_counter()
        model = self.model
        if model is None:
            self._count(OUTCOME_NOT_READY, None)
            why = "the model failed to load" if self.loader.state == FAILED else "the model is not loaded yet"
            return _error(protocol, 503, f"{why}: {self.loader.reason}", (b"retry-after", RETRY_AFTER_LOADING))
        # The body is read before a slot is taken: a slow client holds bytes of the budget, never a slot.
        raw, refused = await self._receive_body(scope, receive, protocol)
        if refused is not None:
            status, body, extra = refused
            self._count(OUTCOME_REJECTED if status == 503 else outcome_of(status), time.perf_counter() - start)
            return status, body, extra
        try:
            if not self.limiter.try_acquire():
                self._count(OUTCOME_REJECTED, None)
                message = f"overloaded: {self.limiter.limit} requests in flight in this worker; retry"
                return _error(protocol, 503, message, (b"retry-after", RETRY_AFTER_SHED))
            metrics = self.metrics
            if metrics is not None:
                metrics.admitted()
            try:
                status, body, extra = await self._score(raw, protocol, model, scope["headers"])
            finally:
                self.limiter.release()
                if metrics is not None:
                    metrics.answered()
        finally:
            self.body_budget.give_back(len(raw))
        self._count(outcome_of(status), time.perf_counter() - start)
        return status, body, extra

    async def _receive_body(self, scope: Scope, receive: Receive, protocol: str) -> tuple[bytes, Answer | None]:
        """The request body, or the answer to a request whose body cannot be taken (4xx, or 503 to retry)."""
        headers = scope["headers"]
        if not json_content_type(headers):
            return b"", _error(protocol, 415, "Content-Type must be application/json")
        limit = self.config.max_body_bytes
        length = declared_length(headers)
        if length is not None and length > limit:
            return b"", _error(protocol, 413, f"request body of {length} bytes exceeds the limit of {limit}")
        timeout = self.config.body_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await read_body(receive, limit, self.body_budget), None
        except TimeoutError:
            return b"", _error(protocol, 408, f"the request body did not arrive within {timeout:g}s")
        except BodyTooLargeError:
            return b"", _error(protocol, 413, f"request body exceeds the limit of {limit} bytes")
        except BudgetExceededError:
            message = f"overloaded: this worker holds {self.body_budget.limit} bytes of request bodies; retry"
            return b"", _error(protocol, 503, message, (b"retry-after", RETRY_AFTER_SHED))
        except ClientGoneError:
            return b"", _error(protocol, 400, "the client went away before sending the body")

    def _count(self, outcome: str, seconds: float | None) -> None:
        if self.metrics is not None:
            self.metrics.request(outcome, seconds)

    async def _score(self, raw: bytes, protocol: str, model: LoadedModel, headers: Headers) -> Answer:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return _error(protocol, 400, f"the body is not valid JSON: {error}")
        requested: list[str] | None = None
        request_id: str | None = None
        want_ids = self.feedback is not None
        try:
            if protocol == "v2":
                request = decode_infer_request(payload, model.schema)
                batch, requested, request_id = request.batch, request.outputs, request.request_id
                if want_ids:
                    requested, want_ids = split_requested(requested)
                off = ids_turned_off(headers, payload.get("parameters"), "parameters")
            else:
                batch = decode_invocations(payload, model.schema)
                off = ids_turned_off(headers, payload.get("params"), "params")
            want_ids = want_ids and not off  # turned off wins, even over a prediction_id output asked for
        except InputError as error:
            return _error(protocol, error.status, error.message)
        except Exception as error:  # decoding only touches the request: anything it trips on is the input's fault
            log.warning("undecodable %s request: %r", protocol, error)
            return _error(protocol, 400, f"the request could not be decoded: {type(error).__name__}")
        if batch.rows == 0:
            return _error(protocol, 422, "the request has no rows to predict")
        try:
            outputs = await self._predict(model, batch, requested)
        except InputError as error:
            return _error(protocol, error.status, error.message)
        except (ValueError, TypeError) as error:
            if batch.has_nulls():  # the signature allows nulls, this model does not
                return _error(protocol, 422, f"the model rejected the input: {error}")
            log.exception("predict failed")
            return _error(protocol, 500, f"prediction failed: {type(error).__name__}: {error}")
        except Exception as error:
            log.exception("predict failed")
            return _error(protocol, 500, f"prediction failed: {type(error).__name__}: {error}")
        ids = await self._ids(model, outputs, batch.rows) if want_ids else None
        if self.mirror is not None and outputs:
            path = f"/v2/models/{self.model_name}/infer" if protocol == "v2" else "/invocations"
            exact = model.classes is not None or outputs[0][1].dtype.kind not in "fc"
            self.mirror.offer(protocol, path, raw, outputs[0], exact)
        if protocol == "v2":
            return 200, encode_infer_response(self.model_name, model.version, request_id, outputs, ids), []
        return 200, encode_predictions(outputs, ids), ids_header(ids) if ids else []

    async def _ids(self, model: LoadedModel, outputs: list[tuple[str, np.ndarray]], rows: int) -> list[str] | None:
        """The prediction ids of an answer: on the event loop up to MINT_INLINE_ROWS, else in the prediction thread."""
        feedback = self.feedback
        if feedback is None:
            return None
        if rows <= MINT_INLINE_ROWS:
            return feedback.ids(model, outputs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, feedback.ids, model, outputs)
        except RuntimeError:  # the executor is shut down: the worker stops, the prediction still goes out
            return None

    async def _feedback(self, scope: Scope, receive: Receive, protocol: str) -> Answer:
        """Labels for prediction ids (feedback.py): 200 with per-item results, or a 4xx for the whole body."""
        if scope["method"] != "POST":
            return _error(protocol, 405, "feedback takes POST")
        if self.feedback is None:
            return _error(protocol, 409, NOT_CONFIGURED)
        model = self.model
        if model is None:  # its classes bound the confusion labels
            return _error(protocol, 503, "the model is not loaded yet", (b"retry-after", RETRY_AFTER_LOADING))
        # As for predictions, the body is read before a slot is taken: a slow client holds bytes, never a slot.
        raw, refused = await self._receive_body(scope, receive, protocol)
        if refused is not None:
            return refused
        try:
            if not self.feedback_limiter.try_acquire():
                if self.feedback.metrics is not None:
                    self.feedback.metrics.rejected(OVERLOADED)
                message = f"overloaded: {self.feedback_limiter.limit} feedback requests in flight in this worker; retry"
                return _error(protocol, 503, message, (b"retry-after", RETRY_AFTER_SHED))
            try:
                return 200, await self.feedback.handle(raw, model), []
            except FeedbackError as error:
                return _error(protocol, error.status, error.message)
            finally:
                self.feedback_limiter.release()
        finally:
            self.body_budget.give_back(len(raw))

    async def _predict(
        self, model: LoadedModel, batch: Batch, requested: list[str] | None
    ) -> list[tuple[str, np.ndarray]]:
        return await self._batcher.predict(lambda b, r: compute_outputs(model, b, r), batch, requested)

    def _fits_inline(self, rows: int, outputs: int) -> bool:
        cost = self.model.cost if self.model is not None else None
        return cost is not None and cost.estimate(rows) * outputs <= self._inline_budget_s


def app_from_env() -> ServerApp:
    """The ASGI app configured from the environment (uvicorn's factory in each worker process)."""
    config = config_from_env()
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # *_created series: a third of the exposition, and nobody queries them
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return ServerApp(config)


__all__ = ["READY", "ServerApp", "app_from_env", "as_outputs", "compute_outputs", "prepare"]
