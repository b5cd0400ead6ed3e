"""Long planned waits are spread per object, so objects created together do not come due together."""

from __future__ import annotations

from mlops_operator.controllers.runtime import SPREAD_ABOVE_SECONDS, SPREAD_FRACTION, spread


def test_long_waits_are_spread_by_a_fixed_amount_per_object_and_short_ones_kept() -> None:
    keys = [("ModelVersion", "team", f"mv-{i}") for i in range(2500)]
    delays = [spread(key, 300.0) for key in keys]
    assert all(300.0 <= d <= 300.0 * (1 + SPREAD_FRACTION) for d in delays)
    assert max(delays) - min(delays) > 0.9 * 300.0 * SPREAD_FRACTION  # the wave is spread over ~30 s
    assert len({round(d) for d in delays}) > 25  # not a few lumps
    assert [spread(key, 300.0) for key in keys] == delays  # the same object always waits the same
    assert spread(keys[0], SPREAD_ABOVE_SECONDS) == SPREAD_ABOVE_SECONDS and spread(keys[0], 0.5) == 0.5
