"""Rewrite JSON files in the format robustrl writes them (:func:`robustrl.experiments.io.json_text`).

    python scripts/format_json.py results            # every *.json under results/
    python scripts/format_json.py RUN_DIR --check    # only say which files are not in that format (exit 1 if any)

Files written by robustrl before that format put every number of a list on a line of its own; their data is
unchanged here (each file is rewritten only after its new text has been read back to the same data), only the
layout. Use it on run folders trained by an older robustrl before committing them beside newer ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robustrl.experiments.io import atomic_write_text, json_text


def canonical(data: object) -> str:
    """One text per data (NaN compares equal to itself here, unlike in ``==``)."""
    return json.dumps(data, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="JSON files, or folders searched for *.json")
    parser.add_argument("--check", action="store_true", help="change nothing; list the files not in the format")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    files = sorted({f for p in args.paths for f in ([p] if p.is_file() else p.rglob("*.json"))})
    texts = {}
    for path in files:  # every file is read and checked before any is written
        old = path.read_text(encoding="utf-8")
        try:
            data = json.loads(old)
        except json.JSONDecodeError as err:
            parser.error(f"{path} is not JSON: {err}")
        new = json_text(data)
        if new != old:
            if canonical(json.loads(new)) != canonical(data):  # the format must not change the data
                raise AssertionError(f"{path}: the rewritten text reads back to other data")
            texts[path] = (old, new)
    changed = list(texts)
    before = sum(len(old.encode()) for old, _ in texts.values())
    after = sum(len(new.encode()) for _, new in texts.values())
    if not args.check:
        for path, (_, new) in texts.items():
            atomic_write_text(path, new)
    verb = "not in the format" if args.check else "rewritten"
    for path in changed if args.check else []:
        print(path)
    print(f"{len(changed)} of {len(files)} JSON files {verb} ({before / 1e6:.2f} MB -> {after / 1e6:.2f} MB)")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
