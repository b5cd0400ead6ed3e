"""The condition helper and the first status each kind receives."""

from __future__ import annotations

from mlops_operator.planning.conditions import find_condition, set_condition


def test_transition_time_kept_while_status_holds() -> None:
    first = set_condition(None, "Ready", "False", "Waiting", "a", generation=1, now="T1")
    second = set_condition(first, "Ready", "False", "StillWaiting", "b", generation=2, now="T2")
    cond = find_condition(second, "Ready")
    assert cond == {
        "type": "Ready",
        "status": "False",
        "reason": "StillWaiting",
        "message": "b",
        "lastTransitionTime": "T1",
        "observedGeneration": 2,
    }


def test_transition_time_moves_when_status_flips() -> None:
    first = set_condition(None, "Ready", "False", "Waiting", "", generation=1, now="T1")
    flipped = set_condition(first, "Ready", "True", "Done", "", generation=1, now="T2")
    assert find_condition(flipped, "Ready")["lastTransitionTime"] == "T2"


def test_other_conditions_are_kept() -> None:
    conds = set_condition(None, "Available", "True", "Up", "", generation=1, now="T1")
    conds = set_condition(conds, "Ready", "True", "Up", "", generation=1, now="T1")
    assert [c["type"] for c in conds] == ["Available", "Ready"]
