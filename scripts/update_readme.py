"""Copy the generated reward table (results/reward_table.md), decision table (results/decision_table.md) and the
supervised benchmarks' headlines (results/supervised/<preset>/headline.md) into README.md between their markers."""

from __future__ import annotations

import re
from pathlib import Path

from robustrl.experiments.io import atomic_write_text

BLOCKS = {"reward-table": "results/reward_table.md", "decision-table": "results/decision_table.md",
          "supervised-digits": "results/supervised/digits/headline.md",
          "supervised-fashion-mnist": "results/supervised/fashion-mnist/headline.md"}


def main() -> None:
    readme = Path("README.md")
    text = readme.read_text()
    for name, source in BLOCKS.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no {begin} ... {end} block")
        table = Path(source).read_text().strip()
        text = pattern.sub(lambda _: f"{begin}\n{table}\n{end}", text)
    atomic_write_text(readme, text)


if __name__ == "__main__":
    main()
