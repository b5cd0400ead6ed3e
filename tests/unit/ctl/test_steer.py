"""`kubectl mlops` steering commands: the merge patch each writes (the documented field), and what they refuse."""

from __future__ import annotations

import json

import pytest
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.ctl.cli import build_parser
from mlops_operator.ctl.steer import (
    SteerError,
    approve_patch,
    outcome,
    pause_patch,
    request_patch,
)

AT = "2026-12-04T12:00:00Z"


def mldeploy(status: dict | None = None, **spec: object) -> dict:
    body = {"model": {"registeredModel": "iris", "alias": "production"}, **spec}
    return {"metadata": {"name": "iris", "resourceVersion": "7"}, "spec": body, "status": status or {}}


def test_promote_names_the_canary_version_and_step_status_shows() -> None:
    patch = request_patch("iris", mldeploy({"canaryVersion": 3, "step": 1}), "Promote", AT, reason="looks good")
    request = patch.body["spec"]["rolloutRequest"]
    assert request == {"action": "Promote", "version": 3, "step": 1, "requestedAt": AT, "reason": "looks good"}
    merged = {**mldeploy()["spec"], **patch.body["spec"]}
    assert DeploymentSpec.model_validate(merged).rollout_request is not None  # the API model accepts it
    command = patch.kubectl("ns")
    prefix = "kubectl -n ns patch mldeploy iris --type merge -p '"
    assert command.startswith(prefix) and json.loads(command[len(prefix) : -1]) == patch.body


def test_promote_full_and_abort_name_the_version_only() -> None:
    for action in ("PromoteFull", "Abort"):
        request = request_patch("iris", mldeploy({"canaryVersion": 3, "step": 0}), action, AT).body["spec"]
        assert request["rolloutRequest"] == {"action": action, "version": 3, "requestedAt": AT}


@pytest.mark.parametrize(
    ("status", "action", "version", "message"),
    [
        ({"stableVersion": 2}, "Abort", None, "runs no canary"),
        ({"canaryVersion": 3}, "Promote", 4, "the canary is version 3, not 4"),
        ({"canaryVersion": 3, "shadow": {"version": 3, "phase": "Running"}}, "Promote", None, "shadow step"),
    ],
    ids=["no-canary", "other-version", "shadow"],
)
def test_requests_that_cannot_apply_are_refused_before_anything_is_written(
    status: dict, action: str, version: int | None, message: str
) -> None:
    with pytest.raises(SteerError, match=message):
        request_patch("iris", mldeploy(status), action, AT, version)


def test_pause_and_resume_write_spec_paused_and_refuse_a_no_op() -> None:
    assert pause_patch("iris", mldeploy(), True).body == {"spec": {"paused": True}}
    assert pause_patch("iris", mldeploy(paused=True), False).body == {"spec": {"paused": False}}
    with pytest.raises(SteerError, match="already paused"):
        pause_patch("iris", mldeploy(paused=True), True)


def test_approve_sets_spec_promote_only_on_a_manual_version() -> None:
    manual = {"metadata": {"name": "iris-3"}, "spec": {"promotion": {"mode": "manual"}}}
    assert approve_patch("iris-3", manual).body == {"spec": {"promote": True}}
    with pytest.raises(SteerError, match="auto mode"):
        approve_patch("iris-3", {"metadata": {}, "spec": {}})
    with pytest.raises(SteerError, match="already approved"):
        approve_patch("iris-3", {"metadata": {}, "spec": {"promotion": {"mode": "manual"}, "promote": True}})


def test_the_outcome_is_read_only_for_our_request() -> None:
    handled = {"status": {"lastRequest": {"requestedAt": AT, "outcome": "Ignored", "message": "stale"}}}
    assert outcome(handled, AT) == ("Ignored", "stale")
    assert outcome(handled, "2026-12-04T12:00:01Z") is None


def test_steering_commands_are_part_of_kubectl_mlops_with_its_namespace_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["-n", "team-a", "promote", "iris", "--full"])
    assert (args.namespace, args.steer_command, args.full, args.name) == ("team-a", "promote", True, "iris")
    assert callable(args.run)
    assert parser.parse_args(["abort", "iris", "-n", "team-b"]).sub_namespace == "team-b"
    assert parser.parse_args(["approve", "iris-3"]).steer_command == "approve"
