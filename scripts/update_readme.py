"""Copy the generated reward table (results/reward_table.md) into README.md between its markers."""

from __future__ import annotations

import re
from pathlib import Path

from robustrl.experiments.io import atomic_write_text

BEGIN, END = "<!-- reward-table:begin -->", "<!-- reward-table:end -->"


def main() -> None:
    readme = Path("README.md")
    table = Path("results/reward_table.md").read_text().strip()
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
    atomic_write_text(readme, pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text))


if __name__ == "__main__":
    main()
