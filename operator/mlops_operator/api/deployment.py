"""The Deployment kind (deployments.mlops.dev, short name mldeploy): model serving with canaries."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import (
    ApiModel,
    CommonStatus,
    Duration,
    ResourceRequirements,
    StatusModel,
    cel,
    defaulted,
)
from .modelversion import ALIAS_PATTERN, AliasMove
from .monitoring import DriftStatus, Monitoring, PerformanceStatus
from .pod import PodOverrides
from .retraining import Retraining, RetrainingStatus
from .scaling import Autoscaling, DisruptionBudget
from .steering import HandledRequest, RolloutRequest


class ModelSelector(ApiModel):
    """Which registered model to serve: whoever holds an alias, or one pinned version."""

    registered_model: str = Field(min_length=1, max_length=256)
    alias: str | None = Field(default=None, min_length=1, max_length=128, pattern=ALIAS_PATTERN)
    version: int | None = Field(default=None, ge=1)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.alias) != has(self.version)", "set exactly one of model.alias or model.version")
            ]
        }
    )


class CanaryStep(ApiModel):
    """Send `weight` percent of replicas to the canary, then wait `pause` while analysis runs."""

    weight: int = Field(ge=1, le=100)
    pause: Duration | None = None


LIVE_QUALITY_BUILTINS = ("liveAccuracy", "liveErrors")
# maxDegradation by builtin: accuracy points for liveAccuracy, a relative |error| increase for liveErrors
# (docs/quality-signals.md: the trade-off behind each).
DEFAULT_MAX_DEGRADATION: dict[str, float] = {"liveAccuracy": 0.04, "liveErrors": 0.1}
_LIVE = "has(self.builtin) && self.builtin in ['liveAccuracy', 'liveErrors']"


class LiveQuality(ApiModel):
    """How a canary's live quality (labelled feedback) is compared with the stable track's in the same step."""

    max_degradation: float | None = Field(
        default=None,
        ge=0.0,
        le=10.0,
        description=(
            "How much worse the canary may be: accuracy points for liveAccuracy (default 0.04), a relative"
            " increase of |error| for liveErrors (default 0.1: 10 % larger errors)."
        ),
    )
    significance: float = Field(
        default=0.05,
        gt=0.0,
        le=0.5,
        description=(
            "The chance per step of promoting a canary worse than maxDegradation; it is spent over the step's"
            " analyses, so a pass needs p < significance / analyses in the step."
        ),
    )
    min_labels: int = Field(
        default=200, ge=1, le=10_000_000, description="Labels each track needs in the step before any verdict."
    )

    def max_degradation_for(self, builtin: str) -> float:
        """The margin in force: the spec's, else the builtin's default."""
        return self.max_degradation if self.max_degradation is not None else DEFAULT_MAX_DEGRADATION[builtin]


class AnalysisMetric(ApiModel):
    """One check run every analysis interval: a builtin or a PromQL query, with bounds."""

    name: str = Field(min_length=1, max_length=63)
    builtin: Literal["errorRate", "latencyP99Seconds", "liveAccuracy", "liveErrors"] | None = Field(
        default=None,
        description=(
            "errorRate and latencyP99Seconds take max or min; liveAccuracy and liveErrors compare the canary's"
            " labelled predictions with the stable track's over the step (quality), and are not judged at a"
            " 100 % step, where no stable traffic is left to compare with."
        ),
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description=(
            "PromQL for the canary track; {{namespace}} {{deployment}} {{track}} {{window}} are filled in, and"
            " every selector is scoped to this namespace (one naming another namespace is refused)."
        ),
    )
    max: float | None = None
    min: float | None = None
    quality: LiveQuality | None = Field(default=None, description="Settings of liveAccuracy and liveErrors.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.builtin) != has(self.query)", "set exactly one of builtin or query"),
                cel(
                    f"has(self.max) || has(self.min) || ({_LIVE})",
                    "an analysis metric needs 'max' or 'min' (liveAccuracy and liveErrors need neither)",
                ),
                cel(
                    f"!({_LIVE}) || !(has(self.max) || has(self.min))",
                    "liveAccuracy and liveErrors compare with the stable track: set quality.maxDegradation,"
                    " not max or min",
                ),
                cel(f"!has(self.quality) || ({_LIVE})", "quality applies only to liveAccuracy and liveErrors"),
                cel(
                    "!has(self.quality) || !has(self.quality.maxDegradation) || self.builtin != 'liveAccuracy'"
                    " || self.quality.maxDegradation < 1.0",
                    "liveAccuracy's quality.maxDegradation is in accuracy points: below 1 (0.04 is 4 points)",
                ),
            ]
        }
    )

    @property
    def live(self) -> bool:
        """True for the builtins that compare the canary's labelled quality with the stable track's."""
        return self.builtin in LIVE_QUALITY_BUILTINS

    @property
    def live_quality(self) -> LiveQuality:
        """The quality settings in force (the API model's defaults when unset)."""
        return self.quality or LiveQuality()


class Analysis(ApiModel):
    """Automatic canary analysis through the Prometheus HTTP API."""

    interval: Duration = "30s"
    failure_limit: int = Field(default=2, ge=0, le=100, description="Failed analyses that abort the canary.")
    consecutive_error_limit: int = Field(
        default=4,
        ge=1,
        le=100,
        description=(
            "Successive analyses in which a query could not run (Prometheus unreachable, timeout, invalid query)"
            " that abort the canary (Argo Rollouts' default, 4)."
        ),
    )
    metrics: list[AnalysisMetric] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class TrafficRouting(ApiModel):
    """Exact traffic weights through a Gateway API HTTPRoute instead of replica ratios."""

    http_route: str = Field(min_length=1, max_length=253)


class Shadow(ApiModel):
    """A shadow step before the first canary step: stable servers mirror a sample of live requests to the candidate,
    whose answers are discarded and compared with the stable's; users are never served by it."""

    duration: Duration = Field(default="5m", description="How long the shadow runs before its verdict.")
    min_requests: int = Field(
        default=200, ge=1, le=10_000_000, description="Mirrored requests the verdict needs (fewer: it waits)."
    )
    min_agreement: float = Field(
        default=0.95, ge=0.0, le=1.0, description="Fraction of compared rows the shadow must answer like the stable."
    )
    tolerance: float = Field(
        default=0.05,
        ge=0.0,
        le=10.0,
        description="Values (regression) agree when |shadow - stable| <= tolerance x max(|stable|, 1); classes: equal.",
    )
    sample: float = Field(default=0.1, gt=0.0, le=1.0, description="Fraction of live requests mirrored.")
    max_error_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Mirrored requests the shadow failed or answered too late (2 s)."
    )
    max_latency_ratio: float = Field(
        default=2.0,
        ge=1.0,
        le=1000.0,
        description="The shadow's p95 latency over the stable's (server-side) at most this; under 5 ms not judged.",
    )
    replicas: int = Field(default=1, ge=1, le=100, description="Shadow pods (they take only the mirrored sample).")


class Canary(ApiModel):
    """The canary strategy: steps of increasing weight, each followed by analysis."""

    steps: list[CanaryStep] = Field(
        min_length=1,
        max_length=20,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(a, self.exists_one(b, b.weight == a.weight)) && self.map(s, s.weight).isSorted()",
                    "canary step weights must be strictly increasing (for example 10, 50, 100)",
                )
            ]
        },
    )
    analysis: Analysis = defaulted(Analysis)
    progress_deadline: Duration = Field(
        default="10m",
        description=(
            "A step whose canary pods are not Ready, or that gets no analysis data, this long after its start"
            " (plus its pause) aborts the canary (reasons CanaryNotReady, NoAnalysisData)."
        ),
    )
    traffic_routing: TrafficRouting | None = None
    shadow: Shadow | None = Field(default=None, description="A shadow step before the first canary step.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.analysis) || !has(self.analysis.metrics) || !self.analysis.metrics.exists(m,"
                    " has(m.builtin) && m.builtin in ['liveAccuracy', 'liveErrors'])"
                    " || self.steps.exists(s, s.weight < 100)",
                    "liveAccuracy and liveErrors are judged at steps below 100 %: add a step such as weight 50",
                )
            ]
        }
    )


def _default_canary() -> Canary:
    return Canary(
        steps=[CanaryStep(weight=10, pause="60s"), CanaryStep(weight=50, pause="60s"), CanaryStep(weight=100)]
    )


class Strategy(ApiModel):
    """How a new version replaces the serving one."""

    canary: Canary = defaulted(_default_canary)


class ServerSettings(ApiModel):
    """Model server pods."""

    workers: int = Field(default=1, ge=1, le=32)
    resources: ResourceRequirements | None = None
    allow_unsafe_model_formats: bool = Field(
        default=False,
        description="Also load pickle/cloudpickle files, models with code paths and custom pyfunc models. "
        "Loading them runs code from the artifact with the server's rights: enable only for models whose "
        "every version you trust. Off: only skops-format scikit-learn models load.",
    )
    feedback_max_age: Duration = Field(
        default="168h",
        description="Labels sent back (POST .../feedback) count up to this long after the prediction; later ones"
        " are refused as expired. Each replica remembers the ids it counted for this long, to count none twice.",
    )


class DeploymentSpec(ApiModel):
    """Serve a registered model and roll out new versions as canaries."""

    model: ModelSelector
    replicas: int = Field(default=2, ge=0, le=1000, description="Pods of the stable track (without autoscaling).")
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale the stable track with an HPA instead of spec.replicas."
    )
    disruption_budget: DisruptionBudget = defaulted(DisruptionBudget)
    strategy: Strategy = defaulted(Strategy)
    monitoring: Monitoring | None = None
    retraining: Retraining | None = None
    server: ServerSettings = defaulted(ServerSettings)
    pod: PodOverrides | None = Field(
        default=None, description="Placement, identity and extras of the model-server pods (every track)."
    )
    # No schema default (unset means not paused): the field appears on an object only when someone sets it, so
    # a GitOps diff or an older operator never meets a `paused: false` nobody wrote.
    paused: bool | None = Field(
        default=None,
        description=(
            "True: hold the rollout where it is: no canary starts or changes step and the step's clocks (pause,"
            " progressDeadline) stop; analysis still runs and a failing canary still rolls back. Unset: false."
        ),
    )
    rollout_request: RolloutRequest | None = Field(
        default=None, description="A one-shot Promote, PromoteFull or Abort of the running canary."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.autoscaling) || !has(self.autoscaling.target.cpuUtilization) || (has(self.server)"
                    " && has(self.server.resources) && has(self.server.resources.requests)"
                    " && 'cpu' in self.server.resources.requests)",
                    "autoscaling on cpuUtilization needs server.resources.requests.cpu (a percent of that request)",
                )
            ]
        }
    )


class ServedInterval(StatusModel):
    """Which version served from when to when."""

    version: int
    from_: str = Field(alias="from")
    to: str | None = None


class AnalysisResult(StatusModel):
    """The latest value of one analysis metric and whether it passed."""

    name: str
    value: float | None = None
    threshold: float | None = None
    passed: bool | None = Field(default=None, description="Unset when Prometheus had no data yet or the query erred.")
    error: str | None = Field(default=None, description="Why the query could not run (unreachable, invalid).")
    message: str | None = None


class ShadowStatus(StatusModel):
    """The shadow step of the current candidate: what was compared and the verdict."""

    version: int
    phase: Literal["Running", "Passed", "Failed"] = "Running"
    started_at: str | None = None
    checked_at: str | None = None
    requests: int | None = Field(default=None, description="Mirrored requests answered or failed by the shadow.")
    rows: int | None = None
    agreement: float | None = Field(default=None, description="Fraction of compared rows that agreed.")
    error_rate: float | None = None
    dropped: int | None = Field(default=None, description="Copies dropped because a stable server's queue was full.")
    latency_p95: float | None = Field(default=None, description="The shadow's p95 latency, seconds.")
    stable_latency_p95: float | None = None
    message: str | None = None


class Rollback(StatusModel):
    """A canary that was aborted: which version, why, and when."""

    version: int
    reason: str = Field(
        description="AnalysisFailed, AnalysisErrors, CanaryNotReady, NoAnalysisData, ShadowDisagreement, ShadowErrors,"
        " ShadowLatency, NoShadowTraffic, ShadowNotReady, AbortedByRequest or ..."
    )
    message: str | None = None
    at: str | None = None


DeploymentPhase = Literal["Progressing", "Paused", "Healthy", "Degraded", "RollingBack", "RolledBack", "Refused"]


class DeploymentStatus(CommonStatus):
    """What the operator observed about a Deployment."""

    phase: DeploymentPhase | None = None
    stable_version: int | None = None
    canary_version: int | None = None
    canary_weight: int | None = None
    step: int | None = Field(default=None, description="Index of the current canary step (0-based).")
    step_started_at: str | None = None
    paused_at: str | None = Field(
        default=None, description="When spec.paused took hold; on resume the step's clocks move on by the pause."
    )
    last_request: HandledRequest | None = Field(
        default=None, description="The last spec.rolloutRequest handled (so none is applied twice)."
    )
    step_analysis_passed: bool | None = Field(
        default=None, description="An analysis in this step judged every metric and all passed (needed to move on)."
    )
    analysis_failures: int | None = None
    analysis_errors: int | None = Field(default=None, description="Successive analyses in which a query erred.")
    last_analysis_at: str | None = None
    analysis: list[AnalysisResult] | None = None
    shadow: ShadowStatus | None = None
    rolled_back_version: int | None = None
    rollbacks: list[Rollback] | None = Field(default=None, description="The last aborted canaries, newest last.")
    alias_move: AliasMove | None = Field(default=None, description="An alias move decided and not yet confirmed.")
    drift: DriftStatus | None = None
    performance: PerformanceStatus | None = None
    retraining: RetrainingStatus | None = None
    last_retraining_run: str | None = None
    last_retraining_at: str | None = None
    endpoint: str | None = None
    ready_replicas: int | None = None
    history: list[ServedInterval] | None = None
