"""The serving objects of a Deployment: one apps/v1 Deployment per track and one Service over both."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from ..api.common import API_VERSION, parse_duration
from ..api.deployment import DeploymentSpec
from ..api.pod import PodOverrides
from ..contract import (
    ANNOTATION_SPEC_HASH,
    ENV_FEEDBACK_MAX_AGE_S,
    FEEDBACK_SECRET_KEY,
    FEEDBACK_SECRET_PREVIOUS_KEY,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_MODEL_VERSION,
    LABEL_SHADOW_OF,
    LABEL_TRACK,
    MANAGED_BY,
)
from .jobs import credentials_env_from, harden
from .placement import merged_pod, place
from .plan import Meta, Obj

SERVER_PORT = 8080
# mlops-server after SIGTERM: not ready but still serving this long (endpoints drop the pod meanwhile),
# then at most SHUTDOWN_TIMEOUT_S for requests in flight; the grace period leaves margin on a loaded node.
DRAIN_DELAY_S = 5
SHUTDOWN_TIMEOUT_S = 3
TERMINATION_GRACE_SECONDS = 15
SERVICE_PORT = 80
TRACKS = ("stable", "canary")
SHADOW = "shadow"


@dataclass(frozen=True)
class ServerSettings:
    """How model server pods are built."""

    image: str
    tracking_uri: str
    image_pull_policy: str = "IfNotPresent"
    credentials_secret: str = ""  # the per-namespace Secret server pods get through envFrom; "": none
    feedback_secret: str = ""  # the per-namespace Secret of prediction-id keys (servers only); "": none
    pod_defaults: PodOverrides | None = None  # the chart's workloadPod, under every Deployment's spec.pod


def feedback_key_env(secret: str) -> list[Obj]:
    """The prediction-id keys from their own Secret (optional: without it predictions carry no ids), so the
    training and check Jobs, which get the credentials Secret, can never mint or forge an id."""
    if not secret:
        return []
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
        for name, key in (
            ("MLOPS_FEEDBACK_KEY", FEEDBACK_SECRET_KEY),
            ("MLOPS_FEEDBACK_KEY_PREVIOUS", FEEDBACK_SECRET_PREVIOUS_KEY),
        )
    ]


def track_name(name: str, track: str) -> str:
    """`<name>-stable`, `<name>-canary` or `<name>-shadow` (also the shadow track's Service)."""
    return f"{name}-{track}"


def split_replicas(replicas: int, canary_weight: int | None) -> tuple[int, int]:
    """(stable, canary) replicas for a canary weight in percent; a running canary gets at least one pod."""
    if not canary_weight:
        return replicas, 0
    canary = min(replicas, max(1, math.ceil(replicas * canary_weight / 100)))
    return replicas - canary, canary


def track_selector(meta: Meta, track: str) -> dict[str, str]:
    """The labels that select one track's pods."""
    # Shadow pods do not carry LABEL_DEPLOYMENT, which the Deployment's Service selects: users never reach them.
    return {LABEL_SHADOW_OF if track == SHADOW else LABEL_DEPLOYMENT: meta.name, LABEL_TRACK: track}


def spec_hash(spec: Obj) -> str:
    """A short digest of a desired spec, stored on the child so unchanged children are never patched."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def deployment_owner(meta: Meta) -> Obj:
    """A controller ownerReference to a deployments.mlops.dev object, so its children are collected with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def server_deployment(
    meta: Meta, spec: DeploymentSpec, track: str, version: int | None, replicas: int | None, settings: ServerSettings
) -> Obj:
    """The apps/v1 Deployment of one track, serving `version` of the registered model; `replicas` None leaves
    the count to the track's HorizontalPodAutoscaler (a merge patch without the field keeps what the HPA set)."""
    model, shadow = spec.model.registered_model, spec.strategy.canary.shadow
    common = {LABEL_TRACK: track, LABEL_MANAGED_BY: MANAGED_BY, "app.kubernetes.io/name": "mlops-server"}
    labels = {LABEL_DEPLOYMENT: meta.name, **common}
    selector = track_selector(meta, track)
    pod_labels = {**selector, **common, LABEL_MODEL_VERSION: str(version or 0)}
    if track == SHADOW and shadow is not None:
        track_env = [
            {"name": "MLOPS_SHADOW_SAMPLE", "value": str(shadow.sample)},
            {"name": "MLOPS_SHADOW_TOLERANCE", "value": str(shadow.tolerance)},
        ]  # and no prediction-id keys: nobody labels the shadow's discarded answers
    else:
        track_env = feedback_key_env(settings.feedback_secret)
        if track_env:  # late labels count up to the Deployment's max age, on whichever replica they reach
            max_age = parse_duration(spec.server.feedback_max_age).total_seconds()
            track_env.append({"name": ENV_FEEDBACK_MAX_AGE_S, "value": f"{max_age:g}"})
        if track == "stable" and shadow is not None:
            track_env.append({"name": "MLOPS_SHADOW_URL", "value": shadow_url(meta)})
    env = [
        {"name": "MLFLOW_TRACKING_URI", "value": settings.tracking_uri},
        {"name": "MLOPS_TRACK", "value": track},
        {"name": "MLOPS_DEPLOYMENT", "value": meta.name},
        {"name": "MLOPS_NAMESPACE", "value": meta.namespace},
        {"name": "HOME", "value": "/tmp"},  # the root filesystem is read-only
        {"name": "MLOPS_DRAIN_DELAY_S", "value": str(DRAIN_DELAY_S)},
        {"name": "MLOPS_SHUTDOWN_TIMEOUT_S", "value": str(SHUTDOWN_TIMEOUT_S)},
        # Off unless opted in, here and in MLflow's own loaders (defence in depth for paths we do not take).
        {"name": "MLOPS_ALLOW_UNSAFE_MODEL_FORMATS", "value": str(spec.server.allow_unsafe_model_formats).lower()},
        {"name": "MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "value": str(spec.server.allow_unsafe_model_formats).lower()},
        *track_env,
    ]
    probe = {"periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 3}
    container: Obj = {
        "name": "server",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mlops-server"],
        "args": [
            f"--model-uri=models:/{model}/{version}",
            f"--port={SERVER_PORT}",
            f"--workers={spec.server.workers}",
        ],
        "env": env,
        **credentials_env_from(settings.credentials_secret),
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": SERVER_PORT}, **probe},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": SERVER_PORT},
            **probe,
            "initialDelaySeconds": 5,
            "failureThreshold": 6,
        },
    }
    if spec.server.resources is not None:
        container["resources"] = spec.server.resources.model_dump(mode="json", by_alias=True, exclude_none=True)
    desired_spec: Obj = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(SERVER_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": place(
                harden({"containers": [container], "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS}),
                merged_pod(settings.pod_defaults, spec.pod),
            ),
        },
    }
    if version is None:
        desired_spec["replicas"] = 0
    elif replicas is not None:
        desired_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": track_name(meta.name, track),
            "namespace": meta.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_SPEC_HASH: spec_hash(desired_spec)},
            "ownerReferences": [deployment_owner(meta)],
        },
        "spec": desired_spec,
    }


def service(meta: Meta) -> Obj:
    """One Service over both tracks, so traffic follows the replica ratio on any cluster."""
    desired_spec = {
        "selector": {LABEL_DEPLOYMENT: meta.name},
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVER_PORT, "protocol": "TCP"}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": {LABEL_DEPLOYMENT: meta.name, LABEL_MANAGED_BY: MANAGED_BY},
            "annotations": {ANNOTATION_SPEC_HASH: spec_hash(desired_spec)},
            "ownerReferences": [deployment_owner(meta)],
        },
        "spec": desired_spec,
    }


def shadow_url(meta: Meta) -> str:
    """Where the stable servers find the shadow track: its Service."""
    return f"http://{track_name(meta.name, SHADOW)}.{meta.namespace}.svc:{SERVICE_PORT}"


def shadow_service(meta: Meta) -> Obj:
    """The Service over the shadow track's pods only (the stable servers' mirrors are its only clients)."""
    desired_spec = {
        "selector": {LABEL_SHADOW_OF: meta.name, LABEL_TRACK: SHADOW},
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVER_PORT, "protocol": "TCP"}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": track_name(meta.name, SHADOW),
            "namespace": meta.namespace,
            "labels": {LABEL_DEPLOYMENT: meta.name, LABEL_MANAGED_BY: MANAGED_BY, LABEL_TRACK: SHADOW},
            "annotations": {ANNOTATION_SPEC_HASH: spec_hash(desired_spec)},
            "ownerReferences": [deployment_owner(meta)],
        },
        "spec": desired_spec,
    }


def needs_update(desired: Obj, observed: Obj | None) -> bool:
    """True when the observed child was made from a different desired spec (or does not exist)."""
    if observed is None:
        return True
    return (observed["metadata"].get("annotations") or {}).get(ANNOTATION_SPEC_HASH) != desired["metadata"][
        "annotations"
    ][ANNOTATION_SPEC_HASH]


def ready_replicas(observed: Obj | None) -> int:
    """Ready pods of a track's Deployment, counting only pods of its current template."""
    if observed is None:
        return 0
    status = observed.get("status") or {}
    if status.get("observedGeneration", 0) < observed["metadata"].get("generation", 0):
        return 0
    return int(min(status.get("readyReplicas", 0) or 0, status.get("updatedReplicas", 0) or 0))


def replica_failure(observed: Obj | None) -> str | None:
    """Why a track's pods cannot be created (its ReplicaFailure condition: a PriorityClass or ServiceAccount
    that spec.pod names and that does not exist, a quota), or None."""
    for condition in ((observed or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "pods cannot be created")[:500]
    return None


def served_version(observed: Obj | None) -> int | None:
    """The model version a track's Deployment serves (from its pod template labels)."""
    if observed is None:
        return None
    labels = observed["spec"]["template"]["metadata"].get("labels") or {}
    value = int(labels.get(LABEL_MODEL_VERSION, "0"))
    return value or None
