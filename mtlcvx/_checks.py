"""Checks of the solver arguments every entry point shares (``tol``, ``max_iter``, …).

Each raises :class:`~mtlcvx.exceptions.ArgumentError` (an ``MTLError`` and a
``ValueError``) naming the argument and the fix, before any solver runs.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .exceptions import ArgumentError

__all__ = ["MAX_ITERATIONS", "check_count", "check_tol"]

#: Largest iteration count every solver accepts (their counters are 32-bit integers).
MAX_ITERATIONS = 2**31 - 1


def check_tol(tol: Any, name: str = "tol") -> float:
    """A finite positive real number (NumPy scalars accepted), returned as a float."""
    if type(tol) is not float and (isinstance(tol, (bool, np.bool_))
                                   or not isinstance(tol, numbers.Real)):
        raise ArgumentError(f"{name} must be a positive real number such as 1e-8 (the "
                            f"target certified relative gap), got {tol!r}")
    value = float(tol)
    if not (math.isfinite(value) and value > 0):
        raise ArgumentError(f"{name} must be a finite positive number such as 1e-8 (the "
                            f"target certified relative gap), got {tol!r}")
    return value


def check_count(value: Any, name: str, minimum: int = 1,
                maximum: int | None = MAX_ITERATIONS) -> int:
    """An integer in ``[minimum, maximum]`` (NumPy integers accepted, bools refused).

    ``maximum`` defaults to the solvers' 32-bit iteration range (``None``: no bound).
    """
    what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ArgumentError(f"{name} must be {what}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"{name} must be at most {maximum} (the solvers count "
                            f"iterations in 32-bit integers), got {value!r}")
    return int(value)
