"""The ModelVersion kind: one registered model version and its promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, CommonStatus, StatusModel, cel, defaulted

MetricName = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-/]+$")
ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


class Gate(ApiModel):
    """A promotion gate on one metric: an absolute floor, an improvement over the holder, or both."""

    metric: str = MetricName
    min: float | None = None
    min_improvement: float | None = Field(
        default=None, description="Required gain over the version that holds the alias now."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.min) || has(self.minImprovement)",
                    "a gate needs 'min' or 'minImprovement' (or both)",
                )
            ]
        }
    )


class Promotion(ApiModel):
    """How a passing version receives the alias."""

    alias: str = Field(default="production", min_length=1, max_length=128, pattern=ALIAS_PATTERN)
    mode: Literal["auto", "manual"] = "auto"
    gates: list[Gate] = Field(default_factory=list, max_length=32)


class ModelSource(ApiModel):
    """Where a version came from."""

    training_run_ref: str | None = Field(default=None, min_length=1)
    run_id: str | None = None
    uri: str | None = Field(default=None, pattern=r"^(models|runs|file|s3|gs|https?|mlflow-artifacts):/.+")


class ModelVersionSpec(ApiModel):
    """A version in the MLflow registry and how it may be promoted."""

    registered_model: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=1)
    source: ModelSource | None = None
    promotion: Promotion = defaulted(Promotion)
    promote: bool = Field(default=False, description="Manual mode: set true to approve a passing version.")


class AliasMove(StatusModel):
    """An alias move the operator decided and records before making it (intent, then act, then done)."""

    registered_model: str
    alias: str
    version: int
    decided_at: str | None = None
    reason: str | None = None


class Approval(StatusModel):
    """Who set spec.promote on a manual ModelVersion, from its managed fields (the user is in the audit log)."""

    by: str = Field(description="The field manager that set spec.promote, e.g. kubectl-patch or argocd-controller.")
    at: str = Field(description="When it was set (RFC 3339, the managed-fields time).")
    via: str = Field(description="Apply (server-side apply) or Update (patch, edit, client-side apply).")


class GateResult(StatusModel):
    """How one gate was judged."""

    metric: str
    value: float | None = None
    threshold: float | None = None
    passed: bool
    message: str | None = None


ModelVersionPhase = Literal[
    "Registered", "Evaluating", "Approved", "Promoted", "Rejected", "RolledBack", "Superseded", "Refused"
]


class ModelVersionStatus(CommonStatus):
    """What the operator observed about a ModelVersion."""

    phase: ModelVersionPhase | None = None
    metrics: dict[str, float] | None = None
    gate_results: list[GateResult] | None = None
    promoted_at: str | None = None
    superseded_by: str | None = None
    alias_move: AliasMove | None = Field(default=None, description="An alias move decided and not yet confirmed.")
    approval: Approval | None = Field(default=None, description="The manual approval, recorded once when first seen.")
