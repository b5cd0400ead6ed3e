"""Routing: a namespace's policies only, their triggers and model filters."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_operator.notify.routing import plan_deliveries
from mlops_operator.planning.plan import Event

from .builders import MODEL_VERSION_REJECTED, policy

NOW = datetime(2026, 12, 4, tzinfo=UTC)
REJECTED = [Event("Rejected", "gate failed", "Warning")]


def deliveries(*policies: dict, events: list[Event] = REJECTED) -> list[tuple[str, str]]:
    body = MODEL_VERSION_REJECTED
    return [(d.policy, d.destination) for d in plan_deliveries(list(policies), body, body["status"], events, NOW)]


def test_only_policies_of_the_objects_namespace_receive_it() -> None:
    assert deliveries(policy("mine"), policy("theirs", namespace="team-b")) == [("mine", "hook")]


def test_trigger_filters_of_policy_and_destination() -> None:
    two = [
        {"name": "all", "url": "http://a/"},
        {"name": "promotions", "url": "http://b/", "triggers": ["Promoted"]},
    ]
    assert deliveries(policy(destinations=two)) == [("alerts", "all")]
    assert deliveries(policy(triggers=["Trained"])) == []
    assert deliveries(policy(triggers=["Rejected"])) == [("alerts", "hook")]


def test_model_filter_suspend_and_events_that_are_no_trigger() -> None:
    assert deliveries(policy(models=["other"])) == []
    assert deliveries(policy(models=["iris"])) == [("alerts", "hook")]
    assert deliveries(policy(suspend=True)) == []
    assert deliveries(policy(), events=[Event("Superseded", "x")]) == []


def test_one_payload_per_event_shared_by_destinations() -> None:
    body = MODEL_VERSION_REJECTED
    dests = [{"name": "a", "url": "http://a/"}, {"name": "b", "type": "slack", "urlSecretKey": "slack"}]
    planned = plan_deliveries([policy(destinations=dests)], body, body["status"], REJECTED, NOW)
    assert [d.type for d in planned] == ["webhook", "slack"] and planned[0].payload is planned[1].payload
    assert planned[1].url is None and planned[1].url_secret_key == "slack"


def test_an_invalid_stored_spec_is_skipped() -> None:
    assert deliveries({"metadata": {"namespace": "team-a", "name": "bad"}, "spec": {"destinations": []}}) == []
