"""Which kubeconfig and namespace the plugin uses (as kubectl chooses), and kind names."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from mlops_operator.ctl.kube import CtlError, context_namespace, kind_named, kubeconfig_path, resolve_target

CONFIG = """apiVersion: v1
kind: Config
current-context: work
clusters: [{{name: k, cluster: {{server: "https://10.0.0.1:6443", certificate-authority-data: {ca}}}}}]
contexts:
  - {{name: work, context: {{cluster: k, user: u{namespace}}}}}
  - {{name: other, context: {{cluster: k, user: u, namespace: elsewhere}}}}
users: [{{name: u, user: {{token: secret-token}}}}]
"""


def kubeconfig(tmp_path: Path, name: str = "config", namespace: str | None = "team-a") -> Path:
    path = tmp_path / name
    ns = f", namespace: {namespace}" if namespace else ""
    path.write_text(CONFIG.format(ca=base64.b64encode(b"not read here").decode(), namespace=ns))
    return path


def test_kubeconfig_precedence(tmp_path: Path) -> None:
    first, second = kubeconfig(tmp_path, "a"), kubeconfig(tmp_path, "b")
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}", "HOME": str(tmp_path)}
    assert kubeconfig_path("/explicit", env) == Path("/explicit")
    assert kubeconfig_path(None, env) == first  # the first file of $KUBECONFIG that exists
    (tmp_path / ".kube").mkdir()
    home = kubeconfig(tmp_path / ".kube", "config")
    assert kubeconfig_path(None, {"HOME": str(tmp_path)}) == home
    assert kubeconfig_path(None, {"HOME": str(tmp_path / "nobody")}) is None


def test_namespace_from_flag_then_context_then_default(tmp_path: Path) -> None:
    with_ns, without = kubeconfig(tmp_path, "a"), kubeconfig(tmp_path, "b", namespace=None)
    assert context_namespace(with_ns) == "team-a" and context_namespace(without) is None
    env = {"HOME": str(tmp_path / "nobody")}
    target = resolve_target(str(with_ns), None, env=env)
    assert target.namespace == "team-a"
    assert target.connection.server == "https://10.0.0.1:6443" and target.connection.token == "secret-token"
    assert resolve_target(str(with_ns), "flag", env=env).namespace == "flag"
    assert resolve_target(str(without), None, env=env).namespace == "default"
    # --context picks another context, and its namespace
    assert context_namespace(with_ns, "other") == "elsewhere"
    assert resolve_target(str(with_ns), None, "other", env).namespace == "elsewhere"
    with pytest.raises(CtlError, match="has no context 'nope'"):
        resolve_target(str(with_ns), None, "nope", env)


def test_no_kubeconfig_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(CtlError, match="no kubeconfig"):
        resolve_target(None, None, env={"HOME": str(tmp_path)})
    with pytest.raises(CtlError, match="does not exist"):
        resolve_target(str(tmp_path / "gone"), None, env={})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Dataset", "Dataset"),
        ("mlds", "Dataset"),
        ("tr", "TrainingRun"),
        ("trainingruns", "TrainingRun"),
        ("mv", "ModelVersion"),
        ("modelversion", "ModelVersion"),
        ("mldeploy", "Deployment"),
        ("deployments.mlops.dev", "Deployment"),
        ("deployment", "Deployment"),  # in `kubectl mlops`, a Deployment is the mlops.dev one
    ],
)
def test_kind_names(text: str, kind: str) -> None:
    assert kind_named(text).kind == kind
