"""A retraining run asks for fresh data: the Dataset re-checks its source, the run waits for that check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_operator.contract import ANNOTATION_DATA_NOT_BEFORE
from mlops_operator.controllers.store import Store
from mlops_operator.planning.conditions import find_condition
from mlops_operator.planning.dataset import plan_dataset, refresh_job_name
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.trainingrun import plan_trainingrun, training_job_name

from .builders import observe_dataset, observe_trainingrun, wanted

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset(last_checked: datetime | None, generation: int = 1, **status: object) -> dict:
    """A Ready Dataset whose last check (iris-check-g1-0) is recorded."""
    recorded: dict = {
        "observedGeneration": 1,
        "phase": "Ready",
        "version": "sha256:abc",
        "jobName": "iris-check-g1-0",
        "checkedJob": "iris-check-g1-0",
        **status,
    }
    if last_checked is not None:
        recorded["lastChecked"] = stamp(last_checked)
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": generation},
        "spec": {"source": {"uri": "file:///d/iris.csv", "format": "csv"}, "target": "species"},
        "status": recorded,
    }


def trainingrun(not_before: str | None) -> dict:
    meta: dict = {"namespace": "ns", "name": "iris-retrain-20261123-120000", "uid": "0123456789ab", "generation": 1}
    if not_before is not None:
        meta["annotations"] = {ANNOTATION_DATA_NOT_BEFORE: not_before, "mlops.dev/drift-feature": "petal_length"}
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": meta,
        "spec": {
            "datasetRef": {"name": "iris"},
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "registeredModel": "iris-classifier",
        },
        "status": {},
    }


def test_refresh_job_names_are_one_per_request_time() -> None:
    meta = Meta.of(dataset(T0))
    assert refresh_job_name(meta, T0) == f"iris-check-g1-r{int(T0.timestamp())}"
    assert refresh_job_name(meta, T0 + timedelta(seconds=1)) != refresh_job_name(meta, T0)
    assert refresh_job_name(Meta.of(dataset(T0, generation=2)), T0).startswith("iris-check-g2-r")


def test_a_requested_refresh_starts_a_check_when_the_last_one_is_older() -> None:
    body = dataset(T0 - timedelta(hours=1))
    name = wanted(body, T0 + timedelta(seconds=5), stamp(T0))
    assert name == refresh_job_name(Meta.of(body), T0) == f"iris-check-g1-r{int(T0.timestamp())}"
    assert wanted(body, T0 + timedelta(minutes=3), stamp(T0)) == name  # the same request, the same check
    assert wanted(body, T0, None) == "iris-check-g1-0"  # nobody asked: no check
    plan = plan_dataset(observe_dataset(body, name), T0)
    assert [j["metadata"]["name"] for j in plan.creates_after_status] == [name] and plan.creates == []
    assert plan.status["jobName"] == name and plan.status["phase"] == "Ready"  # usable while it re-checks
    ready = find_condition(plan.status["conditions"], "Ready")
    assert ready is not None and ready["status"] == "True"


def test_no_refresh_when_the_last_check_is_as_new_as_asked() -> None:
    assert wanted(dataset(T0 + timedelta(minutes=1)), T0 + timedelta(minutes=2), stamp(T0)) == "iris-check-g1-0"
    assert wanted(dataset(T0), T0 + timedelta(minutes=2), stamp(T0)) == "iris-check-g1-0"


def test_a_check_in_progress_or_a_new_generation_goes_first() -> None:
    in_progress = dataset(T0 - timedelta(hours=1), jobName="iris-check-g1-r1")
    assert wanted(in_progress, T0, stamp(T0)) == "iris-check-g1-r1"
    new_generation = dataset(T0 - timedelta(hours=1), generation=2)
    assert wanted(new_generation, T0, stamp(T0)) == "iris-check-g2-0"


def test_a_dataset_never_checked_but_recorded_gets_the_requested_check() -> None:
    body = dataset(None)
    assert wanted(body, T0, stamp(T0)) == refresh_job_name(Meta.of(body), T0)


def waiting_reason(plan) -> tuple[str, str]:
    ready = find_condition(plan.status.get("conditions"), "Ready")
    assert ready is not None
    return ready["status"], ready["reason"]


def test_a_run_needing_fresh_data_waits_for_the_dataset_recheck() -> None:
    run = trainingrun(stamp(T0))
    plan = plan_trainingrun(observe_trainingrun(run, dataset(T0 - timedelta(hours=1))), T0)
    assert plan.creates == [] and plan.creates_after_status == []
    assert waiting_reason(plan) == ("False", "WaitingForFreshData")
    assert plan.status["phase"] == "Pending" and stamp(T0) in plan.status["message"]
    assert plan.wake == [("Dataset", "ns", "iris")]
    assert plan.status["jobName"] is None
    never_checked = plan_trainingrun(observe_trainingrun(run, dataset(None)), T0)
    assert never_checked.creates == [] and waiting_reason(never_checked) == ("False", "WaitingForFreshData")


def test_the_run_starts_once_the_dataset_was_checked_after_the_decision() -> None:
    run = trainingrun(stamp(T0))
    fresh = dataset(T0 + timedelta(seconds=40))
    plan = plan_trainingrun(observe_trainingrun(run, fresh), T0 + timedelta(minutes=1))
    (job,) = plan.creates
    assert job["metadata"]["name"] == training_job_name(Meta.of(run)) == plan.status["jobName"]
    assert job["metadata"]["annotations"]["mlops.dev/dataset-version"] == "sha256:abc"
    assert plan.wake == [] and waiting_reason(plan) == ("False", "JobCreated")
    same_second = plan_trainingrun(observe_trainingrun(run, dataset(T0)), T0)
    assert len(same_second.creates) == 1  # checked at the asked time counts as fresh


def test_runs_without_the_annotation_or_with_an_unreadable_one_do_not_wait() -> None:
    stale = dataset(T0 - timedelta(days=30))
    assert len(plan_trainingrun(observe_trainingrun(trainingrun(None), stale), T0).creates) == 1
    plan = plan_trainingrun(observe_trainingrun(trainingrun("yesterday"), stale), T0)
    assert len(plan.creates) == 1 and plan.wake == []


def test_the_store_reports_the_latest_refresh_waiting_runs_ask_for() -> None:
    store = Store()
    assert store.refresh_requested("ns", "iris", ANNOTATION_DATA_NOT_BEFORE) is None
    plain = trainingrun(None)
    plain["metadata"]["name"] = "manual"
    store.put("TrainingRun", plain)
    assert store.refresh_requested("ns", "iris", ANNOTATION_DATA_NOT_BEFORE) is None
    early, late = trainingrun(stamp(T0)), trainingrun(stamp(T0 + timedelta(hours=2)))
    early["metadata"]["name"], late["metadata"]["name"] = "retrain-a", "retrain-b"
    store.put("TrainingRun", early)
    store.put("TrainingRun", late)
    assert store.refresh_requested("ns", "iris", ANNOTATION_DATA_NOT_BEFORE) == stamp(T0 + timedelta(hours=2))
    assert store.refresh_requested("other", "iris", ANNOTATION_DATA_NOT_BEFORE) is None
    assert store.refresh_requested("ns", "wine", ANNOTATION_DATA_NOT_BEFORE) is None
    # A run that started its Job no longer waits; the earlier request is what is left.
    late["status"] = {"jobName": "retrain-b-01234567", "phase": "Running"}
    store.put("TrainingRun", late)
    assert store.refresh_requested("ns", "iris", ANNOTATION_DATA_NOT_BEFORE) == stamp(T0)
    store.delete("TrainingRun", "ns", "retrain-a")
    assert store.refresh_requested("ns", "iris", ANNOTATION_DATA_NOT_BEFORE) is None


def test_an_unreadable_request_time_asks_for_no_check() -> None:
    # A hand-written annotation on one TrainingRun must not break every reconcile of its Dataset.
    assert wanted(dataset(T0), T0 + timedelta(minutes=1), "yesterday") == "iris-check-g1-0"
