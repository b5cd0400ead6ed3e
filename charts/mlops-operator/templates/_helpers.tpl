{{/* The chart's name, truncated to a DNS label. */}}
{{- define "mlops-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects are named after it. */}}
{{- define "mlops-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cluster-scoped objects (ClusterRoles, bindings) carry the release namespace: releases in two namespaces never collide. */}}
{{- define "mlops-operator.clusterName" -}}
{{- printf "%s-%s" (include "mlops-operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlops-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mlops-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlops-operator
{{- end }}

{{- define "mlops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlops-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlops-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, the tag defaulting to the chart's appVersion. Call with (dict "image" .Values.x "root" $). */}}
{{- define "mlops-operator.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The leader-election Lease, one per release: two releases in one namespace elect separately. */}}
{{- define "mlops-operator.leaseName" -}}
{{- printf "%s-leader" (include "mlops-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlops-operator.mlflowName" -}}
{{- printf "%s-mlflow" (include "mlops-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Is the bundled MLflow deployed? Only when enabled and no existing trackingUri is given. */}}
{{- define "mlops-operator.bundledMlflow" -}}
{{- if and .Values.mlflow.enabled (not .Values.mlflow.trackingUri) }}true{{ end }}
{{- end }}

{{- define "mlops-operator.trackingUri" -}}
{{- if .Values.mlflow.trackingUri }}
{{- .Values.mlflow.trackingUri }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "mlops-operator.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in every namespace it watches (a ClusterRole cluster-wide, else a Role in
each listed namespace). Each one is used by code in operator/mlops_operator/controllers/; see the chart README.
*/}}
{{- define "mlops-operator.namespacedRules" -}}
# kopf watches and indexes the kinds; reconcilers read them (NotificationPolicies: where to send Events).
- apiGroups: ["mlops.dev"]
  resources: ["datasets", "trainingruns", "modelversions", "deployments", "notificationpolicies"]
  verbs: ["get", "list", "watch"]
# A succeeded TrainingRun creates its ModelVersion; drift on a Deployment creates a TrainingRun.
- apiGroups: ["mlops.dev"]
  resources: ["trainingruns", "modelversions"]
  verbs: ["create"]
# Status is written with merge patches (own status, and a rolled-back ModelVersion's from its Deployment).
- apiGroups: ["mlops.dev"]
  resources: ["datasets/status", "trainingruns/status", "modelversions/status", "deployments/status"]
  verbs: ["patch"]
# A NotificationPolicy's status says whether each destination can be delivered to (URL allowed, key mounted).
- apiGroups: ["mlops.dev"]
  resources: ["notificationpolicies/status"]
  verbs: ["patch"]
{{- if .Values.rbac.ownerReferencesPermissionEnforcement }}
# OwnerReferencesPermissionEnforcement: children with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: ["mlops.dev"]
  resources: ["datasets/finalizers", "trainingruns/finalizers", "modelversions/finalizers", "deployments/finalizers"]
  verbs: ["update"]
{{- end }}
# Validation and training Jobs: created, read, and watched (label-selected) to wake their owner;
# patch: a finished training Job gets ttlSecondsAfterFinished once its TrainingRun recorded the result
# (set at creation instead, an operator down past the TTL would lose the result and train again).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
# A failed Job's pods say why (OOMKilled, deadline, exit code).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Serving tracks (<name>-stable/-canary) and the Service selecting them: indexed, created, patched.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
# spec.autoscaling: the stable track's HorizontalPodAutoscaler (<name>-stable), indexed, created, patched.
# delete: the one verb of its kind here. Removing spec.autoscaling must remove the HPA, or it would keep
# resizing the stable track against spec.replicas; an HPA has no "off" setting to patch instead. Only an
# HPA the Deployment controls is deleted, with its uid as precondition (children.py delete_child).
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A PodDisruptionBudget per serving track (spec.disruptionBudget): indexed, created, patched.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Events about the objects (the operator's own and kopf's handler events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# get: before a worker Job is created, whether the ServiceAccount its pods name (spec.pod or workloadPod)
# exists; a missing one would only show as a Job Event while the run waits for its deadline. Reading a
# ServiceAccount shows its name and Secret references, never a token.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
{{- end }}

{{/* Cluster-scoped reads for spec.pod: whether the PriorityClass a Job's pods name exists (as for
     ServiceAccounts above: admission would refuse the pods, seen only as a Job Event). */}}
{{- define "mlops-operator.placementRules" -}}
- apiGroups: ["scheduling.k8s.io"]
  resources: ["priorityclasses"]
  verbs: ["get"]
{{- end }}

{{/* kopf's runtime discovery: it watches CRDs to notice ours being (re)installed. */}}
{{- define "mlops-operator.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
