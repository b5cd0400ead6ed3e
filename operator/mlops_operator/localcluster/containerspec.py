"""Pure functions from a Pod, one of its containers and its image's config to what the container launcher
(containerinit.py) does: the argv, env, user, working dir and mounts, with the kubelet's rules.

No I/O: the pod runner resolves env and lookups first, so every rule here is unit-tested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .imagestore import ImageConfig
from .podspec import ContainerConfigError, expand

Obj = dict[str, Any]
# The image's env var the container's own env never gets from the host: PATH is the image's.
HOST_ONLY = ("PATH",)


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path at a path inside the container."""

    source: str
    target: str
    readonly: bool = False


@dataclass
class Launch:
    """Everything containerinit.py needs to start one container from its image (written as JSON)."""

    rootfs: str
    etc_dir: str  # the pod's hosts and hostname files
    argv: list[str]
    env: dict[str, str]
    working_dir: str
    uid: int
    gid: int
    groups: list[int]
    hostname: str
    readonly_root: bool
    no_new_privileges: bool
    mounts: list[Mount] = field(default_factory=list)

    def to_json(self) -> Obj:
        """The launcher's input."""
        return asdict(self)


def image_argv(container: Obj, image: ImageConfig, env: dict[str, str]) -> list[str]:
    """Kubernetes' rule: `command` replaces the ENTRYPOINT (and drops CMD), `args` replaces CMD; $(VAR) expanded."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command:
        argv = [expand(part, env) for part in command + args]
    else:
        argv = image.entrypoint + ([expand(part, env) for part in args] if args else image.cmd)
    if not argv:
        raise ContainerConfigError(f"container {container['name']!r}: image {image.name} has no entrypoint or cmd")
    return argv


def container_env_base(image: ImageConfig, node_env: dict[str, str]) -> dict[str, str]:
    """The env a container's own env is layered on: the image's, then the node's (the API server's address)
    except PATH, which stays the image's."""
    return {**image.env, **{k: v for k, v in node_env.items() if k not in HOST_ONLY}}


def _security(pod: Obj, container: Obj, key: str) -> Any:
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod["spec"].get("securityContext") or {}).get(key)


def run_as(pod: Obj, container: Obj, image: ImageConfig) -> tuple[int, int, list[int]]:
    """uid, gid and supplementary groups, as the kubelet settles them, with runAsNonRoot enforced."""
    user, _, group = image.user.partition(":")
    uid = _security(pod, container, "runAsUser")
    gid = _security(pod, container, "runAsGroup")
    if uid is None:
        if user and not user.isdigit():
            if _security(pod, container, "runAsNonRoot"):
                message = f"container has runAsNonRoot and image has non-numeric user ({user})"
                raise ContainerConfigError(f"{message}, cannot verify user is non-root")
            raise ContainerConfigError(f"image user {user!r} is not numeric: set securityContext.runAsUser")
        uid = int(user or 0)
    if gid is None:
        # -1: the user's primary group in the image's /etc/passwd (else 0), looked up by the launcher.
        gid = int(group) if group.isdigit() else -1
    if _security(pod, container, "runAsNonRoot") and int(uid) == 0:
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")
    groups = [int(g) for g in (pod["spec"].get("securityContext") or {}).get("supplementalGroups") or []]
    fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    if fs_group is not None:
        groups.append(int(fs_group))
    return int(uid), int(gid), groups


def volume_sources(pod: Obj, volume_dir: Path) -> dict[str, tuple[str, str]]:
    """Each volume's kind and host path: emptyDir and materialised configMap/secret volumes under
    `volume_dir`, hostPath as named. A kind this node cannot provide fails the container, by name."""
    sources = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            sources[name] = ("emptyDir", str(volume_dir / name))
        elif "configMap" in volume or "secret" in volume or "projected" in volume:
            kind = next(k for k in ("configMap", "secret", "projected") if k in volume)
            sources[name] = (kind, str(volume_dir / name))
        elif "hostPath" in volume:
            sources[name] = ("hostPath", str(volume["hostPath"]["path"]))
        else:
            kinds = sorted(set(volume) - {"name"})
            sources[name] = (f"unsupported:{','.join(kinds)}", "")
    return sources


def container_mounts(pod: Obj, container: Obj, sources: dict[str, tuple[str, str]]) -> list[Mount]:
    """The container's volumeMounts as bind mounts (subPath joined), in their declared order."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        name = mount["name"]
        if name not in sources:
            raise ContainerConfigError(f"volumeMount {name!r} names no volume of the pod")
        kind, path = sources[name]
        if kind.startswith("unsupported:"):
            raise ContainerConfigError(
                f"volume {name!r}: {kind.split(':', 1)[1]} volumes are not supported by the local node"
            )
        source = str(Path(path) / mount["subPath"]) if mount.get("subPath") else path
        readonly = bool(mount.get("readOnly")) or kind in ("configMap", "secret", "projected")
        mounts.append(Mount(source=source, target=mount["mountPath"], readonly=readonly))
    return mounts


def launch(
    pod: Obj,
    container: Obj,
    image: ImageConfig,
    *,
    rootfs: Path,
    etc_dir: Path,
    env: dict[str, str],
    sources: dict[str, tuple[str, str]],
    node_mounts: list[Mount],
) -> Launch:
    """The launcher's input for one container start."""
    uid, gid, groups = run_as(pod, container, image)
    env = dict(env)
    env.setdefault("HOME", "/")
    env.setdefault("HOSTNAME", pod["metadata"]["name"])
    return Launch(
        rootfs=str(rootfs),
        etc_dir=str(etc_dir),
        argv=image_argv(container, image, env),
        env=env,
        working_dir=container.get("workingDir") or image.working_dir or "/",
        uid=uid,
        gid=gid,
        groups=groups,
        hostname=pod["metadata"]["name"][:63],
        readonly_root=bool(_security(pod, container, "readOnlyRootFilesystem")),
        no_new_privileges=_security(pod, container, "allowPrivilegeEscalation") is False,
        # The node's last: its data dir may sit below a container mount (CI's clone is under /tmp).
        mounts=[*container_mounts(pod, container, sources), *node_mounts],
    )
