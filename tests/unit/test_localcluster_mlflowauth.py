"""The local stack's authenticated MLflow: the switch (env or a state directory that had it), the server's
arguments and environment, and an admin password made once and kept private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from mlops_operator.controllers.settings import Settings
from mlops_operator.localcluster.config import MLFLOW_AUTH_MARKER, ClusterConfig
from mlops_operator.localcluster.services import mlflow_argv, mlflow_env


def test_off_by_default_on_by_env_or_by_a_state_directory_that_had_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_CLUSTER_MLFLOW_AUTH", raising=False)
    plain = ClusterConfig.from_env(tmp_path)
    assert not plain.mlflow_auth and "--app-name=basic-auth" not in mlflow_argv(plain) and mlflow_env(plain) == {}
    monkeypatch.setenv("MLOPS_CLUSTER_MLFLOW_AUTH", "1")
    assert ClusterConfig.from_env(tmp_path).mlflow_auth
    monkeypatch.delenv("MLOPS_CLUSTER_MLFLOW_AUTH")
    (tmp_path / MLFLOW_AUTH_MARKER).parent.mkdir(parents=True)
    (tmp_path / MLFLOW_AUTH_MARKER).touch()
    cfg = ClusterConfig.from_env(tmp_path)
    assert cfg.mlflow_auth and mlflow_argv(cfg)[-1] == "--app-name=basic-auth"

    env = mlflow_env(cfg)
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    password_file = tmp_path / "mlflow" / "auth" / "admin-password"
    password = password_file.read_text()
    assert len(password) >= 24 and f"admin_password = {password}" in config.read_text()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600 and stat.S_IMODE(config.stat().st_mode) == 0o600
    assert mlflow_env(cfg)["MLFLOW_AUTH_CONFIG_PATH"] == str(config) and password_file.read_text() == password


def test_the_workload_secret_must_be_a_secret_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_WORKLOAD_SECRET", "team-a.mlflow")
    assert Settings.from_env().workload_secret == "team-a.mlflow"
    monkeypatch.setenv("MLOPS_WORKLOAD_SECRET", "Bad Name")
    with pytest.raises(ValueError, match="must be a Secret name"):
        Settings.from_env()
