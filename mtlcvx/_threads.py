"""One BLAS thread limit for the package's dense kernels.

Small LAPACK calls (d×d eigendecompositions, thin QR, batched block solves) slow down
10–100× when BLAS threads oversubscribe a loaded machine, and gain little from threads
on an idle one. Solves, certificates and data compression run under
``threadpoolctl`` with ``MTLCVX_BLAS_THREADS`` threads (default 1); set the variable
to a larger number on a dedicated machine with large shared designs.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["blas_threads", "blas_limited"]

F = TypeVar("F", bound=Callable[..., Any])
_controller: Any = None
_inside = threading.local()  # depth 1 inside a limited call of this thread


def blas_threads() -> int:
    """The BLAS thread count the package's kernels run with (``MTLCVX_BLAS_THREADS``, default 1)."""
    try:
        return max(1, int(os.environ.get("MTLCVX_BLAS_THREADS", "1")))
    except ValueError:
        return 1


def blas_limited(func: F) -> F:
    """Run ``func`` with the BLAS thread pool limited to :func:`blas_threads` (once: a
    call made inside another limited call runs as it is, under the outer limit)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _controller
        if getattr(_inside, "depth", 0):
            return func(*args, **kwargs)
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        with _controller.limit(limits=blas_threads(), user_api="blas"):
            _inside.depth = 1
            try:
                return func(*args, **kwargs)
            finally:
                _inside.depth = 0

    return wrapper  # type: ignore[return-value]
