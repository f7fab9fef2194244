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
