"""Pure functions from a Pod object to what the node agent runs and reports.

No I/O here: config maps and secrets come in through lookup callbacks, so the env
rules (fieldRef, configMapKeyRef, secretKeyRef, envFrom, $(VAR) expansion) are unit-tested.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (namespace, name) -> ConfigMap/Secret or None


class ContainerConfigError(Exception):
    """The container cannot start because its configuration cannot be resolved (kubelet's reason)."""

    reason = "CreateContainerConfigError"


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, unknown refs stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(replace, text)


def field_ref_value(pod: Obj, field_path: str) -> str:
    """Value of a downward-API fieldRef."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs", [])),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs", [])),
    }
    if field_path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef {field_path!r}")
    return str(simple[field_path] or "")


def _data_of(obj: Obj, *, secret: bool) -> dict[str, str]:
    if secret:
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()} | dict(
            obj.get("stringData") or {}
        )
    return dict(obj.get("data") or {})


def _key_ref(namespace: str, ref: Obj, lookup: Lookup, kind: str, *, secret: bool) -> str | None:
    obj = lookup(namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind} "{ref["name"]}" not found')
    data = _data_of(obj, secret=secret)
    if ref["key"] not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]]


def resolve_env(
    pod: Obj,
    container: Obj,
    *,
    config_maps: Lookup,
    secrets: Lookup,
    base_env: dict[str, str],
) -> dict[str, str]:
    """The container's environment in kubelet order: base (service) env, then envFrom, then env."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        ref, is_secret, kind = (
            (source["secretRef"], True, "secret")
            if "secretRef" in source
            else (source["configMapRef"], False, "configmap")
        )
        obj = (secrets if is_secret else config_maps)(namespace, ref["name"])
        if obj is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind} "{ref["name"]}" not found')
        for key, data_value in _data_of(obj, secret=is_secret).items():
            env[prefix + key] = data_value
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_ref_value(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            value = _key_ref(namespace, source["configMapKeyRef"], config_maps, "configmap", secret=False)
        elif "secretKeyRef" in source:
            value = _key_ref(namespace, source["secretKeyRef"], secrets, "secret", secret=True)
        elif "resourceFieldRef" in source:
            resource = source["resourceFieldRef"]["resource"]
            group, _, key = resource.partition(".")
            value = str((container.get("resources", {}).get(group) or {}).get(key, "0"))
        else:
            raise ContainerConfigError(f"unsupported valueFrom for env {name}")
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Obj, env: dict[str, str], image_entrypoints: dict[str, list[str]]) -> list[str]:
    """command + args with $(VAR) expanded; an image without command uses its known entrypoint."""
    command = list(container.get("command") or [])
    if not command:
        image = container.get("image", "")
        base = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image.split("@")[0]
        if base not in image_entrypoints:
            raise ContainerConfigError(
                f"container {container['name']!r} has no command and image {image!r} has no known entrypoint "
                "on the local node; set command"
            )
        command = list(image_entrypoints[base])
    return [expand(part, env) for part in command + list(container.get("args") or [])]


@dataclass
class ContainerState:
    """What the agent knows about one container; turned into a containerStatus."""

    name: str
    image: str
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    ready: bool = False
    last_terminated: Obj | None = field(default=None)

    def to_status(self) -> Obj:
        """The core/v1 ContainerStatus."""
        if self.state == "running":
            state: Obj = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            terminated = {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
            }
            if self.message:
                terminated["message"] = self.message
            state = {"terminated": terminated}
        else:
            waiting = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "containerID": f"local://{self.name}",
            "ready": self.ready,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
        }
        status["lastState"] = {"terminated": self.last_terminated} if self.last_terminated else {}
        return status


def pod_phase(states: list[ContainerState], restart_policy: str) -> str:
    """Pod phase from container states, following the kubelet's rules."""
    if any(s.state == "running" for s in states):
        return "Running"
    if states and all(s.state == "terminated" for s in states) and restart_policy != "Always":
        if all(s.exit_code == 0 for s in states):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    if any(s.state == "terminated" for s in states):
        return "Running"
    if any(s.restart_count > 0 for s in states):
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, previous: dict[str, Obj], now: str, reason: str | None = None) -> Obj:
    status = "True" if ok else "False"
    old = previous.get(ctype)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def pod_status(
    pod: Obj, states: list[ContainerState], *, pod_ip: str | None, host_ip: str, started: str, now: str
) -> Obj:
    """The full pod status the agent writes through pods/status."""
    restart_policy = pod["spec"].get("restartPolicy", "Always")
    phase = pod_phase(states, restart_policy)
    terminal = phase in ("Succeeded", "Failed")
    all_ready = bool(states) and all(s.ready for s in states) and not terminal
    previous = {c["type"]: c for c in pod.get("status", {}).get("conditions", [])}
    ours = [
        _condition("PodReadyToStartContainers", pod_ip is not None and not terminal, previous, now),
        _condition("Initialized", True, previous, now),
        _condition("Ready", all_ready, previous, now, "PodCompleted" if terminal else "ContainersNotReady"),
        _condition("ContainersReady", all_ready, previous, now, "PodCompleted" if terminal else "ContainersNotReady"),
        _condition("PodScheduled", True, previous, now),
    ]
    ours_types = {c["type"] for c in ours}
    # Keep conditions other writers own (DisruptionTarget from the job and GC controllers).
    conditions = ours + [c for t, c in previous.items() if t not in ours_types]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started,
        "containerStatuses": [s.to_status() for s in states],
        "qosClass": pod.get("status", {}).get("qosClass", "BestEffort"),
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


# The kubelet's limits for a termination message taken from the log (FallbackToLogsOnError).
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048


def termination_message_from_log(data: bytes) -> str:
    """The last 80 lines, at most 2 KiB, of a failed container's log."""
    lines = data.decode(errors="replace").rstrip("\n").split("\n")[-TERMINATION_LOG_LINES:]
    text = "\n".join(lines)
    return text.encode()[-TERMINATION_LOG_BYTES:].decode(errors="ignore")


def restored_state(spec: Obj, statuses: list[Obj] | None) -> ContainerState:
    """A container's state from the pod's last reported status, when a (restarted) agent takes the pod on."""
    previous = {s["name"]: s for s in statuses or []}
    state = ContainerState(name=spec["name"], image=spec.get("image", ""))
    old = previous.get(spec["name"])
    if old:
        state.restart_count = int(old.get("restartCount", 0))
        if "terminated" in old.get("state", {}):
            term = old["state"]["terminated"]
            state.state, state.exit_code, state.reason = "terminated", term.get("exitCode"), term.get("reason", "")
            state.started_at, state.finished_at = term.get("startedAt"), term.get("finishedAt")
        elif "running" in old.get("state", {}):
            # The process died with the previous agent; report it like a node restart does.
            state.state, state.exit_code, state.reason = "terminated", 137, "Error"
            state.message = "the node agent restarted while the container ran"
            state.started_at = old["state"]["running"].get("startedAt")
            state.finished_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return state
