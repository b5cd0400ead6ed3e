"""Argo CD resource actions (gitops/argocd/mlops.dev/<Kind>/actions/) run by a real Lua 5.4 interpreter on
objects whose status the real planners wrote; what an action returns is fed back into the planners, so an
action is tested by what the operator then does with it."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from typing import Any

import yaml
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.api.modelversion import ModelVersionSpec
from mlops_operator.planning.deployment import plan_deployment

from .builders import observe
from .test_argocd_health import ARGOCD, NOW, lua_binary, lua_literal, modelversion, obj, run_mv

Obj = dict[str, Any]
DEPLOYMENT_ACTIONS = ("pause", "resume", "promote", "promote-full", "abort")
APPROVED = {2: "iris-classifier-2"}

# Argo CD runs actions in gopher-lua with the base, table, string and math libraries, and `require("os")` for
# the time (its own Rollout restart action does so); a JSON encoder stands in for Argo CD's Lua-to-JSON step.
RUNNER = """
local function encode(value)
  local kind = type(value)
  if kind == "table" then
    if next(value) == nil then return "{}" end
    if value[1] ~= nil then
      local items = {}
      for _, item in ipairs(value) do items[#items + 1] = encode(item) end
      return "[" .. table.concat(items, ",") .. "]"
    end
    local keys = {}
    for key in pairs(value) do keys[#keys + 1] = key end
    table.sort(keys)
    local items = {}
    for _, key in ipairs(keys) do items[#items + 1] = string.format("%q", key) .. ":" .. encode(value[key]) end
    return "{" .. table.concat(items, ",") .. "}"
  elseif kind == "string" then
    return string.format("%q", value)
  elseif kind == "nil" then
    return "null"
  end
  return tostring(value)
end
local function run(path, object)
  local env = {obj = object, ipairs = ipairs, pairs = pairs, type = type, tostring = tostring,
               tonumber = tonumber, string = string, table = table, math = math, next = next,
               require = function(name) assert(name == "os", "only os may be required"); return os end}
  local chunk = assert(loadfile(path, "t", env))
  local ok, result = pcall(chunk)
  if not ok then return "ERROR " .. tostring(result) end
  return encode(result)
end
"""


def run_lua(path: str, body: Obj) -> Obj:
    """What the script at `path` (relative to mlops.dev/) returns for `body`, decoded from JSON."""
    script = ARGOCD / "mlops.dev" / path
    program = f"{RUNNER}\nprint(run({json.dumps(str(script))}, {lua_literal(body)}))"
    result = subprocess.run([lua_binary(), "-"], input=program, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.startswith("ERROR"), result.stdout + result.stderr
    decoded: Obj = json.loads(result.stdout)
    return decoded


def enabled(kind: str, body: Obj) -> set[str]:
    """The actions discovery offers (not disabled) for `body`."""
    actions = run_lua(f"{kind}/actions/discovery.lua", body)
    return {name for name, flags in actions.items() if not flags.get("disabled")}


def mldeploy(status: Obj, paused: bool = False) -> Obj:
    spec = {
        "model": {"registeredModel": "iris-classifier", "alias": "production"},
        "replicas": 4,
        "paused": paused,
        "strategy": {
            "canary": {"steps": [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}, {"weight": 100}]}
        },
    }
    return obj("Deployment", status, **spec)


def planned(body: Obj, seconds: float = 0, **reads: Any) -> Obj:
    """`body` with the status the real planner writes after `seconds`."""
    reads = {"holder": 1, "approved": APPROVED, "stable_ready": 3, "canary_ready": 1, **reads}
    plan = plan_deployment(observe(body, **reads), NOW + timedelta(seconds=seconds))
    return {**body, "status": plan.status}


def steady() -> Obj:
    first = planned(mldeploy({}), approved={}, stable_ready=0, canary_ready=0)
    return planned(mldeploy(first["status"]), approved={}, stable_ready=4, canary_ready=0)


def canary() -> Obj:
    return planned(mldeploy(steady()["status"]), stable_ready=4, canary_ready=0)


def test_discovery_offers_what_applies_now() -> None:
    serving, running = steady(), canary()
    assert running["status"]["canaryVersion"] == 2
    assert enabled("Deployment", serving) == {"pause"}
    assert enabled("Deployment", running) == {"pause", "promote", "promote-full", "abort"}
    paused = planned(mldeploy(running["status"], paused=True), 1)
    assert enabled("Deployment", paused) == {"resume", "promote", "promote-full", "abort"}
    shadowing = {**running, "status": {**running["status"], "shadow": {"version": 2, "phase": "Running"}}}
    assert enabled("Deployment", shadowing) == {"pause", "promote-full", "abort"}  # the shadow ends by its verdict


def test_pause_and_resume_write_spec_paused_which_the_planner_holds_and_releases() -> None:
    running = canary()
    paused = run_lua("Deployment/actions/pause/action.lua", running)
    assert paused["spec"]["paused"] is True and DeploymentSpec.model_validate(paused["spec"]).paused
    held = planned(paused, 600)
    assert held["status"]["phase"] == "Paused" and held["status"]["step"] == 0
    resumed = run_lua("Deployment/actions/resume/action.lua", held)
    assert resumed["spec"]["paused"] is False
    assert planned(resumed, 601)["status"]["phase"] == "Progressing"


def test_promote_names_the_canary_and_step_so_a_second_click_on_a_stale_view_is_ignored() -> None:
    running = canary()
    promoted = run_lua("Deployment/actions/promote/action.lua", running)
    request = promoted["spec"]["rolloutRequest"]
    assert (request["action"], request["version"], request["step"]) == ("Promote", 2, 0)
    assert DeploymentSpec.model_validate(promoted["spec"]).rollout_request is not None  # the API accepts it
    after = planned(promoted, 1)
    assert after["status"]["step"] == 1 and after["status"]["lastRequest"]["outcome"] == "Applied"
    stale = run_lua("Deployment/actions/promote/action.lua", running)  # clicked again on the old view
    stale["spec"]["rolloutRequest"]["requestedAt"] = "2026-11-23T12:00:09Z"  # a later click
    again = planned({**stale, "status": after["status"]}, 2)
    assert again["status"]["step"] == 1 and again["status"]["lastRequest"]["outcome"] == "Ignored"


def test_promote_full_and_abort_end_the_canary_they_name() -> None:
    full = planned(run_lua("Deployment/actions/promote-full/action.lua", canary()), 1)
    assert full["status"]["stableVersion"] == 2 and full["status"]["canaryVersion"] is None
    aborted = planned(run_lua("Deployment/actions/abort/action.lua", canary()), 1)
    assert (
        aborted["status"]["stableVersion"] == 1 and aborted["status"]["rollbacks"][-1]["reason"] == "AbortedByRequest"
    )


def test_actions_on_a_deployment_without_a_canary_change_nothing() -> None:
    serving = steady()
    for action in ("promote", "promote-full", "abort"):
        assert run_lua(f"Deployment/actions/{action}/action.lua", serving)["spec"] == serving["spec"]


def test_approve_sets_spec_promote_on_a_manual_version_awaiting_approval() -> None:
    waiting = modelversion(mode="manual")
    assert enabled("ModelVersion", waiting) == {"approve"}
    assert enabled("ModelVersion", modelversion()) == set()  # auto mode: the gates approve it
    approved = run_lua("ModelVersion/actions/approve/action.lua", waiting)
    assert approved["spec"]["promote"] is True and ModelVersionSpec.model_validate(approved["spec"]).promote
    assert enabled("ModelVersion", approved) == set()
    # Writing spec.promote bumps the generation; the real planner then approves and records the approval.
    approved["metadata"]["generation"] = 2
    after = run_mv(approved, {"name": "iris", "version": "2"}, {"accuracy": 0.95}, None, None, [], NOW).status
    assert after["phase"] == "Approved" and after["approval"]["by"] == "unknown"  # no managedFields here


def test_argocd_cm_carries_the_actions() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    for kind, names in (("Deployment", DEPLOYMENT_ACTIONS), ("ModelVersion", ("approve",))):
        config = yaml.safe_load(cm["data"][f"resource.customizations.actions.mlops.dev_{kind}"])
        folder = ARGOCD / "mlops.dev" / kind / "actions"
        stale = f"argocd-cm.yaml is stale for {kind}'s actions: run `python gitops/argocd/build_cm.py`"
        assert config["discovery.lua"] == (folder / "discovery.lua").read_text(), stale
        assert [d["name"] for d in config["definitions"]] == list(names), stale
        for definition in config["definitions"]:
            assert definition["action.lua"] == (folder / definition["name"] / "action.lua").read_text(), stale
        offered = set(run_lua(f"{kind}/actions/discovery.lua", obj(kind, {})))
        assert offered == set(names)  # discovery names exactly the actions that are defined
