"""Lazy imports of optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, caller: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{caller} needs {module.split('.')[0]}: pip install 'mtlcvx[{extra}]'"
        ) from err


class _LazyModule:
    """A module imported on first attribute access (``cp.Variable`` imports cvxpy then).

    ``import mtlcvx`` and the NumPy backends (direct, fista) never touch CVXPY, whose
    import costs about 0.6 s and 85 MB (SciPy modules it loads included); it is loaded
    the first time a conic backend compiles a problem or a CVXPY expression is built.
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> object:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


#: CVXPY, imported on first use.
cp = _LazyModule("cvxpy")
