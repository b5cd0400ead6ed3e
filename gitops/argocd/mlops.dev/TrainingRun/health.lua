-- Argo CD health check for mlops.dev/v1alpha1 TrainingRun, from the status mlops-operator writes
-- (status.phase, status.observedGeneration, status.conditions with a summary Ready condition).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.health.mlops.dev_TrainingRun).
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

-- Phases: Pending | Running | Succeeded | Failed | Refused (see planning/trainingrun.py).
-- Succeeded and Failed are final: the operator does not act on (or re-observe) a finished run, so a
-- later spec edit does not make it Progressing.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to start the TrainingRun"
  return hs
end
local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = describe(status, "Training succeeded")
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(status, "Training failed")
elseif stale(status) then
  hs.status = "Progressing"
  hs.message = "Waiting for mlops-operator to observe generation " .. tostring(obj.metadata.generation)
elseif phase == "Refused" then
  hs.status = "Degraded"
  hs.message = describe(status, "The registered model belongs to another namespace")
elseif phase == "Pending" or phase == "Running" then
  hs.status = "Progressing"
  hs.message = describe(status, "Training is " .. phase)
else
  hs.status = "Unknown"
  hs.message = "Unknown TrainingRun phase " .. tostring(phase)
end
return hs
