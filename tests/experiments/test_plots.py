"""The plots of agents: one colour per agent everywhere, and bands that are the bootstrap CI of the mean over
seeds (within the seeds' values at each x, never mean ± std), with a title, seed counts and a caption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robustrl.tasks import get_task
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from robustrl.experiments import plots, suite_plots, surfaces
from robustrl.experiments.curves import convert_cache
from robustrl.experiments.plots import (
    AGENT_COLORS,
    BAND_NOTE,
    FALLBACK_COLORS,
    agent_color,
    agent_palette,
    robustness_curves_figure,
    seed_band,
    seeds_label,
    set_return_limits,
    training_curves_figure,
)
from robustrl.experiments.suite import parse_suite
from robustrl.experiments.tables import bootstrap_ci, bootstrap_ci_columns

KNOWN = ["regular", "robust", "robust-mean", "robust-hard", "domain-randomization", "robust-pgd", "sa-dqn", "robust-sa"]
TOLERANCE = 1e-9  # the resampled means are weighted sums: rounding only


def _spread_near_500(seeds: int, points: int, seed: int) -> np.ndarray:
    """Returns with most seeds at 500 and one seed failing: mean + std is far above 500 at every x."""
    rng = np.random.default_rng(seed)
    returns = np.full((seeds, points), 500.0)
    returns[-1] = rng.uniform(5, 30, points)
    returns[0, ::2] = rng.uniform(400, 500, len(returns[0, ::2]))
    assert (returns.mean(0) + returns.std(0) > 540).all()  # the old band would leave the possible returns
    return returns


def _bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _assert_band_within_seeds(band: PolyCollection, xs: np.ndarray, returns: np.ndarray) -> None:
    """Every vertex (x, y) of a fill_between band lies within [min, max] of the seeds' returns at that x."""
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    assert len(vertices) >= 2 * len(xs)
    for x, y in vertices:
        column = returns[:, int(np.argmin(np.abs(np.asarray(xs) - x)))]
        assert column.min() - TOLERANCE <= y <= column.max() + TOLERANCE, (x, y, column)


def _caption(fig: Figure) -> str:
    return "\n".join(text.get_text() for text in fig.texts)


def test_known_agents_have_fixed_distinct_colours_and_other_labels_a_stable_one():
    assert {agent: agent_color(agent) for agent in KNOWN} == {
        "regular": "#1f77b4", "domain-randomization": "#ff7f0e", "robust": "#2ca02c",
        "robust-hard": "#d62728", "robust-mean": "#9467bd", "robust-pgd": "#8c564b", "sa-dqn": "#e377c2",
        "robust-sa": "#000000"}
    assert set(AGENT_COLORS) == set(KNOWN) and len(set(AGENT_COLORS.values())) == len(KNOWN)
    assert not set(FALLBACK_COLORS) & set(AGENT_COLORS.values())
    assert len(set(FALLBACK_COLORS)) == len(FALLBACK_COLORS)
    assert agent_color("robust-eta0.1") == agent_color("robust-eta0.1") == "#bcbd22"  # a checksum, not hash()
    assert agent_color("robust-eta0.1") in FALLBACK_COLORS
    sweep = [f"robust-eta{eta}" for eta in (0.01, 0.1, 0.3, 1, 3, 10, 30)]
    palette = agent_palette(["robust", *sweep, "regular"])
    assert palette["robust"] == AGENT_COLORS["robust"] and palette["regular"] == AGENT_COLORS["regular"]
    assert len(set(palette.values())) == len(palette)  # distinct within a figure, even when checksums collide
    assert agent_palette(reversed(list(palette))) == palette  # the order given does not change a colour
    assert list(agent_palette(["sa-dqn", "regular"])) == ["sa-dqn", "regular"]
    assert suite_plots.agent_colours(["robust", "sa-dqn", "regular"]) == {
        agent: AGENT_COLORS[agent] for agent in ("regular", "robust", "sa-dqn")}
    assert seeds_label("robust", 10) == "robust (10 seeds)" and seeds_label("robust", 1) == "robust (1 seed)"


def test_the_band_is_the_seeded_bootstrap_ci_of_the_mean_and_stays_within_the_seeds():
    returns = _spread_near_500(10, 6, seed=1)
    mean, low, high = seed_band(returns)
    np.testing.assert_allclose(mean, returns.mean(0))
    expected = np.array([bootstrap_ci(returns[:, k]) for k in range(returns.shape[1])])
    np.testing.assert_allclose(np.stack([low, high], 1), expected, rtol=0, atol=1e-9)
    assert (low <= mean + TOLERANCE).all() and (mean <= high + TOLERANCE).all()
    assert (returns.min(0) - TOLERANCE <= low).all() and (high <= returns.max(0) + TOLERANCE).all()
    assert (high <= 500 + TOLERANCE).all() and (high < returns.mean(0) + returns.std(0)).all()
    again = seed_band(returns)
    for first, second in zip((mean, low, high), again):
        np.testing.assert_array_equal(first, second)
    one_seed = seed_band(returns[:1])
    np.testing.assert_array_equal(one_seed[1], returns[0])
    np.testing.assert_array_equal(one_seed[2], returns[0])
    with pytest.raises(ValueError, match="n_seeds >= 1"):
        bootstrap_ci_columns(np.empty((0, 3)))


def test_return_limits_show_every_value_and_say_when_one_is_outside_the_possible_returns():
    ax = Figure().subplots()
    assert not set_return_limits(ax, np.array([0.0, 250.0, 500.0]))
    assert ax.get_ylim() == pytest.approx((-10, 510))
    assert set_return_limits(ax, np.array([[-5.0, 620.0]]))
    bottom, top = ax.get_ylim()
    assert bottom < -5 and top > 620


def _run(runs: Path, agent: str, seed: int, curve: np.ndarray) -> Path:
    """A complete run folder: meta.json, a model file and curve.csv (steps, returns)."""
    run = runs / f"CartPole-v1__{agent}__{seed}"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(f"weights {agent} {seed}".encode())
    (run / "meta.json").write_text(json.dumps({"agent": agent, "tag": "", "seed": seed,
                                               "checkpoints": {"best": "best.pt", "final": "best.pt"}}))
    np.savetxt(run / "curve.csv", curve, delimiter=",", header="step,return", comments="")
    return run


def test_training_curves_band_lies_within_the_seeds_and_the_figure_reads_alone(tmp_path):
    steps = np.arange(0, 5000, 500.0)
    returns = {"robust": _spread_near_500(5, len(steps), seed=2),
               "regular": np.random.default_rng(3).uniform(0, 500, (3, len(steps)))}
    for agent, matrix in returns.items():
        for seed, row in enumerate(matrix):
            _run(tmp_path / "runs", agent, seed, np.column_stack([steps, row]))
    fig = training_curves_figure(tmp_path / "runs")
    ax = fig.axes[0]
    bands = _bands(ax)
    assert len(bands) == 2
    for band in bands:
        agent = next(a for a in returns if to_hex(band.get_facecolor()[0]) == AGENT_COLORS[a])
        _assert_band_within_seeds(band, steps, returns[agent])
    lines = {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()}
    assert lines == {"regular (3 seeds)": AGENT_COLORS["regular"], "robust (5 seeds)": AGENT_COLORS["robust"]}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["regular (3 seeds)", "robust (5 seeds)"]
    assert ax.get_title() and ax.get_ylim() == pytest.approx((-10, 510))
    assert "band: 95 % bootstrap CI of the mean over seeds" in _caption(fig) and BAND_NOTE in _caption(fig)
    assert "outside" not in _caption(fig)


def test_training_curves_do_not_hide_returns_outside_the_possible_range(tmp_path):
    steps = np.array([0.0, 100.0, 200.0])
    for seed in (0, 1):
        _run(tmp_path / "runs", "robust", seed, np.column_stack([steps, [10.0, 600.0, 500.0]]))
    fig = training_curves_figure(tmp_path / "runs")
    ax = fig.axes[0]
    (band,) = _bands(ax)
    assert np.concatenate([p.vertices for p in band.get_paths()])[:, 1].max() == pytest.approx(600)
    assert ax.get_ylim()[1] > 600 and "outside [0, 500]" in _caption(fig)


def test_robustness_curves_band_lies_within_the_seeds_on_every_panel(tmp_path):
    grid = {"masspole": [0.1, 1.0, 5.0, 10.0], "length": [0.1, 0.5, 1.0], "gravity": [9.8, 20.0, 40.0]}
    returns = {"sa-dqn": {p: _spread_near_500(4, len(v), seed=i) for i, (p, v) in enumerate(grid.items())},
               "regular": {p: np.random.default_rng(i).uniform(0, 500, (2, len(v)))
                           for i, (p, v) in enumerate(grid.items())}}
    request = {"grid": grid, "episodes": 3, "seed": 7, "checkpoint": "best"}
    for agent, by_parameter in returns.items():
        for seed in range(len(next(iter(by_parameter.values())))):
            run = _run(tmp_path / "runs", agent, seed, np.array([[0.0, 10.0], [100.0, 20.0]]))
            means = {p: by_parameter[p][seed].tolist() for p in grid}
            (run / "robustness.json").write_text(json.dumps({"run": run.name, "request": request,
                                                             "mean_returns": means}))
            assert convert_cache(run)  # a cache of the current layout, recording the run's model files
    fig = robustness_curves_figure(tmp_path / "runs")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(grid)
    for ax in panels:
        parameter = next(p for p in grid if ax.get_xlabel().startswith(get_task().parameter_labels[p]))
        bands = _bands(ax)
        assert len(bands) == 2
        for band in bands:
            agent = next(a for a in returns if to_hex(band.get_facecolor()[0]) == AGENT_COLORS[a])
            _assert_band_within_seeds(band, np.array(grid[parameter]), returns[agent][parameter])
    labels = [t.get_text() for t in panels[0].get_legend().get_texts()]
    assert labels == ["regular (2 seeds)", "sa-dqn (4 seeds)"]
    assert fig.get_suptitle() and BAND_NOTE in _caption(fig)
    assert plots.plot_robustness_curves(tmp_path / "runs", tmp_path / "curves.png").stat().st_size > 10_000


@pytest.fixture
def captured(monkeypatch) -> list[Figure]:
    """The figures the suite and surface plots would save (not rendered)."""
    figures: list[Figure] = []

    def keep(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
        figures.append(fig)
        return Path(path)

    monkeypatch.setattr(suite_plots, "save_figure", keep)
    monkeypatch.setattr(surfaces, "save_figure", keep)
    return figures


def test_suite_and_surface_curves_use_the_agent_colours_and_the_same_band(captured, tmp_path):
    suite = parse_suite({"name": "tiny", "episodes": 3, "channels": {"pgd-linf": [0.01, 0.1, 0.5]}}, "test")
    data = {"robust": _spread_near_500(6, 3, seed=4), "domain-randomization": np.full((2, 3), 250.0)}
    grouped = {agent: {"best": {"channels": {"pgd-linf": matrix}}} for agent, matrix in data.items()}
    suite_plots.plot_suite_curves(grouped, suite, tmp_path / "suite.png")
    values = [1.0, 5.0, 10.0]
    runs = {agent: [{"curves": {"masspole": {"values": values, "mean_returns": row.tolist()}}}
                    for row in matrix] for agent, matrix in data.items()}
    surfaces.plot_surface_curves(runs, tmp_path / "surfaces.png")
    for fig, xs in zip(captured, ([0.01, 0.1, 0.5], values)):
        ax = fig.axes[0]
        for band in _bands(ax):
            agent = next(a for a in data if to_hex(band.get_facecolor()[0]) == AGENT_COLORS[a])
            _assert_band_within_seeds(band, np.array(xs), data[agent])
        curves = {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()
                  if not line.get_label().startswith("_")}  # not the nominal value's line
        assert curves == {"domain-randomization (2 seeds)": AGENT_COLORS["domain-randomization"],
                          "robust (6 seeds)": AGENT_COLORS["robust"]}
        assert fig.get_suptitle() and BAND_NOTE in _caption(fig)


def test_set_error_bars_span_the_bootstrap_interval_as_it_is(captured, tmp_path):
    from matplotlib.collections import LineCollection

    from robustrl.experiments.set_stats import set_statistics
    from robustrl.experiments.suite_table import SET_STATISTICS

    suite = parse_suite({"name": "tiny", "channels": {"pgd-linf": [0.1]}, "sets": {"names": ["moderate"]}},
                        "test")
    (uncertainty_set,) = suite.sets
    settings = len(uncertainty_set.settings())
    rng = np.random.default_rng(5)
    matrix = np.clip(480 + rng.normal(0, 40, (6, settings)), 0, 500)  # many settings as bad as the worst
    suite_plots.plot_suite_sets({"robust": {"best": {"sets": {uncertainty_set.name: matrix}}}}, suite,
                                tmp_path / "sets.png")
    (fig,) = captured
    ax = fig.axes[0]
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    spans = sorted((float(s[:, 1].min()), float(s[:, 1].max())) for s in bars.get_segments())
    stats = set_statistics(matrix)
    expected = sorted((stats[key].ci_low, stats[key].ci_high) for key in SET_STATISTICS.values())
    np.testing.assert_allclose(spans, expected)
    assert any(stats[key].ci_high < stats[key].value for key in ("worst", "cvar"))  # drawn, not clipped away
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["robust (6 seeds)"]
    assert fig.get_suptitle() and "95 % percentile bootstrap CI over seeds" in _caption(fig)


def test_figures_are_saved_as_palette_pngs_with_their_colours_and_size(tmp_path):
    import io

    from PIL import Image

    from robustrl.experiments.io import atomic_write_png

    fig = Figure(figsize=(3, 2))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.fill_between([0, 1], 0, 1, color="#d62728")
    ax.fill_between([1, 2], 0, 1, color="#1f77b4", alpha=0.2)  # a translucent band over the white background
    ax.set_xlim(0, 2)
    ax.set_ylim(0, 1)
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=50)
    path = atomic_write_png(tmp_path / "figure.png", fig, 50, tight=False)
    with Image.open(path) as saved, Image.open(rendered) as original:
        assert saved.mode == "P" and saved.size == original.size == (150, 100)
        rgb = saved.convert("RGB")
        assert rgb.getpixel((30, 50)) == original.getpixel((30, 50))[:3] == (214, 39, 40)
        assert rgb.getpixel((120, 50)) == original.getpixel((120, 50))[:3]  # the band's blend, kept exactly
    assert path.stat().st_size < len(rendered.getvalue())
    assert not list(tmp_path.glob(".*.tmp"))
