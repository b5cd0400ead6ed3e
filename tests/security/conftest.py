"""Cluster tests: the shared fixtures come from tests/fixtures/cluster.py (loaded by the root conftest)."""

from pathlib import Path

import pytest


@pytest.fixture
def tmp_path(cluster_tmp_path: Path) -> Path:
    """Pods read the files a test writes (Dataset sources): its tmp_path is under the node's data dir."""
    return cluster_tmp_path
