"""The one integer check that every module calls."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.checks import check_int, is_int


@pytest.mark.parametrize("value", [True, False, 1.0, "3", None, 0, -2])
def test_check_int_rejects_bools_floats_strings_and_small_values(value):
    assert not is_int(value, 1)
    with pytest.raises(ValueError, match=r"jobs must be an integer >= 1, got jobs="):
        check_int(value, "jobs", 1)


def test_check_int_accepts_python_and_numpy_integers_at_the_minimum():
    assert check_int(0, "seed", 0) == 0
    assert check_int(np.int64(5), "resamples", 1) == 5 and type(check_int(np.int64(5), "resamples", 1)) is int


def test_every_module_uses_the_one_check():
    """No module writes the bool/int/minimum test by hand beside robustrl.checks."""
    from pathlib import Path

    import robustrl

    root = Path(robustrl.__file__).parent
    hand_written = [str(p.relative_to(root)) for p in root.rglob("*.py")
                    if p.name != "checks.py" and ", bool) or not isinstance(" in p.read_text()]
    assert not hand_written
