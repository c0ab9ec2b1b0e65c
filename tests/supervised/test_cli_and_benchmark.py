import argparse
import json

import pytest

from robustrl.cli import main
from robustrl.supervised.benchmark import BenchmarkConfig, load_runs, run_benchmark, write_benchmark_tables
from robustrl.supervised.cli import add_subcommands
from robustrl.supervised.estimator_benchmark import quick_config, run_estimator_benchmark


def parser():
    p = argparse.ArgumentParser(prog="robustrl")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    return p


def test_subcommands_set_func():
    p = parser()
    for argv in (["supervised", "train"], ["supervised", "evaluate", "--run", "x.json", "--eps", "0.1"],
                 ["supervised", "table", "--runs", "a", "--out", "b"], ["supervised", "benchmark"]):
        assert callable(p.parse_args(argv).func)


@pytest.mark.parametrize("argv", [
    ["supervised", "train", "--method", "magic"],
    ["supervised", "train", "--dataset", "cifar"],
    ["supervised", "evaluate", "--run", "x.json", "--eps", "0.1", "--attack", "cw"],
])
def test_bad_names_are_usage_errors(argv):
    with pytest.raises(SystemExit) as err:
        parser().parse_args(argv)
    assert err.value.code == 2


def test_value_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["supervised", "evaluate", "--run", str(tmp_path / "none.json"), "--eps", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.json" in err and "\n" not in err
    with pytest.raises(SystemExit) as stop:  # refused by argparse: a count of at least 1
        main(["supervised", "train", "--epochs", "0", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "argument --epochs: expected an integer >= 1, got '0'" in capsys.readouterr().err
    assert main(["supervised", "train", "--lr", "-1", "--out", str(tmp_path)]) == 2
    assert "lr=-1" in capsys.readouterr().err


def test_train_evaluate_table_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    common = ["--n-train", "64", "--n-test", "32", "--epochs", "1", "--out", str(runs), "--no-progress"]
    assert main(["supervised", "train", "--method", "erm", *common]) == 0
    assert main(["supervised", "train", "--method", "ifgm-at", "--train-steps", "2", *common]) == 0
    for name in ("erm", "ifgm-at"):
        rec = runs / f"digits__{name}__0.json"
        assert main(["supervised", "evaluate", "--run", str(rec), "--eps", "0.1", "0.2", "--steps", "2",
                     "--no-progress"]) == 0
        assert set(json.loads(rec.read_text())["accuracy"]) == {"clean", "ensemble_linf_0.1",
                                                                "ensemble_linf_0.2"}
    assert main(["supervised", "table", "--runs", str(runs), "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t" / "table.md").read_text()
    assert "Made by: robustrl" in md and "| ifgm-at | 1 |" in md and "ensemble_linf_0.2" in md
    assert (tmp_path / "t" / "accuracy_vs_budget.png").exists()


def test_benchmark_resume_and_checks(tmp_path):
    cfg = BenchmarkConfig(name="t", methods=["erm", "ifgm-at", "entropic-saa"], seeds=[0],
                          n_train=64, n_test=32,
                          train=dict(epochs=1, batch_size=32, lr=1e-3),
                          method=dict(eps=0.2, steps=2, rho=0.1, eta=0.5, m=2, center_steps=1),
                          attacks=[dict(name="ensemble", norm=n, eps=e, steps=2, restarts=1)
                                   for n, e in (("linf", 0.1), ("linf", 0.2), ("l2", 0.5), ("l2", 1.0))]
                          + [dict(name="fgm", norm="linf", eps=0.35)], convergence_seeds=[0])
    first = run_benchmark(cfg, tmp_path, command="c", progress=False)
    # a record made by a benchmark of more seeds is the same run: reused, not retrained
    record = tmp_path / "records" / "digits__erm__0.json"
    record.write_text(record.read_text().replace('"seeds": [0]', '"seeds": [0, 5]'))
    second = run_benchmark(cfg, tmp_path, command="c", progress=False)
    assert [r["train_seconds"] for r in first] == [r["train_seconds"] for r in second]
    assert json.loads(record.read_text())["config"]["seeds"] == [0, 5]
    write_benchmark_tables(load_runs(tmp_path / "records"), tmp_path, "c")
    md = (tmp_path / "table.md").read_text()
    assert "entropic-saa >= ifgm-at" in md and "- ensemble_l2_1: ERM" in md
    assert "| ensemble_linf_0.2 |" in md and "(one seed: no CI)" in md  # one seed: no verdict but TIE
    assert "Largest change:" in md and "| erm | 1.00 |" in md  # convergence and cost sections
    assert "paper (MNIST)" in md and "fgm_linf_0.35" in md
    csv_text = (tmp_path / "table.csv").read_text()
    assert csv_text.startswith("# Made by: c") and "clean_mean" in csv_text
    with pytest.raises(ValueError, match="'bogus'"):
        BenchmarkConfig(name="t", methods=["bogus"]).validate()


def test_estimator_benchmark_quick():
    result = run_estimator_benchmark(quick_config(levels=(2,)), progress=False)
    rows = {r["estimator"]: r for r in result["rows"]}
    assert rows["SG"]["measured_samples"] == 4
    assert rows["RT-MLMC"]["expected_samples"] == pytest.approx(12 / 7)


@pytest.mark.slow
def test_benchmark_records_do_not_depend_on_jobs(tmp_path):
    cfg = BenchmarkConfig(name="t", methods=["erm", "ifgm-at"], seeds=[0], n_train=64, n_test=32,
                          train=dict(epochs=1, batch_size=32, lr=1e-3), method=dict(eps=0.2, steps=2),
                          attacks=[dict(name="ensemble", norm="linf", eps=0.1, steps=3, restarts=1)])
    one = run_benchmark(cfg, tmp_path / "one", progress=False, jobs=1)
    two = run_benchmark(cfg, tmp_path / "two", progress=False, jobs=2)
    assert [(r["accuracy"], r["points"]) for r in one] == [(r["accuracy"], r["points"]) for r in two]


@pytest.mark.parametrize("preset_name", ["digits", "fashion-mnist"])
def test_every_preset_row_is_trainable_from_the_cli_alone(preset_name):
    import argparse

    from robustrl.supervised.benchmark import PRESETS
    from robustrl.supervised.cli import add_subcommands, preset_train_argv, train_config

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command"))
    preset = PRESETS[preset_name]
    for row in preset.methods:
        args = parser.parse_args(preset_train_argv(preset_name, row, 2))
        cli = train_config(args)
        base = preset.base_method(row)
        assert cli.methods == [base] and cli.seeds == [2]
        assert cli.method_config(base) == preset.method_config(row), row
        assert (cli.dataset, cli.arch, cli.n_train, cli.n_test, cli.train) == (
            preset.dataset, preset.arch, preset.n_train, preset.n_test, preset.train)
    # the budget-matched rows need the flag, and without it the config differs
    argv = preset_train_argv(preset_name, "entropic-saa", 0)
    assert "--match-budget" in argv
    argv.remove("--match-budget")
    assert not train_config(parser.parse_args(argv)).method_config("entropic-saa").match_budget
    with pytest.raises(ValueError, match="no row"):
        preset_train_argv(preset_name, "nonsense", 0)


def test_compare_records_names_what_moved(tmp_path):
    from pathlib import Path

    from robustrl.supervised.benchmark import compare_record, compare_records

    committed = Path(__file__).resolve().parents[2] / "results" / "supervised" / "digits" / "records"
    base = json.loads((committed / "digits__erm__0.json").read_text())
    assert compare_record(base, json.loads(json.dumps(base))) == []
    key = next(k for k in base["accuracy"] if k.startswith("ensemble"))
    moved = json.loads(json.dumps(base))
    moved["train_loss"][1] += 1e-9
    moved["accuracy"][key] -= 0.02
    lines = compare_record(moved, base)
    assert lines[0].startswith("training loss parts at epoch 2")
    assert f"{key} {100 * base['accuracy'][key]:.2f} -> {100 * moved['accuracy'][key]:.2f}" in lines[1]
    flipped = json.loads(json.dumps(base))
    flipped["points"]["clean"] = ("0" if base["points"]["clean"][0] != "0" else "1") + base["points"]["clean"][1:]
    assert compare_record(flipped, base)[0] == "per-point results differ (same accuracy) in clean"
    # the benchmark's list of seeds is not part of a run: `--seeds 0` retrains seed 0 of the committed table
    alone = json.loads(json.dumps(base))
    alone["config"]["seeds"] = [0]
    assert compare_record(alone, base) == []
    other = json.loads(json.dumps(base))
    other["config"]["n_test"] = 7
    assert compare_record(other, base) == ["configuration differs; nothing else compared"]
    for folder, record in (("new", moved), ("old", base)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "digits__erm__0.json").write_text(json.dumps(record))
    assert compare_records(tmp_path / "new", tmp_path / "old")["digits__erm__0"] == lines
    with pytest.raises(ValueError, match="does not exist"):
        compare_records(tmp_path / "new", tmp_path / "missing")


def test_headline_reads_the_training_budget_cell_and_says_which_ensemble():
    from pathlib import Path

    from robustrl.supervised.benchmark import ENSEMBLE_VERSION, headline, load_runs, paired_difference

    runs = load_runs(Path(__file__).resolve().parents[2] / "results" / "supervised" / "digits" / "records")
    text = headline(runs)
    mean, low, high, _ = paired_difference(runs, "entropic-saa", "ifgm-at", "ensemble_linf_0.15")
    assert "ℓ∞ ε = 0.15" in text and f"({mean:+.1f} [{low:+.1f}, {high:+.1f}]" in text
    old = [{k: v for k, v in r.items() if k != "ensemble"} for r in runs]
    assert "made before the ensemble had its targeted APGD runs" in headline(old)
    assert "made before" not in headline([{**r, "ensemble": ENSEMBLE_VERSION} for r in runs])


def test_same_training_rows_finds_sg_equal_to_saa_and_only_then():
    from pathlib import Path

    from robustrl.supervised.benchmark import headline, load_runs, same_training_rows

    runs = load_runs(Path(__file__).resolve().parents[2] / "results" / "supervised" / "digits" / "records")
    config = runs[0]["config"]
    assert same_training_rows(config) == [("entropic-saa", "entropic-sg", 4)]
    # what the header claims holds in the records: the two rows have the same per-point results
    by = {(r["method"], r["seed"]): r for r in runs}
    for seed in (0, 1, 2):
        assert by[("entropic-sg", seed)]["points"] == by[("entropic-saa", seed)]["points"]
    assert "entropic-sg = entropic-saa (the same models" in headline(runs)
    other_level = json.loads(json.dumps(config))
    other_level["method_overrides"]["entropic-sg"] = {"L": 3}
    assert same_training_rows(other_level) == []
    other_setting = json.loads(json.dumps(config))
    other_setting["method_overrides"]["entropic-sg"] = {"eta": 0.25}
    assert same_training_rows(other_setting) == []
    no_sg = json.loads(json.dumps(config))
    no_sg["methods"] = [m for m in config["methods"] if m != "entropic-sg"]
    assert same_training_rows(no_sg) == []
