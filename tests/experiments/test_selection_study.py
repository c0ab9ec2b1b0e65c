"""robustrl.experiments.selection: how a rule picks a checkpoint."""

from __future__ import annotations

from robustrl.experiments.selection import parse_seeds, pick


SCORES = {
    "0002500": {"nominal": 480.0, "margin": 0.95},
    "0010000": {"nominal": 500.0, "margin": 0.40},
    "0012500": {"nominal": 500.0, "margin": 0.90},
    "0050000": {"nominal": 500.0, "margin": 0.90},
    "0050176": {"nominal": 500.0, "margin": 0.60},
}


def test_a_rule_breaks_ties_by_its_next_signal_then_by_the_latest_checkpoint():
    assert pick(SCORES, ("nominal",)) == "0050176"  # the table's rule: latest among the 500s
    assert pick(SCORES, ("nominal", "margin")) == "0050000"  # two 500s at 0.90: the later
    assert pick(SCORES, ("margin",)) == "0002500"  # margin alone ignores the return


def test_seed_ranges_parse():
    parse = parse_seeds
    assert parse("0-3") == [0, 1, 2, 3] and parse("10,12") == [10, 12]
