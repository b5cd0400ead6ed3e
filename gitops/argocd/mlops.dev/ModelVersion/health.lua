-- Argo CD health check for mlops.dev/v1alpha1 ModelVersion, from the status mlops-operator writes
-- (status.phase, status.observedGeneration, status.conditions with a summary Ready condition).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.health.mlops.dev_ModelVersion).
-- Shared shape (repeated in each kind: Argo CD health scripts cannot import one another).
local function ready_condition(status)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(status, fallback)
  if type(status.message) == "string" and status.message ~= "" then
    return status.message
  end
  local ready = ready_condition(status)
  if ready ~= nil and type(ready.message) == "string" and ready.message ~= "" then
    return ready.message
  end
  return fallback
end

-- True when the operator has not yet acted on the latest spec (metadata.generation).
local function stale(status)
  local generation = obj.metadata and obj.metadata.generation
  return generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation
end

-- Phases: Registered | Evaluating | Approved | Promoted | Rejected | RolledBack | Superseded | Refused
-- (see planning/modelversion.py). Promoted, Superseded and RolledBack are not re-evaluated by the
-- operator on a spec edit, so they keep their health whatever observedGeneration says.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to evaluate the ModelVersion"
  return hs
end
local phase = status.phase
local ready = ready_condition(status)
if phase == "Promoted" then
  hs.status = "Healthy"
  hs.message = describe(status, "Promoted")
elseif phase == "Superseded" then
  -- It served, and a newer version took the alias: the normal end of a version, not a failure.
  hs.status = "Healthy"
  hs.message = describe(status, "Superseded by a newer version")
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = describe(status, "The canary of this version was rolled back")
elseif stale(status) then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to observe generation " .. tostring(obj.metadata.generation)
elseif phase == "Rejected" then
  hs.status = "Degraded"
  hs.message = describe(status, "A promotion gate failed")
elseif phase == "Refused" then
  hs.status = "Degraded"
  hs.message = describe(status, "The registered model belongs to another namespace")
elseif phase == "Evaluating" and ready ~= nil and ready.reason == "AwaitingApproval" then
  -- Manual promotion: the gates passed and a person has to set spec.promote: true.
  hs.status = "Suspended"
  hs.message = describe(status, "Gates passed; set spec.promote: true to approve")
elseif phase == "Registered" or phase == "Evaluating" or phase == "Approved" then
  hs.status = "Progressing"
  hs.message = describe(status, "ModelVersion is " .. phase)
else
  hs.status = "Unknown"
  hs.message = "Unknown ModelVersion phase " .. tostring(phase)
end
return hs
