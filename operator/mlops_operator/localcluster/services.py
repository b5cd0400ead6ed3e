"""The services beside the control plane: an MLflow tracking server and registry, and Prometheus.

Both listen on the bridge address so that pods (workers, model servers) and host processes
(the operator, tests) use the same URLs.
"""

from __future__ import annotations

import shutil
import sys

import httpx
import yaml

from .config import ClusterConfig
from .mlflowauth import MlflowAuth, mlflow_server_argv

SCRAPE_INTERVAL = "5s"


class MissingDependencyError(RuntimeError):
    """A program the local stack needs is not installed; the message says how to get it."""


def mlflow_argv(cfg: ClusterConfig) -> list[str]:
    """`mlflow server` with sqlite metadata and a proxied artifact store under the state dir (with
    `cfg.mlflow_auth`, MLflow's basic-auth app). Two workers: Job pods log runs while the operator reads."""
    return mlflow_server_argv(cfg.state_dir / "mlflow", "0.0.0.0", cfg.mlflow_port, auth=cfg.mlflow_auth)


def mlflow_env(cfg: ClusterConfig) -> dict[str, str]:
    """Extra environment of the MLflow server: the auth app's config when authentication is on."""
    return MlflowAuth(cfg.state_dir / "mlflow" / "auth").env() if cfg.mlflow_auth else {}


def pod_discovery_argv(cfg: ClusterConfig) -> list[str]:
    """The pod-discovery bridge Prometheus asks for targets (see podsd.py for why)."""
    return [
        sys.executable,
        "-m",
        "mlops_operator.localcluster.podsd",
        f"--state-dir={cfg.state_dir}",
        f"--port={cfg.pod_discovery_port}",
    ]


def prometheus_config(cfg: ClusterConfig) -> dict[str, object]:
    """Scrape every pod annotated `prometheus.io/scrape: "true"`, found through the local API server.

    The relabelling is the standard one for Kubernetes pod discovery; only the discovery itself
    goes through the http_sd bridge, because Debian builds Prometheus without `kubernetes_sd_configs`.
    """
    relabel = [
        {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
        {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "keep", "regex": "Running"},
        {
            "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            "action": "replace",
            "target_label": "__metrics_path__",
            "regex": "(.+)",
        },
        {
            "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
            "action": "replace",
            "regex": r"([^:]+)(?::\d+)?;(\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "http_sd_configs": [
                    {"url": f"http://127.0.0.1:{cfg.pod_discovery_port}/targets", "refresh_interval": SCRAPE_INTERVAL}
                ],
                "relabel_configs": relabel,
            }
        ],
    }


def prometheus_argv(cfg: ClusterConfig) -> list[str]:
    """Debian's prometheus with a config written under the state dir."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise MissingDependencyError(
            "prometheus is not installed: `apt-get install prometheus` (make system-deps does it)"
        )
    root = (cfg.state_dir / "prometheus").resolve()
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(prometheus_config(cfg), sort_keys=False))
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={root / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=0.0.0.0:{cfg.prometheus_port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


def mlflow_healthy(cfg: ClusterConfig) -> bool:
    """MLflow answers its health endpoint."""
    return httpx.get(f"{cfg.mlflow_url}/health", timeout=2).status_code == 200


def pod_discovery_healthy(cfg: ClusterConfig) -> bool:
    """The discovery bridge answers."""
    return httpx.get(f"http://127.0.0.1:{cfg.pod_discovery_port}/healthz", timeout=2).status_code == 200


def prometheus_healthy(cfg: ClusterConfig) -> bool:
    """Prometheus reports ready."""
    return httpx.get(f"{cfg.prometheus_url}/-/ready", timeout=2).status_code == 200
