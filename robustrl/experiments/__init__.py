"""Experiments: training with model selection, evaluation, reward tables, plots and the main job."""

from robustrl.experiments.evaluation import (
    EVALUATION_SEED,
    SELECTION_SEED,
    NominalSelectionCallback,
    greedy_policy,
    greedy_returns,
)
from robustrl.experiments.pipeline import QUICK, ReproduceConfig, evaluate_runs, reproduce, train_runs
from robustrl.experiments.tables import bootstrap_ci, bootstrap_diff_ci, reward_table, write_reward_tables
from robustrl.experiments.training import (
    ROBUSTNESS_GRID,
    RunSpec,
    evaluate_run,
    load_run_model,
    robustness_run,
    train_run,
)

__all__ = [
    "EVALUATION_SEED",
    "QUICK",
    "ROBUSTNESS_GRID",
    "SELECTION_SEED",
    "NominalSelectionCallback",
    "ReproduceConfig",
    "RunSpec",
    "bootstrap_ci",
    "bootstrap_diff_ci",
    "evaluate_run",
    "evaluate_runs",
    "greedy_policy",
    "greedy_returns",
    "load_run_model",
    "reproduce",
    "reward_table",
    "robustness_run",
    "train_run",
    "train_runs",
    "write_reward_tables",
]
