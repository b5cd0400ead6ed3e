-- Argo CD health check for mlops.dev/v1alpha1 NotificationPolicy, from the status mlops-operator writes
-- (status.phase, status.observedGeneration, status.conditions with a summary Ready condition).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.health.mlops.dev_NotificationPolicy).
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

-- Phases: Ready | Invalid | Suspended (see planning/notificationpolicy.py).
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to check the NotificationPolicy"
  return hs
end
local phase = status.phase
if stale(status) then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to observe generation " .. tostring(obj.metadata.generation)
elseif phase == "Ready" then
  hs.status = "Healthy"
  hs.message = describe(status, "every destination can be delivered to")
elseif phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = describe(status, "a destination cannot be delivered to")
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(status, "spec.suspend is true: nothing is sent")
else
  hs.status = "Unknown"
  hs.message = "Unknown NotificationPolicy phase " .. tostring(phase)
end
return hs
