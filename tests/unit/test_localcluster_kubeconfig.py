"""Kubeconfigs are written whole or not at all: kubectl in another test worker may read one at any moment."""

from __future__ import annotations

from pathlib import Path

from mlops_operator.localcluster.kubeclient import Credentials
from mlops_operator.localcluster.kubeconfig import read_credentials, write_kubeconfig


def credentials(tmp_path: Path, server: str) -> Credentials:
    return Credentials(
        server=server, ca_file=tmp_path / "ca.crt", cert_file=tmp_path / "a.crt", key_file=tmp_path / "a.key"
    )


def test_a_rewrite_replaces_the_file_in_one_step_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", credentials(tmp_path, "https://127.0.0.1:1"), "admin")
    first = path.stat().st_ino
    write_kubeconfig(path, credentials(tmp_path, "https://127.0.0.1:2"), "admin")
    assert path.stat().st_ino != first  # a new file renamed over the old one, never the old one truncated
    assert read_credentials(path).server == "https://127.0.0.1:2"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]


def test_the_same_content_is_not_written_again(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", credentials(tmp_path, "https://127.0.0.1:1"), "admin")
    before = (path.stat().st_ino, path.stat().st_mtime_ns)
    write_kubeconfig(path, credentials(tmp_path, "https://127.0.0.1:1"), "admin")
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before
