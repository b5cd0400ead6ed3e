-- Argo CD resource actions for mlops.dev/v1alpha1 ModelVersion: approve a manual version (spec.promote: true).
-- Install: gitops/argocd/argocd-cm.yaml (resource.customizations.actions.mlops.dev_ModelVersion).
local actions = {}
local spec = obj.spec or {}
local manual = type(spec.promotion) == "table" and spec.promotion.mode == "manual"
actions["approve"] = {["disabled"] = not manual or spec.promote == true}
return actions
