"""The Dataset kind: a data source, its expected schema and the validation gate."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, CommonStatus, Duration, ResourceRequirements, StatusModel, cel, defaulted
from .pod import PodOverrides

ColumnType = Literal["float", "int", "category", "string", "bool", "datetime"]


class DataSource(ApiModel):
    """Where the data lives and how it is encoded."""

    uri: str = Field(
        min_length=1,
        pattern=r"^(file|https?|s3|gs|runs|models|mlflow-artifacts)://.+",
        description="file://, http(s)://, s3://, gs:// or an MLflow artifact URI.",
    )
    format: Literal["csv", "parquet"] = "csv"


class ColumnSchema(ApiModel):
    """One expected column and the values it may hold."""

    name: str = Field(min_length=1, max_length=256)
    type: ColumnType
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    values: list[str] | None = Field(default=None, min_length=1, max_length=1000)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max"),
                cel(
                    "!has(self.values) || self.type == 'category' || self.type == 'string'",
                    "values (allowed values) apply only to category or string columns",
                ),
                cel(
                    "(!has(self.min) && !has(self.max)) || self.type == 'float' || self.type == 'int'",
                    "min and max apply only to float or int columns",
                ),
            ]
        }
    )


class ValidationRules(ApiModel):
    """Whole-table rules checked before a version becomes Ready."""

    min_rows: int = Field(default=1, ge=0)
    max_null_fraction: float = Field(default=0.0, ge=0.0, le=1.0)


def _validation_resources() -> ResourceRequirements:
    # A validation Job reads and profiles one table: bounded, so a huge or hostile source cannot take the node.
    return ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"}, limits={"cpu": "1", "memory": "2Gi"})


class DatasetSpec(ApiModel):
    """What a Dataset is: a source, its target column, and the checks it must pass."""

    source: DataSource
    target: str | None = Field(default=None, min_length=1, description="Label column; omit if unsupervised.")
    schema_: list[ColumnSchema] | None = Field(
        default=None,
        alias="schema",
        max_length=500,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    validation: ValidationRules = defaulted(ValidationRules)
    refresh_interval: Duration | None = None
    resources: ResourceRequirements = defaulted(_validation_resources)  # of the validation Job's container
    pod: PodOverrides | None = Field(
        default=None, description="Placement, identity and extras of the check Jobs' pods."
    )


class Violation(StatusModel):
    """One failed check, column by column."""

    column: str | None = None
    rule: str
    message: str


DatasetPhase = Literal["Pending", "Validating", "Ready", "Invalid"]


class DatasetStatus(CommonStatus):
    """What the operator observed about a Dataset."""

    phase: DatasetPhase | None = None
    version: str | None = Field(default=None, description="Content fingerprint (sha256:...).")
    rows: int | None = None
    violations: list[Violation] | None = None
    profile_uri: str | None = None
    job_name: str | None = Field(default=None, description="The Job of the newest check (running or done).")
    checked_job: str | None = Field(default=None, description="The Job whose result this status shows.")
    last_checked: str | None = None
