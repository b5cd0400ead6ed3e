"""Integration tests share the cluster fixtures (tests/fixtures/cluster.py, loaded by the root conftest)."""

from tests.fixtures.cluster import REPO, Kube, OperatorProcess, condition, wait_for

__all__ = ["REPO", "Kube", "OperatorProcess", "condition", "wait_for"]
