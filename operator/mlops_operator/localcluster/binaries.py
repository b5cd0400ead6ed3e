"""Find (and if needed build) the control-plane binaries built from Go modules by hack/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries.sh"
REQUIRED = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "coredns",
    "kubectl",
    "helm",
)


class BinariesMissingError(RuntimeError):
    """The binaries are not built and cannot be built here."""


def ensure_binaries() -> Path:
    """The directory holding the pinned binaries; builds them on first use (10-20 min, then cached)."""
    override = os.environ.get("MLOPS_BIN_DIR")
    if override:
        directory = Path(override)
        missing = [b for b in REQUIRED if not (directory / b).exists()]
        if missing:
            raise BinariesMissingError(f"MLOPS_BIN_DIR={directory} lacks {', '.join(missing)}")
        return directory
    if not BUILD_SCRIPT.exists():
        raise BinariesMissingError(
            f"{BUILD_SCRIPT} not found: run from a checkout of mlops-operator or set MLOPS_BIN_DIR"
        )
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise BinariesMissingError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}; see its output above")
    return Path(result.stdout.strip().splitlines()[-1])
