-- End the canary's current step now and go to the next one. The request names the canary's version and
-- step, so a stale or repeated click never skips a later step (the operator ignores it and says why).
local os = require("os")
local status = obj.status or {}
if status.canaryVersion ~= nil then
  local request = {}
  request["action"] = "Promote"
  request["version"] = status.canaryVersion
  request["step"] = status.step or 0
  request["requestedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
  request["reason"] = "Argo CD resource action"
  obj.spec.rolloutRequest = request
end
return obj
