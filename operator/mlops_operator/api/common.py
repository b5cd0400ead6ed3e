"""Types shared by every kind: conditions, references, durations, resources."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict

GROUP = "mlops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as `90s`, `5m` or `1h30m` into a timedelta."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 1h or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry: a CEL rule and the message a person sees."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(
        max_length=32,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.matches('{DURATION_PATTERN}')",
                    "must be a duration such as 30s, 5m, 1h or 1h30m (units ms, s, m, h)",
                )
            ]
        },
    ),
]

Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]

FreeForm = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]


class ApiModel(BaseModel):
    """Base for API types: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", serialize_by_alias=True)


class StatusModel(ApiModel):
    """Base for status types: tolerant of fields written by newer operators."""

    model_config = ConfigDict(extra="ignore")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A Kubernetes-style condition (api-conventions: type, status, reason, message)."""

    type: str
    status: ConditionStatus
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = ""
    last_transition_time: str = Field(description="RFC 3339 time when status last changed.")
    observed_generation: int | None = None


class LocalObjectReference(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: ObjectName


# Kubernetes refuses a pod whose extended resource is requested without (or unlike) its limit. The CEL
# cost budget allows the membership test, not comparing quantities: a differing request the API server
# refuses when the pod is created (Degraded PodsNotCreated on a Deployment).
_EXTENDED_IN_LIMITS = (
    "!has(self.requests) || self.requests.all(k, !k.contains('/') || (has(self.limits) && k in self.limits))"
)


class ResourceRequirements(ApiModel):
    """CPU, memory and accelerators (e.g. `nvidia.com/gpu` in limits) for a pod's container, as in core/v1."""

    requests: dict[str, Quantity] | None = Field(default=None, max_length=8)
    limits: dict[str, Quantity] | None = Field(default=None, max_length=8)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    _EXTENDED_IN_LIMITS,
                    "extended resources such as nvidia.com/gpu cannot be overcommitted: set them in limits"
                    " (a request, if set, must equal the limit)",
                )
            ]
        }
    )


class CommonStatus(StatusModel):
    """Fields every kind's status carries."""

    observed_generation: int | None = None
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    message: str | None = Field(default=None, description="A human-readable summary of the state.")


def defaulted(factory: Any) -> Any:
    """A field defaulting to `factory()`, with that default also written into the CRD schema."""

    def add_default(schema: dict[str, Any]) -> None:
        schema["default"] = factory().model_dump(mode="json", by_alias=True, exclude_none=True)

    return Field(default_factory=factory, json_schema_extra=add_default)
