"""The I/O around starting a container from its image: the pod's volumes and /etc files on disk, a fresh
rootfs from the store, and the launcher's input. The rules are in containerspec.py, the launcher is
containerinit.py."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .containerspec import Launch, Mount, launch, volume_sources
from .imagestore import ImageConfig, ImageStore, container_name
from .podspec import ContainerConfigError, Lookup, field_ref_value

Obj = dict[str, Any]
LAUNCHER = "mlops_operator.localcluster.containerinit"
# (namespace, service account, audiences, expirationSeconds, pod) -> a bound token (TokenRequest API)
TokenRequest = Callable[[str, str, list[str], int, Obj], str]


def _directory(path: Path) -> None:
    """A volume directory the container's user can enter (the agent's own umask may be stricter)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)


def _write(path: Path, data: bytes, mode: int) -> None:
    _directory(path.parent)
    path.write_bytes(data)
    os.chmod(path, mode)


def _projected(volume: Obj, target: Path, pod: Obj, config_maps: Lookup, secrets: Lookup, token: TokenRequest) -> None:
    """A projected volume: serviceAccountToken (bound to the pod), configMap, secret and downwardAPI
    sources, as the kubelet writes the API-access volume the ServiceAccount admission adds."""
    projected = volume["projected"]
    mode = int(projected.get("defaultMode", 0o644))
    _directory(target)
    namespace = pod["metadata"]["namespace"]
    for source in projected.get("sources") or []:
        if "serviceAccountToken" in source:
            spec = source["serviceAccountToken"]
            audiences = [spec["audience"]] if spec.get("audience") else []
            account = pod["spec"].get("serviceAccountName") or "default"
            value = token(namespace, account, audiences, int(spec.get("expirationSeconds", 3607)), pod)
            path = target / spec["path"]
            _write(path, value.encode(), mode)
            # As the kubelet: with the pod's runAsUser known, the token is that user's alone (0600).
            security = pod["spec"].get("securityContext") or {}
            if security.get("runAsUser") is not None:
                os.chown(path, int(security["runAsUser"]), int(security.get("runAsGroup", 0)))
                os.chmod(path, 0o600)
        elif "configMap" in source or "secret" in source:
            _materialise(
                {"name": volume["name"], **source},
                target,
                namespace,
                secrets if "secret" in source else config_maps,
                secret="secret" in source,
            )
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" not in item:
                    raise ContainerConfigError(
                        f"volume {volume['name']!r}: only fieldRef downwardAPI items are supported"
                    )
                _write(target / item["path"], field_ref_value(pod, item["fieldRef"]["fieldPath"]).encode(), mode)
        else:
            raise ContainerConfigError(f"volume {volume['name']!r}: projected source {sorted(source)} is not supported")


def _materialise(volume: Obj, target: Path, namespace: str, lookup: Lookup, *, secret: bool) -> None:
    """Write a configMap or secret volume's keys (or its `items`) as files, as the kubelet projects them."""
    source = volume["secret" if secret else "configMap"]
    name = source.get("secretName" if secret else "name", "")
    obj = lookup(namespace, name)
    if obj is None:
        if source.get("optional"):
            target.mkdir(parents=True, exist_ok=True)
            return
        raise ContainerConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
    data = (
        {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        if secret
        else {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    )
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    target.mkdir(parents=True, exist_ok=True)
    for item in items:
        if item["key"] not in data:
            raise ContainerConfigError(f"volume {volume['name']!r}: key {item['key']!r} not found in {name}")
        path = target / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[item["key"]])
        os.chmod(path, int(item.get("mode", source.get("defaultMode", 0o644))))


def prepare_volumes(
    pod: Obj, work_dir: Path, config_maps: Lookup, secrets: Lookup, token: TokenRequest | None = None
) -> dict[str, tuple[str, str]]:
    """Each volume on disk under the pod's work dir; emptyDir world-writable as the kubelet makes it."""
    sources = volume_sources(pod, work_dir / "volumes")
    namespace = pod["metadata"]["namespace"]
    for volume in pod["spec"].get("volumes") or []:
        kind, path = sources[volume["name"]]
        if kind == "emptyDir" and not os.path.isdir(path):
            os.makedirs(path)
            os.chmod(path, 0o777)
        elif kind in ("configMap", "secret"):
            _materialise(
                volume, Path(path), namespace, secrets if kind == "secret" else config_maps, secret=kind == "secret"
            )
        elif kind == "projected":
            if token is None:
                raise ContainerConfigError(f"volume {volume['name']!r}: projected volumes need the node's API access")
            _projected(volume, Path(path), pod, config_maps, secrets, token)
    return sources


def write_etc(pod: Obj, work_dir: Path, pod_ip: str) -> Path:
    """The pod's /etc/hosts and /etc/hostname, as the kubelet writes them."""
    etc = work_dir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    name = pod["metadata"]["name"][:63]
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t{name}\n")
    (etc / "hostname").write_text(name + "\n")
    return etc


def start_argv(
    store: ImageStore,
    image: ImageConfig,
    pod: Obj,
    container: Obj,
    *,
    work_dir: Path,
    pod_ip: str,
    env: dict[str, str],
    node_mounts: list[Mount],
    lookups: tuple[Lookup, Lookup, TokenRequest],
) -> tuple[list[str], Launch]:
    """A fresh rootfs and the launcher's input on disk; the argv that runs the launcher (in the pod's netns)."""
    sources = prepare_volumes(pod, work_dir, *lookups)
    etc = write_etc(pod, work_dir, pod_ip)
    # The rules first: a container that cannot start gets no rootfs.
    plan = launch(
        pod, container, image, rootfs=Path("/"), etc_dir=etc, env=env, sources=sources, node_mounts=node_mounts
    )
    plan.rootfs = str(store.fresh_rootfs(container_name(pod["metadata"]["uid"], container["name"]), image))
    launch_file = work_dir / "containers" / container["name"] / "launch.json"
    launch_file.parent.mkdir(parents=True, exist_ok=True)
    # Root-only: the env may carry values of Secrets.
    fd = os.open(launch_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(plan.to_json(), out)
    return [sys.executable, "-I", "-m", LAUNCHER, str(launch_file)], plan


def nsenter_prefix(plan: Launch) -> list[str]:
    """How an exec probe joins the container (its pid is added once started): mount and UTS namespaces,
    root, working dir and user."""
    ids = [f"--setuid={plan.uid}", *([f"--setgid={plan.gid}"] if plan.gid >= 0 else [])]
    return ["nsenter", "--mount", "--uts", "--root", "--wd", *ids]
