-- Argo CD resource actions for mlops.dev/v1alpha1 Deployment (deployments.mlops.dev): which apply now.
-- Each action writes the same documented spec field as `kubectl mlops` (spec.paused, spec.rolloutRequest).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.actions.mlops.dev_Deployment).
local actions = {}
local status = obj.status or {}
local paused = obj.spec ~= nil and obj.spec.paused == true
local canary = status.canaryVersion ~= nil
-- The shadow step ends by its verdict: promote (one step) does not apply there; promote-full and abort do.
local shadowing = canary and type(status.shadow) == "table" and status.shadow.phase == "Running"
  and status.shadow.version == status.canaryVersion
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}
actions["promote"] = {["disabled"] = not canary or shadowing}
actions["promote-full"] = {["disabled"] = not canary}
actions["abort"] = {["disabled"] = not canary}
return actions
