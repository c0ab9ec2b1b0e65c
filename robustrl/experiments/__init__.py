"""Experiments: training with model selection, evaluation, reward tables, plots, the main job, sweeps
(local or Ray), robustness surfaces, uncertainty sets with their worst case, the robustness suite
(observation attacks, noise, random actions, uncertainty sets), rliable-style statistics and the report.

The names are imported on first use, so that importing a torch-free module such as
:mod:`robustrl.experiments.tables` does not load torch and Stable-Baselines3.
"""

from typing import TYPE_CHECKING

from robustrl.lazy import lazy_attributes

if TYPE_CHECKING:
    from robustrl.experiments.curves import robustness_run, surface_run
    from robustrl.experiments.evaluation import (
        EVALUATION_SEED,
        SELECTION_SEED,
        NominalSelectionCallback,
        greedy_policy,
        greedy_returns,
        greedy_rollout,
        safety_margin,
    )
    from robustrl.experiments.pipeline import (
        QUICK,
        ReproduceConfig,
        evaluate_runs,
        records_hold,
        reproduce,
        train_runs,
    )
    from robustrl.experiments.report import write_report
    from robustrl.experiments.set_stats import SetStatistic, cvar, set_mean, set_statistics, worst_case
    from robustrl.experiments.stats import (
        aggregate,
        iqm,
        performance_profile,
        probability_of_improvement,
        stratified_bootstrap_ci,
    )
    from robustrl.experiments.suite import CHANNELS, Suite, channel_returns, load_suite, suite_run, suite_runs
    from robustrl.experiments.suite_table import collect_suite, suite_rows, write_suite_tables
    from robustrl.experiments.sweep import run_sweep
    from robustrl.experiments.sweep_spec import SweepSpec, load_sweep_spec
    from robustrl.experiments.tables import bootstrap_ci, bootstrap_diff_ci, reward_table, write_reward_tables
    from robustrl.experiments.training import RunSpec, evaluate_run, load_run_model, train_run, verify_evaluation
    from robustrl.experiments.uncertainty import (
        UncertaintySet,
        evaluate_set,
        load_uncertainty_set,
        packaged_uncertainty_sets,
        predict_policy,
        uncertainty_returns,
        uncertainty_run,
    )

__all__ = [
    "EVALUATION_SEED",
    "SweepSpec",
    "aggregate",
    "iqm",
    "load_sweep_spec",
    "performance_profile",
    "probability_of_improvement",
    "run_sweep",
    "stratified_bootstrap_ci",
    "surface_run",
    "write_report",
    "QUICK",
    "SELECTION_SEED",
    "NominalSelectionCallback",
    "ReproduceConfig",
    "RunSpec",
    "bootstrap_ci",
    "bootstrap_diff_ci",
    "evaluate_run",
    "evaluate_runs",
    "records_hold",
    "greedy_policy",
    "greedy_returns",
    "greedy_rollout",
    "safety_margin",
    "load_run_model",
    "reproduce",
    "reward_table",
    "robustness_run",
    "train_run",
    "train_runs",
    "verify_evaluation",
    "write_reward_tables",
    "SetStatistic",
    "UncertaintySet",
    "cvar",
    "evaluate_set",
    "load_uncertainty_set",
    "packaged_uncertainty_sets",
    "predict_policy",
    "set_mean",
    "set_statistics",
    "uncertainty_returns",
    "uncertainty_run",
    "worst_case",
    "CHANNELS",
    "Suite",
    "channel_returns",
    "collect_suite",
    "load_suite",
    "suite_rows",
    "suite_run",
    "suite_runs",
    "write_suite_tables",
]

__getattr__, __dir__ = lazy_attributes(globals(), {
    "robustrl.experiments.curves": ["robustness_run",
                                    "surface_run"],
    "robustrl.experiments.evaluation": ["EVALUATION_SEED", "SELECTION_SEED", "NominalSelectionCallback",
                                        "greedy_policy", "greedy_returns", "greedy_rollout", "safety_margin"],
    "robustrl.experiments.pipeline": ["QUICK", "ReproduceConfig", "evaluate_runs", "records_hold", "reproduce",
                                      "train_runs"],
    "robustrl.experiments.report": ["write_report"],
    "robustrl.experiments.set_stats": ["SetStatistic", "cvar", "set_mean", "set_statistics", "worst_case"],
    "robustrl.experiments.stats": ["aggregate", "iqm", "performance_profile", "probability_of_improvement",
                                   "stratified_bootstrap_ci"],
    "robustrl.experiments.suite": ["CHANNELS", "Suite", "channel_returns", "load_suite", "suite_run", "suite_runs"],
    "robustrl.experiments.suite_table": ["collect_suite", "suite_rows", "write_suite_tables"],
    "robustrl.experiments.sweep": ["run_sweep"],
    "robustrl.experiments.sweep_spec": ["SweepSpec", "load_sweep_spec"],
    "robustrl.experiments.tables": ["bootstrap_ci", "bootstrap_diff_ci", "reward_table", "write_reward_tables"],
    "robustrl.experiments.training": ["RunSpec", "evaluate_run", "load_run_model", "train_run",
                                      "verify_evaluation"],
    "robustrl.experiments.uncertainty": ["UncertaintySet", "evaluate_set", "load_uncertainty_set",
                                         "packaged_uncertainty_sets", "predict_policy", "uncertainty_returns",
                                         "uncertainty_run"],
})
