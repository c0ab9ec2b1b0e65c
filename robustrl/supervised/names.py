"""The names a user picks among on the command line: datasets, architectures, training methods, attacks,
norms and benchmark presets.

Plain tuples, no torch: the ``robustrl supervised`` parser lists them as choices without loading the
modules that implement them (which re-export them from here).
"""

from __future__ import annotations

from robustrl.checks import NORMS

__all__ = ["ARCHS", "ATTACKS", "DATASETS", "METHODS", "NORMS", "PRESET_NAMES"]

#: The datasets (``--dataset``), all loaded without a download at run time.
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist", "idx")
#: The model architectures (``--arch``).
ARCHS: tuple[str, ...] = ("paper-cnn", "small-cnn")
#: The training methods (``--method``): ERM, the adversarial-training baselines and Entropic-AT.
METHODS: tuple[str, ...] = (
    "erm", "fgm-at", "ifgm-at", "entropic-saa", "entropic-sg", "entropic-mlmc", "adt-exp", "mmc", "mmc-at",
)
#: The attacks of the evaluation (``--attack``). ``ensemble`` (the default of ``robustrl supervised evaluate``
#: and the robust accuracy of every benchmark table) is the per-point worst case of cross-entropy PGD,
#: margin-loss PGD and targeted APGD at every other class; the others are single attacks (``apgd-ce``,
#: ``apgd-dlr``: Auto-PGD on cross-entropy and on the DLR loss; ``apgd-t``: targeted APGD-DLR at every class).
ATTACKS: tuple[str, ...] = ("ensemble", "fgm", "pgd", "pgd-margin", "noise", "apgd-ce", "apgd-dlr", "apgd-t")
#: The keys of :data:`robustrl.supervised.benchmark.PRESETS`, in its order.
PRESET_NAMES: tuple[str, ...] = ("digits", "fashion-mnist")
