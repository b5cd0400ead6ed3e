"""The demo's quality stage: the loop judged on answers, not inputs.

After the drift stage the Deployment turns on label feedback (performance monitoring, a shadow step and a
canary judged on live accuracy) and the traffic sends each answer's true label back. Then the relationship
between inputs and label changes while the inputs stay as they were (concept drift: PSI stays low): live
accuracy falls, PerformanceDegraded, a retraining run on the newly labelled data, a shadow step that
compares the candidate's answers with the stable's, and a canary that wins on live accuracy.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .demoloop import Check, LoopResult, Snapshot, StageError, retrained_and_promoted

if TYPE_CHECKING:
    from .demoloop import Loop, Traffic

Obj = dict[str, Any]
# The concept change: virginica flowers with petals shorter than that species' median are now called
# versicolor. A model trained before it calls them virginica: accuracy falls by about a sixth.
CONCEPT_CHANGE = {"from_label": "virginica", "to_label": "versicolor", "feature": "petal_length"}
PERFORMANCE_CAUSE = "performance"


def performance_on(version: int | None, degraded: bool) -> Check:
    """A check that passes once a verdict on `version`'s live quality says degraded (or healthy)."""

    def check(snap: Snapshot) -> bool:
        performance = snap.deployment.get("performance") or {}
        return (
            version is not None
            and performance.get("version") == version
            and performance.get("value") is not None
            and snap.condition("PerformanceDegraded") == ("True" if degraded else "False")
        )

    return check


def performance_retraining(snap: Snapshot) -> Obj | None:
    """The retraining run PerformanceDegraded caused, once it exists."""
    runs = snap.retraining_runs(PERFORMANCE_CAUSE)
    return runs[-1] if runs else None


def shadow_passed(snap: Snapshot) -> Obj | None:
    """The shadow step's status once it passed (the canary's first step follows)."""
    shadow = snap.deployment.get("shadow") or {}
    return shadow if shadow.get("phase") == "Passed" else None


def change_concept(settings_data: Any, target: str) -> int:
    """Rewrite the data set with the moved class boundary (atomically); returns the relabelled rows."""
    import pandas as pd

    from .worker.sample_data import move_boundary, write_frame

    frame = pd.read_csv(settings_data)
    moved = move_boundary(frame, target, **CONCEPT_CHANGE)
    changed = settings_data.with_suffix(".relabelled.csv")
    write_frame(moved, changed)
    os.replace(changed, settings_data)  # atomic: the validator and the traffic never read half a file
    return int((moved[target] != frame[target]).sum())


def run_quality_stage(
    loop: Loop,
    operator: subprocess.Popen[bytes],
    traffic: Traffic,
    apply: Callable[[Obj], None],
    quality_deployment: Obj,
    serving: int,
) -> None:
    """Turn on the label-based settings, change the concept, and follow the loop until the retrained version
    serves and its live accuracy is healthy; raises StageError where it stops short."""
    settings, out = loop.s, loop.out
    apply(quality_deployment)
    traffic.labels = settings.target
    loop.mark("labels on")
    out(
        "==> true labels now go back as feedback; performance monitoring, a shadow step and a canary judged on"
        " live accuracy are on"
    )
    loop.wait(f"live accuracy measured on v{serving}: healthy", performance_on(serving, degraded=False), operator)
    relabelled = change_concept(settings.data, settings.target)
    loop.mark("concept change")
    out(
        f"==> concept change: {relabelled} {CONCEPT_CHANGE['from_label']} rows with short"
        f" {CONCEPT_CHANGE['feature']} are now {CONCEPT_CHANGE['to_label']}, in the data set and in the labels;"
        " the inputs are unchanged"
    )
    loop.wait("PerformanceDegraded", performance_on(serving, degraded=True), operator)
    loop.wait("retraining TrainingRun created for performance", performance_retraining, operator)
    loop.wait("shadow step passed", shadow_passed, operator)
    third = loop.wait(
        "retrained version promoted through the canary on live accuracy",
        lambda snap: retrained_and_promoted(snap, PERFORMANCE_CAUSE),
        operator,
    )
    loop.wait(f"live accuracy measured on v{third}: healthy", performance_on(third, degraded=False), operator)
    if not any(result.get("passed") and result.get("version") == third for result in loop.result.live_accuracy):
        raise StageError(f"v{third} was promoted, but no passing live-accuracy analysis of it was seen")


def quality_summary_lines(result: LoopResult) -> list[str]:
    """The quality stage in the closing summary: accuracy before, at its lowest and after; shadow; canary."""
    lines: list[str] = []
    judged = [p for p in result.performance_checks if p.get("value") is not None]
    if judged:
        lowest = min(judged, key=lambda p: p["value"])
        stages = (("before the change", judged[0]), ("at its lowest", lowest), ("after retraining", judged[-1]))
        for title, check in stages:
            lines.append(f"  live {check.get('metric')} {title}: {_performance(check)}")
    final_shadow = next((s for s in reversed(result.shadow_checks) if s.get("phase") != "Running"), None)
    if final_shadow:
        lines.append(f"  shadow step on v{final_shadow.get('version')}: {_shadow(final_shadow)}")
    passed = [a for a in result.live_accuracy if a.get("passed")]
    if passed:
        lines.append(f"  canary live accuracy on v{passed[-1].get('version')}: {passed[-1].get('message')}")
    marks = result.marks
    for start, end in (
        ("concept change", "PerformanceDegraded"),
        ("concept change", "retraining TrainingRun created for performance"),
        ("retraining TrainingRun created for performance", "shadow step passed"),
    ):
        if {start, end} <= marks.keys():
            lines.append(f"  {start} -> {end}: {result.between(start, end):.1f}s")
    promoted = next((m for m in marks if m.startswith("retrained version promoted through the canary on")), None)
    if promoted and "concept change" in marks:
        lines.append(f"  concept change -> new version at 100%: {result.between('concept change', promoted):.1f}s")
    return lines


def _performance(check: Obj) -> str:
    return f"{check['value']:.3f} over {check.get('labels')} labels on v{check.get('version')}"


def _shadow(shadow: Obj) -> str:
    agreement = shadow.get("agreement")
    figures = [
        shadow.get("phase") or "",
        f"agreement {agreement:.1%}" if agreement is not None else "",
        f"{shadow.get('rows')} rows over {shadow.get('requests')} mirrored requests",
        f"error rate {shadow['errorRate']:.1%}" if shadow.get("errorRate") is not None else "",
    ]
    if shadow.get("latencyP95") is not None and shadow.get("stableLatencyP95") is not None:
        figures.append(f"p95 {shadow['latencyP95'] * 1000:.1f} ms vs stable {shadow['stableLatencyP95'] * 1000:.1f} ms")
    return ", ".join(f for f in figures if f)
