"""`mlops-server`: the server image's entrypoint. Flags override env; uvicorn runs one or more workers.

The flags are written back into the environment because uvicorn starts each worker from an import
string (`app_from_env`), and the environment is what the workers inherit.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import importlib.util
import os
import shutil
import sys
import tempfile

from .. import contract
from . import config as cfg

APP = "mlops_operator.server.app:app_from_env"
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parser() -> argparse.ArgumentParser:
    """The command line; every flag has an env fallback, named in its help."""
    env = os.environ
    p = argparse.ArgumentParser(prog="mlops-server", description="Serve a registered MLflow model (OIP v2, MLflow).")
    p.add_argument(
        "--model-uri",
        default=env.get(cfg.ENV_MODEL_URI),
        help=f"models:/name/3 or models:/name@alias [{cfg.ENV_MODEL_URI}]; the registry is {contract.ENV_TRACKING_URI}",
    )
    p.add_argument(
        "--model-name",
        default=env.get(cfg.ENV_MODEL_NAME),
        help=f"name under /v2/models/ (default: the registered name) [{cfg.ENV_MODEL_NAME}]",
    )
    p.add_argument("--host", default=env.get(cfg.ENV_HOST, "0.0.0.0"), help=f"[{cfg.ENV_HOST}] (0.0.0.0)")
    p.add_argument("--port", type=int, default=env.get(cfg.ENV_PORT, cfg.DEFAULT_PORT), help=f"[{cfg.ENV_PORT}] (8080)")
    p.add_argument(
        "--workers", type=int, default=env.get(cfg.ENV_WORKERS, 1), help=f"worker processes [{cfg.ENV_WORKERS}]"
    )
    p.add_argument(
        "--max-inflight",
        type=int,
        default=env.get(cfg.ENV_MAX_INFLIGHT, cfg.DEFAULT_MAX_INFLIGHT),
        help=f"admitted requests per worker; more get 503 [{cfg.ENV_MAX_INFLIGHT}] (16)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=env.get(cfg.ENV_MAX_BODY_BYTES, cfg.DEFAULT_MAX_BODY_BYTES),
        help=f"larger bodies get 413 [{cfg.ENV_MAX_BODY_BYTES}] (8 MiB)",
    )
    p.add_argument(
        "--max-inflight-bytes",
        type=int,
        default=env.get(cfg.ENV_MAX_INFLIGHT_BYTES),
        help=f"body bytes a worker holds at once; more get 503 [{cfg.ENV_MAX_INFLIGHT_BYTES}] (4x the body limit)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=float,
        default=env.get(cfg.ENV_BODY_TIMEOUT_S, cfg.DEFAULT_BODY_TIMEOUT_S),
        help=f"a body not received in this time gets 408 [{cfg.ENV_BODY_TIMEOUT_S}] (10)",
    )
    p.add_argument("--track", default=env.get(cfg.ENV_TRACK, "stable"), help=f"metric label [{cfg.ENV_TRACK}]")
    p.add_argument("--deployment", default=env.get(cfg.ENV_DEPLOYMENT, ""), help=f"metric label [{cfg.ENV_DEPLOYMENT}]")
    p.add_argument(
        "--no-metrics", action="store_true", help=f"no request metrics nor drift counters [{cfg.ENV_METRICS}=false]"
    )
    p.add_argument("--no-drift", action="store_true", help=f"no per-feature bin counters [{cfg.ENV_DRIFT}=false]")
    p.add_argument(
        "--inline-budget-ms",
        type=float,
        default=env.get(cfg.ENV_INLINE_BUDGET_MS, cfg.DEFAULT_INLINE_BUDGET_MS),
        help=f"predictions estimated faster than this run on the event loop [{cfg.ENV_INLINE_BUDGET_MS}]",
    )
    p.add_argument(
        "--drain-delay-s",
        type=float,
        default=env.get(cfg.ENV_DRAIN_DELAY_S, cfg.DEFAULT_DRAIN_DELAY_S),
        help=f"after SIGTERM: not ready but serving this long, for endpoints to drop it [{cfg.ENV_DRAIN_DELAY_S}] (5)",
    )
    p.add_argument(
        "--shutdown-timeout-s",
        type=int,
        default=env.get(cfg.ENV_SHUTDOWN_TIMEOUT_S, cfg.DEFAULT_SHUTDOWN_TIMEOUT_S),
        help=f"then at most this long for requests in flight [{cfg.ENV_SHUTDOWN_TIMEOUT_S}] (3)",
    )
    p.add_argument(
        "--allow-unsafe-model-formats",
        action="store_true",
        help="also load pickles, code paths and pyfunc models: runs code from the artifact "
        f"[{cfg.ENV_ALLOW_UNSAFE_MODEL_FORMATS}=true]",
    )
    p.add_argument("--log-level", default=env.get(cfg.ENV_LOG_LEVEL, "info"), help=f"[{cfg.ENV_LOG_LEVEL}]")
    return p


def to_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment entries a worker needs, from parsed flags."""
    values = {
        cfg.ENV_MODEL_URI: args.model_uri or "",
        cfg.ENV_MODEL_NAME: args.model_name or "",
        cfg.ENV_HOST: args.host,
        cfg.ENV_PORT: str(args.port),
        cfg.ENV_WORKERS: str(args.workers),
        cfg.ENV_MAX_INFLIGHT: str(args.max_inflight),
        cfg.ENV_MAX_BODY_BYTES: str(args.max_body_bytes),
        cfg.ENV_BODY_TIMEOUT_S: str(args.body_timeout_s),
        cfg.ENV_TRACK: args.track,
        cfg.ENV_DEPLOYMENT: args.deployment,
        cfg.ENV_INLINE_BUDGET_MS: str(args.inline_budget_ms),
        cfg.ENV_LOG_LEVEL: args.log_level,
        cfg.ENV_DRAIN_DELAY_S: str(args.drain_delay_s),
        cfg.ENV_SHUTDOWN_TIMEOUT_S: str(args.shutdown_timeout_s),
    }
    if args.max_inflight_bytes is not None:
        values[cfg.ENV_MAX_INFLIGHT_BYTES] = str(args.max_inflight_bytes)
    if args.no_metrics:
        values[cfg.ENV_METRICS] = "false"
    if args.no_drift:
        values[cfg.ENV_DRIFT] = "false"
    if args.allow_unsafe_model_formats:
        values[cfg.ENV_ALLOW_UNSAFE_MODEL_FORMATS] = "true"
    return values


def prepare_multiprocess_dir(workers: int) -> str | None:
    """With several workers, an empty PROMETHEUS_MULTIPROC_DIR (created if unset) before any worker starts."""
    path = os.environ.get(cfg.ENV_MULTIPROC_DIR)
    if workers <= 1 and not path:
        return None
    if not path:
        path = tempfile.mkdtemp(prefix="mlops-server-metrics-")
        os.environ[cfg.ENV_MULTIPROC_DIR] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):  # counts of a previous run would be summed in
        os.unlink(stale)
    return path


def main(argv: list[str] | None = None) -> int:
    """Validate the configuration, then run uvicorn (blocks until stopped)."""
    args = parser().parse_args(argv)
    os.environ.update(to_env(args))
    try:
        config = cfg.config_from_env()
    except cfg.ConfigError as error:
        print(f"mlops-server: {error}", file=sys.stderr)
        return contract.EXIT_PERMANENT
    prepare_multiprocess_dir(config.workers)
    if config.workers > 1:
        # N processes each with a BLAS thread pool per core would oversubscribe the pod's CPUs.
        for name in _THREAD_ENV:
            os.environ.setdefault(name, "1")
    # The server retries the registry itself with backoff; MLflow's own retries (minutes by default)
    # would hide an unreachable registry from the ready endpoint.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    import uvicorn

    uvicorn.run(
        APP,
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        access_log=False,
        log_level=config.log_level,
        server_header=False,
        backlog=2048,
        timeout_graceful_shutdown=config.shutdown_timeout_s,  # after the drain delay (shutdown.py)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
