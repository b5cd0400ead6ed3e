"""The lineage of a namespace as a tree: Dataset → TrainingRun → ModelVersion → Deployment. Pure.

The links are the ones the controllers write, read from the objects themselves:
- a TrainingRun trains on `spec.datasetRef.name` (the version it pinned is `status.datasetVersion`);
- a ModelVersion comes from `spec.source.trainingRunRef` (the TrainingRun controller sets it, and the label
  `mlops.dev/training-run`; a TrainingRun's `status.modelVersion` names it back);
- a Deployment serves `status.stableVersion` and canaries `status.canaryVersion` of `spec.model.registeredModel`,
  which is the ModelVersion whose `spec.registeredModel` and `spec.version` match.
Whatever has no parent in the namespace (a Deployment before its first version, a ModelVersion applied by hand,
a run whose Dataset is gone) becomes a root of its own, so every object appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api.common import API_VERSION
from ..api.deployment import DeploymentSpec
from ..contract import LABEL_TRAINING_RUN, LABEL_TRIGGER

Obj = dict[str, Any]
STABLE, CANARY = "stable", "canary"
# The -o json document's kind and schema version: scripts may rely on the keys of this version.
DOCUMENT_KIND = "Lineage"
DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class Node:
    """One object in the tree, with the facts the view shows of its kind."""

    kind: str
    name: str
    phase: str | None
    facts: dict[str, Any]
    role: str | None = None  # a Deployment under a ModelVersion: does it serve it as stable or as canary?
    missing: bool = False  # named by another object but not found (a TrainingRun's Dataset that was deleted)
    children: list[Node] = field(default_factory=list)

    def names(self) -> set[str]:
        """This node's name and every descendant's."""
        return {self.name}.union(*(child.names() for child in self.children))


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def dataset_facts(obj: Obj) -> dict[str, Any]:
    """Version (content fingerprint) and rows of a Dataset."""
    status = _status(obj)
    return {
        "version": status.get("version"),
        "rows": status.get("rows"),
        "violations": len(status.get("violations") or []),
    }


def run_facts(obj: Obj) -> dict[str, Any]:
    """Metrics, pinned data version and the cause of a TrainingRun (`mlops.dev/triggered-by`)."""
    status = _status(obj)
    return {
        "metrics": dict(sorted((status.get("metrics") or {}).items())),
        "datasetVersion": status.get("datasetVersion"),
        "modelVersion": status.get("modelVersion"),
        "triggeredBy": (_meta(obj).get("labels") or {}).get(LABEL_TRIGGER),
        "message": status.get("message"),
    }


def model_version_facts(obj: Obj) -> dict[str, Any]:
    """Registered model and version, alias, gate results and promotion time of a ModelVersion."""
    spec, status = _spec(obj), _status(obj)
    gates = [
        {"metric": g.get("metric"), "value": g.get("value"), "threshold": g.get("threshold"), "passed": g.get("passed")}
        for g in status.get("gateResults") or []
    ]
    return {
        "registeredModel": spec.get("registeredModel"),
        "version": spec.get("version"),
        "alias": (spec.get("promotion") or {}).get("alias"),
        "gates": gates,
        "promotedAt": status.get("promotedAt"),
    }


def _canary_steps(spec: Obj) -> int | None:
    # The API model holds the default steps; a spec it cannot parse (a newer operator's) shows no step count.
    try:
        return len(DeploymentSpec.model_validate(spec).strategy.canary.steps)
    except ValidationError:
        return None


def deployment_facts(obj: Obj) -> dict[str, Any]:
    """Stable and canary versions, weight, step, analysis and drift of a Deployment."""
    spec, status = _spec(obj), _status(obj)
    model = spec.get("model") or {}
    drift = status.get("drift") or {}
    analysis = [
        {k: r.get(k) for k in ("name", "value", "threshold", "passed", "error")} for r in status.get("analysis") or []
    ]
    return {
        "registeredModel": model.get("registeredModel"),
        "alias": model.get("alias"),
        "pinnedVersion": model.get("version"),
        "stableVersion": status.get("stableVersion"),
        "canaryVersion": status.get("canaryVersion"),
        "canaryWeight": status.get("canaryWeight"),
        "step": status.get("step"),
        "steps": _canary_steps(spec),
        "shadow": (status.get("shadow") or {}).get("phase"),
        "analysis": analysis,
        "drift": {k: drift.get(k) for k in ("method", "score", "threshold", "feature", "samples")} if drift else None,
        "readyReplicas": status.get("readyReplicas"),
        "replicas": spec.get("replicas"),
    }


FACTS = {
    "Dataset": dataset_facts,
    "TrainingRun": run_facts,
    "ModelVersion": model_version_facts,
    "Deployment": deployment_facts,
}


def node_of(obj: Obj, kind: str, role: str | None = None) -> Node:
    """A childless node for one object."""
    return Node(kind, _meta(obj)["name"], _status(obj).get("phase"), FACTS[kind](obj), role=role)


def training_run_of(mv: Obj, run_names: set[str]) -> str | None:
    """The TrainingRun a ModelVersion came from: spec.source.trainingRunRef, else its lineage label."""
    ref = (_spec(mv).get("source") or {}).get("trainingRunRef")
    label = (_meta(mv).get("labels") or {}).get(LABEL_TRAINING_RUN)
    return next((name for name in (ref, label) if name and name in run_names), ref or label)


def served_by(deployments: list[Obj]) -> dict[tuple[str, int], list[tuple[str, Obj]]]:
    """(registered model, version) → the Deployments serving it, with their role (stable or canary)."""
    found: dict[tuple[str, int], list[tuple[str, Obj]]] = {}
    for dep in deployments:
        model, status = (_spec(dep).get("model") or {}).get("registeredModel"), _status(dep)
        for role, version in ((STABLE, status.get("stableVersion")), (CANARY, status.get("canaryVersion"))):
            if model and version is not None:
                found.setdefault((model, int(version)), []).append((role, dep))
    return found


def build_lineage(objects: dict[str, list[Obj]]) -> list[Node]:
    """The forest of one namespace's objects (lists as the API returns them, oldest first)."""
    datasets, runs = objects.get("Dataset", []), objects.get("TrainingRun", [])
    versions, deployments = objects.get("ModelVersion", []), objects.get("Deployment", [])
    serving = served_by(deployments)
    attached: set[str] = set()  # Deployments placed under a ModelVersion

    def mv_node(mv: Obj) -> Node:
        node = node_of(mv, "ModelVersion")
        key = (node.facts["registeredModel"], node.facts["version"])
        for role, dep in serving.get(key, []) if key[1] is not None else []:
            node.children.append(node_of(dep, "Deployment", role))
            attached.add(_meta(dep)["name"])
        return node

    run_names = {_meta(r)["name"] for r in runs}
    mvs_by_run: dict[str | None, list[Obj]] = {}
    for mv in versions:
        mvs_by_run.setdefault(training_run_of(mv, run_names), []).append(mv)

    def run_node(run: Obj) -> Node:
        node = node_of(run, "TrainingRun")
        node.children.extend(mv_node(mv) for mv in mvs_by_run.get(node.name, []))
        return node

    roots: list[Node] = []
    dataset_names = {_meta(d)["name"] for d in datasets}
    for ds in datasets:
        node = node_of(ds, "Dataset")
        node.children.extend(run_node(r) for r in runs if (_spec(r).get("datasetRef") or {}).get("name") == node.name)
        roots.append(node)
    orphans: dict[str, list[Obj]] = {}
    for run in runs:
        ref = (_spec(run).get("datasetRef") or {}).get("name") or ""
        if ref not in dataset_names:
            orphans.setdefault(ref, []).append(run)
    for ref, group in orphans.items():
        roots.append(Node("Dataset", ref, None, dataset_facts({}), missing=True, children=[run_node(r) for r in group]))
    roots.extend(mv_node(mv) for name, group in mvs_by_run.items() if name not in run_names for mv in group)
    roots.extend(node_of(dep, "Deployment") for dep in deployments if _meta(dep)["name"] not in attached)
    return roots


def select(roots: list[Node], name: str) -> list[Node]:
    """The part of the forest that passes through objects named `name`: their ancestors and all descendants."""
    kept = []
    for node in roots:
        if node.name == name:
            kept.append(node)
        elif name in node.names():
            kept.append(
                Node(node.kind, node.name, node.phase, node.facts, node.role, node.missing, select(node.children, name))
            )
    return kept


def node_document(node: Node) -> dict[str, Any]:
    """One node as JSON: the same keys for every node of a kind, nulls included."""
    return {
        "kind": node.kind,
        "name": node.name,
        "phase": node.phase,
        "role": node.role,
        "missing": node.missing,
        "facts": node.facts,
        "children": [node_document(child) for child in node.children],
    }


def lineage_document(namespace: str, roots: list[Node]) -> dict[str, Any]:
    """The `-o json` document: versioned, so scripts can rely on its shape."""
    return {
        "apiVersion": API_VERSION,
        "kind": DOCUMENT_KIND,
        "schemaVersion": DOCUMENT_VERSION,
        "namespace": namespace,
        "items": [node_document(root) for root in roots],
    }
