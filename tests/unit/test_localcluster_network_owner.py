"""`cluster down` of a second state directory leaves the machine's one bridge to the cluster that runs on it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from mlops_operator.localcluster import cluster
from mlops_operator.localcluster.config import ClusterConfig


def test_only_a_running_cluster_of_another_state_dir_keeps_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner_file = tmp_path / "owner"
    monkeypatch.setattr(cluster, "NETWORK_OWNER", owner_file)
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    running: dict[Path, int | None] = {theirs: 4242}
    monkeypatch.setattr(
        cluster, "_process", lambda cfg, component: SimpleNamespace(pid=lambda: running.get(cfg.state_dir))
    )
    cfg = ClusterConfig.from_env(mine)
    assert cluster.network_owner(cfg) is None, "nobody recorded"
    owner_file.write_text(str(mine))
    assert cluster.network_owner(cfg) is None, "ours"
    owner_file.write_text(str(theirs))
    assert cluster.network_owner(cfg) == theirs, "theirs, and it runs"
    running[theirs] = None
    assert cluster.network_owner(cfg) is None, "theirs, stopped: ours to clean up"
