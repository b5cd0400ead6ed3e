"""Kubeconfig files for the admin and each component identity."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from .kubeclient import Credentials


def write_kubeconfig(path: Path, creds: Credentials, user: str) -> Path:
    """Write a single-context kubeconfig that references the PEM files by absolute path."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlops-local",
                "cluster": {"server": creds.server, "certificate-authority": str(creds.ca_file.resolve())},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(creds.cert_file.resolve()),
                    "client-key": str(creds.key_file.resolve()),
                },
            }
        ],
        "contexts": [{"name": "mlops-local", "context": {"cluster": "mlops-local", "user": user}}],
        "current-context": "mlops-local",
    }
    text = yaml.safe_dump(config, sort_keys=False)
    if path.exists() and path.read_text() == text:
        return path
    # Atomically: every test worker's session runs `cluster up`, and a kubectl that read this file while it was
    # being rewritten found it empty and went to localhost:8080 (a red fresh-clone CI run).
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_credentials(path: Path) -> Credentials:
    """Credentials from a kubeconfig we wrote (file references, current context)."""
    config = yaml.safe_load(path.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    return Credentials(
        server=cluster["server"],
        ca_file=Path(cluster["certificate-authority"]),
        cert_file=Path(user["client-certificate"]),
        key_file=Path(user["client-key"]),
    )
