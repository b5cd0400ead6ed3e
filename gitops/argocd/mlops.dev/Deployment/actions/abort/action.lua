-- Roll the running canary back to stable, as a failed analysis does; it names the canary's version.
local os = require("os")
local status = obj.status or {}
if status.canaryVersion ~= nil then
  local request = {}
  request["action"] = "Abort"
  request["version"] = status.canaryVersion
  request["requestedAt"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
  request["reason"] = "Argo CD resource action"
  obj.spec.rolloutRequest = request
end
return obj
