"""Backends: a registry of interchangeable solvers (docs/backends.md)."""

from . import conic, direct, fista  # noqa: F401  (registers the backends, in preference order)
from .dispatch import solve
from .registry import (
    BACKENDS,
    Backend,
    BackendInfo,
    available_backends,
    certified_status,
    default_backend,
    register,
    resolve_backend,
)

__all__ = ["BACKENDS", "Backend", "BackendInfo", "available_backends", "certified_status",
           "default_backend", "register", "resolve_backend", "solve"]
