-- Argo CD health check for mlops.dev/v1alpha1 Deployment, from the status mlops-operator writes
-- (status.phase, status.observedGeneration, status.conditions with a summary Ready condition).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.health.mlops.dev_Deployment).
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

-- deployments.mlops.dev (not apps/v1). Phases: Progressing | Paused | Healthy | Degraded | RollingBack | RolledBack |
-- Refused (see planning/rollout.py). Paused (spec.paused) is Suspended, as a paused Argo Rollout is.
-- As with Argo Rollouts, an aborted canary is Degraded until a new version
-- rolls out, even though the stable version keeps serving.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to roll out the model"
  return hs
end
local phase = status.phase
if stale(status) then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to observe generation " .. tostring(obj.metadata.generation)
elseif phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = describe(status, "Serving")
elseif phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = describe(status, "Rolling out")
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(status, "Rollout paused (spec.paused)")
elseif phase == "Degraded" or phase == "RollingBack" or phase == "RolledBack" or phase == "Refused" then
  -- Refused: the registered model belongs to another namespace (or to none yet); nothing is served.
  hs.status = "Degraded"
  hs.message = describe(status, "Deployment is " .. phase)
else
  hs.status = "Unknown"
  hs.message = "Unknown deployments.mlops.dev phase " .. tostring(phase)
end
return hs
