-- Make the running canary stable at once (every remaining step skipped); it names the canary's version.
local os = require("os")
local status = obj.status or {}
if status.canaryVersion ~= nil then
  local request = {}
  request["action"] = "PromoteFull"
  request["version"] = status.canaryVersion
  request["requestedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
  request["reason"] = "Argo CD resource action"
  obj.spec.rolloutRequest = request
end
return obj
