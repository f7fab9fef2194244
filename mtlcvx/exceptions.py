"""Errors and warnings raised by mtlcvx.

Every error derives from :class:`MTLError`, and also from the built-in exception a
caller would expect (``ValueError`` for bad input, ``ImportError`` for a missing
backend, ``RuntimeError`` for a failed solve), so both ``except MTLError`` and
``except ValueError`` work. Messages name the offending argument and the fix.
"""

from __future__ import annotations

__all__ = [
    "MTLError",
    "DataError",
    "PenaltyError",
    "ArgumentError",
    "BackendUnavailable",
    "IncompatibleBackend",
    "SolverFailed",
    "SpecError",
    "ResultFileError",
    "ConvergenceWarning",
]


class MTLError(Exception):
    """Base class of every error mtlcvx raises."""


class DataError(MTLError, ValueError):
    """Invalid task data: shapes, NaN/inf, empty tasks, mismatched feature counts."""


class PenaltyError(MTLError, ValueError):
    """Invalid penalty: negative strength, non-symmetric or non-PSD matrix, non-convex term."""


class ArgumentError(MTLError, ValueError):
    """An invalid solver argument: ``tol``, ``max_iter``, ``check_every``, solver options."""


class BackendUnavailable(MTLError, ImportError):
    """The requested backend is not installed; the message names the pip extra."""


class IncompatibleBackend(MTLError, ValueError):
    """The backend cannot solve the problem: a cone or a structure it lacks."""


class SolverFailed(MTLError, RuntimeError):
    """The backend returned no solution (infeasible, unbounded or solver error)."""


class SpecError(MTLError, ValueError):
    """Invalid problem specification file (``mtlcvx solve``): the message names the key."""


class ResultFileError(MTLError, ValueError):
    """A saved result (:func:`mtlcvx.load`) that cannot be read: missing, not a ``.npz``
    archive, truncated, altered, or of another schema version; the message names the file."""


class ConvergenceWarning(UserWarning):
    """A solution came back but is not certified to the requested tolerance."""
