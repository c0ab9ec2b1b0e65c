"""Copy the generated reward table (results/reward_table.md), decision table (results/decision_table.md), the task
studies' headlines (once the study holds its 10 seeds; before that, one line saying how far it is) and the supervised
benchmarks' headlines (results/supervised/<preset>/headline.md) into README.md between their markers.

A task judged on perturbed ids is headlined by the best-checkpoint part of its reward table; a task judged only on
uncertainty sets (no perturbed ids: its reward table holds the nominal env alone) by its decision tables, whose rows
hold the sets."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from robustrl.experiments.io import atomic_write_text

BLOCKS = {"reward-table": "results/reward_table.md", "decision-table": "results/decision_table.md",
          "supervised-digits": "results/supervised/digits/headline.md",
          "supervised-fashion-mnist": "results/supervised/fashion-mnist/headline.md"}
#: Task studies whose headline goes to the README: block name -> (the study's folder, the tables it is made of).
STUDIES = {"acrobot-headline": ("results/acrobot", ("reward_table.md",)),
           "lunarlander-headline": ("results/lunarlander", ("reward_table.md",)),
           "invertedpendulum-headline": ("results/invertedpendulum",
                                         ("decision_table.md", "decision_table_robust-td3.md")),
           "pendulum-headline": ("results/pendulum",
                                 ("reward_table.md", "decision_table.md", "decision_table_robust-td3.md")),
           "hopper-headline": ("results/hopper", ("decision_table.md",))}
#: Seeds a task study's table needs before its headline replaces the progress line.
STUDY_SEEDS = 10


def study_headline(folder: str | Path, seeds: int = STUDY_SEEDS,
                   tables: tuple[str, ...] = ("reward_table.md",)) -> str:
    """The headline of a task study: the files ``tables`` of its folder, each without its agents' configuration
    comments and without what follows its final-model tables (the reward table keeps its header lines and its
    best-checkpoint tables: returns and differences to regular, with CIs). While the reward table holds fewer than
    ``seeds`` seeds per agent (or none yet), a line saying so and where the study is."""
    folder = Path(folder)
    table = folder / "reward_table.md"
    link = f"[{folder}]({folder}/README.md)"
    if not table.is_file():
        return f"_Not trained yet: {link}._"
    text = table.read_text()
    found = re.search(r"Seeds per agent: (\d+);", text)
    if found is None or int(found.group(1)) < seeds:
        held = f"{found.group(1)} of {seeds}" if found else f"fewer than {seeds} (or unequal)"
        return (f"_Study in progress: {held} seeds per agent so far, tables in {link}; the headline comes here at "
                f"{seeds}._")
    parts = []
    for name in tables:
        lines = []
        for line in (folder / name).read_text().strip().splitlines():
            if line.startswith("**Final model**"):
                break
            if not line.startswith("<!-- Config"):
                lines.append(line)
        parts.append("\n".join(lines).strip())
    return "\n\n".join(parts)


def main() -> None:
    """Rewrite README.md's generated blocks; exit with a message if one of their markers is missing."""
    readme = Path("README.md")
    text = readme.read_text()
    contents = {name: Path(source).read_text().strip() for name, source in BLOCKS.items()}
    contents.update({name: study_headline(folder, tables=tables) for name, (folder, tables) in STUDIES.items()})
    for name, content in contents.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no {begin} ... {end} block")
        text = pattern.sub(lambda _: f"{begin}\n{content}\n{end}", text)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
