"""httpGet, tcpSocket and exec probes, run from the host against a pod's address."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

Obj = dict[str, Any]


def _port(value: int | str, container: Obj) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"named port {value!r} not found")


def run_probe(probe: Obj, container: Obj, pod_ip: str, netns: str, enter: list[str] | None = None) -> bool:
    """Run one probe attempt; True on success. `enter` runs an exec probe inside a container started from its
    image (its mount namespace, root and user), not on the host."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"]
            scheme = spec.get("scheme", "HTTP").lower()
            host = spec.get("host") or pod_ip
            url = f"{scheme}://{host}:{_port(spec['port'], container)}{spec.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
            response = httpx.get(url, headers=headers, timeout=timeout, verify=False)
            return 200 <= response.status_code < 400
        if "tcpSocket" in probe:
            port = _port(probe["tcpSocket"]["port"], container)
            with socket.create_connection((probe["tcpSocket"].get("host") or pod_ip, port), timeout=timeout):
                return True
        if "exec" in probe:
            result = subprocess.run(
                ["ip", "netns", "exec", netns, *(enter or []), *probe["exec"]["command"]],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            return result.returncode == 0
    except (OSError, httpx.HTTPError, ValueError, subprocess.TimeoutExpired):
        return False
    return False


@dataclass
class ProbeTracker:
    """Counts consecutive results of one probe and decides when it has succeeded or failed."""

    probe: Obj
    started_at: float
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    passing: bool = False

    def due(self, now: float) -> bool:
        """True when the initial delay has passed and the period has come round."""
        if now < self.started_at + float(self.probe.get("initialDelaySeconds", 0)):
            return False
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> None:
        """Fold in one result, applying success and failure thresholds."""
        self.next_at = now + float(self.probe.get("periodSeconds", 10))
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.passing = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.passing = False

    @property
    def failed(self) -> bool:
        """The failure threshold is reached (for liveness: restart the container)."""
        return self.failures >= int(self.probe.get("failureThreshold", 3))
