"""The operator's cross-kind lookups over its in-memory view."""

from __future__ import annotations

from mlops_operator.controllers.store import Store, collection_paths


def obj(name: str, namespace: str = "ns", spec: dict | None = None, status: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec or {}, "status": status or {}}


def test_lookups_follow_puts_and_deletes() -> None:
    store = Store()
    store.put("TrainingRun", obj("waits", spec={"datasetRef": {"name": "iris"}}))
    store.put("TrainingRun", obj("started", spec={"datasetRef": {"name": "iris"}}, status={"jobName": "j"}))
    assert store.waiting_trainingruns("ns", "iris") == ["waits"]
    store.put("Deployment", obj("iris", spec={"model": {"registeredModel": "m", "alias": "production"}}))
    store.put("Deployment", obj("pinned", spec={"model": {"registeredModel": "m", "version": 3}}))
    assert store.rollout_deployments("ns", "m", "production") == ["iris"]
    assert store.rollout_deployments("other", "m", "production") == []
    approved = obj("m-2", spec={"registeredModel": "m", "version": 2}, status={"phase": "Approved"})
    store.put("ModelVersion", approved)
    store.put("ModelVersion", obj("m-1", spec={"registeredModel": "m", "version": 1}, status={"phase": "Promoted"}))
    assert store.approved_versions("ns", "m", "production") == {2: "m-2"}
    assert store.promoted_versions("m") == [("ns", "m-1")]
    store.delete("ModelVersion", "ns", "m-2")
    assert store.approved_versions("ns", "m", "production") == {}


def test_seeding_lists_each_kind_per_watched_namespace_or_cluster_wide() -> None:
    assert len(collection_paths(["a", "b"])) == 2 * len(collection_paths([]))
    kinds = {kind: (path, selector) for kind, path, selector in collection_paths([])}
    assert kinds["ServingDeployment"] == ("/apis/apps/v1/deployments", "app.kubernetes.io/managed-by=mlops-operator")


def test_jobs_keep_what_outcomes_need_and_drop_the_env() -> None:
    store = Store()
    job = obj(
        "iris-check-g1-0",
        spec={
            "activeDeadlineSeconds": 60,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "env": [{"name": "X", "value": "big"}],
                            "resources": {"limits": {"memory": "1Gi"}},
                        }
                    ]
                }
            },
        },
        status={"conditions": [{"type": "Failed", "status": "True"}]},
    )
    job["metadata"]["annotations"] = {"mlops.dev/dataset-version": "sha256:abc"}
    store.put("Job", job)
    kept = store.get("Job", "ns", "iris-check-g1-0")
    assert kept is not None and "env" not in kept["spec"]["template"]["spec"]["containers"][0]
    assert kept["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}}
    assert kept["status"]["conditions"][0]["type"] == "Failed"
    assert kept["metadata"]["annotations"]["mlops.dev/dataset-version"] == "sha256:abc"


def test_a_listing_drops_what_was_deleted_unseen_and_returns_it() -> None:
    store = Store()
    store.put("Service", obj("kept"))
    store.put("Service", obj("gone-in-the-gap"))
    dropped = store.replace("Service", [obj("kept"), obj("new-while-away")])
    assert sorted(store.keys("Service")) == [("ns", "kept"), ("ns", "new-while-away")]
    assert [key for key, _ in dropped] == [("ns", "gone-in-the-gap")]


def test_watch_events_newer_than_the_list_win_over_it() -> None:
    store = Store()
    store.put("TrainingRun", obj("deleted-after-list-was-sent", status={"phase": "Running"}))
    store.put("TrainingRun", obj("changed-after", status={"phase": "Running"}))
    listed_at = store.revision  # the LIST is sent now; its answer arrives after the events below
    store.delete("TrainingRun", "ns", "deleted-after-list-was-sent")
    store.put("TrainingRun", obj("changed-after", status={"phase": "Succeeded"}))
    store.put("TrainingRun", obj("created-after"))
    listing = [obj("deleted-after-list-was-sent", status={"phase": "Running"}), obj("changed-after", status={})]
    dropped = store.replace("TrainingRun", listing, listed_at)
    assert store.get("TrainingRun", "ns", "deleted-after-list-was-sent") is None  # the tombstone held
    assert store.get("TrainingRun", "ns", "changed-after")["status"]["phase"] == "Succeeded"
    assert store.get("TrainingRun", "ns", "created-after") is not None
    assert dropped == []
    # Stamps the listing settled are dropped; only those newer than it are kept, so they do not pile up.
    assert set(store.stamps["TrainingRun"]) == {
        ("ns", "deleted-after-list-was-sent"),
        ("ns", "changed-after"),
        ("ns", "created-after"),
    }
    store.replace("TrainingRun", [obj("changed-after"), obj("created-after")])
    assert store.stamps["TrainingRun"] == {}


def test_bodies_of_our_kinds_are_kept_whole_but_managed_fields_only_for_the_recorded_writers() -> None:
    store = Store()
    promote = {
        "manager": "kubectl-edit",
        "operation": "Update",
        "time": "t2",
        "fieldsV1": {"f:spec": {"f:promote": {}}},
    }
    applied = {"manager": "argocd", "operation": "Apply", "time": "t1", "fieldsV1": {"f:spec": {"f:gates": {}}}}
    version = obj("m-1", spec={"registeredModel": "m", "version": 1, "promote": True}, status={"phase": "Approved"})
    version["metadata"]["managedFields"] = [applied, promote]
    store.put("ModelVersion", version)
    cached = store.body("ModelVersion", "ns", "m-1")
    assert cached is not None and cached["spec"] == version["spec"] and cached["status"] == version["status"]
    assert cached["metadata"]["managedFields"] == [promote]
    cached["spec"]["promote"] = False
    assert store.body("ModelVersion", "ns", "m-1")["spec"]["promote"] is True, "every read is a fresh copy"
    store.put("Job", obj("a-job"))
    assert store.body("Job", "ns", "a-job") is None, "children are kept as summaries only"
    store.replace("ModelVersion", [obj("m-2")])
    assert store.body("ModelVersion", "ns", "m-1") is None and store.body("ModelVersion", "ns", "m-2") is not None
    assert "ModelVersion" in store.listed and "Dataset" not in store.listed
    store.delete("ModelVersion", "ns", "m-2")
    assert store.body("ModelVersion", "ns", "m-2") is None


def versioned(name: str, resource_version: str, phase: str, uid: str = "u1") -> dict:
    body = obj(name, spec={"registeredModel": "m", "version": 2}, status={"phase": phase})
    body["metadata"] |= {"uid": uid, "resourceVersion": resource_version}
    return body


def test_a_watch_event_older_than_a_write_answer_does_not_take_the_store_back() -> None:
    store = Store()
    store.put("ModelVersion", versioned("m-2", "9", "Validating"))
    assert store.put("ModelVersion", versioned("m-2", "12", "Approved"))  # what the status write answered
    # The watch still delivers version 10 (and 9 again) after that: the approval stays seen.
    assert not store.put("ModelVersion", versioned("m-2", "10", "Validating"))
    assert not store.put("ModelVersion", versioned("m-2", "9", "Validating"))
    assert store.approved_versions("ns", "m", "production") == {2: "m-2"}
    assert store.body("ModelVersion", "ns", "m-2")["metadata"]["resourceVersion"] == "12"
    # The very same version again is nothing new (a restart's listing repeats the seed); a newer one, a
    # re-created object (new uid) or an opaque version is recorded.
    revision = store.revision
    assert not store.put("ModelVersion", versioned("m-2", "12", "Approved")) and store.revision == revision
    assert store.put("ModelVersion", versioned("m-2", "13", "Promoted"))
    assert store.put("ModelVersion", versioned("m-2", "5", "Validating", uid="u2"))
    assert store.put("ModelVersion", versioned("m-2", "opaque", "Approved", uid="u2"))
    assert store.approved_versions("ns", "m", "production") == {2: "m-2"}
