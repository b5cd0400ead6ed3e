"""Argo CD health checks (gitops/argocd/mlops.dev/<Kind>/health.lua) run by a real Lua 5.4 interpreter
on status objects like the operator's: ModelVersion and Deployment statuses come from the real planners."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_operator.api import ALL_KINDS
from mlops_operator.api.notification import NotificationPolicySpec
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.modelversion import ModelVersionObserved, plan_modelversion
from mlops_operator.planning.notificationpolicy import plan_notificationpolicy
from mlops_operator.planning.ownership import ModelOwnership

from .builders import observe


def run_mv(
    body,
    registered,
    metrics,
    holder,
    holder_metrics,
    rollouts,
    now,
    rolled_back_by=None,
    mlflow_error=None,
    ownership=None,
):  # type: ignore[no-untyped-def]
    """One ModelVersion pass with what the controller would have gathered."""
    observed = ModelVersionObserved(
        registered, metrics, holder, holder_metrics, rollouts, rolled_back_by, mlflow_error, ownership=ownership
    )
    return plan_modelversion(body, observed, now)


REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "gitops" / "argocd"
KINDS = ("Dataset", "TrainingRun", "ModelVersion", "Deployment", "NotificationPolicy")
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
STAMP = "2026-11-23T12:00:00Z"
Obj = dict[str, Any]


def lua_binary() -> str:
    found = shutil.which("lua5.4")
    assert found, "lua5.4 is missing: `make system-deps` (apt-get install lua5.4)"
    return found


def lua_literal(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid Lua string literal for this text
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


# Argo CD runs health scripts in gopher-lua with the base, table, string and math libraries (no os, io).
RUNNER = """
local results = {}
local function run(path, object)
  local env = {obj = object, ipairs = ipairs, pairs = pairs, type = type, tostring = tostring,
               tonumber = tonumber, string = string, table = table, math = math, next = next}
  local chunk = assert(loadfile(path, "t", env))
  local ok, hs = pcall(chunk)
  if not ok then return "ERROR", tostring(hs) end
  return tostring(hs.status), tostring(hs.message)
end
"""


def health(cases: list[tuple[str, Obj]]) -> list[tuple[str, str]]:
    """(status, message) of each (kind, object), all in one Lua process."""
    lines = [RUNNER]
    for kind, obj in cases:
        path = ARGOCD / "mlops.dev" / kind / "health.lua"
        lines.append(f"print(string.format('%s\\t%s', run({json.dumps(str(path))}, {lua_literal(obj)})))")
    result = subprocess.run([lua_binary(), "-"], input="\n".join(lines), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    out = [tuple(line.split("\t", 1)) for line in result.stdout.splitlines()]
    assert len(out) == len(cases), result.stdout
    return out  # type: ignore[return-value]


def obj(kind: str, status: Obj | None, generation: int = 1, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"namespace": "ns", "name": "x", "uid": "u-1", "generation": generation},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def ready(value: str, reason: str, message: str, generation: int = 1) -> list[Obj]:
    return [
        {
            "type": "Ready",
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": STAMP,
            "observedGeneration": generation,
        }
    ]


# Dataset and TrainingRun statuses as planning/dataset.py and planning/trainingrun.py write them.
def dataset(
    phase: str, reason: str, message: str, value: str = "Unknown", generation: int = 1, observed: int = 1
) -> Obj:
    status = {"phase": phase, "observedGeneration": observed, "message": message}
    status["conditions"] = ready(value, reason, message, observed)
    return obj("Dataset", status, generation)


def trainingrun(phase: str, message: str, value: str, generation: int = 1, observed: int = 1) -> Obj:
    status: Obj = {"phase": phase, "observedGeneration": observed, "message": message}
    status["conditions"] = [
        *ready(value, phase, message, observed),
        {
            "type": "Succeeded",
            "status": {"Succeeded": "True", "Failed": "False"}.get(phase, "Unknown"),
            "reason": phase,
        },
    ]
    return obj("TrainingRun", status, generation)


def modelversion(
    mode: str = "auto",
    registered: bool = True,
    metrics: dict[str, float] | None = None,
    holder: int | None = None,
    holder_metrics: dict[str, float] | None = None,
    rollouts: list[str] | None = None,
    status: Obj | None = None,
    promote: bool = False,
    ownership: ModelOwnership | None = None,
) -> Obj:
    """A ModelVersion with the status the real planner gives it."""
    spec = {
        "registeredModel": "iris",
        "version": 2,
        "promotion": {"alias": "production", "mode": mode, "gates": [{"metric": "accuracy", "min": 0.9}]},
        "promote": promote,
    }
    body = obj("ModelVersion", status, **spec)
    plan = run_mv(
        body,
        {"name": "iris", "version": "2"} if registered else None,
        metrics if metrics is not None else {"accuracy": 0.95},
        holder,
        holder_metrics,
        rollouts or [],
        NOW,
        ownership=ownership,
    )
    return {**body, "status": plan.status}


def mldeployment(status: Obj | None = None, paused: bool = False, **reads: Any) -> Obj:
    """A deployments.mlops.dev object with the status the real planner gives it."""
    spec = {"model": {"registeredModel": "iris", "alias": "production"}, "replicas": 2, "paused": paused}
    body = obj("Deployment", status or {}, **spec)
    return {**body, "status": plan_deployment(observe(body, **reads), NOW).status}


def notificationpolicy(problems: list[str], suspend: bool = False) -> Obj:
    """A policy with the status its planner writes."""
    spec = {"destinations": [{"name": "hook", "url": "https://alerts.example.com/x"}], "suspend": suspend}
    body = obj("NotificationPolicy", None, **spec)
    plan = plan_notificationpolicy(body, NotificationPolicySpec.model_validate(spec), problems, NOW)
    return {**body, "status": plan.status}


def cases() -> list[tuple[str, Obj, str, str]]:
    """(kind, object, expected health, a piece of the expected message)."""
    first = mldeployment(holder=1)
    serving = mldeployment(first["status"], holder=1, stable_ready=2)
    promoting = modelversion()  # the alias move is recorded, made, and confirmed on the next pass
    promoted = modelversion(holder=2, status=promoting["status"])
    return [
        ("NotificationPolicy", obj("NotificationPolicy", None), "Progressing", "Waiting for mlops-operator"),
        ("NotificationPolicy", notificationpolicy([]), "Healthy", "sending to hook"),
        (
            "NotificationPolicy",
            notificationpolicy(["destination hook: url host x is not allowed"]),
            "Degraded",
            "host x",
        ),
        ("NotificationPolicy", notificationpolicy([], suspend=True), "Suspended", "spec.suspend"),
        ("Dataset", obj("Dataset", None), "Progressing", "Waiting for mlops-operator"),
        ("Dataset", dataset("Pending", "Pending", "waiting for the validation Job"), "Progressing", "waiting"),
        ("Dataset", dataset("Validating", "Validating", "Job iris-check-1 is validating"), "Progressing", "validating"),
        ("Dataset", dataset("Ready", "Valid", "150 rows, version 1a2b3c", "True"), "Healthy", "150 rows"),
        (
            "Dataset",
            dataset("Invalid", "ValidationFailed", "2 violation(s): sepal_length", "False"),
            "Degraded",
            "2 violation",
        ),
        (
            "Dataset",
            dataset("Ready", "Valid", "150 rows", "True", generation=2, observed=1),
            "Progressing",
            "generation 2",
        ),
        ("TrainingRun", obj("TrainingRun", None), "Progressing", "Waiting for mlops-operator"),
        (
            "TrainingRun",
            trainingrun("Pending", "waiting for Dataset iris to be Ready", "Unknown"),
            "Progressing",
            "waiting",
        ),
        ("TrainingRun", trainingrun("Running", "Job iris-train-x is running", "Unknown"), "Progressing", "running"),
        ("TrainingRun", trainingrun("Succeeded", "accuracy 0.96", "True"), "Healthy", "accuracy"),
        (
            "TrainingRun",
            trainingrun("Failed", "OOMKilled: raise resources.limits.memory", "False"),
            "Degraded",
            "OOMKilled",
        ),
        (
            "TrainingRun",
            trainingrun("Running", "running", "Unknown", generation=3, observed=2),
            "Progressing",
            "generation 3",
        ),
        (
            "TrainingRun",
            trainingrun("Refused", "registered model 'iris' belongs to namespace team-a", "False"),
            "Degraded",
            "team-a",
        ),
        # A finished run is final: an edit after it finished does not make it Progressing forever.
        ("TrainingRun", trainingrun("Succeeded", "accuracy 0.96", "True", generation=2), "Healthy", "accuracy"),
        ("ModelVersion", obj("ModelVersion", None), "Progressing", "Waiting for mlops-operator"),
        ("ModelVersion", modelversion(registered=False), "Progressing", "MLflow has no version 2"),
        ("ModelVersion", promoting, "Progressing", "moving alias 'production' to version 2"),
        ("ModelVersion", promoted, "Healthy", "'production' names iris version 2"),
        ("ModelVersion", modelversion(metrics={"accuracy": 0.5}), "Degraded", "gate"),
        ("ModelVersion", modelversion(mode="manual"), "Suspended", "set spec.promote: true"),
        ("ModelVersion", modelversion(rollouts=["iris"]), "Progressing", "rolls it out as a canary"),
        ("ModelVersion", modelversion(holder=3, status=promoted["status"]), "Healthy", "now names version 3"),
        (
            "ModelVersion",
            obj("ModelVersion", {**promoted["status"], "phase": "RolledBack", "message": "canary failed: error-rate"}),
            "Degraded",
            "canary failed",
        ),
        ("Deployment", obj("Deployment", None), "Progressing", "Waiting for mlops-operator"),
        ("Deployment", mldeployment(holder=None), "Progressing", "no version of iris to serve yet"),
        ("Deployment", first, "Progressing", "0/2 ready"),
        ("Deployment", serving, "Healthy", "serves on 2 replicas"),
        # spec.paused (kubectl mlops pause, or the Argo CD action): Suspended, as a paused Argo Rollout is.
        ("Deployment", mldeployment(serving["status"], paused=True, holder=1, stable_ready=2), "Suspended", "paused"),
        (
            "Deployment",
            {**serving, "metadata": {**serving["metadata"], "generation": 2}},
            "Progressing",
            "generation 2",
        ),
        (
            "Deployment",
            obj("Deployment", {"phase": "RollingBack", "message": "analysis failed"}),
            "Degraded",
            "analysis",
        ),
        (
            "Deployment",
            obj("Deployment", {"phase": "RolledBack", "message": "version 2 rolled back"}),
            "Degraded",
            "rolled",
        ),
        ("Deployment", obj("Deployment", {"phase": "Degraded", "message": "1/2 ready"}), "Degraded", "1/2"),
        ("Deployment", mldeployment(holder=1, ownership=ModelOwnership("iris", True, "team-a")), "Degraded", "team-a"),
        ("ModelVersion", modelversion(ownership=ModelOwnership("iris", True, "team-a")), "Degraded", "team-a"),
        ("Dataset", obj("Dataset", {"phase": "Exploded"}), "Unknown", "Exploded"),
    ]


def test_planner_built_objects_have_the_expected_phases() -> None:
    """The fixtures really are in the phases they are meant to exercise (the planners may change)."""
    phases = {(kind, (o.get("status") or {}).get("phase")) for kind, o, _, _ in cases()}
    for kind, phase in [
        ("ModelVersion", "Registered"),
        ("ModelVersion", "Promoted"),
        ("ModelVersion", "Rejected"),
        ("ModelVersion", "Evaluating"),
        ("ModelVersion", "Approved"),
        ("ModelVersion", "Superseded"),
        ("Deployment", "Progressing"),
        ("Deployment", "Healthy"),
    ]:
        assert (kind, phase) in phases, (kind, phase)


def test_every_phase_of_every_kind_maps_to_a_health() -> None:
    results = health([(kind, o) for kind, o, _, _ in cases()])
    failures = [
        f"{kind} {o.get('status', {}).get('phase')}: got {got}, wanted {status} / ...{message}..."
        for (kind, o, status, message), got in zip(cases(), results, strict=True)
        if got[0] != status or message not in got[1]
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind", KINDS)
def test_each_crd_phase_is_covered(kind: str) -> None:
    plural = next(k.plural for k in ALL_KINDS if k.kind == kind)
    crd = yaml.safe_load((REPO / "crds" / f"mlops.dev_{plural}.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    phases = set(schema["phase"]["enum"])
    for phase in phases:
        status, message = health([(kind, obj(kind, {"phase": phase, "observedGeneration": 1}))])[0]
        assert status in ("Healthy", "Progressing", "Degraded", "Suspended"), (kind, phase, status, message)
    covered = {(o.get("status") or {}).get("phase") for k, o, _, _ in cases() if k == kind}
    assert phases <= covered, f"{kind} phases without a realistic case: {sorted(phases - covered)}"


def test_scripts_need_nothing_argo_cd_does_not_offer() -> None:
    for kind in KINDS:
        text = (ARGOCD / "mlops.dev" / kind / "health.lua").read_text()
        for forbidden in ("require", "os.", "io.", "dofile", "loadfile"):
            assert forbidden not in text, (kind, forbidden)


def test_argocd_cm_snippet_carries_the_scripts() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    health_keys = {key for key in cm["data"] if key.startswith("resource.customizations.health.")}
    assert health_keys == {f"resource.customizations.health.mlops.dev_{kind}" for kind in KINDS}
    for kind in KINDS:
        script = (ARGOCD / "mlops.dev" / kind / "health.lua").read_text()
        assert cm["data"][f"resource.customizations.health.mlops.dev_{kind}"] == script, (
            f"argocd-cm.yaml is stale for {kind}: run `python gitops/argocd/build_cm.py`"
        )
