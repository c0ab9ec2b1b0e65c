"""The shared attacks on a Q-network: the greedy action as the label, the state_scale ball, no clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustrl.attacks import FGM, PGD, Attack, RandomNoise, WorstOf, margin
from robustrl.supervised import attacks as supervised_attacks

SCALE = torch.tensor([2.4, 1.0, 0.21, 1.0])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def q_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))


@pytest.fixture(scope="module")
def states() -> torch.Tensor:
    return torch.randn(128, 4, generator=torch.Generator().manual_seed(1)) * SCALE


def margins(q_net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return margin(q_net(x), labels)


def greedy(q_net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return q_net(x).argmax(1)


def test_supervised_half_uses_the_same_classes():
    assert supervised_attacks.PGD is PGD and supervised_attacks.FGM is FGM and supervised_attacks.Attack is Attack


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_stays_in_the_scaled_ball_unclipped_and_leaves_the_model_alone(q_net, states, norm, loss):
    q_net.train()
    eps = 0.1
    adv = PGD(q_net, eps, steps=10, norm=norm, loss=loss, scale=SCALE, clip=None,
              generator=torch.Generator().manual_seed(0))(states)
    delta = (adv - states) / SCALE
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all() and (size > eps / 2).any()
    assert (adv.abs() > 1).any(), "states are not clipped to [0, 1]"
    assert q_net.training and all(p.grad is None for p in q_net.parameters())


def test_pgd_margin_is_at_most_fgsm_margin_and_a_large_eps_flips_the_greedy_action(q_net, states):
    labels = greedy(q_net, states)
    kwargs = dict(scale=SCALE, clip=None, loss="margin")
    fgsm = FGM(q_net, 0.05, **kwargs)(states)
    pgd = PGD(q_net, 0.05, steps=20, restarts=2, generator=torch.Generator().manual_seed(0), **kwargs)(states)
    clean = margins(q_net, states, labels)
    assert margins(q_net, pgd, labels).mean() <= margins(q_net, fgsm, labels).mean() < clean.mean()
    strong = PGD(q_net, 2.0, steps=20, generator=torch.Generator().manual_seed(0), **kwargs)(states)
    flipped = greedy(q_net, strong) != labels
    assert flipped.float().mean() > 0.9
    noise = RandomNoise(q_net, 0.05, scale=SCALE, clip=None, generator=torch.Generator().manual_seed(0))(states)
    assert margins(q_net, noise, labels).mean() > margins(q_net, pgd, labels).mean()


def test_restarts_keep_per_example_the_flipped_or_lowest_margin_point(q_net, states):
    labels = greedy(q_net, states)
    kwargs = dict(steps=3, scale=SCALE, clip=None, loss="margin")
    one = PGD(q_net, 0.1, restarts=1, generator=torch.Generator().manual_seed(3), **kwargs)(states)
    four = PGD(q_net, 0.1, restarts=4, generator=torch.Generator().manual_seed(3), **kwargs)(states)
    flipped_one, flipped_four = greedy(q_net, one) != labels, greedy(q_net, four) != labels
    assert (flipped_four >= flipped_one).all()
    kept = ~flipped_one & ~flipped_four
    assert (margins(q_net, four, labels)[kept] <= margins(q_net, one, labels)[kept]).all()
    assert (margins(q_net, four, labels)[kept] < margins(q_net, one, labels)[kept]).any()
    again = PGD(q_net, 0.1, restarts=4, generator=torch.Generator().manual_seed(3), **kwargs)(states)
    torch.testing.assert_close(again, four, rtol=0, atol=0)


def test_worst_of_losses_is_per_example_the_worse_of_each_loss(q_net, states):
    labels = greedy(q_net, states)
    worst = WorstOf.over_losses(FGM, q_net, 0.1, scale=SCALE, clip=None)(states)
    alone = [FGM(q_net, 0.1, loss=loss, scale=SCALE, clip=None)(states) for loss in ("ce", "margin")]
    flipped = [greedy(q_net, x) != labels for x in alone]
    assert ((greedy(q_net, worst) != labels) == (flipped[0] | flipped[1])).all()
    neither = ~flipped[0] & ~flipped[1]
    lowest = torch.minimum(*(margins(q_net, x, labels) for x in alone))
    torch.testing.assert_close(margins(q_net, worst, labels)[neither], lowest[neither])


def test_eps_zero_returns_the_states_and_labels_default_to_the_greedy_action(q_net, states):
    atk = PGD(q_net, 0.0, steps=5, scale=SCALE, clip=None, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(atk(states), states, rtol=0, atol=0)
    seeded = dict(steps=5, scale=SCALE, clip=None)
    by_default = PGD(q_net, 0.1, generator=torch.Generator().manual_seed(0), **seeded)(states)
    given = PGD(q_net, 0.1, generator=torch.Generator().manual_seed(0), **seeded)(states, greedy(q_net, states))
    torch.testing.assert_close(by_default, given, rtol=0, atol=0)


def test_bad_arguments_name_the_value(q_net, states):
    with pytest.raises(ValueError, match="nan"):
        PGD(q_net, float("nan"))
    with pytest.raises(ValueError, match="-0.5"):
        FGM(q_net, 0.1, scale=[1.0, -0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        FGM(q_net, 0.1, scale=[1.0, 1.0, 1.0], clip=None)(states)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FGM(q_net, 0.1)(states)
    with pytest.raises(ValueError, match="do not fit the model"):
        FGM(q_net, 0.1, clip=None)(states[:, :3])
    with pytest.raises(ValueError, match="WorstOf"):
        WorstOf([])


# --- per-example budgets, stopping at the first flip, the stacked ensemble -----------------------------------

LEVELS = torch.tensor([0.0, 0.05, 0.2, 1.0]).repeat_interleave(32)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("make", [lambda m, e, n: FGM(m, e, norm=n, scale=SCALE, clip=None),
                                  lambda m, e, n: PGD(m, e, steps=5, norm=n, random_start=False, scale=SCALE,
                                                      clip=None)])
def test_per_example_eps_equals_one_attack_per_level(q_net, states, norm, make):
    together = make(q_net, 1.0, norm)(states, eps=LEVELS)
    for level in LEVELS.unique():
        rows = LEVELS == level
        alone = make(q_net, float(level), norm)(states[rows])
        assert torch.allclose(together[rows], alone, atol=1e-6)
    assert torch.equal(together[LEVELS == 0], states[LEVELS == 0])


def test_per_example_eps_must_fit_the_batch_and_be_a_budget(q_net, states):
    atk = FGM(q_net, 0.1, scale=SCALE, clip=None)
    with pytest.raises(ValueError, match=r"shape \(128,\)"):
        atk(states, eps=torch.ones(3))
    with pytest.raises(ValueError, match="finite and >= 0"):
        atk(states, eps=torch.full((128,), -0.1))


def test_stop_on_flip_keeps_the_first_flipping_point_and_changes_nothing_else(q_net, states):
    labels = greedy(q_net, states)
    kwargs = dict(steps=10, random_start=False, scale=SCALE, clip=None, loss="margin")
    full = PGD(q_net, 0.1, **kwargs)(states)
    stopped = PGD(q_net, 0.1, stop_on_flip=True, **kwargs)(states)
    flipped = greedy(q_net, stopped) != labels
    assert flipped.any() and (~flipped).any()
    assert torch.equal(stopped[~flipped], full[~flipped])  # never flipped: the same ten steps
    assert (flipped | (greedy(q_net, full) == labels)).all()  # whatever the full run flips, stopping flips too
    assert (((stopped - states) / SCALE).abs().amax(1) <= 0.1 + 1e-6).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_stacked_ensemble_flips_at_least_as_often_as_one_run_and_respects_each_budget(q_net, states, norm):
    from robustrl.attacks import PGDEnsemble

    labels = greedy(q_net, states)
    one = PGD(q_net, 1.0, steps=10, norm=norm, scale=SCALE, clip=None, generator=torch.Generator().manual_seed(0),
              loss="margin", stop_on_flip=True)(states, eps=LEVELS)
    ensemble = PGDEnsemble(q_net, 1.0, steps=10, norm=norm, restarts=2, scale=SCALE, clip=None,
                           generator=torch.Generator().manual_seed(0))(states, eps=LEVELS)
    size = ((ensemble - states) / SCALE).flatten(1)
    size = size.abs().amax(1) if norm == "linf" else size.norm(dim=1)
    assert (size <= LEVELS + 1e-5).all()
    flips_one, flips_ensemble = greedy(q_net, one) != labels, greedy(q_net, ensemble) != labels
    assert flips_ensemble.sum() >= flips_one.sum() and not flips_ensemble[LEVELS == 0].any()
    assert flips_ensemble[LEVELS == 1.0].float().mean() > 0.5
    kept = ~flips_ensemble  # where no run flips, the lowest margin of the runs is kept
    assert (margins(q_net, ensemble, labels)[kept] <= margins(q_net, states, labels)[kept] + 1e-6).all()


def test_the_ensemble_names_its_losses():
    from robustrl.attacks import PGDEnsemble

    with pytest.raises(ValueError, match="attack loss"):
        PGDEnsemble(nn.Linear(4, 2), 0.1, losses=["hinge"])
    with pytest.raises(ValueError, match="at least one loss"):
        PGDEnsemble(nn.Linear(4, 2), 0.1, losses=[])


def test_ranked_margin_aims_at_the_kth_runner_up():
    from robustrl.attacks import ranked_margin

    scores = torch.tensor([[5.0, 1.0, 3.0, 2.0]])
    labels = torch.tensor([0])
    assert [ranked_margin(scores, labels, k).item() for k in (1, 2, 3, 9)] == [2.0, 3.0, 4.0, 4.0]
    assert ranked_margin(scores, labels, 1).item() == margin(scores, labels).item()


def test_cosine_schedule_decays_the_step_and_defaults_alpha_to_two_eps(q_net, states):
    pgd = PGD(q_net, 0.1, steps=10, schedule="cosine", clip=None)
    assert pgd.alpha == pytest.approx(0.2)
    factors = [pgd.step_factor(t) for t in range(10)]
    assert factors[0] == pytest.approx(1.01) and all(a > b for a, b in zip(factors, factors[1:]))
    assert factors[-1] < 0.05
    assert PGD(q_net, 0.1, steps=10).step_factor(7) == 1.0
    with pytest.raises(ValueError, match="'linear'"):
        PGD(q_net, 0.1, schedule="linear")
    adv = pgd(states)
    assert (adv - states).abs().amax() <= 0.1 + 1e-6


def test_box_aware_steps_spend_the_l2_budget_on_coordinates_that_can_move():
    # A linear score whose gradient points out of the box on the saturated half of the pixels: a plain
    # l2 step wastes its length there (clipped away), a box-aware one moves the free pixels the full eps.
    w = torch.cat([torch.ones(8), torch.ones(8)])
    model = nn.Linear(16, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.stack([w, -w]))
    x = torch.cat([torch.ones(8), torch.full((8,), 0.5)])[None]  # first half on the upper bound
    label = torch.tensor([1])  # the ascent direction is +w: up, out of the box for the first half
    moved = {}
    for aware in (False, True):
        atk = PGD(model, 0.4, alpha=0.4, steps=1, norm="l2", random_start=False, loss="margin", box_aware=aware)
        adv = atk(x, label)
        moved[aware] = float((adv - x).norm())
        assert 0 <= adv.min() and adv.max() <= 1 and moved[aware] <= 0.4 + 1e-6
    assert moved[True] == pytest.approx(0.4, abs=1e-5) and moved[False] < 0.3
