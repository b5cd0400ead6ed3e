"""Who approved a manual ModelVersion, and when: read from the object's managed fields.

Kubernetes records, for every field, the field manager that last set it (`kubectl-patch`,
`kubectl-client-side-apply`, `argocd-controller`, `kubectl-mlops`, ...), the operation (Apply or
Update) and the time. The user's own name is not part of managedFields: it is in the API server's
audit log at that time, which the record here lets an auditor find. No webhook is needed for this.
"""

from __future__ import annotations

from .plan import Obj

TAG_APPROVED_BY = "mlops.dev/approved-by"  # the field manager that set spec.promote
TAG_APPROVED_AT = "mlops.dev/approved-at"
TAG_APPROVED_VIA = "mlops.dev/approved-via"  # Apply | Update


RECORDED_FIELDS = ("promote", "rolloutRequest")  # the spec fields whose writer the operator records


def recorded_writers(metadata: Obj) -> list[Obj]:
    """managedFields cut to what `field_manager` reads for the recorded fields (a cached body needs no more:
    the full list is most of an object's size)."""
    kept = []
    for entry in metadata.get("managedFields") or []:
        spec = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
        owned = {f"f:{name}": spec[f"f:{name}"] for name in RECORDED_FIELDS if f"f:{name}" in spec}
        if owned:
            kept.append(
                {**{k: entry[k] for k in ("manager", "operation", "time") if k in entry}, "fieldsV1": {"f:spec": owned}}
            )
    return kept


def field_manager(metadata: Obj, field: str) -> Obj | None:
    """The newest managedFields entry that owns `spec.<field>` (None: the API server sent no managed fields)."""
    newest: Obj | None = None
    for entry in metadata.get("managedFields") or []:
        spec = ((entry.get("fieldsV1") or {}).get("f:spec")) or {}
        if f"f:{field}" in spec and (newest is None or str(entry.get("time", "")) >= str(newest.get("time", ""))):
            newest = entry
    return newest


def approval_of(metadata: Obj, fallback_time: str) -> Obj:
    """The approval record of an object whose spec.promote is true: the newest managedFields entry that
    owns spec.promote, or an `unknown` manager when the API server sent no managed fields."""
    newest = field_manager(metadata, "promote")
    if newest is None:
        return {"by": "unknown", "at": fallback_time, "via": "unknown"}
    return {
        "by": str(newest.get("manager") or "unknown"),
        "at": str(newest.get("time") or fallback_time),
        "via": str(newest.get("operation") or "unknown"),
    }


def approval_tags(approval: Obj) -> dict[str, str]:
    """The tags the approved MLflow version carries, the same record as status.approval."""
    return {TAG_APPROVED_BY: approval["by"], TAG_APPROVED_AT: approval["at"], TAG_APPROVED_VIA: approval["via"]}


def tags_missing(registered: Obj | None, wanted: dict[str, str]) -> dict[str, str]:
    """Those of `wanted` that the registry version (MLflow's JSON) does not carry with that value yet."""
    have = {t.get("key"): t.get("value") for t in (registered or {}).get("tags") or []}
    return {key: value for key, value in wanted.items() if have.get(key) != value}
