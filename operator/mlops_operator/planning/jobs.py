"""Job bodies for the worker commands, and how to read a finished Job's outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import contract
from ..api.pod import PodOverrides
from ..contract import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_OWNER_KIND,
    LABEL_OWNER_NAME,
    MANAGED_BY,
)
from .placement import merged_pod, place
from .plan import Obj, owner_reference


@dataclass(frozen=True)
class WorkerSettings:
    """How Job pods are built: the worker image and where MLflow is."""

    image: str
    tracking_uri: str
    image_pull_policy: str = "IfNotPresent"
    pod_defaults: PodOverrides | None = None  # the chart's workloadPod, under every object's spec.pod
    source_policy: str = ""  # the cluster's Dataset source policy (JSON) for the worker; "": none
    credentials_secret: str = ""  # the per-namespace Secret Job pods get through envFrom; "": none


def credentials_env_from(secret: str) -> Obj:
    """`envFrom` of the namespace's credentials Secret (MLflow, object store), if one is configured. The
    kubelet resolves it, so the operator reads no Secret; optional, so a namespace without one still runs;
    `env` comes after `envFrom`, so no key of the Secret overrides what the operator sets."""
    return {"envFrom": [{"secretRef": {"name": secret, "optional": True}}]} if secret else {}


# Pod Security "restricted": the images run as uid 10001; /tmp is the only writable path.
POD_SECURITY: Obj = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY: Obj = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
TMP_VOLUME: Obj = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT: Obj = {"name": "tmp", "mountPath": "/tmp"}


def harden(pod_spec: Obj) -> Obj:
    """Apply the restricted Pod Security settings, with a writable /tmp and no API token, to a pod spec."""
    pod_spec["securityContext"] = dict(POD_SECURITY)
    # Workers and model servers never call the Kubernetes API: no token for a compromised pod to use.
    pod_spec["automountServiceAccountToken"] = False
    pod_spec["volumes"] = [dict(TMP_VOLUME)]
    for container in pod_spec["containers"]:
        container["securityContext"] = dict(CONTAINER_SECURITY)
        container["volumeMounts"] = [dict(TMP_MOUNT)]
    return pod_spec


def worker_object(body: Obj) -> str:
    """The JSON a worker receives about the object it acts for (identity and spec but spec.pod, no status)."""
    meta = body["metadata"]
    return json.dumps(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {k: meta.get(k) for k in ("namespace", "name", "uid", "generation")},
            # Without spec.pod: placement is the kubelet's business, not the worker's, and a worker image
            # older than the operator (an upgrade in progress) parses every other field it knows.
            "spec": {k: v for k, v in (body.get("spec") or {}).items() if k != "pod"},
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def worker_job(
    *,
    owner: Obj,
    name: str,
    command: str,
    settings: WorkerSettings,
    extra_env: dict[str, str],
    resources: Obj | None,
    backoff_limit: int,
    active_deadline_seconds: int | None,
    ttl_seconds_after_finished: int | None,
    annotations: dict[str, str] | None = None,
    pod: PodOverrides | None = None,
) -> Obj:
    """A batch/v1 Job running `mlops-worker <command>` for `owner`, its pod placed by `pod` over the chart's."""
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: f"worker-{command}",
        LABEL_OWNER_KIND: owner["kind"],
        LABEL_OWNER_NAME: owner["metadata"]["name"],
    }
    env = [
        {"name": contract.ENV_TRACKING_URI, "value": settings.tracking_uri},
        {"name": contract.ENV_OBJECT, "value": worker_object(owner)},
        {"name": contract.ENV_JOB_NAME, "value": name},
        {"name": "HOME", "value": "/tmp"},  # the root filesystem is read-only
        *({"name": key, "value": value} for key, value in sorted(extra_env.items())),
    ]
    if settings.source_policy:
        env.append({"name": "MLOPS_SOURCE_POLICY", "value": settings.source_policy})
    container: Obj = {
        "name": "worker",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mlops-worker", command],
        "env": env,
        **credentials_env_from(settings.credentials_secret),
        # The worker prints "error: <reason>" last; the kubelet turns the log tail into the message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if resources:
        container["resources"] = resources
    pod_spec = place(
        harden({"restartPolicy": "Never", "containers": [container]}), merged_pod(settings.pod_defaults, pod)
    )
    spec: Obj = {
        "backoffLimit": backoff_limit,
        # Exit code 2 is a permanent error (bad column, bad params): retrying cannot help.
        "podFailurePolicy": {
            "rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations or {},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands: running, succeeded or failed (with the reason a person can act on)."""

    state: str  # Pending | Running | Succeeded | Failed
    start_time: str | None = None
    completion_time: str | None = None
    reason: str = ""
    message: str = ""


def _condition(job: Obj, ctype: str) -> Obj | None:
    return next(
        (c for c in job.get("status", {}).get("conditions", []) or [] if c["type"] == ctype and c["status"] == "True"),
        None,
    )


def job_outcome(job: Obj, pods: list[Obj] | None = None) -> JobOutcome:
    """Read a Job (and, when it failed, its pods) into an outcome."""
    status = job.get("status", {}) or {}
    start = status.get("startTime")
    if _condition(job, "Complete"):
        return JobOutcome("Succeeded", start, status.get("completionTime"))
    failed = _condition(job, "Failed")
    if failed:
        return JobOutcome("Failed", start, failed.get("lastTransitionTime"), *_failure(job, failed, pods or []))
    if status.get("active"):
        return JobOutcome("Running", start)
    return JobOutcome("Pending", start)


def _failure(job: Obj, condition: Obj, pods: list[Obj]) -> tuple[str, str]:
    reason = condition.get("reason", "Failed")
    if reason == "DeadlineExceeded":
        limit = job.get("spec", {}).get("activeDeadlineSeconds")
        return "DeadlineExceeded", f"deadline exceeded: the Job ran longer than activeDeadlineSeconds={limit}"
    terminated = _last_terminated(pods)
    if terminated and terminated.get("reason") == "OOMKilled":
        limit = _memory_limit(job)
        where = f" of {limit}" if limit else ""
        return "OOMKilled", f"OOMKilled: the worker ran out of memory (limit{where}); raise resources.limits.memory"
    message = _error_line(terminated.get("message", "") if terminated else "")
    if message:
        return reason, message
    exit_code = terminated.get("exitCode") if terminated else None
    detail = condition.get("message") or "the worker failed"
    return reason, f"{detail} (exit code {exit_code})" if exit_code is not None else detail


def _last_terminated(pods: list[Obj]) -> Obj | None:
    states = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []) or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                states.append(terminated)
    return max(states, key=lambda t: t.get("finishedAt") or "", default=None)


def _error_line(log_tail: str) -> str:
    """The worker's last `error: ...` line, or the last non-empty line of the log tail."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    return lines[-1][:500] if lines else ""


def _memory_limit(job: Obj) -> str | None:
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    limits: dict[str, Any] = (containers[0].get("resources") or {}).get("limits") or {} if containers else {}
    value = limits.get("memory")
    return str(value) if value is not None else None
