"""The weakest-condition table and the comparison with the best other agent (robustrl.experiments.weakest)."""

from __future__ import annotations

import pytest

from robustrl.experiments.heldout import Condition, HeldoutRule
from robustrl.experiments.weakest import compare_with_best, condition_cells, task_conditions, weakest_lines

RULE = HeldoutRule(sweep="toy", score="min", conditions=(
    Condition(id="robustrl/CartPoleHeavy-v1"), Condition(id="robustrl/CartPoleShort-v1"),
    Condition(channel="pgd-linf", level=0.05), Condition(channel="set:moderate:worst")))


def _tables(tmp_path, rewards, suite):
    (tmp_path / "reward_table.csv").write_text(
        "# a comment line\n"
        "env_id,agent,checkpoint,seeds,episodes,mean,std,ci_low,ci_high,diff,diff_ci_low,diff_ci_high\n"
        + "".join(f"{e},{a},{c},10,100,{m},0,{lo},{hi},,,\n" for e, a, c, m, lo, hi in rewards))
    (tmp_path / "robustness_table.csv").write_text(
        "agent,checkpoint,channel,level,mean,std,ci_low,ci_high,seeds,episodes,diff,diff_ci_low,diff_ci_high\n"
        + "".join(f"{a},best,{ch},{lv},{m},0,{lo},{hi},10,10,,,\n" for a, ch, lv, m, lo, hi in suite))
    return tmp_path


def test_a_rule_written_for_cartpole_takes_the_tasks_own_perturbed_ids_elsewhere():
    assert task_conditions(RULE, "cartpole") == RULE.conditions
    acrobot = task_conditions(RULE, "acrobot")
    assert [c.id for c in acrobot[:3]] == ["robustrl/AcrobotHeavyUpperLink-v1", "robustrl/AcrobotHeavyLowerLink-v1",
                                            "robustrl/AcrobotLongUpperLink-v1"]
    assert acrobot[3:] == RULE.conditions[2:]


def test_cells_and_the_comparison_read_the_best_checkpoint_and_judge_by_the_agents_ci(tmp_path):
    nominal, heavy, short = "robustrl/CartPole-v1", "robustrl/CartPoleHeavy-v1", "robustrl/CartPoleShort-v1"
    rewards = [(nominal, "regular", "best", 500, 500, 500), (heavy, "regular", "best", 300, 250, 350),
               (heavy, "regular", "final", 999, 999, 999), (short, "regular", "best", 480, 470, 490),
               (nominal, "mix", "best", 490, 470, 500), (heavy, "mix", "best", 450, 400, 470),
               (short, "mix", "best", 470, 440, 479)]
    suite = [("regular", "pgd-linf", 0.05, 200, 150, 250), ("regular", "pgd-linf", 0.1, 999, 999, 999),
             ("mix", "pgd-linf", 0.05, 300, 250, 350), ("regular", "set:moderate:worst", "", 100, 50, 150)]
    labels, cells = condition_cells(_tables(tmp_path, rewards, suite), RULE.conditions, "cartpole")
    assert labels == ["nominal (Original)", "Heavy pole", "Short pole", "pgd-linf 0.05", "set:moderate:worst"]
    assert list(cells) == ["regular", "mix"] and cells["regular"]["Heavy pole"].mean == 300
    assert "set:moderate:worst" not in cells["mix"]
    rows = {r["label"]: r for r in compare_with_best(cells, "mix", labels)}
    assert rows["Heavy pole"]["best"] == "regular" and rows["Heavy pole"]["holds"]  # mix is the best itself
    assert rows["Short pole"]["gap"] == 10 and rows["Short pole"]["holds"] is False  # 480 > mix's CI top 479
    assert rows["nominal (Original)"]["holds"] and rows["set:moderate:worst"]["holds"] is None
    text = "\n".join(weakest_lines(labels, cells, "mix"))
    assert "| regular | 500.0 | 300.0 | 480.0 | 200.0 | 100.0 | **100.0** (set:moderate:worst) |" in text
    assert "**mix holds on 2 of 4 conditions**; not on: Short pole; not in the tables yet: set:moderate:worst." in text
    with pytest.raises(ValueError, match="agent 'nobody' is not in the tables"):
        compare_with_best(cells, "nobody", labels)
    with pytest.raises(ValueError, match="reward_table.csv not found"):
        condition_cells(tmp_path / "empty", RULE.conditions, "cartpole")
