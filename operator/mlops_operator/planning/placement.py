"""`spec.pod` on the pods the operator builds: merged with the chart's `workloadPod`, then laid over a hardened pod.

The merge, field by field (the object is `own`, the chart's defaults `defaults`):

| field | merge |
|---|---|
| nodeSelector | maps merge; the object's value wins for the same key |
| tolerations | the chart's, then the object's (exact duplicates dropped): a toleration only widens where pods may go |
| affinity | nodeAffinity, podAffinity, podAntiAffinity each: the object's replaces the chart's when set |
| priorityClassName, serviceAccountName | the object's when set, else the chart's |
| imagePullSecrets | the chart's, then the object's (by name): the chart's registry is needed for our images |
| env | by name; the object's wins |
| volumes | by name; the object's wins |
| volumeMounts | by mountPath; the object's wins |

Nothing here can undo `harden`: the block has no securityContext, token or host fields, the operator's env
comes first and its names cannot be reused (api/pod.py), and /tmp's volume name is reserved.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..api.pod import PodOverrides
from .plan import Obj

_T = TypeVar("_T")

POD_REFS_MISSING = "PodRefsMissing"  # the reason of Ready=False while a Job's pods would name what does not exist
POD_REFS_RECHECK_SECONDS = 30.0  # a ServiceAccount or PriorityClass sends no event we watch: look again


def missing_refs_message(missing: tuple[str, ...]) -> str:
    """Why no Job is created yet, naming each missing object and where it is set."""
    return f"no Job until it exists: {'; '.join(missing)} (set in spec.pod or the chart's workloadPod)"


def _keyed(chart: list[Any] | None, own: list[Any] | None, key: str) -> list[Any] | None:
    merged: dict[Any, Any] = {getattr(item, key): item for item in chart or []}
    merged.update({getattr(item, key): item for item in own or []})
    return list(merged.values()) or None


def _appended(chart: list[_T] | None, own: list[_T] | None) -> list[_T] | None:
    merged: list[_T] = []
    for item in [*(chart or []), *(own or [])]:
        if item not in merged:
            merged.append(item)
    return merged or None


def merged_pod(defaults: PodOverrides | None, own: PodOverrides | None) -> PodOverrides | None:
    """The chart's defaults with the object's `spec.pod` over them (the table in this module's docstring)."""
    if defaults is None or own is None:
        return own or defaults
    affinity = defaults.affinity
    if own.affinity is not None:
        chart_affinity = defaults.affinity.model_dump(exclude_none=True) if defaults.affinity else {}
        affinity = type(own.affinity).model_validate({**chart_affinity, **own.affinity.model_dump(exclude_none=True)})
    return PodOverrides(
        node_selector={**(defaults.node_selector or {}), **(own.node_selector or {})} or None,
        tolerations=_appended(defaults.tolerations, own.tolerations),
        affinity=affinity,
        priority_class_name=own.priority_class_name or defaults.priority_class_name,
        service_account_name=own.service_account_name or defaults.service_account_name,
        image_pull_secrets=_keyed(defaults.image_pull_secrets, own.image_pull_secrets, "name"),
        env=_keyed(defaults.env, own.env, "name"),
        volumes=_keyed(defaults.volumes, own.volumes, "name"),
        volume_mounts=_keyed(defaults.volume_mounts, own.volume_mounts, "mount_path"),
    )


def _dump(items: list[Any] | None) -> list[Obj]:
    return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items or []]


def place(pod_spec: Obj, pod: PodOverrides | None) -> Obj:
    """Lay `pod` (already merged) over a hardened pod spec with one container; returns the same dict."""
    if pod is None:
        return pod_spec
    container = pod_spec["containers"][0]
    if pod.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(pod.node_selector.items()))
    if pod.tolerations:
        pod_spec["tolerations"] = _dump(pod.tolerations)
    if pod.affinity is not None:
        pod_spec["affinity"] = pod.affinity.model_dump(mode="json", by_alias=True, exclude_none=True)
    if pod.priority_class_name:
        pod_spec["priorityClassName"] = pod.priority_class_name
    if pod.service_account_name:
        # Identity only: harden's automountServiceAccountToken=false stays, so the pod gets no API token.
        pod_spec["serviceAccountName"] = pod.service_account_name
    if pod.image_pull_secrets:
        pod_spec["imagePullSecrets"] = _dump(pod.image_pull_secrets)
    # After the operator's own (their names are reserved in api/pod.py, so none is shadowed).
    container["env"] = [*container.get("env", []), *_dump(pod.env)]
    pod_spec["volumes"] = [*pod_spec.get("volumes", []), *_dump(pod.volumes)]
    container["volumeMounts"] = [*container.get("volumeMounts", []), *_dump(pod.volume_mounts)]
    return pod_spec
