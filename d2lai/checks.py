"""Argument checks in one place: each says which argument is wrong, what it must be, what came.

Checks run once, where a value enters (a constructor, a data module, fit start), so that the
code of the book below them reads as the book does. Integers accept any integral type
(`numpy.int64` too), never `bool`; flags accept only `True` and `False`.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["positive_int", "count", "flag", "number", "one_of", "Check"]


def _integral(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value, allow_none: bool = False) -> int | None:
    """`value` as an int if it is an integer > 0 (or None when `allow_none`)."""
    if value is None and allow_none:
        return None
    if not _integral(value):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def count(name: str, value, low: int = 0) -> int:
    """`value` as an int if it is an integer >= `low` (a ValueError otherwise)."""
    if not _integral(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def flag(name: str, value) -> bool:
    """`value` if it is True or False: a string such as "False" would read as true."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def number(name: str, value, low: float = -math.inf, high: float = math.inf, *,
           open_low: bool = False, open_high: bool = False, allow_none: bool = False):
    """`value` as a float if it is a real number in the interval (NaN never is)."""
    if value is None and allow_none:
        return None
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and (low < value if open_low else low <= value)
          and (value < high if open_high else value <= high))  # NaN fails every comparison
    if not ok:
        span = (f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
                if (low, high) != (-math.inf, math.inf) else "")
        what = f"a number in {span}" if span else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if (low, high) == (-math.inf, math.inf) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def one_of(name: str, value, choices) -> object:
    """`value` if it is one of `choices`."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class Check:
    """A table of argument checks, run in one call: `Check(name=(positive_int,), ...)(args)`.

    Each entry is the check function and its extra arguments; `__call__` runs each on the value
    of that name in `args` and returns the checked values.
    """

    def __init__(self, **table):
        self.table = table

    def __call__(self, args: dict, owner: str = "") -> dict:
        prefix = f"{owner}: " if owner else ""
        checked = {}
        for name, (fn, *extra) in self.table.items():
            try:
                checked[name] = fn(name, args[name], *extra)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{prefix}{err}") from None
        return checked
