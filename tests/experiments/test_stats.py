import math

import numpy as np
import pytest

from robustrl.experiments import stats
from robustrl.experiments.stats import (
    aggregate,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
    performance_profile,
    performance_profile_ci,
    plot_performance_profiles,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


def _typical(n_runs: int = 10, n_tasks: int = 4, seed: int = 1) -> np.ndarray:
    """Normalized scores of a decent agent: mostly high, some failures."""
    return np.random.default_rng(seed).beta(5, 2, size=(n_runs, n_tasks))


def test_all_is_complete():
    assert sorted(stats.__all__) == stats.__all__
    for name in stats.__all__:
        assert callable(getattr(stats, name))


# --- point estimates ---------------------------------------------------------------------------------------

def test_normalize():
    np.testing.assert_allclose(normalize([[250.0, 500.0], [0.0, 125.0]], 0.0, 500.0), [[0.5, 1.0], [0.0, 0.25]])
    np.testing.assert_allclose(normalize(np.array([[10.0, 30.0]]), low=10.0, high=20.0), [[0.0, 2.0]])
    with pytest.raises(ValueError, match="low < high"):
        normalize([[1.0]], low=5.0, high=5.0)


@pytest.mark.parametrize(("values", "expected"), [
    (np.arange(1.0, 9.0), 4.5),  # n=8: drop 2 each side -> mean(3, 4, 5, 6)
    ([0, 0, 1, 2, 3, 4, 5, 6, 100, 1000], 3.5),  # n=10: drop 2 each side -> mean(1..6)
    ([1, 2, 3, 4, 100], 3.0),  # n=5: drop 1 each side -> mean(2, 3, 4)
    ([7, 1, 4], 4.0),  # n=3: floor(0.75) = 0, nothing dropped
    ([2.5], 2.5),
])
def test_iqm_hand_computed(values, expected):
    values = np.asarray(values, dtype=float)
    assert iqm(values.reshape(-1, 1)) == pytest.approx(expected)
    assert iqm(values.reshape(1, -1)) == pytest.approx(expected)


def test_iqm_pools_all_entries_of_the_matrix():
    # (2 runs, 4 tasks) holding 1..8 in scrambled order: same as the flattened [1..8].
    assert iqm(np.array([[8.0, 1.0, 6.0, 3.0], [2.0, 7.0, 4.0, 5.0]])) == pytest.approx(4.5)


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n_runs in range(1, 8):
        for n_tasks in (1, 3, 4):
            scores = rng.normal(size=(n_runs, n_tasks))
            assert iqm(scores) == pytest.approx(scipy_stats.trim_mean(scores.ravel(), 0.25))


def test_mean_median_optimality_gap_aggregate():
    scores = np.array([[0.0, 1.0], [2.0, 10.0]])
    assert mean(scores) == pytest.approx(3.25)
    assert median(scores) == pytest.approx(3.25)  # median of the task means 1.0 and 5.5 (rliable)
    assert median(np.array([[0.0, 1.0, 9.0], [2.0, 10.0, 9.0]])) == pytest.approx(5.5)
    normalized = np.array([[0.2, 1.3], [0.9, 0.5]])
    assert optimality_gap(normalized) == pytest.approx((0.8 + 0.0 + 0.1 + 0.5) / 4)
    assert optimality_gap(normalized, gamma=0.5) == pytest.approx(0.3 / 4)
    assert optimality_gap(np.ones((3, 2))) == 0.0
    result = aggregate(normalized)
    assert set(result) == {"mean", "median", "iqm", "optimality_gap"}
    assert all(isinstance(v, float) for v in result.values())
    assert result["mean"] == pytest.approx(0.725)
    assert result["median"] == pytest.approx(0.725)  # task means 0.55 and 0.9
    assert result["iqm"] == pytest.approx(0.7)  # n=4: drop 0.2 and 1.3
    assert result["optimality_gap"] == pytest.approx(0.35)


# --- stratified bootstrap ----------------------------------------------------------------------------------

@pytest.mark.parametrize("statistic", [iqm, mean, median, optimality_gap])
def test_bootstrap_ci_contains_point_estimate(statistic):
    scores = _typical()
    lo, hi = stratified_bootstrap_ci(scores, statistic)
    assert isinstance(lo, float) and isinstance(hi, float)
    assert lo < statistic(scores) < hi


@pytest.mark.parametrize("statistic", [iqm, mean, median, optimality_gap, lambda s: float(s.max())])
def test_bootstrap_ci_of_constant_data_is_degenerate(statistic):
    scores = np.full((5, 3), 0.75)
    lo, hi = stratified_bootstrap_ci(scores, statistic, resamples=200)
    assert lo == hi == pytest.approx(statistic(scores))


def test_bootstrap_ci_is_deterministic_per_seed():
    scores = _typical()
    assert stratified_bootstrap_ci(scores, iqm, seed=3) == stratified_bootstrap_ci(scores, iqm, seed=3)
    assert stratified_bootstrap_ci(scores, iqm, seed=3) != stratified_bootstrap_ci(scores, iqm, seed=4)


def test_bootstrap_ci_shrinks_with_more_runs():
    few, many = _typical(n_runs=5, seed=2), _typical(n_runs=80, seed=2)
    for statistic in (iqm, mean):
        lo_few, hi_few = stratified_bootstrap_ci(few, statistic)
        lo_many, hi_many = stratified_bootstrap_ci(many, statistic)
        assert hi_many - lo_many < 0.6 * (hi_few - lo_few)


def test_bootstrap_ci_wider_at_higher_level():
    scores = _typical()
    lo90, hi90 = stratified_bootstrap_ci(scores, mean, level=0.9)
    lo99, hi99 = stratified_bootstrap_ci(scores, mean, level=0.99)
    assert lo99 <= lo90 < hi90 <= hi99


@pytest.mark.parametrize("statistic", [iqm, mean, median, optimality_gap])
def test_vectorized_statistics_match_the_per_resample_loop(statistic):
    scores = _typical()
    fast = stratified_bootstrap_ci(scores, statistic, resamples=300, seed=5)
    slow = stratified_bootstrap_ci(scores, lambda s: statistic(s), resamples=300, seed=5)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_bootstrap_resamples_runs_within_each_task():
    # Task 0 holds runs 0..2, task 1 holds 10..12: a stratified resample never mixes columns and keeps
    # the number of runs; it does repeat runs (with replacement).
    scores = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    seen_repeat = []

    def check(resampled: np.ndarray) -> float:
        assert resampled.shape == scores.shape
        assert set(resampled[:, 0]) <= {0.0, 1.0, 2.0}
        assert set(resampled[:, 1]) <= {10.0, 11.0, 12.0}
        seen_repeat.append(len(set(resampled[:, 0])) < 3)
        return float(resampled.sum())

    lo, hi = stratified_bootstrap_ci(scores, check, resamples=50)
    assert len(seen_repeat) == 50 and any(seen_repeat)
    assert lo < hi


# --- probability of improvement ----------------------------------------------------------------------------

def test_probability_of_improvement_hand_computed():
    # pairs (1,1)=.5, (1,3)=0, (2,1)=1, (2,3)=0 -> 1.5 / 4
    assert probability_of_improvement([[1.0], [2.0]], [[1.0], [3.0]]) == pytest.approx(0.375)
    # task 2: x=[5,5], y=[1,9] -> (1+0+1+0)/4 = 0.5; mean over tasks (0.375 + 0.5) / 2
    x, y = [[1.0, 5.0], [2.0, 5.0]], [[1.0, 1.0], [3.0, 9.0]]
    assert probability_of_improvement(x, y) == pytest.approx(0.4375)
    # different run counts: x=[1,2,3], y=[2,2] -> (0+0+.5+.5+1+1) / 6
    assert probability_of_improvement([[1.0], [2.0], [3.0]], [[2.0], [2.0]]) == pytest.approx(0.5)
    assert probability_of_improvement([[3.0], [4.0]], [[1.0], [2.0], [2.5]]) == 1.0
    assert probability_of_improvement([[1.0], [1.0]], [[1.0]]) == 0.5


def test_probability_of_improvement_is_antisymmetric_and_matches_mann_whitney():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(6, 3)).astype(float)  # many ties
    y = rng.integers(0, 5, size=(4, 3)).astype(float)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = np.mean([scipy_stats.mannwhitneyu(x[:, t], y[:, t]).statistic / (6 * 4) for t in range(3)])
    assert probability_of_improvement(x, y) == pytest.approx(expected)


def test_probability_of_improvement_ci():
    x, y = _typical(seed=1), _typical(seed=2) * 0.8
    point = probability_of_improvement(x, y)
    lo, hi = probability_of_improvement_ci(x, y)
    assert 0.0 <= lo < point < hi <= 1.0
    assert (lo, hi) == probability_of_improvement_ci(x, y)
    assert probability_of_improvement_ci(x[:7], y) != (lo, hi)  # different run counts are fine
    assert probability_of_improvement_ci(np.ones((4, 2)), np.zeros((3, 2)), resamples=100) == (1.0, 1.0)
    assert probability_of_improvement_ci(np.ones((4, 2)), np.ones((3, 2)), resamples=100) == (0.5, 0.5)


# --- performance profiles ----------------------------------------------------------------------------------

def test_performance_profile_hand_computed():
    scores = np.array([[0.1, 0.5], [0.5, 0.9]])
    profile = performance_profile(scores, [0.0, 0.1, 0.5, 0.95])
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.25, 0.0])  # strictly greater than tau
    assert performance_profile(scores, 0.3).shape == (1,)


def test_performance_profile_ci():
    scores = _typical()
    taus = np.linspace(0.0, 1.0, 11)
    point = performance_profile(scores, taus)
    lo, hi = performance_profile_ci(scores, taus, resamples=500)
    assert lo.shape == hi.shape == taus.shape
    assert np.all(lo <= point) and np.all(point <= hi)
    assert np.all(np.diff(lo) <= 0) and np.all(np.diff(hi) <= 0)  # non-increasing in tau
    assert np.any(lo < hi)
    again = performance_profile_ci(scores, taus, resamples=500)
    np.testing.assert_array_equal(lo, again[0])
    np.testing.assert_array_equal(hi, again[1])
    lo_c, hi_c = performance_profile_ci(np.full((4, 2), 0.5), [0.2, 0.5, 0.8], resamples=100)
    np.testing.assert_array_equal(lo_c, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(hi_c, lo_c)


def test_plot_performance_profiles(tmp_path):
    path = tmp_path / "figures" / "profiles.png"
    out = plot_performance_profiles({"regular": _typical(seed=1) * 0.7, "robust": _typical(seed=2)}, path,
                                    resamples=100)
    assert out == path
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in path.parent.iterdir()] == ["profiles.png"]  # no temporary file left behind
    plot_performance_profiles({"regular": _typical()}, path, taus=[0.0, 0.5, 1.0], title="Custom",
                              resamples=50)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="profiles is empty"):
        plot_performance_profiles({}, tmp_path / "empty.png")
    with pytest.raises(ValueError, match=r"profiles\['bad'\]"):
        plot_performance_profiles({"bad": np.array([0.5, 0.6])}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --- validation --------------------------------------------------------------------------------------------

SINGLE = [
    lambda s: iqm(s),
    lambda s: mean(s),
    lambda s: median(s),
    lambda s: optimality_gap(s),
    lambda s: aggregate(s),
    lambda s: stratified_bootstrap_ci(s, iqm, resamples=10),
    lambda s: performance_profile(s, [0.5]),
    lambda s: performance_profile_ci(s, [0.5], resamples=10),
]


@pytest.mark.parametrize("call", SINGLE)
@pytest.mark.parametrize(("bad", "message"), [
    (np.ones(3), "scores must be a 2-D array"),
    (np.ones((2, 2, 2)), "scores must be a 2-D array"),
    (np.ones((0, 3)), "scores is empty"),
    (np.ones((3, 0)), "scores is empty"),
    (np.array([[1.0, math.nan]]), "scores contains NaN"),
])
def test_invalid_scores(call, bad, message):
    with pytest.raises(ValueError, match=message):
        call(bad)


@pytest.mark.parametrize("call", [probability_of_improvement,
                                  lambda x, y: probability_of_improvement_ci(x, y, resamples=10)])
def test_invalid_pairs(call):
    good = np.ones((3, 2))
    with pytest.raises(ValueError, match="same number of tasks"):
        call(good, np.ones((3, 3)))
    with pytest.raises(ValueError, match="scores_x must be a 2-D array"):
        call(np.ones(2), good)
    with pytest.raises(ValueError, match="scores_y is empty"):
        call(good, np.ones((0, 2)))
    with pytest.raises(ValueError, match="scores_y contains NaN"):
        call(good, np.array([[1.0, math.nan]]))


@pytest.mark.parametrize("call", [
    lambda **kw: stratified_bootstrap_ci(np.ones((3, 2)), mean, **kw),
    lambda **kw: probability_of_improvement_ci(np.ones((3, 2)), np.ones((2, 2)), **kw),
    lambda **kw: performance_profile_ci(np.ones((3, 2)), [0.5], **kw),
])
def test_invalid_level_and_resamples(call):
    for level in (0.0, 1.0, 1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="level must be in"):
            call(level=level)
    for resamples in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="resamples must be an integer"):
            call(resamples=resamples)


def test_invalid_taus_and_gamma():
    with pytest.raises(ValueError, match="taus must be a non-empty"):
        performance_profile(np.ones((2, 2)), [])
    with pytest.raises(ValueError, match="taus contains NaN"):
        performance_profile(np.ones((2, 2)), [0.1, math.nan])
    with pytest.raises(ValueError, match="gamma must be finite"):
        optimality_gap(np.ones((2, 2)), gamma=math.inf)


def test_improvement_ci_by_run_is_wider_than_by_task_when_tasks_repeat_one_runs_scores():
    from robustrl.experiments.stats import probability_of_improvement_ci

    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(1.0, 1.0, size=(6, 1)), 40, axis=1) + rng.normal(0, 0.01, size=(6, 40))
    y = np.repeat(rng.normal(0.0, 1.0, size=(6, 1)), 40, axis=1) + rng.normal(0, 0.01, size=(6, 40))
    by_task = probability_of_improvement_ci(x, y, resamples=500)
    by_run = probability_of_improvement_ci(x, y, resamples=500, by="run")
    assert by_run[1] - by_run[0] > 2 * (by_task[1] - by_task[0])  # 40 copies of one comparison are not 40 tasks
    with pytest.raises(ValueError, match="by must be"):
        probability_of_improvement_ci(x, y, by="seed")
