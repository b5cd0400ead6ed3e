"""The node agent: registers a Node, keeps its Lease, and runs the Pods bound to it as processes.

It plays the kubelet's part for the real scheduler, job, replicaset and endpointslice
controllers: they see Pods start, become Ready, finish and disappear as on any cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import ClusterConfig
from .containerspec import Mount
from .imagestore import ImageStore
from .kubeclient import ApiError, KubeClient
from .kubeconfig import read_credentials
from .network import AddressPool, delete_namespace, delete_pod_network, ensure_bridge, list_namespaces, netns_name
from .podrunner import PodRunner, default_path, utc_now

Obj = dict[str, Any]
log = logging.getLogger("mlops.node-agent")
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40

# Images whose entrypoint the local node knows, for containers that set no command.
IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "mlops-operator/trainer": ["mlops-worker"],
    "mlops-operator/operator": ["mlops-operator", "run"],
    "mlops-operator/server": ["mlops-server"],
}


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def node_object(config: ClusterConfig, kubelet_version: str, now: str) -> Obj:
    """The Node as the agent registers and refreshes it."""
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_memory_kib()}Ki",
        "pods": "110",
        "ephemeral-storage": "50Gi",
    }
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

    def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": {
                "kubernetes.io/hostname": config.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "node.kubernetes.io/instance-type": "mlops-local",
            },
        },
        "spec": {"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent has sufficient memory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "node agent has sufficient PID"),
                cond("Ready", "True", "KubeletReady", "mlops node agent is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": config.bridge_ip},
                {"type": "Hostname", "address": config.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "mlops-local",
                "systemUUID": "mlops-local",
                "bootID": "mlops-local",
                "kernelVersion": platform.release(),
                "osImage": "mlops-operator local node",
                "containerRuntimeVersion": "local-process://1",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    }


class NodeAgent:
    """Keeps the Node alive and one PodRunner per bound pod."""

    def __init__(self, config: ClusterConfig, client: KubeClient, kubelet_version: str) -> None:
        self.config = config
        self.client = client
        self.kubelet_version = kubelet_version
        self.addresses = AddressPool(config.pod_cidr, config.state_dir / "pod-addresses.json")
        self.image_entrypoints = IMAGE_ENTRYPOINTS
        self.images = ImageStore()
        # The node's data directory, read-only in every container run from an image at the same path: the
        # local stand-in for the shared volume (kind's extraMounts) a file:// Dataset source reads from.
        self.node_mounts = [Mount(source=str(config.data_dir), target=str(config.data_dir), readonly=True)]
        self.runners: dict[str, PodRunner] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # --- lookups used by pod runners ---------------------------------------------------------
    def _lookup(self, path: str) -> Obj | None:
        try:
            return self.client.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def lookup_config_map(self, namespace: str, name: str) -> Obj | None:
        """A ConfigMap or None."""
        return self._lookup(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    def lookup_secret(self, namespace: str, name: str) -> Obj | None:
        """A Secret or None."""
        return self._lookup(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def request_token(self, namespace: str, account: str, audiences: list[str], seconds: int, pod: Obj) -> str:
        """A service account token bound to the pod (TokenRequest; the Node authorizer allows it for pods
        bound here). Written once per container start: the local node does not rotate it."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        answer = self.client.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body)
        return str(answer["status"]["token"])

    def base_env(self, pod_ip: str) -> dict[str, str]:
        """What every container gets before its own env: PATH and the API server's address."""
        port = str(self.config.apiserver_port)
        host = self.config.bridge_ip
        return {
            "PATH": default_path(),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
        }

    def forget(self, uid: str) -> None:
        """A runner finished; drop it."""
        with self.lock:
            self.runners.pop(uid, None)

    # --- node registration ---------------------------------------------------------------------
    def register(self) -> None:
        """Create the Node, or refresh its status if it exists."""
        node = node_object(self.config, self.kubelet_version, utc_now())
        try:
            self.client.create("/api/v1/nodes", node)
            log.info("registered node %s", self.config.node_name)
        except ApiError as error:
            if error.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        """Post node status and renew the Lease, as the kubelet does every 10 s."""
        now = utc_now()
        node = node_object(self.config, self.kubelet_version, now)
        self.client.merge_patch(f"/api/v1/nodes/{self.config.node_name}/status", {"status": node["status"]})
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.config.node_name}"
        try:
            self.client.merge_patch(
                lease_path,
                {
                    "spec": {
                        "renewTime": renew,
                        "holderIdentity": self.config.node_name,
                        "leaseDurationSeconds": LEASE_SECONDS,
                    }
                },
            )
        except ApiError as error:
            if error.status != 404:
                raise
            self.client.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.node_name, "namespace": "kube-node-lease"},
                    "spec": {
                        "holderIdentity": self.config.node_name,
                        "leaseDurationSeconds": LEASE_SECONDS,
                        "renewTime": renew,
                    },
                },
            )

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as error:  # keep beating through API hiccups
                log.warning("heartbeat failed: %s", error)

    # --- pods ------------------------------------------------------------------------------------
    def _handle(self, event_type: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            if event_type == "DELETED":
                if runner:
                    runner.remove()
                else:
                    delete_pod_network(uid)
                    self.addresses.release(uid)
                return
            if runner:
                runner.update(pod)
            else:
                runner = PodRunner(self, pod)
                self.runners[uid] = runner
                runner.start()

    def _sync(self) -> str:
        listing = self.client.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.config.node_name}")
        live = {p["metadata"]["uid"] for p in listing["items"]}
        for pod in listing["items"]:
            self._handle("MODIFIED", pod)
        with self.lock:
            stale = [r for uid, r in self.runners.items() if uid not in live]
        for runner in stale:
            runner.remove()
        known = live | set(self.runners)
        for netns in list_namespaces():
            if netns not in {netns_name(uid) for uid in known}:
                delete_namespace(netns)  # leftovers of a previous agent
        for uid in set(self.addresses.assigned()) - known:
            self.addresses.release(uid)
        for container in self.images.working_containers():
            if not any(uid in container for uid in known):
                self.images.remove(container)  # a rootfs of a pod gone while no agent ran
        return listing["metadata"]["resourceVersion"]

    def run(self) -> None:
        """Register, then list and watch pods bound to this node until stopped."""
        ensure_bridge(self.config.bridge, self.config.bridge_ip, self.config.bridge_prefix)
        self.register()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        resource_version = ""
        while not self.stopping.is_set():
            try:
                if not resource_version:
                    resource_version = self._sync()
                for event in self.client.watch(
                    "/api/v1/pods",
                    resource_version,
                    timeout_seconds=60,
                    fieldSelector=f"spec.nodeName={self.config.node_name}",
                ):
                    if self.stopping.is_set():
                        break
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        resource_version = ""
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._handle(event["type"], obj)
            except Exception as error:
                log.warning("pod watch interrupted: %s", error)
                resource_version = ""
                time.sleep(1)

    def shutdown(self) -> None:
        """Stop watching and kill every pod process (cluster down)."""
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.remove()
        for runner in runners:
            runner.join(timeout=15)


def main() -> None:
    """Entry point: `python -m mlops_operator.localcluster.nodeagent --state-dir DIR`."""
    parser = argparse.ArgumentParser(description="mlops-operator local node agent")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--kubelet-version", default="v0.0.0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    config = ClusterConfig.from_env(args.state_dir)
    client = KubeClient(read_credentials(config.component_kubeconfig("node-agent")))
    agent = NodeAgent(config, client, args.kubelet_version)

    def stop(signum: int, frame: object) -> None:
        log.info("signal %s: stopping pods", signum)
        agent.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()


if __name__ == "__main__":
    main()
