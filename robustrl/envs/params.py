"""One parameter API for every robustrl environment.

Gymnasium's environments keep their physics in attributes set once in ``__init__`` (and MuJoCo's in the compiled
model); changing one afterwards often leaves a derived quantity stale. robustrl's environments declare their
physical parameters as :class:`Parameter` records and share one interface (:class:`ParametricEnv`):

* validated constructor keyword arguments (a real number, finite, and above the parameter's lower bound;
  strings, booleans and None raise ``TypeError`` naming the parameter);
* ``get_params()``: the current values, by name;
* ``set_params(**params)``: every value validated before any is changed, then applied, with every derived
  quantity recomputed, so the change takes effect on the next ``step``;
* ``reset(options={"params": {...}})``: ``set_params`` and then the usual reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustrl.checks import is_number

__all__ = ["Parameter", "ParametricEnv", "check_parameter_value", "check_parameters", "parameter_property"]


@dataclass(frozen=True)
class Parameter:
    """One physical parameter of an environment family.

    :param name: the keyword argument, as in ``get_params()``.
    :param nominal: Gymnasium's value (the nominal environment's).
    :param doc: what it is, with its unit.
    :param lower: values must be ``> lower`` (``>= lower`` when ``inclusive``); 0 for physical magnitudes.
    :param inclusive: whether ``lower`` itself is allowed (wind power 0 is, a mass 0 is not).
    """

    name: str
    nominal: float
    doc: str
    lower: float = 0.0
    inclusive: bool = False

    @property
    def bound(self) -> str:
        """The valid range in words, e.g. ``"> 0"``."""
        return f"{'>=' if self.inclusive else '>'} {self.lower:g}"

    def admits(self, value: float | np.ndarray) -> np.ndarray:
        """Whether each value is finite and inside the valid range."""
        value = np.asarray(value, dtype=np.float64)
        inside = value >= self.lower if self.inclusive else value > self.lower
        return np.isfinite(value) & inside


def _check_type(name: str, value: Any) -> None:
    """``TypeError`` unless ``value`` is a real number (Python or numpy int/float, not bool)."""
    is_real = is_number(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        is_real = value.dtype.kind in "iuf"
    if not is_real:
        raise TypeError(f"{name} must be a real number (int or float), got {name}={value!r} "
                        f"({type(value).__name__}); a physical parameter is a number, and strings, booleans "
                        "and None are not converted to one")


def _check_array_type(name: str, value: Any) -> None:
    """``TypeError`` unless ``value`` is an int/float array or a sequence of real numbers."""
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers (int or float), got {name}={value!r} (dtype "
                            f"{value.dtype}); a physical parameter is a number, and strings and booleans are "
                            "not converted to one")
        return
    for index, item in enumerate(np.asarray(value, dtype=object).ravel()):
        _check_type(f"{name}[{index}]", item)


def check_parameter_value(parameter: Parameter, value: Any, num_envs: int | None = None) -> float | np.ndarray:
    """Validate one value of ``parameter``: a real number (``TypeError`` otherwise), finite and inside the
    parameter's range (``ValueError`` otherwise); for a vector env (``num_envs`` given) a scalar or an array of
    shape ``(num_envs,)``, one value per sub-environment."""
    name = parameter.name
    if num_envs is None or np.ndim(value) == 0:
        _check_type(name, value)
        scalar = float(value)
        if not parameter.admits(scalar):
            raise ValueError(f"{name} must be finite and {parameter.bound}, got {name}={value!r}")
        return scalar
    _check_array_type(name, value)
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (num_envs,):
        raise ValueError(f"{name} must be a scalar or have shape ({num_envs},), got shape {array.shape}")
    bad = ~parameter.admits(array)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite and {parameter.bound}, got {name}[{first}]={float(array[first])!r}")
    return array.copy()


def check_parameters(values: Mapping[str, Any], parameters: Mapping[str, Parameter], family: str,
                     num_envs: int | None = None) -> dict[str, Any]:
    """Validate a mapping of parameter values against a family's :class:`Parameter` records.

    Unknown names raise ``ValueError`` listing the valid ones; see :func:`check_parameter_value` for each value.
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"{family} parameters must be a mapping of name -> value, got {values!r}")
    unknown = sorted(set(values) - set(parameters))
    if unknown:
        raise ValueError(f"unknown {family} parameter(s) {unknown}; valid: {list(parameters)}")
    return {name: check_parameter_value(parameters[name], value, num_envs) for name, value in values.items()}


class ParametricEnv:
    """The parameter API, mixed into a Gymnasium environment (before it in the bases).

    A family sets :attr:`PARAMETERS` and :attr:`FAMILY` and implements :meth:`_apply_params`, which writes
    validated values into the simulator and recomputes whatever depends on them. The constructor of the family
    calls :meth:`set_params` with its keyword arguments once the base environment is built.
    """

    #: The family's parameters by name, nominal values equal to Gymnasium's.
    PARAMETERS: Mapping[str, Parameter] = {}
    #: The family's name in messages (e.g. ``"Acrobot"``).
    FAMILY: str = "environment"
    _parameter_num_envs: int | None = None

    @classmethod
    def nominal_params(cls) -> dict[str, float]:
        """The nominal value of every parameter (Gymnasium's)."""
        return {name: parameter.nominal for name, parameter in cls.PARAMETERS.items()}

    @classmethod
    def check_params(cls, values: Mapping[str, Any], num_envs: int | None = None) -> dict[str, Any]:
        """Validate ``values`` for this family (see :func:`check_parameters`) without changing any env."""
        return check_parameters(values, cls.PARAMETERS, cls.FAMILY, num_envs)

    def get_params(self) -> dict[str, Any]:
        """The current value of every parameter, by name (arrays copied)."""
        values = self.__dict__.get("_params", {})
        return {name: np.copy(value) if isinstance(value, np.ndarray) else value for name, value in values.items()}

    def set_params(self, **params: Any) -> None:
        """Set parameters: all are validated before any changes; the next ``step`` uses them."""
        checked = self.check_params(params, self._parameter_num_envs)
        current = self.__dict__.setdefault("_params", {})
        merged = {**current, **checked}
        self._apply_params(merged)
        current.update(checked)

    def _apply_params(self, params: dict[str, Any]) -> None:
        """Write every parameter of ``params`` (the full, validated set) into the simulator."""
        raise NotImplementedError(f"{type(self).__name__} must implement _apply_params")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Gymnasium's reset; ``options["params"]``, if given, is applied first with :meth:`set_params`."""
        if options and "params" in options:
            options = dict(options)
            self.set_params(**options.pop("params"))
            options = options or None
        return super().reset(seed=seed, options=options)  # type: ignore[misc]


def parameter_property(name: str, doc: str | None = None) -> property:
    """An attribute of a :class:`ParametricEnv` that is the instance's value of parameter ``name``: reading it gives
    the stored value, assigning it validates the value (a scalar, or per sub-environment in a vector env) and stores
    it, so an attribute Gymnasium's code reads (a class attribute there) becomes per instance and checked."""

    def getter(self: ParametricEnv) -> Any:
        return self.__dict__["_params"][name]

    def setter(self: ParametricEnv, value: Any) -> None:
        checked = check_parameter_value(self.PARAMETERS[name], value, self._parameter_num_envs)
        self.__dict__.setdefault("_params", {})[name] = checked

    return property(getter, setter, doc=doc or f"Parameter ``{name}`` of this instance (validated on assignment, "
                                               "reported by ``get_params()``).")
