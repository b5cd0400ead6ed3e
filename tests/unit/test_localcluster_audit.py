"""Counting the audited identity's requests: from a mark on, across the API server's log rotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlops_operator.localcluster.audit import AuditLog, per_object_reads, writes


def entry(verb: str, resource: str, namespace: str = "team", subresource: str | None = None) -> str:
    ref = {"resource": resource, "namespace": namespace, **({"subresource": subresource} if subresource else {})}
    return json.dumps({"verb": verb, "objectRef": ref, "requestURI": f"/x/{resource}"}) + "\n"


def marked_log(tmp_path: Path) -> tuple[Path, AuditLog]:
    """An audit log with one request in it, marked after that request."""
    log = tmp_path / "audit.log"
    log.write_text(entry("create", "jobs"))
    audit = AuditLog(log)
    audit.mark()
    return log, audit


def test_requests_since_the_mark_by_verb_and_resource(tmp_path: Path) -> None:
    log, audit = marked_log(tmp_path)
    with log.open("a") as handle:
        handle.write(entry("patch", "datasets", subresource="status") + entry("get", "jobs") + entry("list", "jobs"))
        handle.write(entry("create", "events", namespace="other"))
    counts = audit.since_mark("team")
    assert counts == {("patch", "datasets/status"): 1, ("get", "jobs"): 1, ("list", "jobs"): 1}
    assert writes(counts) == {("patch", "datasets/status"): 1} and per_object_reads(counts) == {("get", "jobs"): 1}


def test_a_rotation_after_the_mark_loses_nothing_and_a_second_one_is_an_error(tmp_path: Path) -> None:
    log, audit = marked_log(tmp_path)
    with log.open("a") as handle:
        handle.write(entry("create", "services"))
    log.rename(tmp_path / "audit-2026-12-07T07-19-19.172.log")  # what the API server's rotation does
    log.write_text(entry("create", "deployments"))
    assert audit.since_mark() == {("create", "services"): 1, ("create", "deployments"): 1}
    (tmp_path / "audit-2026-12-07T07-19-19.172.log").unlink()  # rotated again: the marked backup is gone
    log.rename(tmp_path / "audit-2026-12-07T07-30-00.000.log")
    log.write_text(entry("create", "events"))
    with pytest.raises(RuntimeError, match="rotated more than once"):
        audit.since_mark()
