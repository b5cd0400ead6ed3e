"""`spec.pod`: where and as whom the pods an object makes run, and what else they get (env, volumes).

The names follow core/v1 PodSpec, as KServe's predictor and Kubeflow Trainer's `podTemplateOverrides` do,
so a manifest's `nodeSelector`, `tolerations` or `affinity` block can be pasted in. Only what is safe on a
shared cluster is here: no securityContext, hostPath, host namespaces or privileged anything (the pods stay
Pod Security "restricted" and mount no API token); extra env cannot override what the operator sets, volume
types are those "restricted" allows minus service-account tokens, and mounts go under /mnt/. Unknown fields
are pruned by the API server (rejected with kubectl's strict field validation), so they never reach a pod.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from .common import DNS_LABEL_PATTERN, ApiModel, LocalObjectReference, Quantity, cel

# Variables the operator sets or that change how its Python code loads: MLOPS_*, the MLflow URI and the
# pickle switch (spec.server.allowUnsafeModelFormats decides that, not env), HOME (/tmp, the writable path),
# and the interpreter's and loader's own (PYTHONPATH, LD_PRELOAD, ... would run code the image does not ship).
RESERVED_ENV_NAMES = ("HOME", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
RESERVED_ENV_PREFIXES = ("MLOPS_", "PYTHON", "LD_")
MOUNT_ROOT = "/mnt/"
RESERVED_VOLUME = "tmp"  # the operator's writable /tmp (planning/jobs.py TMP_VOLUME)

_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
Subdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=_SUBDOMAIN)]
LabelValue = Annotated[str, Field(max_length=63)]
LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
ShortList = Annotated[list[LabelValue], Field(max_length=64)]
RelativePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.startsWith('/') && !self.contains('..')",
                    "must be a relative path without '..'",
                )
            ]
        },
    ),
]

_RESERVED_ENV_RULE = (
    "!(self.name in ['HOME', 'MLFLOW_TRACKING_URI', 'MLFLOW_ALLOW_PICKLE_DESERIALIZATION'])"
    " && !self.name.startsWith('MLOPS_') && !self.name.startsWith('PYTHON') && !self.name.startsWith('LD_')"
)
_RESERVED_ENV_MESSAGE = (
    "is set by the operator or changes how its code loads (HOME, MLFLOW_TRACKING_URI,"
    " MLFLOW_ALLOW_PICKLE_DESERIALIZATION and names starting MLOPS_, PYTHON or LD_): choose another name"
)


def env_name_reserved(name: str) -> bool:
    """True for a variable the operator sets, or one that would change how its code loads."""
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


# --- tolerations and affinity (core/v1, minus cross-namespace pod affinity) ---


class Toleration(ApiModel):
    """A core/v1 Toleration: lets the pods onto nodes with a matching taint."""

    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Equal when unset (Kubernetes).")
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Every effect when unset."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, le=7 * 24 * 3600)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "a toleration with operator Exists takes no value",
                ),
                cel(
                    "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
                    "a toleration without a key must use operator Exists (it tolerates every taint)",
                ),
                cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds applies only to effect NoExecute",
                ),
            ]
        }
    )


class NodeSelectorRequirement(ApiModel):
    """A node label (or field) and the values it must (not) have."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: ShortList | None = None


class NodeSelectorTerm(ApiModel):
    """Requirements that must all hold on a node."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(default=None, max_length=32)
    match_fields: list[NodeSelectorRequirement] | None = Field(default=None, max_length=32)


class NodeSelector(ApiModel):
    """Terms of which at least one must hold."""

    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=16)


class PreferredSchedulingTerm(ApiModel):
    """A weighted node preference."""

    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(ApiModel):
    """core/v1 NodeAffinity."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None, max_length=16
    )


class LabelSelectorRequirement(ApiModel):
    """A pod label and the values it must (not) have."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: ShortList | None = None


class LabelSelector(ApiModel):
    """metav1 LabelSelector."""

    match_labels: dict[LabelKey, LabelValue] | None = Field(default=None, max_length=32)
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=32)


class PodAffinityTerm(ApiModel):
    """Pods (of this namespace: `namespaces` and `namespaceSelector` are left out) near or away from which to run."""

    label_selector: LabelSelector | None = None
    topology_key: LabelKey
    match_label_keys: ShortList | None = None
    mismatch_label_keys: ShortList | None = None


class WeightedPodAffinityTerm(ApiModel):
    """A weighted pod (anti-)affinity preference."""

    weight: int = Field(ge=1, le=100)
    pod_affinity_term: PodAffinityTerm


class PodAffinity(ApiModel):
    """core/v1 PodAffinity or PodAntiAffinity, within the object's namespace."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=16
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, max_length=16
    )


class Affinity(ApiModel):
    """core/v1 Affinity."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


# --- env ---


class KeySelector(ApiModel):
    """A key of a ConfigMap or Secret in the object's namespace (Kubernetes has no other kind)."""

    name: Subdomain
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    optional: bool | None = None


class FieldSelector(ApiModel):
    """A field of the pod (downward API), e.g. metadata.name or spec.nodeName."""

    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = Field(default=None, max_length=64)


class ResourceFieldSelector(ApiModel):
    """A resource request or limit of the container, e.g. limits.memory."""

    resource: str = Field(min_length=1, max_length=256)
    divisor: Quantity | None = None


class EnvVarSource(ApiModel):
    """Where a variable's value comes from; the kubelet resolves it, the operator reads nothing."""

    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "[has(self.configMapKeyRef), has(self.secretKeyRef), has(self.fieldRef),"
                    " has(self.resourceFieldRef)].exists_one(x, x)",
                    "set exactly one of configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef",
                )
            ]
        }
    )


class EnvVar(ApiModel):
    """An extra variable for the pods' container (after the operator's own, which it may not override)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    value: str | None = Field(default=None, max_length=32768)
    value_from: EnvVarSource | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(_RESERVED_ENV_RULE, _RESERVED_ENV_MESSAGE, field_path=".name"),
                cel("!has(self.value) || !has(self.valueFrom)", "set value or valueFrom, not both"),
            ]
        }
    )

    @model_validator(mode="after")
    def _not_reserved(self) -> EnvVar:
        # The CRD's CEL rule for objects; this one for the chart's defaults (MLOPS_WORKLOAD_POD).
        if env_name_reserved(self.name):
            raise ValueError(f"env {self.name} {_RESERVED_ENV_MESSAGE}")
        return self


# --- volumes ---


class KeyToPath(ApiModel):
    """One key of a ConfigMap or Secret as a file."""

    key: str = Field(min_length=1, max_length=253)
    path: RelativePath
    mode: int | None = Field(default=None, ge=0, le=0o777)


class ConfigMapVolume(ApiModel):
    """A ConfigMap of the object's namespace as files."""

    name: Subdomain
    items: list[KeyToPath] | None = Field(default=None, max_length=16)
    default_mode: int | None = Field(default=None, ge=0, le=0o777)
    optional: bool | None = None


class SecretVolume(ApiModel):
    """A Secret of the object's namespace as files (e.g. a credentials file or CA bundle); the kubelet reads it."""

    secret_name: Subdomain
    items: list[KeyToPath] | None = Field(default=None, max_length=16)
    default_mode: int | None = Field(default=None, ge=0, le=0o777)
    optional: bool | None = None


class EmptyDirVolume(ApiModel):
    """Scratch space that lives as long as the pod."""

    medium: Literal["", "Memory"] | None = None
    size_limit: Quantity | None = None


class ClaimVolume(ApiModel):
    """A PersistentVolumeClaim of the object's namespace."""

    claim_name: Subdomain
    read_only: bool | None = None


class ConfigMapProjection(ApiModel):
    """A ConfigMap inside a projected volume."""

    name: Subdomain
    items: list[KeyToPath] | None = Field(default=None, max_length=16)
    optional: bool | None = None


class SecretProjection(ApiModel):
    """A Secret inside a projected volume."""

    name: Subdomain
    items: list[KeyToPath] | None = Field(default=None, max_length=16)
    optional: bool | None = None


class VolumeProjection(ApiModel):
    """One source of a projected volume: a ConfigMap or a Secret (no service-account tokens: no API access)."""

    config_map: ConfigMapProjection | None = None
    secret: SecretProjection | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.configMap) != has(self.secret)", "a projected source is one configMap or secret")
            ]
        }
    )


class ProjectedVolume(ApiModel):
    """ConfigMaps and Secrets in one directory."""

    sources: list[VolumeProjection] = Field(min_length=1, max_length=16)
    default_mode: int | None = Field(default=None, ge=0, le=0o777)


class CsiVolume(ApiModel):
    """An inline CSI volume (e.g. the Secrets Store CSI driver); the driver decides what it mounts."""

    driver: Subdomain
    read_only: bool | None = None
    fs_type: str | None = Field(default=None, max_length=32)
    volume_attributes: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(default=None, max_length=32)


_VOLUME_TYPES = ("configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "csi")


class Volume(ApiModel):
    """An extra volume: configMap, secret, emptyDir, persistentVolumeClaim, projected or csi (no hostPath)."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    config_map: ConfigMapVolume | None = None
    secret: SecretVolume | None = None
    empty_dir: EmptyDirVolume | None = None
    persistent_volume_claim: ClaimVolume | None = None
    projected: ProjectedVolume | None = None
    csi: CsiVolume | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "[" + ", ".join(f"has(self.{t})" for t in _VOLUME_TYPES) + "].exists_one(x, x)",
                    "a volume needs exactly one of configMap, secret, emptyDir, persistentVolumeClaim, projected"
                    " or csi (other types such as hostPath are not allowed)",
                ),
                cel(f"self.name != '{RESERVED_VOLUME}'", "the volume name 'tmp' is the operator's (/tmp)", ".name"),
            ]
        }
    )

    @model_validator(mode="after")
    def _one_type(self) -> Volume:
        if sum(getattr(self, field) is not None for field in _VOLUME_FIELDS) != 1:
            raise ValueError(f"volume {self.name}: set exactly one of {', '.join(_VOLUME_TYPES)}")
        if self.name == RESERVED_VOLUME:
            raise ValueError("the volume name 'tmp' is the operator's (/tmp)")
        return self


_VOLUME_FIELDS = ("config_map", "secret", "empty_dir", "persistent_volume_claim", "projected", "csi")


class VolumeMount(ApiModel):
    """Where a volume appears in the container: under /mnt/, so nothing the image ships is shadowed."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    mount_path: str = Field(
        min_length=1,
        max_length=253,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.startsWith('{MOUNT_ROOT}') && !self.contains('..')",
                    "volumes mount under /mnt/ (for example /mnt/ca), without '..', so no path of the image is"
                    " replaced",
                )
            ]
        },
    )
    read_only: bool | None = None
    sub_path: RelativePath | None = None

    @model_validator(mode="after")
    def _under_mnt(self) -> VolumeMount:
        if not self.mount_path.startswith(MOUNT_ROOT) or ".." in self.mount_path:
            raise ValueError(f"volume mount {self.mount_path!r}: volumes mount under /mnt/, without '..'")
        return self


# --- the block ---


class PodOverrides(ApiModel):
    """Placement, identity and extras for every pod the object makes; the chart's `workloadPod` fills what is unset.

    Merged with the chart's defaults field by field: nodeSelector and the env, volumes and volumeMounts lists
    merge by key/name (the object wins on the same one); tolerations and imagePullSecrets are added to the
    chart's; affinity's nodeAffinity, podAffinity and podAntiAffinity, priorityClassName and
    serviceAccountName replace the chart's when set.
    """

    node_selector: dict[LabelKey, LabelValue] | None = Field(default=None, max_length=32)
    tolerations: list[Toleration] | None = Field(default=None, max_length=32)
    affinity: Affinity | None = None
    priority_class_name: Subdomain | None = Field(
        default=None,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.startsWith('system-')",
                    "system- priority classes are for node- and cluster-critical pods, not ML workloads",
                )
            ]
        },
    )
    service_account_name: Subdomain | None = Field(
        default=None,
        description="Identity of the pods (e.g. for cloud workload identity); no API token is mounted either way.",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(default=None, max_length=16)
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    volumes: list[Volume] | None = Field(
        default=None,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    volume_mounts: list[VolumeMount] | None = Field(default=None, max_length=16)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes)"
                    " && self.volumes.exists(v, v.name == m.name))",
                    "every volumeMounts entry names a volume of this pod block's volumes",
                    ".volumeMounts",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _consistent(self) -> PodOverrides:
        # The CRD's CEL rules for objects; these for the chart's defaults (MLOPS_WORKLOAD_POD).
        if self.priority_class_name and self.priority_class_name.startswith("system-"):
            raise ValueError("system- priority classes are for node- and cluster-critical pods, not ML workloads")
        names = {v.name for v in self.volumes or []}
        missing = sorted({m.name for m in self.volume_mounts or []} - names)
        if missing:
            raise ValueError(f"volumeMounts name volumes not in this pod block's volumes: {', '.join(missing)}")
        return self
