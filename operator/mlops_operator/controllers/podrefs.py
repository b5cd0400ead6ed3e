"""Before a worker Job is created: do the ServiceAccount and PriorityClass its pods name exist?

A pod naming a missing one is refused by the API server's admission when the Job controller creates it,
and that refusal is only a Job Event: the run would wait, silent, until its deadline. So the gather looks
once per pass, only while the Job is still to be created (two GETs at most; `get` on serviceaccounts in the
namespace and on priorityclasses, chart rbac.yaml). A read that fails is not a refusal: the Job is created
and the API server decides.
"""

from __future__ import annotations

import logging

import httpx

from ..api.pod import PodOverrides
from ..kubeapi import ApiError
from ..planning.placement import merged_pod
from .runtime import Runtime

log = logging.getLogger("mlops.controllers")


async def missing_pod_refs(rt: Runtime, namespace: str, own: PodOverrides | None) -> tuple[str, ...]:
    """What the Job's pods (spec.pod over the chart's workloadPod) name that does not exist, one line each."""
    pod = merged_pod(rt.settings.workload_pod, own)
    if pod is None:
        return ()
    wanted = []
    if pod.service_account_name:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{pod.service_account_name}"
        wanted.append((path, f"serviceAccountName: no ServiceAccount {pod.service_account_name} in {namespace}"))
    if pod.priority_class_name:
        path = f"/apis/scheduling.k8s.io/v1/priorityclasses/{pod.priority_class_name}"
        wanted.append((path, f"priorityClassName: no PriorityClass {pod.priority_class_name}"))
    missing = []
    for path, message in wanted:
        try:
            if await rt.kube.get_or_none(path) is None:
                missing.append(message)
        except (ApiError, httpx.HTTPError) as error:
            log.info("could not check %s (%s); the API server decides when the pods are created", path, error)
    return tuple(missing)
