-- Let the rollout go on (spec.paused: false); the step's clocks resume where they stopped.
obj.spec.paused = false
return obj
