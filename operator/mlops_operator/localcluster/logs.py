"""`mlops-operator cluster logs POD`: the container logs the node agent keeps."""

from __future__ import annotations

import sys

from .config import ClusterConfig


def print_pod_logs(cfg: ClusterConfig, pod: str, namespace: str, container: str | None) -> int:
    """Print the newest pod of that name's container logs; 1 if none is found."""
    root = cfg.logs_dir / "pods"
    candidates = sorted(root.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime) if root.exists() else []
    if not candidates:
        print(f"no logs for pod {namespace}/{pod} under {root}", file=sys.stderr)
        return 1
    files = sorted(candidates[-1].glob(f"{container or '*'}.log"))
    if not files:
        print(f"no container {container!r} in pod {namespace}/{pod}", file=sys.stderr)
        return 1
    for path in files:
        if len(files) > 1:
            print(f"==> {path.stem} <==")
        sys.stdout.write(path.read_text(errors="replace"))
    return 0
