"""The pydantic models accept the documented examples and reject what the CRDs reject."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from mlops_operator.api import ALL_KINDS, parse_duration
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.api.trainingrun import TrainingRunSpec
from pydantic import ValidationError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))
SPEC_BY_KIND = {k.kind: k.spec for k in ALL_KINDS}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "1minute", "-5s", "1.5h", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_there_are_examples() -> None:
    assert {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES} == set(SPEC_BY_KIND)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_parse(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    SPEC_BY_KIND[doc["kind"]].model_validate(doc["spec"])


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="replica"):
        DeploymentSpec.model_validate({"model": {"registeredModel": "m", "alias": "a"}, "replica": 3})


def test_round_trip_uses_camel_case() -> None:
    spec = DeploymentSpec.model_validate({"model": {"registeredModel": "m", "alias": "production"}})
    dumped = spec.model_dump(exclude_none=True)
    assert dumped["model"] == {"registeredModel": "m", "alias": "production"}
    assert dumped["strategy"]["canary"]["analysis"]["failureLimit"] == 2


SCHEDULE_MANIFESTS = sorted((EXAMPLES[0].parents[2] / "tests" / "manifests" / "invalid").glob("schedule-*.yaml"))


@pytest.mark.parametrize("path", SCHEDULE_MANIFESTS, ids=lambda p: p.stem)
def test_a_schedule_the_crd_rejects_is_rejected_by_the_model_with_the_same_message(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    with pytest.raises(ValidationError, match=expected):
        DeploymentSpec.model_validate(yaml.safe_load(path.read_text())["spec"])


def test_a_schedule_defaults_to_utc_and_accepts_what_only_the_planner_can_judge() -> None:
    model = {"registeredModel": "m", "alias": "a"}
    for cron, zone in (("0 3 * * *", None), ("61 * * * *", "Mars/Olympus_Mons"), (" */5  * * * MON-FRI ", "Etc/GMT+5")):
        schedule = {"cron": cron} if zone is None else {"cron": cron, "timeZone": zone}
        spec = DeploymentSpec.model_validate({"model": model, "retraining": {"triggers": {"schedule": schedule}}})
        assert spec.retraining is not None and spec.retraining.triggers.schedule is not None
        assert spec.retraining.triggers.schedule.time_zone == (zone or "UTC")
        assert spec.retraining.triggers.on_new_data is False
    assert len(SCHEDULE_MANIFESTS) == 2


TRIALS_MANIFESTS = sorted((EXAMPLES[0].parents[2] / "tests" / "manifests" / "invalid").glob("trials-*.yaml"))


@pytest.mark.parametrize("path", TRIALS_MANIFESTS, ids=lambda p: p.stem)
def test_trials_the_crd_rejects_are_rejected_by_the_model_with_the_same_message(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    with pytest.raises(ValidationError, match=re.escape(expected)):
        TrainingRunSpec.model_validate(yaml.safe_load(path.read_text())["spec"])
    assert (
        len(TRIALS_MANIFESTS) == 2
    )  # trials without a search grid: the model only (a schemaless field is invisible to CEL)
