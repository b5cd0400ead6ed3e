"""What the demo shows: a live table of every mlops object and worker Job, and the closing summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .localcluster.kubeclient import KubeClient

Obj = dict[str, Any]
KINDS = (
    ("Dataset", "datasets"),
    ("TrainingRun", "trainingruns"),
    ("ModelVersion", "modelversions"),
    ("Deployment", "deployments"),
)


@dataclass
class Row:
    """One line of the progress table."""

    kind: str
    name: str
    phase: str
    figures: str


def figures_of(kind: str, obj: Obj) -> str:
    """The key figures of an object, as the table shows them."""
    status = obj.get("status") or {}
    if kind == "Dataset":
        parts = [f"rows={status['rows']}" if status.get("rows") else "", (status.get("version") or "")[:19]]
        if status.get("violations"):
            parts.append(f"{len(status['violations'])} violation(s)")
        return " ".join(p for p in parts if p)
    if kind == "TrainingRun":
        metrics = status.get("metrics") or {}
        figures = " ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
        cause = (obj.get("metadata", {}).get("labels") or {}).get("mlops.dev/triggered-by")
        figures = figures or (status.get("jobName") and f"job={status['jobName']}") or ""
        return " ".join(p for p in (figures, f"(by {cause})" if cause else "") if p)
    if kind == "ModelVersion":
        spec = obj.get("spec") or {}
        gates = status.get("gateResults") or []
        passed = sum(1 for g in gates if g.get("passed"))
        alias = (spec.get("promotion") or {}).get("alias", "production")
        where = f" {alias}" if status.get("phase") == "Promoted" else ""
        return f"v{spec.get('version')} gates {passed}/{len(gates)}{where}"
    if kind == "Deployment":
        parts = [f"stable=v{status['stableVersion']}" if status.get("stableVersion") else ""]
        if status.get("canaryVersion"):
            parts.append(f"canary=v{status['canaryVersion']}@{status.get('canaryWeight')}%")
        parts.append(f"ready={status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas')}")
        parts.append(drift_figures(status.get("drift")))
        return " ".join(p for p in parts if p)
    if kind == "Job":
        s = obj.get("status") or {}
        return f"active={s.get('active', 0)} succeeded={s.get('succeeded', 0)} failed={s.get('failed', 0)}"
    return ""


def drift_figures(drift: Obj | None) -> str:
    """'drift psi 0.031 (petal_length, 2400 samples)', or why there is no score."""
    if not drift:
        return ""
    if drift.get("score") is None:
        return f"drift: no verdict ({drift.get('samples') or 0} samples)"
    return f"drift {drift.get('method')} {drift['score']:.3f} ({drift.get('feature')}, {drift.get('samples')} samples)"


def render_table(rows: list[Row], elapsed: float, stage: str = "") -> str:
    """The progress table: kind, name, phase and key figures, with the stage and elapsed time."""
    lines = [f"{'KIND':<13} {'NAME':<32} {'PHASE':<11} FIGURES"]
    lines += [f"{r.kind:<13} {r.name[:32]:<32} {r.phase:<11} {r.figures}" for r in rows]
    lines.append(f"elapsed {elapsed:5.1f}s" + (f"  stage: {stage}" if stage else ""))
    return "\n".join(lines)


def list_objects(client: KubeClient, namespace: str) -> dict[str, list[Obj]]:
    """Every mlops object and worker Job in the namespace, oldest first, by kind."""
    found: dict[str, list[Obj]] = {}
    for kind, plural in KINDS:
        items = client.get(f"/apis/mlops.dev/v1alpha1/namespaces/{namespace}/{plural}").get("items", [])
        found[kind] = sorted(items, key=lambda o: o["metadata"]["creationTimestamp"])
    jobs = client.get(f"/apis/batch/v1/namespaces/{namespace}/jobs").get("items", [])
    found["Job"] = sorted(jobs, key=lambda o: o["metadata"]["creationTimestamp"])
    return found


def rows_of(objects: dict[str, list[Obj]]) -> list[Row]:
    """Table rows for listed objects."""
    rows = []
    for kind, _ in KINDS:
        for obj in objects.get(kind, []):
            phase = (obj.get("status") or {}).get("phase") or "-"
            rows.append(Row(kind, obj["metadata"]["name"], phase, figures_of(kind, obj)))
    for job in objects.get("Job", []):
        conditions = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"}
        phase = "Complete" if "Complete" in conditions else "Failed" if "Failed" in conditions else "Running"
        rows.append(Row("Job", job["metadata"]["name"], phase, figures_of("Job", job)))
    return rows
