"""How a Deployment's serving tracks scale and how many of their pods a voluntary disruption may take."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from .common import ApiModel, Quantity, cel


class AutoscalingTarget(ApiModel):
    """What the HorizontalPodAutoscaler holds per pod: one of in-flight requests or CPU utilization."""

    in_flight_requests: Quantity | None = Field(
        default=None,
        description=(
            "Average requests in flight per stable pod (the server's mlops_server_requests_in_flight gauge, as a"
            " Pods metric: the cluster needs a custom-metrics adapter such as prometheus-adapter that serves it)."
        ),
    )
    cpu_utilization: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Average CPU use per stable pod in percent of its request (needs server.resources.requests.cpu).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.inFlightRequests) != has(self.cpuUtilization)",
                    "set exactly one of inFlightRequests (for example 4) or cpuUtilization (for example 70)",
                )
            ]
        }
    )


class Autoscaling(ApiModel):
    """An HPA on the stable track; while a canary runs its replicas follow the stable's so the weight holds."""

    min_replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int = Field(ge=1, le=1000)
    target: AutoscalingTarget

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "minReplicas must not be above maxReplicas")
            ]
        }
    )


class DisruptionBudget(ApiModel):
    """The PodDisruptionBudget of each serving track (stable, canary): drains evict at most this many at once."""

    max_unavailable: Quantity = Field(
        default=1,
        description="Pods of one track a voluntary disruption (a node drain) may take at once: a count or a percent.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",
                    "must be a count such as 1 or a percent such as 25%",
                )
            ]
        },
    )
