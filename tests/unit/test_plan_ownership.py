"""Model ownership: who may register, promote and serve a registered model, and how a Deployment is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_operator.contract import ANNOTATION_SPEC_HASH, TAG_OWNER_NAMESPACE, TAG_READER_NAMESPACES
from mlops_operator.planning.deployment import plan_deployment, reads_due
from mlops_operator.planning.observed import Tracks
from mlops_operator.planning.ownership import ModelOwnership, recheck_after, refusal
from mlops_operator.planning.plan import Meta

from .builders import condition, observe, track
from .test_plan_rollout import APPROVED, canary_status, children, deployment, events, steady

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def model(owner: str | None = "team-a", readers: str | None = None, exists: bool = True) -> ModelOwnership:
    if not exists:
        return ModelOwnership.of("iris-classifier", None)
    tags = [{"key": "other", "value": "x"}]
    if owner is not None:
        tags.append({"key": TAG_OWNER_NAMESPACE, "value": owner})
    if readers is not None:
        tags.append({"key": TAG_READER_NAMESPACES, "value": readers})
    return ModelOwnership.of("iris-classifier", {"name": "iris-classifier", "tags": tags})


def test_the_owner_may_do_everything_and_a_new_model_is_open_to_its_first_registration() -> None:
    for action in ("register", "promote", "serve"):
        assert refusal("team-a", model(), action) is None
        assert refusal("team-b", model(exists=False), action) is None


def test_another_namespace_is_refused_with_the_owner_named() -> None:
    for action in ("register", "promote", "serve"):
        why = refusal("team-b", model(), action)
        assert why is not None and why.reason == "ModelOwnedElsewhere" and why.owner == "team-a"
        assert "belongs to namespace team-a" in why.message and "team-b" in why.message


def test_readers_may_serve_only() -> None:
    shared = model(readers=" team-b , team-c,")
    assert shared.readers == {"team-b", "team-c"}
    assert refusal("team-b", shared, "serve") is None
    assert refusal("team-b", shared, "register") is not None
    assert refusal("team-b", shared, "promote") is not None
    assert refusal("team-d", shared, "serve") is not None


def test_a_model_without_owner_is_refused_to_everyone_until_adopted() -> None:
    for namespace in ("team-a", "team-b"):
        why = refusal(namespace, model(owner=None), "serve")
        assert why is not None and why.reason == "ModelNotAdopted" and "models adopt iris-classifier" in why.message


def test_recheck_backs_off_from_15_seconds_to_5_minutes() -> None:
    assert recheck_after(0) == 15 and recheck_after(100) == 50 and recheck_after(10_000) == 300


def other_namespace(status: dict | None = None) -> dict:
    body = deployment(status)
    body["metadata"]["namespace"] = "team-b"
    return body


def test_a_deployment_in_another_namespace_serves_nothing_and_says_why() -> None:
    plan = plan_deployment(observe(other_namespace(), holder=1, ownership=model()), T0)
    assert plan.applies == [] and plan.alias_moves == [] and not plan.creates_after_status
    assert plan.status["phase"] == "Refused" and "belongs to namespace team-a" in plan.status["message"]
    ready = condition(plan.status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ModelOwnedElsewhere"
    assert events(plan) == ["ModelOwnedElsewhere"]
    assert plan.requeue_after == 15
    assert plan.status.get("stableVersion") is None  # nothing decided on a model it may not touch


def test_a_refused_deployment_reads_nothing_else() -> None:
    body = other_namespace()
    meta, obs = Meta.of(body), observe(body)
    reads = reads_due(meta, obs.spec, obs.status, Tracks(), "http://prom", None, False, T0, refused=True)
    assert reads.holder is None and reads.analysis is None and reads.drift is None and reads.source is None


def test_revoked_sharing_scales_the_running_tracks_to_zero_and_clears_their_hash() -> None:
    serving = plan_deployment(observe(other_namespace(), holder=1, ownership=model(readers="team-b")), T0)
    assert serving.status["phase"] == "Progressing"
    # As a list returns it (the store's view): no apiVersion or kind on the item.
    listed = {k: v for k, v in children(serving)["iris-stable"].items() if k not in ("apiVersion", "kind")}
    stable = listed | {"status": {}}
    body = other_namespace(serving.status)
    later = T0 + timedelta(minutes=1)
    revoked = plan_deployment(observe(body, holder=1, stable=stable, ownership=model()), later)
    assert revoked.status["phase"] == "Refused" and revoked.applies == []
    [(child, patch)] = revoked.patches
    assert (child["apiVersion"], child["kind"], child["metadata"]["name"]) == ("apps/v1", "Deployment", "iris-stable")
    assert patch == {"metadata": {"annotations": {ANNOTATION_SPEC_HASH: ""}}, "spec": {"replicas": 0}}
    assert events(revoked) == ["ModelOwnedElsewhere"]

    # shared again: the track is applied at its full spec
    allowed = plan_deployment(
        observe(other_namespace(revoked.status), holder=1, stable=track(0), ownership=model(readers="team-b")), later
    )
    assert allowed.status["phase"] != "Refused" and children(allowed)["iris-stable"]["spec"]["replicas"] == 4


def test_mlflow_down_keeps_a_refusal_and_keeps_serving_what_was_allowed() -> None:
    refused = plan_deployment(observe(other_namespace(), holder=1, ownership=model()), T0)
    later = T0 + timedelta(minutes=2)
    still = plan_deployment(observe(other_namespace(refused.status), ownership_error="MLflow is unreachable"), later)
    assert still.status["phase"] == "Refused" and still.applies == []
    assert condition(still.status, "Degraded")["reason"] == "MlflowUnavailable"
    assert events(still) == []  # the refusal is not announced twice

    body = deployment(steady())
    serving = plan_deployment(observe(body, holder_error="MLflow is unreachable", ownership_error="down"), later)
    assert serving.status["phase"] != "Refused" and serving.status["stableVersion"] == 1
    assert condition(serving.status, "Degraded")["reason"] == "MlflowUnavailable"


def test_a_reader_serves_the_alias_holder_but_starts_no_canary_and_no_retraining() -> None:
    body = other_namespace(steady())
    body["spec"]["retraining"] = {"enabled": True}
    obs = observe(body, holder=1, approved=APPROVED, stable_ready=4, ownership=model(readers="team-b"))
    plan = plan_deployment(obs, T0)
    assert plan.status.get("canaryVersion") is None and not plan.alias_moves
    assert "retraining is off" in plan.status["retraining"]["message"]


def test_the_owner_is_unaffected() -> None:
    body = deployment(canary_status(0, T0))
    plan = plan_deployment(observe(body, holder=1, approved=APPROVED, ownership=model(owner="ns")), T0)
    assert plan.status["canaryVersion"] == 2 and plan.status["phase"] == "Progressing"
