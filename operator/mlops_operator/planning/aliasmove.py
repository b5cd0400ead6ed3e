"""The MLflow alias of a Deployment's model: the intent recorded in status, the move made, and done once seen."""

from __future__ import annotations

from ..api.deployment import AliasMove, DeploymentStatus
from .observed import DeploymentObserved
from .plan import Event, Plan


def wake_version(plan: Plan, obs: DeploymentObserved, version: int) -> None:
    """Let the ModelVersion of `version` re-read this Deployment's status (Promoted or RolledBack follows)."""
    name = obs.approved.get(version)
    if name:
        plan.wake.append(("ModelVersion", obs.meta.namespace, name))


def finish_first_rollout(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, stamp: str) -> None:
    """The very first version served from an approval takes the alias once it is fully ready."""
    model, stable = obs.spec.model, status.stable_version
    if not model.alias or stable is None or obs.holder_error is not None or obs.holder_version == stable:
        return
    if stable not in obs.approved or status.canary_version is not None or status.alias_move is not None:
        return
    if obs.tracks.stable_ready >= obs.spec.replicas:
        status.alias_move = alias_intent(obs, stable, stamp, "first rollout ready")


def alias_intent(obs: DeploymentObserved, version: int, stamp: str, reason: str) -> AliasMove:
    """The alias move to record before it is made."""
    model = obs.spec.model
    return AliasMove(
        registered_model=model.registered_model,
        alias=model.alias or "",
        version=version,
        decided_at=stamp,
        reason=reason,
    )


def alias_effects(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved) -> None:
    """A recorded alias move is made (again) until MLflow shows it; then it is done and cleared."""
    move = status.alias_move
    if move is None:
        return
    if obs.holder_error is None and obs.holder_version == move.version:
        status.alias_move = None
        plan.events.append(
            Event("AliasMoved", f"alias '{move.alias}' of {move.registered_model} names version {move.version}")
        )
        wake_version(plan, obs, move.version)
        return
    plan.alias_moves.append((move.registered_model, move.alias, move.version))
