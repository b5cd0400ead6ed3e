"""Suite-wide rules: no test may be skipped or expected to fail; CI must run every test for real."""

from __future__ import annotations

import os

import pytest

# The real-cluster fixtures, shared by tests/integration and tests/faults.
pytest_plugins = ["tests.fixtures.cluster"]


@pytest.hookimpl(trylast=True)  # after `-m` has deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    parallel = "PYTEST_XDIST_WORKER" in os.environ
    for item in items:
        for mark in ("skip", "skipif", "xfail"):
            if item.get_closest_marker(mark):
                raise pytest.UsageError(f"{item.nodeid} carries @{mark}: every test must run and be able to fail")
        # An outage would fail the tests other workers run on the same cluster at that moment.
        if parallel and (item.get_closest_marker("outage") or item.get_closest_marker("alone")):
            raise pytest.UsageError(
                f"{item.nodeid} must have the cluster to itself: select it with `-m 'outage or alone'` and run it "
                "without -n (`make test` runs `-m 'not outage and not alone' -n N`, then `-m 'outage or alone'`)"
            )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(f"{skipped} test(s) skipped: a skip is a failure in this project", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
