"""Pod networking like a CNI bridge plugin: a bridge, and per pod a network namespace and veth pair.

The API server refuses loopback addresses in EndpointSlices, so each pod gets a real address
from the pod CIDR in its own namespace; the host reaches pods through the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

NETNS_PREFIX = "mlops-"
# `ip netns exec` bind-mounts /etc/netns/<name>/<file> over /etc/<file> for the commands it runs.
NETNS_ETC = Path("/etc/netns")


class NetworkError(RuntimeError):
    """An `ip` command failed."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def ensure_bridge(bridge: str, address: str, prefix: int) -> None:
    """Create the bridge with the host address if it is missing, and bring it up."""
    if _ip("link", "show", bridge, check=False).returncode != 0:
        _ip("link", "add", bridge, "type", "bridge")
    if address not in _ip("-o", "addr", "show", "dev", bridge).stdout:
        _ip("addr", "add", f"{address}/{prefix}", "dev", bridge)
    _ip("link", "set", bridge, "up")


def delete_bridge(bridge: str) -> None:
    """Remove the bridge (veths attached to it go with their namespaces)."""
    _ip("link", "del", bridge, check=False)


def list_namespaces() -> list[str]:
    """Names of the pod network namespaces we created."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]


def namespace_pids(netns: str) -> list[int]:
    """Processes still living in a namespace."""
    out = _ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split()]


def netns_name(pod_uid: str) -> str:
    """Deterministic namespace name for a pod."""
    return f"{NETNS_PREFIX}{pod_uid[:13]}"


def create_pod_network(pod_uid: str, ip: str, prefix: int, gateway: str, bridge: str) -> str:
    """Create the pod's namespace and veth pair with `ip`; return the namespace name. Idempotent."""
    netns = netns_name(pod_uid)
    short = pod_uid.replace("-", "")[:10]
    host_if, pod_if = f"mv{short}", f"mp{short}"
    delete_pod_network(pod_uid)
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        _ip("link", "set", pod_if, "netns", netns)
        _ip("link", "set", host_if, "master", bridge)
        _ip("link", "set", host_if, "up")
        _ip("-n", netns, "link", "set", pod_if, "name", "eth0")
        _ip("-n", netns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "route", "add", "default", "via", gateway)
    except NetworkError:
        delete_pod_network(pod_uid)
        raise
    return netns


def write_pod_resolv_conf(netns: str, content: str | None) -> None:
    """Give the namespace's processes their own /etc/resolv.conf (None: the host's, as before)."""
    path = NETNS_ETC / netns / "resolv.conf"
    if content is None:
        path.unlink(missing_ok=True)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(content)
        tmp.replace(path)
    except OSError as error:
        raise NetworkError(f"writing {path}: {error}") from error


def delete_pod_network(pod_uid: str) -> None:
    """Remove the pod's namespace; its veth pair disappears with it."""
    netns = netns_name(pod_uid)
    if netns in list_namespaces():
        # Processes orphaned by a killed agent would otherwise live on in a detached namespace.
        delete_namespace(netns)
    _ip("link", "del", f"mv{pod_uid.replace('-', '')[:10]}", check=False)


class AddressPool:
    """Hands out pod IPs from the pod CIDR; persisted so an agent restart keeps assignments."""

    def __init__(self, pod_cidr: str, state_file: Path) -> None:
        network = ipaddress.ip_network(pod_cidr)
        hosts = list(network.hosts())
        self._free_order = [str(h) for h in hosts[1:]]  # the first host address is the bridge
        self._state_file = state_file
        self._lock = threading.Lock()
        self._assigned: dict[str, str] = {}
        if state_file.exists():
            self._assigned = json.loads(state_file.read_text())

    def _save(self) -> None:
        self._state_file.write_text(json.dumps(self._assigned))

    def acquire(self, pod_uid: str) -> str:
        """The pod's address, allocating the lowest free one on first use."""
        with self._lock:
            if pod_uid in self._assigned:
                return self._assigned[pod_uid]
            used = set(self._assigned.values())
            for candidate in self._free_order:
                if candidate not in used:
                    self._assigned[pod_uid] = candidate
                    self._save()
                    return candidate
            raise NetworkError("pod CIDR exhausted")

    def release(self, pod_uid: str) -> None:
        """Return a pod's address to the pool."""
        with self._lock:
            if self._assigned.pop(pod_uid, None) is not None:
                self._save()

    def assigned(self) -> dict[str, str]:
        """Pod uid -> address, a copy."""
        with self._lock:
            return dict(self._assigned)


def delete_namespace(netns: str) -> None:
    """Kill what still lives in a namespace and remove it."""
    for pid in namespace_pids(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _ip("netns", "del", netns, check=False)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)
