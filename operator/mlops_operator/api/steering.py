"""Steering a Deployment's rollout by hand: `spec.paused` (lasting) and `spec.rolloutRequest` (one-shot).

A pause is desired state: it holds while the field is true, as Argo Rollouts' `spec.paused` does.
Promote, promote-full and abort are events, which a level-triggered controller can only see as
state, so a request names what it is meant for — the canary's version and, for Promote, the step
it ends — and the operator records in `status.lastRequest` that it handled it. A request for
another version or step (a stale one, or one left in the spec after its canary ended) is recorded
as Ignored and never applies to a later canary; a restart finds the record and does nothing twice.
Both live in spec (not status, where Argo Rollouts keeps `status.abort`) so that plain `kubectl
patch`, Argo CD's diff and its resource actions all see and write the same documented fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, StatusModel, cel

RequestAction = Literal["Promote", "PromoteFull", "Abort"]


class RolloutRequest(ApiModel):
    """A one-shot action on the running canary; handled once, then recorded in status.lastRequest."""

    action: RequestAction = Field(
        description=(
            "Promote: end the current step now (its pause and analysis wait) and go to the next step;"
            " PromoteFull: make the canary stable at once (every remaining step skipped);"
            " Abort: roll the canary back to stable, as a failed analysis does."
        )
    )
    version: int = Field(ge=1, description="The canary version it is meant for (status.canaryVersion).")
    step: int | None = Field(
        default=None,
        ge=0,
        le=19,
        description="Promote: the step it ends (status.step, 0-based); a request for another step is ignored.",
    )
    requested_at: str | None = Field(
        default=None,
        max_length=64,
        description="When it was asked (RFC 3339); a new value makes an otherwise equal request a new one.",
    )
    reason: str | None = Field(default=None, max_length=256, description="Free text carried into the Event.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.action != 'Promote' || has(self.step)",
                    "a Promote request names the step it ends (status.step), so it can never skip a later one",
                )
            ]
        }
    )

    def key(self) -> tuple[str, int, int | None, str | None]:
        """What makes two requests the same request."""
        return (self.action, self.version, self.step, self.requested_at)


class HandledRequest(StatusModel):
    """The last rollout request the operator handled: applied, or ignored and why."""

    action: RequestAction
    version: int
    step: int | None = None
    requested_at: str | None = None
    by: str | None = Field(default=None, description="The field manager that wrote it (managedFields).")
    outcome: Literal["Applied", "Ignored"]
    message: str | None = None
    at: str | None = None

    def key(self) -> tuple[str, int, int | None, str | None]:
        """The handled request's identity, compared with spec.rolloutRequest."""
        return (self.action, self.version, self.step, self.requested_at)
