"""Pod discovery for the local Prometheus, over its HTTP service-discovery protocol.

Debian's prometheus package is built without Kubernetes service discovery, so this process
plays its part: it lists Pods from the local API server and answers Prometheus' `http_sd_configs`
with one target per pod port, labelled with the same `__meta_kubernetes_pod_*` labels Prometheus'
own `role: pod` discovery sets. The scrape config (relabelling on prometheus.io annotations)
is therefore the standard one and works unchanged against a real cluster's Prometheus.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .config import ClusterConfig
from .kubeclient import KubeClient
from .kubeconfig import read_credentials

Obj = dict[str, Any]
log = logging.getLogger("mlops.pod-discovery")


def _label_name(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_meta_labels(pod: Obj) -> dict[str, str]:
    """The `__meta_kubernetes_*` labels Prometheus' pod role sets, for one pod."""
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_uid": meta.get("uid", ""),
        "__meta_kubernetes_pod_ip": status.get("podIP", ""),
        "__meta_kubernetes_pod_phase": status.get("phase", ""),
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        "__meta_kubernetes_pod_ready": str(
            any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        ).lower(),
    }
    for key, value in (meta.get("labels") or {}).items():
        labels[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
        labels[f"__meta_kubernetes_pod_labelpresent_{_label_name(key)}"] = "true"
    for key, value in (meta.get("annotations") or {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{_label_name(key)}"] = value
        labels[f"__meta_kubernetes_pod_annotationpresent_{_label_name(key)}"] = "true"
    return labels


def target_groups(pods: list[Obj]) -> list[Obj]:
    """One target group per pod with an IP: a target per declared container port, or the bare IP."""
    groups = []
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            continue
        base = pod_meta_labels(pod)
        ports = [
            (container["name"], port)
            for container in pod.get("spec", {}).get("containers", [])
            for port in container.get("ports") or []
        ]
        if not ports:
            groups.append({"targets": [ip], "labels": base})
            continue
        for container_name, port in ports:
            labels = {
                **base,
                "__meta_kubernetes_pod_container_name": container_name,
                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
            }
            groups.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": labels})
    return groups


def serve(cfg: ClusterConfig, port: int) -> None:
    """Answer `GET /targets` (Prometheus http_sd) and `GET /healthz` until killed."""
    client = KubeClient(read_credentials(cfg.kubeconfig), timeout=10)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b"ok", "text/plain")
                return
            if self.path != "/targets":
                self._send(404, b"not found", "text/plain")
                return
            try:
                pods = client.get("/api/v1/pods").get("items", [])
            except Exception as error:  # the API server may be restarting; Prometheus keeps its last targets
                self._send(503, str(error).encode(), "text/plain")
                return
            self._send(200, json.dumps(target_groups(pods)).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    """Entry point of the pod-discovery component."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(ClusterConfig.from_env(args.state_dir), args.port)


if __name__ == "__main__":
    main()
