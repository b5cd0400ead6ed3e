"""Generate apiextensions.k8s.io/v1 CRDs from the pydantic models (our controller-gen)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .common import GROUP, VERSION
from .kinds import ALL_KINDS, Kind

_DROPPED_KEYS = {"title", "$defs", "examples"}
_PASSTHROUGH_KEYS = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **extra}
    return node


def to_structural(node: dict[str, Any], defs: dict[str, Any], *, keep_defaults: bool = True) -> dict[str, Any]:
    """Translate a pydantic JSON schema node into a structural OpenAPI v3 schema (no $ref, no null)."""
    node = _resolve(node, defs)
    if node.get("type") == "number" and node.get("x-kubernetes-validations"):
        # The CEL rule carries the bounds with a readable message; drop the duplicate OpenAPI ones.
        node = {
            k: v for k, v in node.items() if k not in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        }
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return to_structural({**_resolve(options[0], defs), **rest}, defs, keep_defaults=keep_defaults)
        if node.get("x-kubernetes-int-or-string"):
            return {k: v for k, v in rest.items() if k in _PASSTHROUGH_KEYS}
        raise ValueError(f"union not expressible in a structural schema: {node}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "properties":
            out["properties"] = {
                name: to_structural(prop, defs, keep_defaults=keep_defaults) for name, prop in value.items()
            }
        elif key == "items":
            out["items"] = to_structural(value, defs, keep_defaults=keep_defaults)
        elif key == "additionalProperties":
            # Structural schemas forbid `additionalProperties: false`; `true` means free-form.
            if isinstance(value, dict) and value:
                out["additionalProperties"] = to_structural(value, defs, keep_defaults=keep_defaults)
            elif value is True and not node.get("properties"):
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "default":
            if keep_defaults and value is not None and value != [] and value != {}:
                out["default"] = value
        elif key in _PASSTHROUGH_KEYS:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" in out:
        del out["x-kubernetes-preserve-unknown-fields"]
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def _object_schema(model: type, *, keep_defaults: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    return to_structural(raw, raw.get("$defs", {}), keep_defaults=keep_defaults)


def build_crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition for one kind."""
    spec_schema = _object_schema(kind.spec, keep_defaults=True)
    status_schema = _object_schema(kind.status, keep_defaults=False)
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if kind.name_rules:
        root["x-kubernetes-validations"] = [{"rule": rule, "message": message} for rule, message in kind.name_rules]
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"priority": c.priority} if c.priority else {}),
            **({"description": c.description} if c.description else {}),
        }
        for c in kind.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "mlops-operator"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["mlops"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd(kind: Kind) -> str:
    """The YAML text of one CRD, as written under crds/."""
    header = "# Generated by `mlops-operator crds` from operator/mlops_operator/api; do not edit.\n"
    return header + yaml.dump(build_crd(kind), Dumper=_Dumper, sort_keys=False, width=100)


def crd_files() -> dict[str, str]:
    """File name -> YAML text for every kind."""
    return {f"{GROUP}_{kind.plural}.yaml": render_crd(kind) for kind in ALL_KINDS}


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into `directory`, removing stale generated files; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = crd_files()
    for old in directory.glob(f"{GROUP}_*.yaml"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
