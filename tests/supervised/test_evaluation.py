"""The evaluation protocol: the attack ensemble, per-point records, convergence, budget matching, cost
counting and the paired verdicts."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustrl.supervised.attacks import PGD, attack_ensemble, make_attack
from robustrl.supervised.benchmark import (
    comparison_lines,
    pack_points,
    paired_difference,
    unpack_points,
    verdict,
)
from robustrl.supervised.methods import EntropicAT, MethodConfig, make_method
from robustrl.supervised.models import make_model
from robustrl.supervised.training import (
    AttackSpec,
    GradientCounter,
    TrainConfig,
    attacked_correct,
    convergence,
    evaluate,
    evaluate_points,
    train,
)


class Saturated(nn.Module):
    """A linear classifier whose logits are so large that the softmax saturates in float32: cross-entropy
    has a zero gradient at correctly classified points, so cross-entropy PGD cannot move; the margin can."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        torch.nn.init.normal_(self.linear.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return 1e4 * self.linear(x.flatten(1))


def test_ensemble_finds_what_cross_entropy_pgd_misses_on_saturated_logits(digits):
    model = Saturated()
    x = digits.x_test[:64]
    with torch.no_grad():
        y = model(x).argmax(1)  # every point correct at the start
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ce = PGD(model, 0.1, steps=10, generator=gen())(x, y)
    with torch.no_grad():
        ce_robust = (model(ce).argmax(1) == y).float().mean().item()
    ens = attack_ensemble(model, 0.1, steps=10, restarts=1, generator=gen())(x, y)
    with torch.no_grad():
        ens_robust = (model(ens).argmax(1) == y).float().mean().item()
    assert ce_robust > 0.8  # the masked number
    assert ens_robust < 0.1  # the ensemble's margin runs see through it
    assert (ens - x).abs().amax() <= 0.1 + 1e-6 and 0 <= ens.min() and ens.max() <= 1


def test_a_point_is_robust_only_if_every_run_fails(digits):
    model = make_model("small-cnn", seed=0).eval()
    x, y = digits.x_test[:100], digits.y_test[:100]
    spec = AttackSpec("ensemble", "linf", 0.05, steps=5, restarts=2)
    robust = attacked_correct(model, x, y, spec, torch.Generator().manual_seed(1))
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    assert not (robust & ~clean).any()  # misclassified clean is never robust
    # Every single run of the ensemble, run alone from its own start, leaves each robust point correct.
    for loss in ("ce", "margin"):
        for seed in (1, 2):
            adv = PGD(model, 0.05, steps=5, loss=loss, generator=torch.Generator().manual_seed(seed))(x, y)
            with torch.no_grad():
                single = model(adv).argmax(1) == y
            assert robust.sum() <= single.sum()


def test_make_attack_builds_the_ensemble_and_cli_defaults_to_it():
    import argparse

    from robustrl.supervised.cli import add_subcommands

    ens = make_attack("ensemble", make_model("small-cnn"), 0.1, steps=7, restarts=2)
    *pgd, apgd = ens.attacks
    assert [(a.loss_name, a.target_rank, a.steps, a.restarts, a.stop_on_flip, a.schedule) for a in pgd] == [
        ("ce", 1, 7, 1, True, "cosine"), ("ce", 1, 7, 1, True, "cosine"),
        ("margin", 1, 7, 1, True, "cosine"), ("margin", 2, 7, 1, True, "cosine")]
    assert (apgd.loss_name, apgd.steps, apgd.restarts, apgd.targets) == ("dlr-targeted", 7, 1, None)
    assert make_attack("ensemble", make_model("small-cnn"), 0.1, restarts=6).attacks[-1].restarts == 2
    p = argparse.ArgumentParser()
    add_subcommands(p.add_subparsers(dest="command"))
    args = p.parse_args(["supervised", "evaluate", "--run", "r.json", "--eps", "0.1"])
    assert (args.attack, args.steps, args.restarts) == ("ensemble", 50, 3)


def test_attack_spec_label_and_stronger():
    spec = AttackSpec("pgd", "linf", 0.35, steps=5, restarts=1, label="pgd5")
    assert spec.key == "pgd5_linf_0.35"
    assert AttackSpec("ensemble", "l2", 0.5, 50, 3).stronger().to_dict() == dict(
        name="ensemble", norm="l2", eps=0.5, steps=100, restarts=6)
    assert "label" in spec.to_dict() and "label" not in AttackSpec("fgm", "l2", 0.5).to_dict()
    for bad in ("", "a_b"):
        with pytest.raises(ValueError, match="label"):
            AttackSpec("pgd", "linf", 0.1, label=bad)


def test_per_points_pack_and_match_the_accuracies(digits):
    model = make_model("small-cnn", seed=0)
    x, y = digits.x_test[:37], digits.y_test[:37]
    specs = [AttackSpec("ensemble", "linf", 0.05, steps=3, restarts=1), AttackSpec("noise", "linf", 0.1)]
    points = evaluate_points(model, x, y, specs, seed=3, progress=False)
    acc = evaluate(model, x, y, specs, seed=3, progress=False)
    for key, v in points.items():
        assert v.dtype == torch.bool and v.shape == (37,)
        assert acc[key] == pytest.approx(v.float().mean().item())
        assert (unpack_points(pack_points(v), 37) == v.numpy()).all()


def test_convergence_attacks_only_the_survivors_and_reports_the_change(digits):
    model = make_model("small-cnn", seed=0)
    train(model, make_method("erm"), digits.x_train[:500], digits.y_train[:500], TrainConfig(epochs=2),
          generator=torch.Generator().manual_seed(0), progress=False)
    x, y = digits.x_test[:80], digits.y_test[:80]
    weak = AttackSpec("ensemble", "linf", 0.05, steps=1, restarts=1)
    base = evaluate_points(model, x, y, [weak], progress=False)
    out = convergence(model, x, y, [weak], base, progress=False)[weak.key]
    assert (out["steps"], out["restarts"]) == (2, 2)
    assert out["stronger"] <= out["base"] == pytest.approx(base[weak.key].float().mean().item())
    assert out["change"] == pytest.approx(100 * (out["base"] - out["stronger"]))
    # A base that claims every clean-correct point robust: the stronger attack, run on those, flips some.
    claimed = {weak.key: base["clean"]}
    over = convergence(model, x, y, [weak], claimed, progress=False)[weak.key]
    assert over["base"] == pytest.approx(base["clean"].float().mean().item())
    assert over["change"] >= 100 * (over["base"] - out["base"]) - 100 / 80 * 3 > 0
    nothing = {weak.key: torch.zeros(80, dtype=torch.bool)}
    assert convergence(model, x, y, [weak], nothing, progress=False)[weak.key]["change"] == 0


class Recorder(nn.Module):
    """Wraps a model and keeps every input batch it is called on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


def _farthest(rec, x, m):
    out = 0.0
    for z in rec.seen:
        ref = x[: len(z)] if len(z) <= len(x) else x.repeat_interleave(len(z) // len(x), 0)
        out = max(out, float((z - ref).abs().flatten(1).amax()))
    return out


@pytest.mark.parametrize("match, inside", [(True, True), (False, False)])
def test_budget_matched_entropic_samples_never_leave_the_eps_ball(digits, match, inside):
    x, y = digits.x_train[:16], digits.y_train[:16]
    cfg = MethodConfig(eps=0.15, steps=3, rho=0.05, m=8, center_steps=3, match_budget=match)
    method = make_method("entropic-saa", cfg)
    rec = Recorder(make_model("small-cnn", seed=0))
    method.loss(rec, x, y, torch.Generator().manual_seed(0))
    far = _farthest(rec, x, cfg.m)
    assert (far <= 0.15 + 1e-6) is inside, far
    assert method.reach == pytest.approx(0.15 if match else 0.2)


def test_budget_matching_refuses_a_ball_wider_than_eps():
    with pytest.raises(ValueError, match="rho=0.2, eps=0.1"):
        MethodConfig(eps=0.1, rho=0.2, match_budget=True).validate()
    with pytest.raises(ValueError, match="match_budget"):
        EntropicAT(make_method("entropic-saa").estimator, rho=0.2, eta=1.0, eps=0.1, match_budget=True)


@pytest.mark.parametrize("name, cfg, expected", [
    ("erm", MethodConfig(), 1),
    ("ifgm-at", MethodConfig(steps=4), 5),
    ("entropic-saa", MethodConfig(eps=0.15, rho=0.05, m=4, center_steps=2, match_budget=True), 6),
    ("entropic-saa", MethodConfig(eps=0.15, rho=0.15, m=6, center_steps=0), 6),
])
def test_gradient_counter_counts_passes_per_example(digits, name, cfg, expected):
    model = make_model("small-cnn", seed=0)
    x, y = digits.x_train[:64], digits.y_train[:64]
    with GradientCounter(model) as counter:
        train(model, make_method(name, cfg), x, y, TrainConfig(epochs=1, batch_size=32),
              generator=torch.Generator().manual_seed(0), progress=False)
    assert counter.rows / 64 == expected


def _records(diffs, base=50.0):
    runs = []
    for seed, d in enumerate(diffs):
        for method, acc in (("ifgm-at", base), ("entropic-saa", base + d)):
            runs.append(dict(method=method, seed=seed, accuracy={"clean": 0.9, "ensemble_linf_0.1": acc / 100},
                             config=dict(methods=["ifgm-at", "entropic-saa"],
                                         attacks=[dict(name="ensemble", norm="linf", eps=0.1, steps=50,
                                                       restarts=3)])))
    return runs


@pytest.mark.parametrize("diffs, expected", [
    ([2.0, 2.5, 3.0], "HOLDS"), ([-2.0, -2.5, -3.0], "DOES NOT HOLD"), ([3.0, -2.0, 1.0], "TIE"),
])
def test_paired_verdict_over_seeds(diffs, expected):
    runs = _records(diffs)
    mean, low, high, n = paired_difference(runs, "entropic-saa", "ifgm-at", "ensemble_linf_0.1")
    assert n == 3 and mean == pytest.approx(sum(diffs) / 3)
    half = 4.302652729911275 * torch.tensor(diffs).std().item() / math.sqrt(3)  # t(0.975, 2)
    assert (low, high) == pytest.approx((mean - half, mean + half), rel=1e-6)
    assert verdict(low, high) == expected
    assert any(line.startswith("| ensemble_linf_0.1 ") and line.endswith(f"| {expected} |")
               for line in comparison_lines(runs, "entropic-saa"))


def test_briefly_trained_ifgm_at_beats_erm_under_the_ensemble(digits):
    """The fast end-to-end check of the evaluation: under the whole ensemble (CE + margin PGD, 3 restarts, then
    targeted APGD; 20 steps each, the tables use 50), two epochs of IFGM-AT keep far more accuracy than ERM at the
    training budget."""
    spec = AttackSpec("ensemble", "linf", 0.15, steps=20, restarts=3)
    acc = {}
    for method in ("erm", "ifgm-at"):
        model = make_model("small-cnn", seed=0)
        train(model, make_method(method, MethodConfig(eps=0.15, steps=4)), digits.x_train[:500],
              digits.y_train[:500], TrainConfig(epochs=2, batch_size=32, lr=2e-3),
              generator=torch.Generator().manual_seed(0), progress=False)
        acc[method] = evaluate(model, digits.x_test[:150], digits.y_test[:150], [spec], progress=False)
    assert acc["erm"]["clean"] - acc["erm"][spec.key] >= 0.5, acc
    assert acc["ifgm-at"][spec.key] - acc["erm"][spec.key] >= 0.1, acc


def test_entropic_training_changes_with_eta(digits):
    """Training, not only the loss value, follows eta: the same seed with eta 0.05 and eta 50 ends at
    different weights (an estimator ignoring eta would give identical models)."""
    weights = []
    for eta in (0.05, 50.0):
        model = make_model("small-cnn", seed=0)
        cfg = MethodConfig(eps=0.15, rho=0.15, eta=eta, m=4, center_steps=0)
        train(model, make_method("entropic-saa", cfg), digits.x_train[:64], digits.y_train[:64],
              TrainConfig(epochs=1, batch_size=32), generator=torch.Generator().manual_seed(0), progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(weights[0], weights[1])
    # Sanity on the objective itself: at a low temperature the loss is near the worst sample's CE.
    model = make_model("small-cnn", seed=0)
    x, y = digits.x_train[:8], digits.y_train[:8]
    low = make_method("entropic-saa", MethodConfig(rho=0.3, eta=1e-4, m=8)).loss(
        model, x, y, torch.Generator().manual_seed(1))
    high = make_method("entropic-saa", MethodConfig(rho=0.3, eta=1e4, m=8)).loss(
        model, x, y, torch.Generator().manual_seed(1))
    assert low > high and F.cross_entropy(model(x), y) < low
