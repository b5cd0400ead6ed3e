"""The cluster's source policy, enforced by the worker on real reads (a local HTTP server, real files):
schemes, denied networks on every redirect hop, the byte limit, redirect count, runs of other namespaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlops_operator import contract
from mlops_operator.worker.errors import PermanentError
from mlops_operator.worker.sample_data import write_sample
from mlops_operator.worker.sourcepolicy import SourcePolicy, check_run_namespace, policy_from_env
from mlops_operator.worker.sources import fingerprint, read_bytes

from .test_worker_sources import QuietHandler, http_root

__all__ = ["http_root"]  # the fixture, re-used

CHART_LIKE = SourcePolicy(
    allowed_schemes=["https", "http", "s3", "gs", "runs"],
    denied_networks=["169.254.0.0/16", "fe80::/10", "127.0.0.0/8", "::1/128", "10.96.0.0/12"],
    max_bytes=1 << 20,
    same_namespace_runs=True,
)


def test_a_file_source_is_refused_when_the_policy_leaves_file_out(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    write_sample("iris", path)
    with pytest.raises(PermanentError) as refused:
        read_bytes(path.as_uri(), CHART_LIKE)
    assert "refused by the cluster's source policy: scheme 'file' is not allowed" in str(refused.value)
    assert read_bytes(path.as_uri(), SourcePolicy()) == path.read_bytes(), "a local run (no policy) reads it"


def test_a_denied_address_is_refused_before_any_request(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    write_sample("iris", root / "iris.csv")
    before = QuietHandler.gets
    with pytest.raises(PermanentError) as refused:
        read_bytes(f"{base}/iris.csv", CHART_LIKE)
    assert "resolves to 127.0.0.1, inside denied network 127.0.0.0/8" in str(refused.value)
    assert QuietHandler.gets == before, "nothing was sent to the denied host"


def test_a_redirect_to_the_metadata_address_is_refused_at_that_hop(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    metadata_only = SourcePolicy(denied_networks=["169.254.0.0/16"])
    with pytest.raises(PermanentError) as refused:
        read_bytes(f"{base}/redirect?to=http://169.254.169.254/latest/meta-data/", metadata_only)
    assert "resolves to 169.254.169.254, inside denied network 169.254.0.0/16" in str(refused.value)
    loop = f"{base}/redirect?to={base}/redirect?to={base}/redirect?to={base}/x.csv"
    with pytest.raises(PermanentError, match=r"redirects more than sourcePolicy.maxRedirects \(1\) times"):
        read_bytes(loop, SourcePolicy(max_redirects=1))


def test_a_redirect_to_an_allowed_host_is_followed_and_the_byte_limit_holds(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    write_sample("iris", root / "iris.csv")
    data = read_bytes(f"{base}/redirect?to=/iris.csv", SourcePolicy(denied_networks=["169.254.0.0/16"]))
    assert fingerprint(data) == fingerprint((root / "iris.csv").read_bytes())
    small = SourcePolicy(max_bytes=1000)
    for uri in (f"{base}/iris.csv", (root / "iris.csv").as_uri()):
        with pytest.raises(PermanentError) as refused:
            read_bytes(uri, small)
        message = str(refused.value)
        assert "larger than sourcePolicy.maxBytes (1000 bytes)" in message and "sepal" not in message


def test_runs_of_another_namespace_are_refused() -> None:
    ours = {contract.TAG_NAMESPACE: "team-a"}
    check_run_namespace(CHART_LIKE, "runs:/abc/data.csv", ours, "team-a")
    with pytest.raises(PermanentError, match="the run belongs to namespace team-b"):
        check_run_namespace(CHART_LIKE, "runs:/abc/data.csv", {contract.TAG_NAMESPACE: "team-b"}, "team-a")
    with pytest.raises(PermanentError, match="logged outside the operator"):
        check_run_namespace(CHART_LIKE, "runs:/abc/data.csv", {}, "team-a")
    with pytest.raises(PermanentError, match="only runs:/ artifacts"):
        read_bytes("mlflow-artifacts:/1/abc/artifacts/data.csv", SourcePolicy(same_namespace_runs=True))


def test_the_policy_comes_from_the_env_and_a_bad_one_says_why() -> None:
    raw = json.dumps({"allowedSchemes": ["https"], "deniedNetworks": ["10.0.0.0/8"], "maxBytes": 10})
    policy = policy_from_env({"MLOPS_SOURCE_POLICY": raw})
    assert policy.allowed_schemes == ["https"] and policy.max_bytes == 10
    assert policy_from_env({}) == SourcePolicy()
    for bad in ('{"deniedNetworks": ["10.0.0.0/33"]}', '{"maxBytes": 0}', "{not json", '{"typo": 1}'):
        with pytest.raises(PermanentError, match="MLOPS_SOURCE_POLICY is not a valid source policy"):
            policy_from_env({"MLOPS_SOURCE_POLICY": bad})
