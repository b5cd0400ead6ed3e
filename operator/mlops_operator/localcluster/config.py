"""Where the local cluster keeps its state and which addresses and ports it uses."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path(".localcluster")
MLFLOW_AUTH_MARKER = Path("mlflow") / "auth" / "enabled"


@dataclass(frozen=True)
class ClusterConfig:
    """Addresses, ports and paths of one local cluster; everything lives under `state_dir`."""

    state_dir: Path = DEFAULT_STATE_DIR
    node_name: str = "mlops-node"
    bridge: str = "mlops0"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.96.0.0/16"
    apiserver_port: int = 16443
    etcd_client_port: int = 32379
    etcd_peer_port: int = 32380
    controller_manager_port: int = 20257
    scheduler_port: int = 20259
    mlflow_port: int = 15000
    prometheus_port: int = 19090
    pod_discovery_port: int = 19091
    kube_proxy_health_port: int = 20256
    kube_proxy_metrics_port: int = 20249
    coredns_health_port: int = 20280
    coredns_ready_port: int = 20281
    mlflow_auth: bool = False  # MLflow's basic-auth app (`cluster up --mlflow-auth`)

    @classmethod
    def from_env(cls, state_dir: Path | None = None) -> ClusterConfig:
        """Defaults; MLOPS_CLUSTER_APISERVER_PORT overrides the API server port, MLOPS_CLUSTER_MLFLOW_AUTH=1
        turns MLflow authentication on."""
        kwargs: dict[str, object] = {"state_dir": (state_dir or DEFAULT_STATE_DIR).resolve()}
        state = (state_dir or DEFAULT_STATE_DIR).resolve()
        wanted = os.environ.get("MLOPS_CLUSTER_MLFLOW_AUTH", "").strip().lower() in ("1", "true", "yes")
        if wanted or (state / MLFLOW_AUTH_MARKER).exists():  # once on, a state directory keeps it on
            kwargs["mlflow_auth"] = True
        if "MLOPS_CLUSTER_APISERVER_PORT" in os.environ:
            kwargs["apiserver_port"] = int(os.environ["MLOPS_CLUSTER_APISERVER_PORT"])
        return cls(**kwargs)  # type: ignore[arg-type]

    @property
    def bridge_ip(self) -> str:
        """The host side of the pod network: the first address of the pod CIDR."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def bridge_prefix(self) -> int:
        """Prefix length of the pod CIDR."""
        return ipaddress.ip_network(self.pod_cidr).prefixlen

    @property
    def first_service_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP."""
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))

    @property
    def apiserver_url(self) -> str:
        """The API server as the host sees it."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def mlflow_url(self) -> str:
        """The MLflow tracking server, reachable from the host and from every pod (bridge address)."""
        return f"http://{self.bridge_ip}:{self.mlflow_port}"

    @property
    def prometheus_url(self) -> str:
        """The Prometheus server, reachable from the host and from every pod."""
        return f"http://{self.bridge_ip}:{self.prometheus_port}"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def data_dir(self) -> Path:
        """Files every pod may read at this same path (Dataset sources of tests and the demo)."""
        return self.state_dir / "data"

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig users point KUBECONFIG at."""
        return self.state_dir / "kubeconfig"

    @property
    def audited_kubeconfig(self) -> Path:
        """An admin kubeconfig whose every request the API server writes to `audit_log` (benches count them)."""
        return self.state_dir / "audited.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """One JSON line per request made with `audited_kubeconfig`'s identity (nothing else is audited)."""
        return self.logs_dir / "audit.log"

    def component_kubeconfig(self, component: str) -> Path:
        """A kubeconfig with the identity of one control-plane component."""
        return self.state_dir / f"{component}.kubeconfig"
