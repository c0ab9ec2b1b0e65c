"""The one integer check that every module calls."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl.checks import check_int, check_option, is_int


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


@pytest.mark.parametrize("value", ["l1", "LINF", None, ["linf"], {"linf": 1}, 1.0])
def test_check_option_names_the_value_and_the_choices_even_for_unhashable_values(value):
    with pytest.raises(ValueError) as info:
        check_option(value, ("linf", "l2"), "norm")
    assert str(info.value) == f"norm must be one of ('linf', 'l2'), got norm={value!r}"
    assert check_option("l2", ("linf", "l2"), "norm") == "l2"


def test_no_module_writes_the_one_of_check_by_hand():
    """A hyperparameter choice is checked by robustrl.checks.check_option, not by a hand-written raise
    (kernels.py checks an environment variable and names its raw value, not the normalised mode it tests)."""
    from pathlib import Path

    import robustrl

    root = Path(robustrl.__file__).parent
    hand_written = [str(p.relative_to(root)) for p in root.rglob("*.py")
                    if p.name not in ("checks.py", "kernels.py") and "must be one of {" in p.read_text()]
    assert not hand_written


def test_yaml_naming_a_key_twice_is_refused_naming_the_key_its_lines_and_the_file():
    from robustrl.checks import load_yaml

    with pytest.raises(ValueError, match=r"^grid\.yml: line 3: key 'rho' given twice \(first on line 2\)"):
        load_yaml("grid:\n  rho: [0.1]\n  rho: [0.2]\n", "grid.yml")
    with pytest.raises(ValueError, match=r"^s\.yml: line 1: key 'eta' given twice \(first on line 1\)"):
        load_yaml("{eta: 1, eta: 2}", "s.yml")


def test_yaml_keys_repeated_in_other_mappings_or_merged_in_are_no_duplicates():
    from robustrl.checks import load_yaml

    text = "base: &base {rho: 0.1, eta: 1}\nrobust:\n  <<: *base\n  eta: 2\nother: {rho: 0.3}\n"
    assert load_yaml(text, "f.yml") == {"base": {"rho": 0.1, "eta": 1}, "robust": {"rho": 0.1, "eta": 2},
                                        "other": {"rho": 0.3}}
    with pytest.raises(ValueError, match=r"^f\.yml: not valid YAML: "):
        load_yaml("a: [", "f.yml")


def test_a_yaml_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    from robustrl.checks import read_yaml

    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{path}: not UTF-8 text \(byte 0xe9 at position 9\)$"):
        read_yaml(path)
