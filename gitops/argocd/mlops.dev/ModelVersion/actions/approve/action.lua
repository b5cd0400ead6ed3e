-- Approve a manual ModelVersion whose gates passed; status.approval records the field manager
-- (Argo CD's own manager for an action) from managedFields.
obj.spec.promote = true
return obj
