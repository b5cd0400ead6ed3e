"""The local node's image store: the buildah store `make images` builds into (hack/build-images.sh).

A Pod whose image is in the store runs from it: its config (entrypoint, cmd, env, working dir, user) comes
from here, and each container start gets a fresh working container whose mounted rootfs the container is
chrooted into. Images not in the store run as host processes, as before.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mlops.node-agent")
CONTAINER_PREFIX = "mlops-pod-"  # working containers the agent owns; others in the store are left alone
TIMEOUT_SECONDS = 60.0


def default_store_root() -> Path:
    """Where hack/build-images.sh puts the store (MLOPS_IMAGE_STORE, else the user's cache dir)."""
    if os.environ.get("MLOPS_IMAGE_STORE"):
        return Path(os.environ["MLOPS_IMAGE_STORE"])
    cache = os.environ.get("MLOPS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mlops-operator"
    )
    return Path(cache) / "containers"


class ImageStoreError(Exception):
    """buildah failed on a store operation."""


@dataclass(frozen=True)
class ImageConfig:
    """What an OCI image's config says about how to run it."""

    name: str
    image_id: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""


def candidates(image: str) -> list[str]:
    """The names a Pod's image may have in the store: as written, then as a short name is tagged locally."""
    ref = image.split("@")[0] if "@" in image else image
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        ref += ":latest"
    names = [ref]
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        names += [f"localhost/{ref}", f"docker.io/{ref}"]
        if "/" not in ref:
            names.append(f"docker.io/library/{ref}")
    return names


def parse_config(name: str, inspected: dict[str, object]) -> ImageConfig:
    """The run config of `buildah inspect --type image` output (its OCI config)."""
    oci = inspected.get("OCIv1") or {}
    config = (oci.get("config") if isinstance(oci, dict) else None) or {}
    env = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return ImageConfig(
        name=name,
        image_id=str(inspected.get("FromImageID") or ""),
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        env=env,
        working_dir=str(config.get("WorkingDir") or ""),
        user=str(config.get("User") or ""),
    )


class ImageStore:
    """buildah against one store root (no registry, no pulls)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_store_root()

    @property
    def available(self) -> bool:
        """Whether buildah is installed and the store exists (else every pod runs as host processes)."""
        return shutil.which("buildah") is not None and (self.root / "storage").is_dir()

    def _buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]
        argv += ["--storage-driver", "overlay", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
        if check and result.returncode != 0:
            raise ImageStoreError(f"buildah {args[0]}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def lookup(self, image: str) -> ImageConfig | None:
        """The image's config if the store has it under one of its names, else None."""
        if not self.available:
            return None
        for name in candidates(image):
            result = self._buildah("inspect", "--type", "image", name, check=False)
            if result.returncode == 0:
                return parse_config(name, json.loads(result.stdout))
        return None

    def fresh_rootfs(self, container: str, image: ImageConfig) -> Path:
        """A new working container of the image (any earlier one of that name removed), mounted; its rootfs."""
        self.remove(container)
        self._buildah("from", "--quiet", "--pull=never", "--name", container, image.image_id or image.name)
        return Path(self._buildah("mount", container).stdout.strip())

    def remove(self, container: str) -> None:
        """Unmount and delete a working container; gone already is fine."""
        self._buildah("rm", container, check=False)

    def working_containers(self) -> list[str]:
        """Names of the working containers this agent made (for cleanup after a restart)."""
        if not self.available:
            return []
        result = self._buildah("containers", "--format", "{{.ContainerName}}", check=False)
        return [n for n in result.stdout.split() if n.startswith(CONTAINER_PREFIX)]


def container_name(pod_uid: str, container: str) -> str:
    """The working container of one of a pod's containers."""
    return f"{CONTAINER_PREFIX}{pod_uid}-{container}"
