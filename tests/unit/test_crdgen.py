"""The generated CRDs: fresh, structural, and carrying the rules users rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_operator.api import ALL_KINDS
from mlops_operator.api.crdgen import build_crd, crd_files

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_crds_match_the_models() -> None:
    files = crd_files()
    on_disk = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    assert set(on_disk) == set(files), "crds/ has missing or extra files; run `mlops-operator crds`"
    stale = [name for name, text in files.items() if on_disk[name] != text]
    assert not stale, f"crds/ is stale ({stale}); run `mlops-operator crds`"


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in (node.get("properties") or {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    schema = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "additionalProperties: false", "title:"):
        assert forbidden not in text, f"{kind.kind}: {forbidden} is not allowed in a structural schema"
    for path, node in _walk(schema):
        typed = (
            "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        )
        assert typed, f"{kind.kind}{path} has no type"


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_crd_presentation(kind: Any) -> None:
    crd = build_crd(kind)
    names = crd["spec"]["names"]
    assert names["categories"] == ["mlops"]
    assert names["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert any(c["name"] == "Age" for c in version["additionalPrinterColumns"])
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions", "phase"} <= set(status)
    assert status["conditions"]["x-kubernetes-list-type"] == "map"


def test_no_short_name_shadows_a_builtin() -> None:
    builtin = {"ds", "deploy", "po", "svc", "cm", "ns", "no", "pv", "pvc", "rs", "sts", "ing", "ep", "sa", "cj"}
    for kind in ALL_KINDS:
        assert not set(kind.short_names) & builtin, kind.kind


def test_deployment_defaults_fill_a_usable_canary() -> None:
    spec = build_crd(ALL_KINDS[3])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    default = spec["properties"]["strategy"]["default"]
    weights = [s["weight"] for s in default["canary"]["steps"]]
    assert weights == sorted(set(weights)) and weights[-1] == 100
