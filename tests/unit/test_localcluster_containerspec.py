"""The kubelet's rules for a container started from its image: argv, env, user, mounts, image names."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from mlops_operator.localcluster.containerspec import (
    Mount,
    container_env_base,
    container_mounts,
    image_argv,
    launch,
    run_as,
    volume_sources,
)
from mlops_operator.localcluster.imagerun import prepare_volumes
from mlops_operator.localcluster.imagestore import ImageConfig, candidates, container_name, parse_config
from mlops_operator.localcluster.podspec import ContainerConfigError

SERVER = ImageConfig(
    name="localhost/mlops-operator/server:0.1.0",
    image_id="abc",
    entrypoint=["mlops-server"],
    cmd=["--port", "8080"],
    env={"PATH": "/opt/venv/bin:/usr/bin", "HOME": "/home/mlops"},
    working_dir="/home/mlops",
    user="10001:10001",
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "spec": {"containers": [], **spec}}


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ["mlops-server", "--port", "8080"]),  # ENTRYPOINT + CMD
        ({"args": ["--port", "$(PORT)"]}, ["mlops-server", "--port", "9000"]),  # args replace CMD
        ({"command": ["python", "-m", "x"]}, ["python", "-m", "x"]),  # command drops ENTRYPOINT and CMD
        ({"command": ["sh"], "args": ["-c", "$(PORT)"]}, ["sh", "-c", "9000"]),
    ],
)
def test_command_and_args_override_the_image_as_kubernetes_does(container: dict[str, Any], argv: list[str]) -> None:
    assert image_argv({"name": "c", **container}, SERVER, {"PORT": "9000"}) == argv


def test_an_image_with_nothing_to_run_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match="no entrypoint or cmd"):
        image_argv({"name": "c"}, ImageConfig(name="x", image_id=""), {})


def test_path_stays_the_images_and_the_node_adds_the_api_address() -> None:
    env = container_env_base(SERVER, {"PATH": "/host/venv/bin", "KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert env == {"PATH": "/opt/venv/bin:/usr/bin", "HOME": "/home/mlops", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}


def test_user_comes_from_the_image_unless_the_security_context_says_otherwise() -> None:
    assert run_as(pod(), {"name": "c"}, SERVER) == (10001, 10001, [])
    assert run_as(pod(securityContext={"runAsUser": 5, "fsGroup": 7}), {"name": "c"}, SERVER) == (5, 10001, [7])
    container = {"name": "c", "securityContext": {"runAsUser": 6, "runAsGroup": 8}}
    assert run_as(pod(securityContext={"runAsUser": 5}), container, SERVER) == (6, 8, [])
    # A numeric user without a group: the launcher looks the group up in the image's /etc/passwd.
    assert run_as(pod(), {"name": "c"}, ImageConfig(name="x", image_id="", user="10001")) == (10001, -1, [])


def test_run_as_non_root_refuses_a_root_or_unverifiable_image_user() -> None:
    non_root = pod(securityContext={"runAsNonRoot": True})
    with pytest.raises(ContainerConfigError, match="image will run as root"):
        run_as(non_root, {"name": "c"}, ImageConfig(name="x", image_id=""))
    with pytest.raises(ContainerConfigError, match="non-numeric user"):
        run_as(non_root, {"name": "c"}, ImageConfig(name="x", image_id="", user="mlops"))
    assert run_as(non_root, {"name": "c"}, SERVER)[0] == 10001


def test_mounts_follow_volume_mounts_and_unsupported_volumes_are_named(tmp_path: Path) -> None:
    spec = pod(
        volumes=[
            {"name": "tmp", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "c"}},
            {"name": "host", "hostPath": {"path": "/srv/data"}},
            {"name": "claim", "persistentVolumeClaim": {"claimName": "x"}},
        ]
    )
    sources = volume_sources(spec, tmp_path)
    mounts = container_mounts(
        spec,
        {
            "name": "c",
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "cfg", "mountPath": "/etc/app"},
                {"name": "host", "mountPath": "/data", "subPath": "iris", "readOnly": True},
            ],
        },
        sources,
    )
    assert mounts == [
        Mount(str(tmp_path / "tmp"), "/tmp", False),
        Mount(str(tmp_path / "cfg"), "/etc/app", True),  # configMap and secret volumes are read-only
        Mount("/srv/data/iris", "/data", True),
    ]
    with pytest.raises(ContainerConfigError, match="persistentVolumeClaim volumes are not supported"):
        container_mounts(spec, {"name": "c", "volumeMounts": [{"name": "claim", "mountPath": "/m"}]}, sources)
    with pytest.raises(ContainerConfigError, match="names no volume"):
        container_mounts(spec, {"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/m"}]}, sources)


def test_configmap_and_secret_volumes_are_written_as_files(tmp_path: Path) -> None:
    spec = pod(
        volumes=[
            {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "sub/a.txt"}]}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
            {"name": "gone", "configMap": {"name": "missing", "optional": True}},
            {"name": "scratch", "emptyDir": {}},
        ]
    )
    maps = {"c": {"data": {"a": "alpha", "b": "beta"}}}
    secrets = {"s": {"data": {"token": base64.b64encode(b"t0k").decode()}}}
    prepare_volumes(spec, tmp_path, lambda ns, name: maps.get(name), lambda ns, name: secrets.get(name))
    assert (tmp_path / "volumes" / "cfg" / "sub" / "a.txt").read_text() == "alpha"
    assert not (tmp_path / "volumes" / "cfg" / "b").exists()
    token = tmp_path / "volumes" / "sec" / "token"
    assert token.read_bytes() == b"t0k" and token.stat().st_mode & 0o777 == 0o400
    assert (tmp_path / "volumes" / "gone").is_dir()
    assert (tmp_path / "volumes" / "scratch").stat().st_mode & 0o777 == 0o777
    with pytest.raises(ContainerConfigError, match='configmap "c2" not found'):
        prepare_volumes(pod(volumes=[{"name": "x", "configMap": {"name": "c2"}}]), tmp_path, lambda ns, n: None, dict)


def test_the_api_access_volume_is_projected_with_a_token_bound_to_the_pod(tmp_path: Path) -> None:
    access = {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }
    # The pod's user owns its token alone, as the kubelet does when runAsUser is known.
    spec = pod(
        serviceAccountName="op", volumes=[access], securityContext={"runAsUser": os.getuid(), "runAsGroup": os.getgid()}
    )
    asked: list[tuple[Any, ...]] = []

    def token(namespace: str, account: str, audiences: list[str], seconds: int, bound: dict[str, Any]) -> str:
        asked.append((namespace, account, audiences, seconds, bound["metadata"]["uid"]))
        return "jwt"

    maps = {"kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}}
    sources = prepare_volumes(spec, tmp_path, lambda ns, n: maps.get(n), lambda ns, n: None, token)
    root = tmp_path / "volumes" / "kube-api-access"
    assert asked == [("ns", "op", [], 3607, "u-1")]
    assert (root / "token").read_text() == "jwt" and (root / "token").stat().st_mode & 0o777 == 0o600
    assert (root / "ca.crt").read_text() == "PEM" and (root / "namespace").read_text() == "ns"
    mounts = container_mounts(
        spec, {"name": "c", "volumeMounts": [{"name": "kube-api-access", "mountPath": "/sa"}]}, sources
    )
    assert mounts == [Mount(str(root), "/sa", True)]


def test_launch_carries_hardening_and_the_node_mounts_last(tmp_path: Path) -> None:
    spec = pod(securityContext={"runAsNonRoot": True}, volumes=[{"name": "tmp", "emptyDir": {}}])
    container = {
        "name": "server",
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    node = [Mount("/state/data", "/state/data", True)]
    plan = launch(
        spec,
        container,
        SERVER,
        rootfs=tmp_path,
        etc_dir=tmp_path / "etc",
        env={"PATH": "/opt/venv/bin"},
        sources=volume_sources(spec, tmp_path),
        node_mounts=node,
    )
    assert plan.readonly_root and plan.no_new_privileges
    assert plan.working_dir == "/home/mlops" and plan.hostname == "p"
    assert plan.mounts[0].target == "/tmp" and plan.mounts[1] == node[0]  # /tmp would hide a data dir below it
    assert plan.env["HOME"] == "/" and plan.env["HOSTNAME"] == "p"  # no HOME in this env: the kubelet's "/"


def test_a_short_image_name_is_looked_up_as_buildah_tags_it() -> None:
    assert candidates("mlops-operator/server:0.1.0") == [
        "mlops-operator/server:0.1.0",
        "localhost/mlops-operator/server:0.1.0",
        "docker.io/mlops-operator/server:0.1.0",
    ]
    assert candidates("python")[-1] == "docker.io/library/python:latest"
    assert candidates("ghcr.io/org/app:1") == ["ghcr.io/org/app:1"]
    assert candidates("localhost:5000/app:1") == ["localhost:5000/app:1"]


def test_image_config_is_read_from_buildah_inspect() -> None:
    inspected = {
        "FromImageID": "sha",
        "OCIv1": {"config": {"Entrypoint": ["mlops-worker"], "Env": ["PATH=/opt/venv/bin", "A=b=c"], "User": "10001"}},
    }
    config = parse_config("n", inspected)
    assert config.entrypoint == ["mlops-worker"] and config.cmd == []
    assert config.env == {"PATH": "/opt/venv/bin", "A": "b=c"} and config.user == "10001" and config.image_id == "sha"
    assert container_name("uid", "c") == "mlops-pod-uid-c"


def test_mount_paths_resolve_inside_the_rootfs_never_on_the_host(tmp_path: Path) -> None:
    from mlops_operator.localcluster.containerinit import in_root

    root = tmp_path / "rootfs"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")  # as in Debian images
    (root / "escape").symlink_to("../../../../etc")
    (root / "loop").symlink_to("loop")
    assert in_root(root, "/var/run/secrets/kubernetes.io") == root / "run" / "secrets" / "kubernetes.io"
    assert in_root(root, "/escape/passwd") == root / "etc" / "passwd"
    assert in_root(root, "/../../tmp") == root / "tmp"
    with pytest.raises(OSError, match="too many levels"):
        in_root(root, "/loop/x")
