"""Service networking for the local cluster: kube-proxy (nftables mode) and CoreDNS, both upstream builds.

Pods reach a Service by its name (`<svc>.<ns>.svc`) and its ClusterIP as on any cluster: CoreDNS's
`kubernetes` plugin answers names from the API server, kube-proxy turns ClusterIPs into nftables DNAT
rules to ready endpoints. CoreDNS listens on the bridge address (no kube-dns Service in front of it);
the node agent writes each pod's resolv.conf the way the kubelet does for dnsPolicy ClusterFirst.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from .config import ClusterConfig
from .kubeclient import ApiError, KubeClient
from .services import MissingDependencyError

CLUSTER_DOMAIN = "cluster.local"
KUBE_PROXY_TABLE = "kube-proxy"  # the table nftables mode programs, in the ip and ip6 families
COREDNS_USER = "system:coredns"
COREDNS_ROLE = "system:coredns"
# CoreDNS upstream's ClusterRole (the kubernetes plugin's list/watch needs); nothing else.
COREDNS_RULES = [
    {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
]
# Forwarding between pods and the routed ClusterIP path; bridged replies must pass conntrack to be un-DNATed.
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}


def kube_proxy_argv(cfg: ClusterConfig, bin_dir: Path) -> list[str]:
    """kube-proxy in nftables mode for the one node; health and metrics on loopback only."""
    if shutil.which("nft") is None:
        raise MissingDependencyError("kube-proxy needs `nft`: apt-get install nftables (make system-deps does)")
    return [
        str(bin_dir / "kube-proxy"),
        f"--kubeconfig={cfg.component_kubeconfig('kube-proxy')}",
        f"--hostname-override={cfg.node_name}",
        "--proxy-mode=nftables",
        f"--cluster-cidr={cfg.pod_cidr}",
        f"--healthz-bind-address=127.0.0.1:{cfg.kube_proxy_health_port}",
        f"--metrics-bind-address=127.0.0.1:{cfg.kube_proxy_metrics_port}",
        # The conntrack table size is the host's business; kube-proxy would otherwise try to raise it.
        "--conntrack-max-per-core=0",
        "--v=1",
    ]


def corefile(cfg: ClusterConfig) -> str:
    """The Corefile: cluster names from the API server, everything else forwarded to the host's resolver."""
    return f"""\
.:53 {{
    bind {cfg.bridge_ip}
    errors
    health 127.0.0.1:{cfg.coredns_health_port}
    ready 127.0.0.1:{cfg.coredns_ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {cfg.component_kubeconfig("coredns")}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"""


def coredns_argv(cfg: ClusterConfig, bin_dir: Path) -> list[str]:
    """CoreDNS reading the Corefile it is given (written under the state dir)."""
    path = cfg.state_dir / "coredns" / "Corefile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(corefile(cfg))
    return [str(bin_dir / "coredns"), "-conf", str(path)]


def ensure_coredns_access(client: KubeClient) -> None:
    """The ClusterRole and binding CoreDNS's identity reads Services and EndpointSlices with; idempotent."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": COREDNS_ROLE},
        "rules": COREDNS_RULES,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": COREDNS_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": COREDNS_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}],
    }
    for collection, body in (
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding),
    ):
        try:
            client.create(collection, body)
        except ApiError as error:
            if error.status != 409:
                raise


def kube_proxy_healthy(cfg: ClusterConfig) -> bool:
    """kube-proxy answers /healthz 200 once it has programmed the rules."""
    return httpx.get(f"http://127.0.0.1:{cfg.kube_proxy_health_port}/healthz", timeout=2).status_code == 200


def coredns_healthy(cfg: ClusterConfig) -> bool:
    """CoreDNS's ready plugin answers 200 once the kubernetes plugin has synced with the API server."""
    return httpx.get(f"http://127.0.0.1:{cfg.coredns_ready_port}/ready", timeout=2).status_code == 200


def apply_sysctls(proc_sys: Path = Path("/proc/sys")) -> None:
    """Turn on forwarding and bridge netfilter (a kernel without br_netfilter lacks the second file)."""
    for key, value in SYSCTLS.items():
        path = proc_sys / key
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value)


def remove_proxy_rules() -> None:
    """Delete the nftables tables kube-proxy programmed (what `kube-proxy --cleanup` would do)."""
    if shutil.which("nft") is None:
        return
    for family in ("ip", "ip6"):
        subprocess.run(["nft", "delete", "table", family, KUBE_PROXY_TABLE], capture_output=True, check=False)


def proxy_rules_present() -> bool:
    """True while a kube-proxy table is in the host's ruleset."""
    if shutil.which("nft") is None:
        return False
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    return any(line.split()[-1:] == [KUBE_PROXY_TABLE] for line in out.splitlines())


def resolv_conf(pod: dict[str, Any], nameserver: str) -> str | None:
    """The pod's /etc/resolv.conf as the kubelet writes it, or None to keep the host's (dnsPolicy Default)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "Default":
        return None
    extra = spec.get("dnsConfig") or {}
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy != "None":
        namespace = pod.get("metadata", {}).get("namespace") or "default"
        nameservers = [nameserver]
        searches = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = ["ndots:5"]
    nameservers += [str(n) for n in extra.get("nameservers") or []]
    searches += [str(s) for s in extra.get("searches") or []]
    for option in extra.get("options") or []:
        name = str(option.get("name") or "")
        if name:  # a pod's option replaces the default of the same name (ndots), as the kubelet merges them
            options = [o for o in options if o.split(":")[0] != name]
            options.append(f"{name}:{option['value']}" if option.get("value") is not None else name)
    lines = [f"nameserver {n}" for n in nameservers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
