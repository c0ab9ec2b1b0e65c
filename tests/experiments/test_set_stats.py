"""Mean, worst case and CVaR over an uncertainty set, with bootstrap CIs over seeds, on hand-made returns."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.experiments import cvar, set_mean, set_statistics, worst_case
from robustrl.experiments.set_stats import seed_bootstrap_ci

# 2 seeds x 5 settings; seed averages: [150, 300, 50, 450, 250]
RETURNS = np.array([[100.0, 400.0, 0.0, 500.0, 200.0],
                    [200.0, 200.0, 100.0, 400.0, 300.0]])


def test_statistics_average_over_seeds_first():
    assert set_mean(RETURNS) == 240.0
    assert worst_case(RETURNS) == 50.0  # not 0.0, one seed's worst
    assert cvar(RETURNS, 0.1) == 50.0  # ceil(0.5) = 1 setting
    assert cvar(RETURNS, 0.4) == 100.0  # the worst 2: (50 + 150) / 2
    assert cvar(RETURNS, 1.0) == set_mean(RETURNS)


def test_cvar_counts_the_worst_ceil_of_ten_percent():
    returns = np.arange(30, dtype=float)[None, :]  # 0.1 * 30 is 3.0000000000000004 in floating point
    assert cvar(returns) == 1.0  # mean of 0, 1, 2
    assert cvar(np.arange(31, dtype=float)[None, :]) == 1.5  # ceil(3.1) = 4: mean of 0..3


def test_confidence_intervals_over_seeds_contain_the_estimate():
    # settings from hard (return ~50) to easy (~500), seeds scattered around each: the shape of real sets
    rng = np.random.default_rng(0)
    returns = np.clip(np.linspace(50.0, 500.0, 81) + rng.normal(0.0, 30.0, size=(10, 81)), 0.0, 500.0)
    stats = set_statistics(returns, resamples=2000)
    assert set(stats) == {"mean", "worst", "cvar"}
    assert stats["mean"].value == pytest.approx(returns.mean())
    assert stats["worst"].value == returns.mean(axis=0).min()
    assert stats["worst"].value <= stats["cvar"].value <= stats["mean"].value
    for stat in stats.values():
        assert stat.ci_low <= stat.value <= stat.ci_high and stat.ci_low < stat.ci_high
    assert set_statistics(returns, resamples=2000) == stats  # deterministic


def test_resampling_keeps_a_seeds_row_together():
    # The seeds' rows are [0, 10] and [10, 0]: any resample of whole rows averages to one of
    # [0, 10], [10, 0], [5, 5], so its worst case is 0 or 5; resampling entries would also give 10.
    returns = np.array([[0.0, 10.0], [10.0, 0.0]])
    low, high = seed_bootstrap_ci(returns, lambda m: m.min(axis=-1), level=0.999, resamples=500)
    assert (low, high) == (0.0, 5.0)


def test_one_seed_gives_a_degenerate_interval():
    stats = set_statistics(RETURNS[:1], resamples=100)
    assert stats["worst"] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("returns", "kwargs", "match"), [
    (np.zeros(5), {}, "n_seeds, n_settings"),
    (np.zeros((0, 5)), {}, "n_seeds, n_settings"),
    (np.array([[1.0, np.nan]]), {}, "finite"),
    (RETURNS, {"alpha": 0.0}, "alpha"),
    (RETURNS, {"level": 1.0}, "level"),
    (RETURNS, {"resamples": 0}, "resamples"),
])
def test_bad_input_is_named(returns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        set_statistics(returns, **kwargs)
