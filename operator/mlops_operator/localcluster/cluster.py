"""`mlops-operator cluster up|down|status`: a real control plane run as local processes."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import network, pki, servicenet, services
from .binaries import ensure_binaries
from .config import ClusterConfig
from .kubeclient import ApiError, Credentials, KubeClient
from .kubeconfig import write_kubeconfig
from .processes import ManagedProcess

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "node-agent",
    "kube-proxy",
    "coredns",
    "mlflow",
    "pod-discovery",
    "prometheus",
)


# The bridge, pod network namespaces and proxy rules are one per machine; `up` records whose they are.
NETWORK_OWNER = Path("/run/mlops-operator-localcluster.owner")
AUDITED, AUDITED_USER = "audited", "mlops-audited"
# Only the audited identity's requests are logged (one line each, at the end), so the log is a bench's exact
# count of what one client asked of the API server, and costs everything else nothing.
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  users: [{AUDITED_USER}]
- level: None
"""


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message says which part and where its log is."""


@dataclass(frozen=True)
class Identities:
    """Certificates of the cluster and of each component identity."""

    ca: pki.KeyPair
    apiserver: pki.KeyPair
    service_accounts: pki.KeyPair
    clients: dict[str, pki.KeyPair]


def _identities(cfg: ClusterConfig) -> Identities:
    cfg.pki_dir.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca(cfg.pki_dir)
    serving_hosts = [
        "127.0.0.1",
        "localhost",
        cfg.bridge_ip,
        cfg.first_service_ip,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    clients = {
        "admin": pki.issue(ca, cfg.pki_dir, "admin", common_name="mlops-admin", organization="system:masters"),
        AUDITED: pki.issue(ca, cfg.pki_dir, AUDITED, common_name=AUDITED_USER, organization="system:masters"),
        "kube-controller-manager": pki.issue(
            ca, cfg.pki_dir, "kube-controller-manager", common_name="system:kube-controller-manager"
        ),
        "kube-scheduler": pki.issue(ca, cfg.pki_dir, "kube-scheduler", common_name="system:kube-scheduler"),
        "kube-proxy": pki.issue(ca, cfg.pki_dir, "kube-proxy", common_name="system:kube-proxy"),
        "coredns": pki.issue(ca, cfg.pki_dir, "coredns", common_name=servicenet.COREDNS_USER),
        "node-agent": pki.issue(
            ca, cfg.pki_dir, "node-agent", common_name=f"system:node:{cfg.node_name}", organization="system:nodes"
        ),
    }
    return Identities(
        ca=ca,
        apiserver=pki.issue(ca, cfg.pki_dir, "apiserver", common_name="kube-apiserver", server_hosts=serving_hosts),
        service_accounts=pki.create_service_account_keys(cfg.pki_dir),
        clients=clients,
    )


def _credentials(cfg: ClusterConfig, ids: Identities, who: str) -> Credentials:
    pair = ids.clients[who]
    return Credentials(cfg.apiserver_url, ids.ca.cert, pair.cert, pair.key)


def _argv(component: str, cfg: ClusterConfig, ids: Identities, bin_dir: Path) -> list[str]:
    etcd_url = f"http://127.0.0.1:{cfg.etcd_client_port}"
    peer_url = f"http://127.0.0.1:{cfg.etcd_peer_port}"
    if component == "etcd":
        return [
            str(bin_dir / "etcd"),
            "--name=mlops",
            f"--data-dir={cfg.state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=mlops={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]
    if component == "kube-apiserver":
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--secure-port={cfg.apiserver_port}",
            "--bind-address=0.0.0.0",
            f"--advertise-address={cfg.bridge_ip}",
            f"--tls-cert-file={ids.apiserver.cert}",
            f"--tls-private-key-file={ids.apiserver.key}",
            f"--client-ca-file={ids.ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={ids.service_accounts.cert}",
            f"--service-account-signing-key-file={ids.service_accounts.key}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--endpoint-reconciler-type=none",
            "--enable-aggregator-routing=true",
            "--allow-privileged=true",
            "--profiling=false",
            "--enable-admission-plugins=NodeRestriction",
            "--event-ttl=2h",
            f"--audit-policy-file={cfg.state_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={cfg.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=1000",  # MB: a 10,000-object bench writes ~250 MB
            "--audit-log-maxbackup=1",
            "--v=1",
        ]
    kubeconfig = cfg.component_kubeconfig(component)
    controller_flags = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--profiling=false",
        "--v=1",
    ]
    if component == "kube-controller-manager":
        return [
            str(bin_dir / "kube-controller-manager"),
            *controller_flags,
            "--controllers=*",
            f"--service-account-private-key-file={ids.service_accounts.key}",
            f"--root-ca-file={ids.ca.cert}",
            "--use-service-account-credentials=true",
            "--node-monitor-period=5s",
            f"--secure-port={cfg.controller_manager_port}",
        ]
    if component == "kube-scheduler":
        return [str(bin_dir / "kube-scheduler"), *controller_flags, f"--secure-port={cfg.scheduler_port}"]
    if component == "kube-proxy":
        return servicenet.kube_proxy_argv(cfg, bin_dir)
    if component == "coredns":
        return servicenet.coredns_argv(cfg, bin_dir)
    if component == "mlflow":
        return services.mlflow_argv(cfg)
    if component == "prometheus":
        return services.prometheus_argv(cfg)
    if component == "pod-discovery":
        return services.pod_discovery_argv(cfg)
    if component == "node-agent":
        version = _k8s_version()
        return [
            sys.executable,
            "-m",
            "mlops_operator.localcluster.nodeagent",
            f"--state-dir={cfg.state_dir}",
            f"--kubelet-version={version}",
        ]
    raise ValueError(component)


def _prepare(component: str, cfg: ClusterConfig, ids: Identities) -> None:
    """What a component needs in the API server before it starts: CoreDNS its read access."""
    if component != "coredns":
        return
    client = KubeClient(_credentials(cfg, ids, "admin"), timeout=10)
    try:
        servicenet.ensure_coredns_access(client)
    finally:
        client.close()


def _k8s_version() -> str:
    versions = Path(__file__).resolve().parents[3] / "hack" / "versions.env"
    for line in versions.read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip()
    return "v0.0.0"


def _process(cfg: ClusterConfig, component: str) -> ManagedProcess:
    return ManagedProcess(component, cfg.pids_dir / f"{component}.pid")


def _probe_healthy(component: str, cfg: ClusterConfig, ids: Identities) -> bool:
    try:
        if component == "etcd":
            r = httpx.get(f"http://127.0.0.1:{cfg.etcd_client_port}/health", timeout=2)
            return r.status_code == 200 and '"health":"true"' in r.text
        if component == "kube-apiserver":
            ctx = ssl.create_default_context(cafile=str(ids.ca.cert))
            ctx.load_cert_chain(str(ids.clients["admin"].cert), str(ids.clients["admin"].key))
            return httpx.get(f"{cfg.apiserver_url}/readyz", verify=ctx, timeout=2).status_code == 200
        if component in ("kube-controller-manager", "kube-scheduler"):
            port = cfg.controller_manager_port if component == "kube-controller-manager" else cfg.scheduler_port
            return httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2).status_code == 200
        if component == "node-agent":
            return _node_ready(cfg, ids)
        if component == "kube-proxy":
            return servicenet.kube_proxy_healthy(cfg)
        if component == "coredns":
            return servicenet.coredns_healthy(cfg)
        if component == "mlflow":
            return services.mlflow_healthy(cfg)
        if component == "prometheus":
            return services.prometheus_healthy(cfg)
        if component == "pod-discovery":
            return services.pod_discovery_healthy(cfg)
    except (httpx.HTTPError, OSError, ApiError):
        return False
    return False


def _node_ready(cfg: ClusterConfig, ids: Identities) -> bool:
    client = KubeClient(_credentials(cfg, ids, "admin"), timeout=5)
    try:
        node = client.get(f"/api/v1/nodes/{cfg.node_name}")
    finally:
        client.close()
    ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
    return bool(ready) and ready[0]["status"] == "True"


def _wait(what: str, check: Callable[[], bool], timeout: float, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    where = f"; see {log_file}" if log_file else ""
    raise ClusterError(f"{what} did not become healthy within {timeout:.0f}s{where}")


def _default_service_account_exists(cfg: ClusterConfig, ids: Identities) -> bool:
    client = KubeClient(_credentials(cfg, ids, "admin"), timeout=5)
    try:
        client.get("/api/v1/namespaces/default/serviceaccounts/default")
        return True
    except (ApiError, httpx.HTTPError):
        return False
    finally:
        client.close()


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError(
            "the local cluster needs root: pods get their own network namespaces "
            "(ip netns, veth, bridge); run as root or use kind-config.yaml with Docker"
        )


@contextlib.contextmanager
def _exclusive(cfg: ClusterConfig) -> Iterator[None]:
    # Parallel test workers (and a `make demo` beside a test run) call `up` at once: one starts what is
    # missing, the others then find it healthy and reuse it, instead of all starting a second apiserver.
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.state_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(cfg: ClusterConfig, out: Callable[[str], None] = print) -> float:
    """Start (or reuse) every component and wait until all are healthy; return seconds taken."""
    _require_root()
    started = time.monotonic()
    with _exclusive(cfg):
        _up(cfg, out)
    return time.monotonic() - started


def _up(cfg: ClusterConfig, out: Callable[[str], None]) -> None:
    bin_dir = ensure_binaries()
    (cfg.state_dir / ".gitignore").write_text("*\n")
    # Pods run from images read Dataset files here as uid 10001 (the node mounts it read-only in each).
    cfg.data_dir.mkdir(exist_ok=True)
    for path in (cfg.state_dir, cfg.data_dir):
        path.chmod(path.stat().st_mode | 0o755)
    ids = _identities(cfg)
    for who, path in (
        ("admin", cfg.kubeconfig),
        ("kube-controller-manager", cfg.component_kubeconfig("kube-controller-manager")),
        ("kube-scheduler", cfg.component_kubeconfig("kube-scheduler")),
        ("node-agent", cfg.component_kubeconfig("node-agent")),
        ("kube-proxy", cfg.component_kubeconfig("kube-proxy")),
        ("coredns", cfg.component_kubeconfig("coredns")),
        (AUDITED, cfg.audited_kubeconfig),
    ):
        write_kubeconfig(path, _credentials(cfg, ids, who), who)
    (cfg.state_dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
    network.ensure_bridge(cfg.bridge, cfg.bridge_ip, cfg.bridge_prefix)
    NETWORK_OWNER.write_text(str(cfg.state_dir.resolve()))
    servicenet.apply_sysctls()
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    for component in COMPONENTS:
        proc = _process(cfg, component)
        log_file = cfg.logs_dir / f"{component}.log"
        if proc.pid() is not None and _probe_healthy(component, cfg, ids):
            out(f"  {component:<24} reused (pid {proc.pid()})")
            if component == "prometheus" and services.write_prometheus_config(cfg)[1]:
                # A warm cluster gets a changed config (new rules, scrape jobs) without losing its data.
                services.reload_prometheus(cfg)
                out(f"  {component:<24} config changed: reloaded")
            continue
        proc.stop(grace_seconds=5)
        try:
            argv = _argv(component, cfg, ids, bin_dir)
        except services.MissingDependencyError as missing:
            raise ClusterError(str(missing)) from missing
        _prepare(component, cfg, ids)
        extra = services.mlflow_env(cfg) if component == "mlflow" else {}
        pid = proc.start(argv, log_file, env={**env, **extra})
        _wait(component, functools.partial(_probe_healthy, component, cfg, ids), 90, log_file)
        out(f"  {component:<24} started (pid {pid})")
    out(f"  kubectl, helm             {bin_dir}")
    out(f"  MLflow                    {cfg.mlflow_url}")
    if cfg.mlflow_auth:
        password_file = cfg.state_dir / "mlflow" / "auth" / "admin-password"
        out(f"  MLflow basic auth         user admin, password in {password_file.resolve()}")
    out(f"  Prometheus                {cfg.prometheus_url}")
    _wait(
        "the default service account",
        lambda: _default_service_account_exists(cfg, ids),
        60,
        cfg.logs_dir / "kube-controller-manager.log",
    )


def down(cfg: ClusterConfig, out: Callable[[str], None] = print, *, purge: bool = False) -> None:
    """Stop exactly the processes `up` started, then remove pod namespaces and the bridge."""
    if cfg.state_dir.exists():
        with _exclusive(cfg):
            _down(cfg, out)
    else:
        _down(cfg, out)
    if purge and cfg.state_dir.exists():
        shutil.rmtree(cfg.state_dir)
        out(f"  removed {cfg.state_dir}")


def _down(cfg: ClusterConfig, out: Callable[[str], None]) -> None:
    for component in reversed(COMPONENTS):
        if _process(cfg, component).stop(grace_seconds=20 if component == "node-agent" else 10):
            out(f"  {component:<24} stopped")
    (cfg.state_dir / "pod-addresses.json").unlink(missing_ok=True)
    owner = network_owner(cfg)
    if owner is not None:
        out(f"  network                  left in place: the cluster of {owner} runs on it")
        return
    for netns in network.list_namespaces():
        network.delete_namespace(netns)
    network.delete_bridge(cfg.bridge)
    servicenet.remove_proxy_rules()
    NETWORK_OWNER.unlink(missing_ok=True)


def network_owner(cfg: ClusterConfig) -> Path | None:
    """Another state directory whose cluster still runs on the machine's one bridge (pod netns, proxy rules):
    `down` of a second state directory must not cut the running cluster off."""
    try:
        recorded = Path(NETWORK_OWNER.read_text().strip())
    except OSError:
        return None
    if recorded == cfg.state_dir.resolve() or not recorded.is_dir():
        return None
    other = ClusterConfig.from_env(recorded)
    return recorded if _process(other, "kube-apiserver").pid() is not None else None


def status(cfg: ClusterConfig) -> dict[str, str]:
    """Component -> 'running (pid N, healthy)' / 'running (pid N, unhealthy)' / 'stopped'."""
    ids = _identities(cfg) if cfg.pki_dir.exists() else None
    result = {}
    for component in COMPONENTS:
        pid = _process(cfg, component).pid()
        if pid is None:
            result[component] = "stopped"
            continue
        healthy = ids is not None and _probe_healthy(component, cfg, ids)
        result[component] = f"running (pid {pid}, {'healthy' if healthy else 'unhealthy'})"
    return result


# The components whose programs hack/build-binaries.sh builds.
_BUILT = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns")


def _component(component: str) -> str:
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}: one of {', '.join(COMPONENTS)}")
    return component


def component_healthy(cfg: ClusterConfig, component: str) -> bool:
    """True when the component `up` started runs and passes the health check `up` waits for."""
    return _process(cfg, _component(component)).pid() is not None and _probe_healthy(component, cfg, _identities(cfg))


def stop_component(cfg: ClusterConfig, component: str) -> bool:
    """Stop one component `up` started (by its pid file: SIGTERM, then SIGKILL); True if it was running."""
    return _process(cfg, _component(component)).stop(grace_seconds=20 if component == "node-agent" else 10)


def start_component(cfg: ClusterConfig, component: str, timeout: float = 90) -> float:
    """Start one component as `up` does and wait for its health check; seconds taken (0 if it was healthy)."""
    started = time.monotonic()
    ids = _identities(cfg)
    proc = _process(cfg, _component(component))
    if proc.pid() is not None and _probe_healthy(component, cfg, ids):
        return 0.0
    proc.stop(grace_seconds=5)
    # Only the control-plane programs live in the binaries' directory; the rest need no build check.
    bin_dir = ensure_binaries() if component in _BUILT else Path()
    try:
        argv = _argv(component, cfg, ids, bin_dir)
    except services.MissingDependencyError as missing:
        raise ClusterError(str(missing)) from missing
    _prepare(component, cfg, ids)
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    log_file = cfg.logs_dir / f"{component}.log"
    proc.start(argv, log_file, env={**env, **(services.mlflow_env(cfg) if component == "mlflow" else {})})
    _wait(component, functools.partial(_probe_healthy, component, cfg, ids), timeout, log_file)
    return time.monotonic() - started
