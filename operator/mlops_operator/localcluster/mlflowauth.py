"""MLflow with its own basic-auth app, for the local stack (`cluster up --mlflow-auth`) and the tests.

The admin password is generated once per state directory and kept there (mode 0600); MLflow creates
the admin user from the config file on first start. Users for teams are made through MLflow's REST API
by the admin: a user owns (MANAGE) what it creates and reads the rest (`default_permission = READ`).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

ADMIN = "admin"


@dataclass(frozen=True)
class MlflowAuth:
    """Where an authenticated MLflow keeps its users, and the admin's credentials."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "basic_auth.ini"

    @property
    def admin_password(self) -> str:
        """The admin's password, made on first use."""
        path = self.root / "admin-password"
        if not path.exists() or not path.read_text().strip():
            _write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def env(self) -> dict[str, str]:
        """The server's environment: its auth config and a stable Flask secret (sessions, CSRF)."""
        _write_private(
            self.config,
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{(self.root / 'basic_auth.db').resolve()}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {self.admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.config.resolve()),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.admin_password,
        }

    def client_env(self) -> dict[str, str]:
        """The admin's credentials as MLflow clients (and the operator) read them."""
        return {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": self.admin_password}


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from its first byte (no window under a looser umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(0o600)


def mlflow_server_argv(root: Path, host: str, port: int, *, auth: bool = False, workers: int = 2) -> list[str]:
    """`mlflow server` with sqlite metadata and a proxied artifact store under `root`; with `auth`, the
    basic-auth app (then run it with `MlflowAuth(root / "auth").env()` in its environment)."""
    root = root.resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    argv = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        f"--backend-store-uri=sqlite:///{root / 'mlflow.db'}",
        f"--artifacts-destination={root / 'artifacts'}",
        "--serve-artifacts",
        f"--host={host}",
        f"--port={port}",
        f"--workers={workers}",
    ]
    return [*argv, "--app-name=basic-auth"] if auth else argv


def create_user(url: str, auth: MlflowAuth, username: str, password: str) -> None:
    """Make an MLflow user (the admin asks); one that exists already is left as it is."""
    response = httpx.post(
        f"{url.rstrip('/')}/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=(ADMIN, auth.admin_password),
        timeout=30,
    )
    if response.status_code >= 400 and "RESOURCE_ALREADY_EXISTS" not in response.text:
        raise RuntimeError(f"MLflow refused to create user {username}: {response.status_code} {response.text[:200]}")
