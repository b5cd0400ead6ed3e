"""The lineage tree as text: one line per object, its key facts beside it. Pure (nodes in, text out)."""

from __future__ import annotations

from typing import Any

from .lineage import CANARY, Node
from .style import Style

HASH_CHARS = 19  # "sha256:" and 12 hex digits: enough to tell versions apart, as the demo's table shows them


def number(value: Any) -> str:
    """A metric value: three decimals for fractions, as is for integers."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.3f}" if isinstance(value, float) else str(value)


def judged(result: dict[str, Any], style: Style, key: str = "name") -> str:
    """`metric value vs threshold ✓` for a gate or an analysis result."""
    value, threshold = number(result.get("value")), number(result.get("threshold"))
    return f"{result.get(key)} {value} vs {threshold} {style.verdict(result.get('passed'))}"


def _dataset(facts: dict[str, Any], style: Style) -> list[str]:
    parts = []
    if facts.get("version"):
        parts.append(f"version {str(facts['version'])[:HASH_CHARS]}")
    if facts.get("rows") is not None:
        parts.append(f"rows {facts['rows']}")
    if facts.get("violations"):
        parts.append(style.paint(f"{facts['violations']} violation(s)", "red"))
    return parts


def _run(facts: dict[str, Any], style: Style) -> list[str]:
    parts = [" ".join(f"{k} {number(v)}" for k, v in facts["metrics"].items())] if facts.get("metrics") else []
    if facts.get("triggeredBy"):
        parts.append(f"triggered by {facts['triggeredBy']}")
    if not facts.get("metrics") and facts.get("message"):
        parts.append(style.paint(str(facts["message"]), "dim"))
    return parts


def _model_version(facts: dict[str, Any], style: Style) -> list[str]:
    parts = [f"v{facts.get('version')}"]
    if facts.get("promotedAt"):
        parts.append(f"promoted to '{facts.get('alias')}' {facts['promotedAt']}")
    gates = [judged(g, style, "metric") for g in facts.get("gates") or []]
    if gates:
        parts.append("gates " + ", ".join(gates))
    return parts


def _canary(facts: dict[str, Any], style: Style, analysis: bool) -> list[str]:
    step = facts.get("step")
    where = f" step {step + 1}/{facts.get('steps') or '?'}" if step is not None else ""
    shadow = f" shadow {facts['shadow']}" if facts.get("shadow") else ""
    parts = [f"canary v{facts['canaryVersion']} {facts.get('canaryWeight') or 0}%{where}{shadow}"]
    checks = [judged(r, style) + (f" ({r['error']})" if r.get("error") else "") for r in facts.get("analysis") or []]
    if analysis and checks:
        parts.append("analysis " + ", ".join(checks))
    return parts


def _drift(drift: dict[str, Any] | None, style: Style) -> list[str]:
    if not drift:
        return []
    if drift.get("score") is None:
        return [f"drift: no verdict ({drift.get('samples') or 0} samples)"]
    over = drift.get("threshold") is not None and drift["score"] > drift["threshold"]
    text = f"drift {drift.get('method')} {number(drift['score'])} ({drift.get('feature')})"
    return [style.paint(text, "red") if over else text]


def _deployment(facts: dict[str, Any], style: Style, role: str | None) -> list[str]:
    # Under its canary's ModelVersion a Deployment shows the canary; under its stable one, or as a root,
    # what it serves (the canary in brief), drift of the serving version and readiness.
    has_canary = facts.get("canaryVersion") is not None
    if role == CANARY and has_canary:
        return _canary(facts, style, analysis=True)
    stable = facts.get("stableVersion")
    parts = [f"stable v{stable}" if stable is not None else "no stable version"]
    if has_canary:
        parts += _canary(facts, style, analysis=role is None)
    replicas = facts.get("replicas")
    return [*parts, *_drift(facts.get("drift"), style), f"ready {facts.get('readyReplicas') or 0}/{replicas}"]


_FACTS = {"Dataset": _dataset, "TrainingRun": _run, "ModelVersion": _model_version}


def node_line(node: Node, style: Style) -> str:
    """`Kind name [role]  Phase  facts...` for one node."""
    head = f"{style.kind(node.kind)} {style.name(node.name)}"
    if node.role:
        head += f" [{node.role}]"
    if node.missing:
        return f"{head}  {style.paint('(not found)', 'red')}"
    if node.kind == "Deployment":
        facts = _deployment(node.facts, style, node.role)
    else:
        facts = _FACTS[node.kind](node.facts, style)
    return "  ".join([head, style.phase(node.phase), *[f for f in facts if f]])


def render_tree(roots: list[Node], style: Style) -> str:
    """Every root and its descendants, drawn with box-drawing branches."""
    lines: list[str] = []

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(prefix + branch + node_line(node, style))
        inner = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            walk(child, inner, i == len(node.children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return "\n".join(lines)
