-- Hold the rollout (spec.paused: true): no canary starts or changes step, the step's clocks stop.
obj.spec.paused = true
return obj
