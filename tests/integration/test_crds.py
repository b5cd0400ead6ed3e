"""The generated CRDs on a real API server: installed, examples accepted, bad input rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, Kube

EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))
INVALID = sorted((REPO / "tests" / "manifests" / "invalid").glob("*.yaml"))


def test_four_crds_are_established(crds_installed: Kube) -> None:
    names = crds_installed.run("get", "crd", "-o", "name").stdout.split()
    expected = {
        f"customresourcedefinition.apiextensions.k8s.io/{p}.mlops.dev"
        for p in ("datasets", "trainingruns", "modelversions", "deployments")
    }
    assert expected <= set(names)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(crds_installed: Kube, namespace: str, path: Path) -> None:
    result = crds_installed.run("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr
    kind = result.stdout.split("/")[0]
    assert crds_installed.run("get", "-n", namespace, kind, "-o", "name").stdout.strip()


def test_mlops_category_lists_every_kind(crds_installed: Kube, namespace: str) -> None:
    for path in EXAMPLES:
        crds_installed.run("apply", "-n", namespace, "-f", str(path))
    listed = crds_installed.run("get", "mlops", "-n", namespace, "-o", "name").stdout
    for kind in ("dataset", "trainingrun", "modelversion", "deployment"):
        assert f"{kind}.mlops.dev/" in listed


def test_defaults_are_applied_by_the_api_server(crds_installed: Kube, namespace: str) -> None:
    crds_installed.apply(
        "apiVersion: mlops.dev/v1alpha1\nkind: Deployment\nmetadata: {name: d}\n"
        "spec: {model: {registeredModel: m, alias: production}}\n",
        namespace,
    )
    spec = crds_installed.json("get", "mldeploy", "d", "-n", namespace)["spec"]
    assert spec["replicas"] == 2
    assert [s["weight"] for s in spec["strategy"]["canary"]["steps"]] == [10, 50, 100]
    assert spec["strategy"]["canary"]["analysis"] == {
        "interval": "30s",
        "failureLimit": 2,
        "consecutiveErrorLimit": 4,
        "metrics": [],
    }
    assert spec["strategy"]["canary"]["progressDeadline"] == "10m"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_with_message(crds_installed: Kube, namespace: str, path: Path) -> None:
    text = path.read_text()
    expected = text.splitlines()[0].removeprefix("# expect:").strip()
    result = crds_installed.run("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0, f"{path.name} was accepted"
    assert expected in result.stderr, result.stderr


def test_at_least_twelve_invalid_manifests() -> None:
    assert len(INVALID) >= 12
