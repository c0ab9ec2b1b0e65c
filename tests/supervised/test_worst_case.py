import math

import numpy as np
import pytest

from robustrl.supervised.worst_case import (
    ball_grid,
    plot_worst_case_1d,
    regularization_check,
    worst_case_density_1d,
)


def test_density_normalised_and_uniform_at_infinite_eta():
    z, d = worst_case_density_1d(lambda t: t**2, 3.0, 1.0)
    assert np.trapezoid(d, z) == pytest.approx(1.0, rel=1e-2)
    assert d[0] > 100 * d[len(d) // 2]
    _, flat = worst_case_density_1d(lambda t: t**2, 3.0, math.inf)
    np.testing.assert_allclose(flat, 1 / 6, rtol=1e-2)


def test_ball_grid_symmetric():
    g = ball_grid(2, "l2", 41)
    assert (g.norm(dim=1) <= 1).all() and abs(float(g.mean(0).abs().max())) < 1e-12


def test_regularization_limits():
    rows = {(r["norm"], r["rho_over_eta"]): r for r in regularization_check((0.01, 1000.0), grid=1001)}
    for norm in ("linf", "l2"):
        assert rows[(norm, 1000.0)]["ratio_to_dual_norm"] == pytest.approx(1.0, abs=0.02)
        assert rows[(norm, 0.01)]["ratio_to_variance"] == pytest.approx(0.5, abs=0.02)


def test_figure_written(tmp_path):
    path = plot_worst_case_1d(tmp_path / "wc.png", etas=(1.0, math.inf), n_samples=500)
    assert path.stat().st_size > 1000
