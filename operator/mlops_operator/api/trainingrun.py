"""The TrainingRun kind: one training Job on a pinned dataset version."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .common import (
    ApiModel,
    CommonStatus,
    FreeForm,
    LocalObjectReference,
    ResourceRequirements,
    StatusModel,
    cel,
    defaulted,
)
from .modelversion import Promotion
from .pod import PodOverrides

PrimaryMetric = Literal["accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2"]

SearchGrid = Annotated[
    dict[str, list[Any]],
    Field(
        json_schema_extra={
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {"x-kubernetes-preserve-unknown-fields": True},
            }
        }
    ),
]


class Evaluation(ApiModel):
    """How the model is scored on a held-out split."""

    # A CEL rule rather than minimum/maximum: the API server prints fractional bounds as integers.
    test_fraction: float = Field(
        default=0.2,
        ge=0.05,
        le=0.9,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self >= 0.05 && self <= 0.9", "testFraction must be between 0.05 and 0.9 (share of rows held out)")
            ]
        },
    )
    seed: int = Field(default=42, ge=0)
    primary_metric: PrimaryMetric | None = Field(
        default=None, description="Metric that picks the best grid point; accuracy or rmse if unset."
    )


SearchStrategy = Literal["grid", "random", "halving"]
MAX_PARALLELISM = 32  # pods of one trial round at once; more than a small cluster has cores buys nothing


class Trials(ApiModel):
    """How `search` runs as trial pods (one Indexed Job per round) instead of a search inside the training pod.

    `halving` is successive halving over training rows, as scikit-learn's HalvingGridSearchCV with
    min_resources="exhaust": round r of R evaluates its candidates on factor^(r-R+1) of the rows, keeps
    the best 1/factor by mean CV score, and the last round uses every row. Rows are the budget rather
    than an iteration count because every estimator has rows and few have a warm-startable iteration.
    """

    strategy: SearchStrategy = Field(default="grid", description="grid: every point; random: maxTrials of them.")
    max_trials: int | None = Field(
        default=None, ge=1, le=5000, description="random only: how many grid points to sample (with the run's seed)."
    )
    parallelism: int = Field(default=1, ge=1, le=MAX_PARALLELISM, description="Trial pods running at once.")
    factor: int = Field(default=3, ge=2, le=10, description="halving only: keep 1/factor of candidates a round.")
    trial_timeout_seconds: int = Field(
        default=600, ge=1, le=24 * 3600, description="Per-trial time limit; a trial over it scores nothing."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.maxTrials) || self.strategy == 'random'",
                    "maxTrials applies only to strategy random (grid and halving evaluate every grid point)",
                ),
                cel(
                    "self.strategy != 'random' || has(self.maxTrials)",
                    "strategy random needs maxTrials (how many grid points to sample)",
                ),
            ]
        }
    )

    @model_validator(mode="after")
    def _consistent(self) -> Trials:
        # The CRD's CEL rules, for specs parsed outside the API server (the worker, tests).
        if self.max_trials is not None and self.strategy != "random":
            raise ValueError("maxTrials applies only to strategy random")
        if self.strategy == "random" and self.max_trials is None:
            raise ValueError("strategy random needs maxTrials")
        return self


class TrainingRunSpec(ApiModel):
    """What to train, on which data, and where to register the result."""

    dataset_ref: LocalObjectReference
    estimator: str = Field(
        pattern=r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        max_length=256,
        description="Import path of an allow-listed scikit-learn estimator.",
    )
    params: FreeForm | None = None
    search: SearchGrid | None = None
    trials: Trials | None = Field(
        default=None, description="Run `search` as trial pods (docs/trials.md); unset: one pod, GridSearchCV."
    )
    evaluation: Evaluation = defaulted(Evaluation)
    registered_model: str = Field(min_length=1, max_length=256)
    promotion: Promotion | None = None
    resources: ResourceRequirements | None = None
    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    pod: PodOverrides | None = Field(default=None, description="Placement, identity and extras of the training pod.")

    @model_validator(mode="after")
    def _trials_need_a_grid(self) -> TrainingRunSpec:
        # Not a CEL rule: `search`'s values are schemaless (preserve-unknown-fields), which hides the field from
        # CEL altogether ("undefined field 'search'"), so the operator's parse reports it (condition and Event).
        if self.trials is not None and not self.search:
            raise ValueError("trials needs a search grid (search: {param: [values]})")
        return self


TrainingRunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Refused"]


class BestTrial(StatusModel):
    """The best candidate so far: its grid point and mean CV score (greater is better; errors negated)."""

    candidate: int
    params: FreeForm
    score: float


class TrialsStatus(StatusModel):
    """Where a trial search stands: its round, the trials done of all planned, and the best so far."""

    strategy: str
    round: int = 0  # 0-based; rounds - 1 is the last
    rounds: int = 1
    candidates: int = 0  # grid points (or samples) in round 0
    done: int = 0
    total: int = 0  # trials over every round (halving: 48 + 16 + 6 + 2)
    job_name: str | None = None  # the current round's Indexed Job
    best: BestTrial | None = None


class TrainingRunStatus(CommonStatus):
    """What the operator observed about a TrainingRun."""

    phase: TrainingRunPhase | None = None
    dataset_version: str | None = None
    job_name: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] | None = None
    model_version: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    trials: TrialsStatus | None = None
