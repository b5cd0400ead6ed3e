"""NotificationPolicy status: Ready, Invalid with the problems (one Warning Event per new message), Suspended."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_operator.api.notification import NotificationPolicySpec
from mlops_operator.planning.notificationpolicy import plan_notificationpolicy

NOW = datetime(2026, 12, 4, tzinfo=UTC)
BODY = {"metadata": {"namespace": "team-a", "name": "alerts", "uid": "u", "generation": 2}, "spec": {}}
SPEC = NotificationPolicySpec.model_validate({"destinations": [{"name": "hook", "url": "http://a/"}]})


def test_ready_names_the_destinations() -> None:
    plan = plan_notificationpolicy(BODY, SPEC, [], NOW)
    assert plan.status["phase"] == "Ready" and plan.status["observedGeneration"] == 2
    ready = plan.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "DestinationsReady")
    assert plan.status["message"] == "sending to hook" and not plan.events


def test_invalid_says_why_and_warns_once() -> None:
    problems = ["destination hook: urlSecretKey 'slack' is not mounted"]
    plan = plan_notificationpolicy(BODY, SPEC, problems, NOW)
    assert plan.status["phase"] == "Invalid" and plan.status["problems"] == problems
    assert [e.reason for e in plan.events] == ["DestinationUnusable"]
    again = plan_notificationpolicy({**BODY, "status": plan.status}, SPEC, problems, NOW)
    assert again.events == [] and again.status["conditions"][0]["status"] == "False"


def test_suspended() -> None:
    spec = SPEC.model_copy(update={"suspend": True})
    assert plan_notificationpolicy(BODY, spec, [], NOW).status["phase"] == "Suspended"
