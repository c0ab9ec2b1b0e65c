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


def test_report_tabulates_each_rule_from_cached_scores(tmp_path):
    """The Markdown and CSV tables from hand-made scores: each rule's pick, per agent, on every id."""
    import json

    from robustrl.envs import ENV_IDS
    from robustrl.experiments.selection import RULES, report, study_spec

    names = []
    for agent, perturbed in (("robust", 480.0), ("regular", 300.0)):
        for seed in (0, 1):
            name = study_spec(agent, seed).name
            names.append(name)
            signals = {"nominal": 500.0, "long": 500.0, "noisy": 450.0, "noisy2": 400.0, "noisy4": 300.0,
                       "margin": 0.8}
            scores = {"0002500": {**signals, "nominal": 480.0, **{e: 100.0 for e in ENV_IDS}},
                      "0005000": {**signals, ENV_IDS[0]: 500.0, **{e: perturbed for e in ENV_IDS[1:]}}}
            (tmp_path / "runs" / name).mkdir(parents=True)
            (tmp_path / "runs" / name / "scores.json").write_text(json.dumps(scores))
    text = report(names, ["robust", "regular"], "0-1", tmp_path / "runs", tmp_path / "out")
    assert "| robust | nominal (ties: latest) | 500.0 ± 0.0 | 480.0 ± 0.0 |" in text
    assert "| regular | margin | 500.0 ± 0.0 | 300.0 ± 0.0 |" in text  # ties on margin go to the latest
    assert text.count("| robust |") == len(RULES)
    assert (tmp_path / "out" / "selection-seeds0-1.md").read_text() == text
    assert len((tmp_path / "out" / "scores-seeds0-1.csv").read_text().splitlines()) == 1 + 2 * len(names)
