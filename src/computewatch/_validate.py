"""Input validation shared by every layer (private).

Public functions validate their inputs here, so a bad value gives a
`ParameterError` naming the parameter, never a NaN, an infinity, a numpy
warning or a traceback. The checks take `object` because they run on values
that come from users, files and the network, whatever their annotations say.
"""

from __future__ import annotations

import enum
import math
import numbers
from typing import TypeVar

from computewatch.errors import ParameterError


def positive(name: str, value: object) -> float:
    """Return `value` as a float if it is finite and > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name}: expected a positive number, got {value!r}"
        raise ParameterError(msg)
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        msg = f"{name}: expected a finite number > 0, got {value!r}"
        raise ParameterError(msg)
    return out


def non_negative(name: str, value: object) -> float:
    """Return `value` as a float if it is finite and >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name}: expected a number >= 0, got {value!r}"
        raise ParameterError(msg)
    out = float(value)
    if not math.isfinite(out) or out < 0:
        msg = f"{name}: expected a finite number >= 0, got {value!r}"
        raise ParameterError(msg)
    return out


def probability(name: str, value: object) -> float:
    """Return `value` if it lies strictly between 0 and 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name}: expected a probability in (0, 1), got {value!r}"
        raise ParameterError(msg)
    out = float(value)
    if not (0.0 < out < 1.0):
        msg = f"{name}: expected a probability strictly between 0 and 1, got {value!r}"
        raise ParameterError(msg)
    return out


def positive_int(name: str, value: object) -> int:
    """Return `value` if it is an integer >= 1, else raise."""
    if isinstance(value, bool):
        msg = f"{name}: expected a whole number >= 1, got {value!r}"
        raise ParameterError(msg)
    if not isinstance(value, numbers.Integral):
        if (
            isinstance(value, numbers.Real)
            and math.isfinite(float(value))
            and float(value).is_integer()
            and float(value) >= 1
        ):
            return int(float(value))
        msg = f"{name}: expected a whole number >= 1, got {value!r}"
        raise ParameterError(msg)
    if int(value) < 1:
        msg = f"{name}: expected a whole number >= 1, got {value!r}"
        raise ParameterError(msg)
    return int(value)


def ceil_count(x: float) -> int:
    """Round a count up, ignoring floating-point dust just above an integer.

    `365 * s / T_m` is often an integer up to rounding error (for example
    60.000000000001); the paper's counts are the mathematical ceiling.
    """
    nearest = round(x)
    if math.isclose(x, nearest, rel_tol=1e-13, abs_tol=1e-12):
        return int(nearest)
    return math.ceil(x)


E = TypeVar("E", bound=enum.Enum)


def choice(name: str, value: object, kind: type[E]) -> E:
    """Return `value` if it is a member of the enum `kind`, else raise."""
    if not isinstance(value, kind):
        msg = f"{name}: expected one of {[m.value for m in kind]}, got {value!r}"
        raise ParameterError(msg)
    return value


def int_in_range(name: str, value: object, low: int, high: int) -> int:
    """Return `value` if it is an integer (not a bool) in `low..high`, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        msg = f"{name}: expected an integer in {low}..{high}, got {value!r}"
        raise ParameterError(msg)
    return value


def text(name: str, value: object, *, max_len: int, identifier: bool = False) -> str:
    """Return `value` if it is 1..max_len printable characters, else raise.

    With `identifier`, it must also be a Python identifier (letters, digits
    and underscores).
    """
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= max_len
        or not value.isprintable()
        or (identifier and not value.isidentifier())
    ):
        kind = "an identifier" if identifier else "printable text"
        msg = f"{name}: expected {kind} of 1-{max_len} characters, got {value!r:.80}"
        raise ParameterError(msg)
    return value
