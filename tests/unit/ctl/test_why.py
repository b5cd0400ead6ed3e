"""why: phase and message, the facts that decide it per kind, conditions, and the object's own Events."""

from __future__ import annotations

from mlops_operator.ctl.style import Style
from mlops_operator.ctl.why import RECENT_EVENTS, events_about, explain, render_explanation

from .objects import MODEL, namespace_objects

PLAIN = Style(False)


def event(uid: str, reason: str, at: str, kind: str = "Normal", count: int = 1) -> dict:
    return {
        "involvedObject": {"uid": uid},
        "reason": reason,
        "message": f"{reason} happened",
        "type": kind,
        "lastTimestamp": at,
        "count": count,
    }


def test_events_are_matched_by_uid_and_sorted() -> None:
    objects = namespace_objects()
    dataset, dep = objects["Dataset"][0], objects["Deployment"][0]  # both named iris
    events = [
        event("uid-dep-iris", "CanaryStep", "2026-12-04T10:26:00Z"),
        event("uid-ds-iris", "NewVersion", "2026-12-04T10:00:10Z"),
        event("uid-dep-iris", "Serving", "2026-12-04T10:01:00Z"),
    ]
    assert [e["reason"] for e in events_about(dep, events)] == ["Serving", "CanaryStep"]
    assert [e["reason"] for e in events_about(dataset, events)] == ["NewVersion"]


def test_rejected_model_version_shows_the_failing_gate_and_condition() -> None:
    mv = namespace_objects()["ModelVersion"][3]
    mv["status"]["message"] = "gate f1_macro: 0.500 < 0.960"
    mv["status"]["conditions"] = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Rejected",
            "message": "gate f1_macro: 0.500 < 0.960",
            "lastTransitionTime": "2026-12-04T09:00:05Z",
        }
    ]
    events = [event("uid-mv-3", "Rejected", "2026-12-04T09:00:05Z", "Warning")]
    text = render_explanation(explain(mv, events, PLAIN), PLAIN)
    assert text.splitlines() == [
        f"ModelVersion {MODEL}-3 is Rejected: gate f1_macro: 0.500 < 0.960",
        f"  {MODEL} version 3, alias 'production', mode auto",
        "  gate f1_macro 0.500 vs 0.960 ✗",
        "",
        "CONDITIONS",
        "  Ready        False  Rejected  since 2026-12-04T09:00:05Z",
        "      gate f1_macro: 0.500 < 0.960",
        "",
        f"EVENTS (last {RECENT_EVENTS})",
        "  2026-12-04T09:00:05Z  Warning Rejected: Rejected happened",
    ]


def test_manual_model_version_says_it_waits_for_approval() -> None:
    mv = namespace_objects()["ModelVersion"][2]
    mv["spec"]["promotion"]["mode"] = "manual"
    assert "manual mode: waiting for spec.promote: true" in explain(mv, [], PLAIN).facts


def test_deployment_facts_show_canary_analysis_rollback_and_drift() -> None:
    dep = namespace_objects()["Deployment"][0]
    dep["status"]["stepStartedAt"] = "2026-12-04T10:26:00Z"
    facts = explain(dep, [], PLAIN).facts
    assert facts == [
        "stable v9",
        "canary v10 at 50%, step 2 since 2026-12-04T10:26:00Z; a passing analysis in this step: not yet;"
        " failed analyses 0, erring ones in a row 0",
        "analysis error-rate 0.000 vs 0.050 ✓",
        "analysis latency-p99 - vs 2.000 ? (Prometheus unreachable)",
        "last rollback: v11 AnalysisFailed at 2026-12-04T10:25:00Z: error-rate 0.2 > max 0.05",
        "drift: psi 0.007 (sepal_length, 1372 samples)",
    ]


def test_dataset_and_run_facts() -> None:
    objects = namespace_objects()
    ds = objects["Dataset"][0]
    ds["status"].update(
        phase="Invalid", violations=[{"column": "species", "rule": "values", "message": "'x' is not allowed"}]
    )
    assert "violation: species values: 'x' is not allowed" in explain(ds, [], PLAIN).facts
    lost = objects["TrainingRun"][3]
    del lost["status"]["datasetVersion"]
    assert explain(lost, [], PLAIN).facts[0] == "dataset gone (no version pinned yet)"


def test_only_the_most_recent_events_and_counts() -> None:
    dep = namespace_objects()["Deployment"][0]
    events = [event("uid-dep-iris", f"R{i:02d}", f"2026-12-04T10:{i:02d}:00Z") for i in range(15)]
    events.append(event("uid-dep-iris", "DriftCheckFailed", "2026-12-04T10:59:00Z", "Warning", count=3))
    why = explain(dep, events, PLAIN)
    assert len(why.events) == RECENT_EVENTS and why.events[-1]["reason"] == "DriftCheckFailed"
    assert "Warning DriftCheckFailed x3: DriftCheckFailed happened" in render_explanation(why, PLAIN)
    assert "CONDITIONS  (none yet: the operator has not reconciled it)" in render_explanation(why, PLAIN)
