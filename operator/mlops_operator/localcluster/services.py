"""The services beside the control plane: an MLflow tracking server and registry, and Prometheus.

Both listen on the bridge address so that pods (workers, model servers) and host processes
(the operator, tests) use the same URLs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import yaml

from .config import ClusterConfig
from .mlflowauth import MlflowAuth, mlflow_server_argv

SCRAPE_INTERVAL = "5s"
# Rules are evaluated as often as targets are scraped, so an alert test waits seconds, not a minute.
EVALUATION_INTERVAL = "5s"
# The chart's alert rules, the one source (charts/mlops-operator/files/); present in a checkout (editable install).
RULES_FILE = Path(__file__).resolve().parents[3] / "charts" / "mlops-operator" / "files" / "prometheus-rules.yaml"
# Operators run on the host (tests, the demo) are no pods: each writes a file_sd target file here while it runs.
OPERATOR_JOB = "mlops-operator"


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
    config: dict[str, object] = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": EVALUATION_INTERVAL},
    }
    if RULES_FILE.exists():
        config["rule_files"] = [str(RULES_FILE)]
    config["scrape_configs"] = [
        {
            "job_name": "kubernetes-pods",
            "http_sd_configs": [
                {"url": f"http://127.0.0.1:{cfg.pod_discovery_port}/targets", "refresh_interval": SCRAPE_INTERVAL}
            ],
            "relabel_configs": relabel,
        },
        {
            "job_name": OPERATOR_JOB,
            # The operator's per-object series carry their own namespace label; nothing here may replace it.
            "honor_labels": True,
            "file_sd_configs": [
                {"files": [str(operator_targets_dir(cfg.state_dir) / "*.json")], "refresh_interval": SCRAPE_INTERVAL}
            ],
        },
    ]
    return config


def operator_targets_dir(state_dir: Path) -> Path:
    """Where host-run operators register their metrics endpoints for the local Prometheus."""
    return (state_dir / "prometheus" / "operators").resolve()


def register_operator(state_dir: Path, name: str, address: str) -> Path:
    """Let the local Prometheus scrape an operator run on the host at `address` (host:port); picked up within
    the file_sd refresh (5 s). Returns the target file; remove it with `unregister_operator`."""
    directory = operator_targets_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    temporary = path.with_suffix(".tmp")  # file_sd reads *.json only: never a half-written one
    temporary.write_text(json.dumps([{"targets": [address], "labels": {}}]))
    temporary.replace(path)
    return path


def unregister_operator(state_dir: Path, name: str) -> None:
    """Stop scraping a host-run operator (it stopped on purpose, so it is not reported down)."""
    (operator_targets_dir(state_dir) / f"{name}.json").unlink(missing_ok=True)


def write_prometheus_config(cfg: ClusterConfig) -> tuple[Path, bool]:
    """Write prometheus.yml under the state dir; True when its text changed (a running Prometheus needs a reload)."""
    root = (cfg.state_dir / "prometheus").resolve()
    root.mkdir(parents=True, exist_ok=True)
    operator_targets_dir(cfg.state_dir).mkdir(parents=True, exist_ok=True)
    config_file = root / "prometheus.yml"
    text = yaml.safe_dump(prometheus_config(cfg), sort_keys=False)
    changed = not config_file.exists() or config_file.read_text() != text
    if changed:
        config_file.write_text(text)
    return config_file, changed


def reload_prometheus(cfg: ClusterConfig) -> None:
    """Make a running Prometheus re-read its config and rule files (--web.enable-lifecycle): no restart, so
    its data and the scrapes other tests rely on continue."""
    response = httpx.post(f"{cfg.prometheus_url}/-/reload", timeout=30)
    response.raise_for_status()


def prometheus_argv(cfg: ClusterConfig) -> list[str]:
    """Debian's prometheus with a config written under the state dir."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise MissingDependencyError(
            "prometheus is not installed: `apt-get install prometheus` (make system-deps does it)"
        )
    config_file, _ = write_prometheus_config(cfg)
    root = config_file.parent
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
