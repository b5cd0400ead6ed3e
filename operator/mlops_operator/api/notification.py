"""The NotificationPolicy kind: where a namespace's ML events are sent (webhooks, Slack), and which of them.

A policy receives only the events of objects in its own namespace. Secret values (a Slack webhook URL, an
HMAC key) are never read from a Secret by the operator: they are keys of the notification Secret the
platform team mounts into the operator pod (chart value `notifications.secretName`), scoped by namespace —
a policy in `team-a` naming key `slack` gets the mounted file `team-a.slack` and no other namespace's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import DNS_LABEL_PATTERN, ApiModel, CommonStatus, cel

Trigger = Literal[
    "Trained",
    "TrainingFailed",
    "Approved",
    "Rejected",
    "Promoted",
    "CanaryStep",
    "RolledBack",
    "DriftDetected",
    "RetrainingStarted",
    "RetrainingFailed",
    "PerformanceDegraded",
    "ShadowPassed",
    "ShadowFailed",
]

SECRET_KEY_PATTERN = r"^[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"  # a Secret data key (no '/'), without the namespace


class Destination(ApiModel):
    """One receiver: a generic JSON webhook or a Slack-compatible incoming webhook."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    type: Literal["webhook", "slack"] = Field(
        default="webhook",
        description="webhook: the JSON payload; slack: an incoming-webhook `text`/`blocks` message.",
    )
    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The receiver's URL, if it is not a secret (a Slack webhook URL is: use urlSecretKey).",
    )
    url_secret_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=SECRET_KEY_PATTERN,
        description="Key of the operator's notification Secret holding the URL; the file read is "
        "`<namespace>.<key>` (the chart's notifications.secretName, mounted by the platform team).",
    )
    signing_secret_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=SECRET_KEY_PATTERN,
        description="Key of the operator's notification Secret holding the HMAC-SHA256 key "
        "(`<namespace>.<key>`); with it every request carries X-Mlops-Signature.",
    )
    triggers: list[Trigger] | None = Field(
        default=None, max_length=16, description="Triggers sent here; default: the policy's."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.url) != has(self.urlSecretKey)", "set exactly one of url or urlSecretKey")
            ]
        }
    )


class NotificationPolicySpec(ApiModel):
    """Which of this namespace's events are sent where."""

    destinations: list[Destination] = Field(
        min_length=1,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    triggers: list[Trigger] | None = Field(
        default=None, max_length=16, description="Triggers sent to every destination without its own; default: all."
    )
    models: list[str] | None = Field(
        default=None,
        max_length=32,
        description="Registered model names whose events are sent; default: every model in the namespace.",
    )
    suspend: bool = Field(default=False, description="True: send nothing (events are not queued for later).")


NotificationPolicyPhase = Literal["Ready", "Invalid", "Suspended"]


class NotificationPolicyStatus(CommonStatus):
    """Whether every destination can be delivered to (URL allowed, secret keys mounted)."""

    phase: NotificationPolicyPhase | None = None
    problems: list[str] | None = Field(default=None, description="Why a destination cannot be delivered to.")
