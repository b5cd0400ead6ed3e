"""The model server's configuration: one frozen value built from env, which the CLI fills from its flags.

Every worker process of `mlops-server --workers N` is started by uvicorn from an import string, so
the configuration travels to the workers through the environment; the CLI writes its flags there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import contract

ENV_MODEL_URI = "MLOPS_MODEL_URI"
ENV_MODEL_NAME = "MLOPS_MODEL_NAME"  # the name served under /v2/models/{name}; default: the registered name
ENV_HOST = "MLOPS_HOST"
ENV_PORT = "MLOPS_PORT"
ENV_WORKERS = "MLOPS_WORKERS"
ENV_MAX_INFLIGHT = "MLOPS_MAX_INFLIGHT"
ENV_MAX_BODY_BYTES = "MLOPS_MAX_BODY_BYTES"
ENV_MAX_INFLIGHT_BYTES = "MLOPS_MAX_INFLIGHT_BYTES"  # request-body bytes one worker holds at once
ENV_BODY_TIMEOUT_S = "MLOPS_BODY_TIMEOUT_S"
ENV_TRACK = "MLOPS_TRACK"  # stable | canary: a metric label
ENV_DEPLOYMENT = "MLOPS_DEPLOYMENT"  # the deployments.mlops.dev name: a metric label
ENV_NAMESPACE = "MLOPS_NAMESPACE"  # the Deployment's namespace: bound into prediction ids
# Prediction ids and feedback (predictionids.py, feedback.py). The keys come from the namespace's workload
# Secret (envFrom); without MLOPS_FEEDBACK_KEY predictions carry no ids and /feedback answers 409.
ENV_FEEDBACK_KEY = "MLOPS_FEEDBACK_KEY"
ENV_FEEDBACK_KEY_PREVIOUS = "MLOPS_FEEDBACK_KEY_PREVIOUS"  # verifies only: rotation
ENV_FEEDBACK_MAX_ITEMS = "MLOPS_FEEDBACK_MAX_ITEMS"  # labels per feedback request
ENV_FEEDBACK_REPLAY_SIZE = "MLOPS_FEEDBACK_REPLAY_SIZE"  # ids one worker remembers, not to count twice
ENV_FEEDBACK_MAX_INFLIGHT = "MLOPS_FEEDBACK_MAX_INFLIGHT"  # feedback requests one worker judges at once
ENV_METRICS = "MLOPS_METRICS"  # "false" turns off request metrics and drift counters
ENV_DRIFT = "MLOPS_DRIFT"  # "false" keeps request metrics but skips the per-feature bin counters
ENV_INLINE_BUDGET_MS = "MLOPS_INLINE_BUDGET_MS"
ENV_LOG_LEVEL = "MLOPS_LOG_LEVEL"
ENV_DRAIN_DELAY_S = "MLOPS_DRAIN_DELAY_S"  # after SIGTERM: not ready, still serving, this long (shutdown.py)
ENV_SHUTDOWN_TIMEOUT_S = "MLOPS_SHUTDOWN_TIMEOUT_S"  # then at most this long for requests in flight
ENV_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The shadow step (shadow.py): stable servers mirror to the shadow track's Service at MLOPS_SHADOW_URL while a
# shadow-track server answers there; a shadow-track server tells them its sample fraction and tolerance.
ENV_SHADOW_URL = "MLOPS_SHADOW_URL"
ENV_SHADOW_SAMPLE = "MLOPS_SHADOW_SAMPLE"
ENV_SHADOW_TOLERANCE = "MLOPS_SHADOW_TOLERANCE"
# "true" loads pickles, code paths and pyfunc models (code from the artifact): a Deployment's opt-in
ENV_ALLOW_UNSAFE_MODEL_FORMATS = "MLOPS_ALLOW_UNSAFE_MODEL_FORMATS"

DEFAULT_PORT = 8080
DEFAULT_MAX_INFLIGHT = 16
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_BODY_TIMEOUT_S = 10.0  # a body not received by then is answered 408 (slow clients hold no slot)
INFLIGHT_BYTES_PER_BODY = 4  # the bytes-in-flight budget, in multiples of the body limit
# A prediction estimated to take at most this long runs on the event loop itself; a longer one goes
# to a thread so health checks and load shedding stay responsive (see app.py, batching.py).
DEFAULT_INLINE_BUDGET_MS = 2.0
# Drain delay + shutdown timeout + uvicorn's own ~0.7 s must fit in the pod's terminationGracePeriodSeconds (10).
DEFAULT_DRAIN_DELAY_S = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 3
DEFAULT_FEEDBACK_MAX_AGE_S = 7 * 24 * 3600.0
DEFAULT_FEEDBACK_MAX_ITEMS = 10_000
# Feedback has its own in-flight limit, apart from predictions': a flood of labels is shed (503) without
# taking the slots predictions need. 4 bodies of 10,000 labels are 0.3-0.6 s of judging, 256 labels a turn.
DEFAULT_FEEDBACK_MAX_INFLIGHT = 4
DEFAULT_FEEDBACK_REPLAY_SIZE = 500_000  # about 4 MB per worker when full (feedback.ReplayGuard)
MIN_FEEDBACK_KEY_BYTES = 16

_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the flag and its env variable."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything one worker needs to load and serve its model."""

    model_uri: str
    tracking_uri: str = ""
    model_name: str = ""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    workers: int = 1
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_inflight_bytes: int = INFLIGHT_BYTES_PER_BODY * DEFAULT_MAX_BODY_BYTES
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    track: str = "stable"
    deployment: str = ""
    metrics: bool = True
    drift: bool = True
    inline_budget_ms: float = DEFAULT_INLINE_BUDGET_MS
    log_level: str = "info"
    drain_delay_s: float = DEFAULT_DRAIN_DELAY_S
    shutdown_timeout_s: int = DEFAULT_SHUTDOWN_TIMEOUT_S
    allow_unsafe_model_formats: bool = False
    namespace: str = ""
    # Secrets: kept out of repr, so that logging a configuration shows no key.
    feedback_key: str = field(default="", repr=False)
    feedback_key_previous: str = field(default="", repr=False)
    feedback_max_age_s: float = DEFAULT_FEEDBACK_MAX_AGE_S
    feedback_max_items: int = DEFAULT_FEEDBACK_MAX_ITEMS
    feedback_replay_size: int = DEFAULT_FEEDBACK_REPLAY_SIZE
    feedback_max_inflight: int = DEFAULT_FEEDBACK_MAX_INFLIGHT
    shadow_url: str = ""
    shadow_sample: float = 0.0
    shadow_tolerance: float = 0.0
    # The loader's retry schedule when the registry is unreachable: doubling, capped.
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0


def _int(env: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigError(f"{key}={raw!r} is not an integer") from error
    if value < minimum:
        raise ConfigError(f"{key}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ConfigError(f"{key}={raw!r} is not a number") from error
    if value < 0:
        raise ConfigError(f"{key}={value} must not be negative")
    return value


def _fraction(env: Mapping[str, str], key: str) -> float:
    value = _float(env, key, 0.0)
    if value > 1.0:
        raise ConfigError(f"{key}={value} is a fraction: at most 1")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key, "").strip().lower()
    return default if not raw else raw not in _FALSE


def _key(env: Mapping[str, str], name: str) -> str:
    """A feedback key (surrounding whitespace, as a Secret made from a file has, is not part of it)."""
    key = env.get(name, "").strip()
    if key and len(key.encode()) < MIN_FEEDBACK_KEY_BYTES:
        # Refused rather than used: a short key would make every id forgeable by guessing it.
        size = len(key.encode())
        raise ConfigError(f"{name} has {size} bytes; a feedback key needs at least {MIN_FEEDBACK_KEY_BYTES}")
    return key


def config_from_env(env: Mapping[str, str] | None = None) -> ServerConfig:
    """The configuration in `env` (default: os.environ); raises ConfigError naming a bad variable."""
    env = os.environ if env is None else env
    model_uri = env.get(ENV_MODEL_URI, "").strip()
    if not model_uri:
        raise ConfigError(f"no model: pass --model-uri or set {ENV_MODEL_URI} (models:/name/3 or models:/name@alias)")
    max_body = _int(env, ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, 1)
    return ServerConfig(
        model_uri=model_uri,
        tracking_uri=env.get(contract.ENV_TRACKING_URI, "").strip(),
        model_name=env.get(ENV_MODEL_NAME, "").strip(),
        host=env.get(ENV_HOST, "").strip() or "0.0.0.0",
        port=_int(env, ENV_PORT, DEFAULT_PORT, 0),
        workers=_int(env, ENV_WORKERS, 1, 1),
        max_inflight=_int(env, ENV_MAX_INFLIGHT, DEFAULT_MAX_INFLIGHT, 1),
        max_body_bytes=max_body,
        max_inflight_bytes=_int(env, ENV_MAX_INFLIGHT_BYTES, INFLIGHT_BYTES_PER_BODY * max_body, 1),
        body_timeout_s=_float(env, ENV_BODY_TIMEOUT_S, DEFAULT_BODY_TIMEOUT_S),
        track=env.get(ENV_TRACK, "").strip() or "stable",
        deployment=env.get(ENV_DEPLOYMENT, "").strip(),
        metrics=_bool(env, ENV_METRICS, True),
        drift=_bool(env, ENV_DRIFT, True),
        inline_budget_ms=_float(env, ENV_INLINE_BUDGET_MS, DEFAULT_INLINE_BUDGET_MS),
        log_level=env.get(ENV_LOG_LEVEL, "").strip().lower() or "info",
        drain_delay_s=_float(env, ENV_DRAIN_DELAY_S, DEFAULT_DRAIN_DELAY_S),
        shutdown_timeout_s=_int(env, ENV_SHUTDOWN_TIMEOUT_S, DEFAULT_SHUTDOWN_TIMEOUT_S, 0),
        allow_unsafe_model_formats=_bool(env, ENV_ALLOW_UNSAFE_MODEL_FORMATS, False),
        namespace=env.get(ENV_NAMESPACE, "").strip(),
        feedback_key=_key(env, ENV_FEEDBACK_KEY),
        feedback_key_previous=_key(env, ENV_FEEDBACK_KEY_PREVIOUS),
        feedback_max_age_s=_float(env, contract.ENV_FEEDBACK_MAX_AGE_S, DEFAULT_FEEDBACK_MAX_AGE_S),
        feedback_max_items=_int(env, ENV_FEEDBACK_MAX_ITEMS, DEFAULT_FEEDBACK_MAX_ITEMS, 1),
        feedback_replay_size=_int(env, ENV_FEEDBACK_REPLAY_SIZE, DEFAULT_FEEDBACK_REPLAY_SIZE, 1),
        feedback_max_inflight=_int(env, ENV_FEEDBACK_MAX_INFLIGHT, DEFAULT_FEEDBACK_MAX_INFLIGHT, 1),
        shadow_url=env.get(ENV_SHADOW_URL, "").strip(),
        shadow_sample=_fraction(env, ENV_SHADOW_SAMPLE),
        shadow_tolerance=_float(env, ENV_SHADOW_TOLERANCE, 0.0),
    )
