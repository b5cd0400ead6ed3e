"""The operator's configuration, read once from the environment the Helm chart sets; bad values stop the start."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pydantic

from .. import __version__
from ..api.pod import PodOverrides
from ..integrations.prometheus import redacted
from ..notify.delivery import NotifierSettings
from ..notify.destinations import SecretFiles
from ..planning.jobs import WorkerSettings
from ..planning.querypolicy import CustomQueries
from ..worker.errors import WorkerError
from ..worker.sourcepolicy import ENV_SOURCE_POLICY, policy_from_env

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
DEFAULT_RESYNC_SECONDS = 600.0
ENV_WORKLOAD_POD = "MLOPS_WORKLOAD_POD"


@dataclass(frozen=True)
class Settings:
    """Operator configuration, from the environment (the Helm chart sets these)."""

    tracking_uri: str
    worker_image: str
    server_image: str
    prometheus_url: str | None
    api_qps: float = 20.0
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    source_policy: str = ""  # JSON (worker/sourcepolicy.py), passed to every worker Job; "": none
    # Prometheus URLs a Deployment's spec.monitoring.prometheusUrl may name (prometheus_url always may).
    prometheus_allowed_urls: tuple[str, ...] = ()
    custom_queries: CustomQueries = "scoped"  # custom PromQL: scoped to the object's namespace, or off
    workload_secret: str = ""  # the per-namespace credentials Secret Jobs and servers get via envFrom
    feedback_secret: str = ""  # the per-namespace Secret of prediction-id keys, for model servers only
    notifications: NotifierSettings = field(default_factory=NotifierSettings)
    workload_pod: PodOverrides | None = None  # the chart's workloadPod: defaults under every object's spec.pod

    @classmethod
    def from_env(cls) -> Settings:
        """Read MLFLOW_TRACKING_URI, MLOPS_WORKER_IMAGE, MLOPS_SERVER_IMAGE, MLOPS_PROMETHEUS_URL, MLOPS_API_QPS,
        MLOPS_RESYNC_SECONDS, MLOPS_SOURCE_POLICY, MLOPS_PROMETHEUS_ALLOWED_URLS, MLOPS_CUSTOM_QUERIES,
        MLOPS_WORKLOAD_SECRET, MLOPS_FEEDBACK_SECRET, MLOPS_WORKLOAD_POD and the MLOPS_NOTIFICATION_* settings."""
        return cls(
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
            worker_image=os.environ.get("MLOPS_WORKER_IMAGE", f"mlops-operator/trainer:{__version__}"),
            server_image=os.environ.get("MLOPS_SERVER_IMAGE", f"mlops-operator/server:{__version__}"),
            prometheus_url=_checked_url(os.environ.get("MLOPS_PROMETHEUS_URL") or "") or None,
            # controller-runtime's default: polite to a shared API server; raise it for big fleets.
            api_qps=float(os.environ.get("MLOPS_API_QPS", "20")),
            # A periodic relist repairs whatever a lost watch event left wrong (controller-runtime's SyncPeriod).
            resync_seconds=float(os.environ.get("MLOPS_RESYNC_SECONDS", str(DEFAULT_RESYNC_SECONDS))),
            source_policy=_checked_source_policy(os.environ.get(ENV_SOURCE_POLICY, "")),
            prometheus_allowed_urls=tuple(
                _checked_url(url)
                for url in os.environ.get("MLOPS_PROMETHEUS_ALLOWED_URLS", "").split(",")
                if url.strip()
            ),
            custom_queries=_checked_custom_queries(os.environ.get("MLOPS_CUSTOM_QUERIES", "scoped")),
            workload_secret=_checked_secret_name(os.environ.get("MLOPS_WORKLOAD_SECRET", ""), "MLOPS_WORKLOAD_SECRET"),
            feedback_secret=_checked_secret_name(os.environ.get("MLOPS_FEEDBACK_SECRET", ""), "MLOPS_FEEDBACK_SECRET"),
            notifications=notifier_settings_from_env(),
            workload_pod=_checked_workload_pod(os.environ.get(ENV_WORKLOAD_POD, "")),
        )

    def prometheus_for(self, requested: str | None) -> tuple[str | None, str | None]:
        """The Prometheus a Deployment is analysed with, and why its own URL is refused (if it is): only the
        operator's URL and the chart's allowed ones, compared exactly, so no object points the operator elsewhere."""
        if not requested:
            return self.prometheus_url, None
        allowed = {_url_key(u): u for u in (*self.prometheus_allowed_urls, self.prometheus_url) if u}
        if _url_key(requested) in allowed:  # the chart's own spelling is queried, never the object's
            return allowed[_url_key(requested)], None
        return None, (
            f"spec.monitoring.prometheusUrl {redacted(requested)[:200]} is not an allowed Prometheus "
            "(chart values prometheus.url and prometheus.allowedUrls); nothing is queried"
        )

    @property
    def worker(self) -> WorkerSettings:
        """How Job pods are built."""
        return WorkerSettings(
            image=self.worker_image,
            tracking_uri=self.tracking_uri,
            source_policy=self.source_policy,
            credentials_secret=self.workload_secret,
            pod_defaults=self.workload_pod,
        )


def notifier_settings_from_env() -> NotifierSettings:
    """MLOPS_NOTIFICATION_SECRETS_DIR (the mounted notification Secret; "" none), MLOPS_NOTIFICATION_ALLOWED_HOSTS
    (comma-separated; "" any), MLOPS_NOTIFICATION_QUEUE_SIZE (default 1000), MLOPS_NOTIFICATION_BACKOFF_SECONDS
    (first retry's delay, default 1)."""
    directory = os.environ.get("MLOPS_NOTIFICATION_SECRETS_DIR", "").strip()
    hosts = tuple(h.strip() for h in os.environ.get("MLOPS_NOTIFICATION_ALLOWED_HOSTS", "").split(",") if h.strip())
    for host in hosts:
        if not re.fullmatch(r"(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?|\[?[0-9a-fA-F:.]+\]?", host.lower()):
            raise ValueError(f"MLOPS_NOTIFICATION_ALLOWED_HOSTS: {host!r} is not a host name, *.domain or address")
    size = int(os.environ.get("MLOPS_NOTIFICATION_QUEUE_SIZE", "1000"))
    base = float(os.environ.get("MLOPS_NOTIFICATION_BACKOFF_SECONDS", "1"))
    if size < 1 or base <= 0:
        raise ValueError("MLOPS_NOTIFICATION_QUEUE_SIZE must be >= 1 and MLOPS_NOTIFICATION_BACKOFF_SECONDS > 0")
    return NotifierSettings(
        secrets=SecretFiles(Path(directory) if directory else None),
        allowed_hosts=hosts,
        queue_size=size,
        backoff_base=base,
    )


def _checked_workload_pod(raw: str) -> PodOverrides | None:
    # The same model and rules as an object's spec.pod; a bad chart value stops the start, naming the field.
    if not raw.strip() or raw.strip() in ("{}", "null"):
        return None
    try:
        return PodOverrides.model_validate_json(raw)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors())
        raise ValueError(f"{ENV_WORKLOAD_POD} (chart value workloadPod) is not a valid pod block: {problems}") from None


def _checked_secret_name(raw: str, variable: str) -> str:
    name = raw.strip()
    if name and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name):
        raise ValueError(f"{variable} must be a Secret name (DNS subdomain), not {raw!r}")
    return name


def _checked_url(raw: str) -> str:
    # A bad chart value stops the operator at start with the reason, not every Deployment's reconcile later.
    url = raw.strip()
    if url:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as error:
            raise ValueError(f"Prometheus URL {redacted(url)!r} is not a URL: {error}") from error
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"Prometheus URL {redacted(url)!r} must be http(s)://host[:port][/path]")
    return url


def _url_key(url: str) -> str:
    return url.strip().rstrip("/")


def _checked_custom_queries(raw: str) -> CustomQueries:
    value = raw.strip() or "scoped"
    if value == "scoped":
        return "scoped"
    if value == "off":
        return "off"
    raise ValueError(f"MLOPS_CUSTOM_QUERIES must be 'scoped' or 'off', not {raw!r}")


def _checked_source_policy(raw: str) -> str:
    # A bad chart value stops the operator at start with the reason, not every validation Job later.
    if raw.strip():
        try:
            policy_from_env({ENV_SOURCE_POLICY: raw})
        except WorkerError as error:
            raise ValueError(str(error)) from error
    return raw.strip()
