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
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["blas_threads", "blas_limited"]

F = TypeVar("F", bound=Callable[..., Any])
#: threadpoolctl's controllers of the loaded BLAS libraries, and whether SciPy's (which
#: ships its own OpenBLAS, loaded with ``scipy.linalg``) was among them
_blas: tuple[bool, list] | None = None
#: per thread: ``depth`` 1 inside a limited call, and ``changed``, the libraries that
#: call set (with their counts before)
_inside = threading.local()


def blas_threads() -> int:
    """The BLAS thread count the package's kernels run with (``MTLCVX_BLAS_THREADS``, default 1)."""
    try:
        return max(1, int(os.environ.get("MTLCVX_BLAS_THREADS", "1")))
    except ValueError:
        return 1


def _libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries, found again (a 1–2 ms
    scan) only when ``scipy.linalg`` has been loaded since."""
    global _blas
    scipy_loaded = "scipy.linalg" in sys.modules
    if _blas is None or _blas[0] != scipy_loaded:
        from threadpoolctl import ThreadpoolController

        _blas = (scipy_loaded, ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas[1]


def _limit(changed: list) -> None:
    """Set every loaded BLAS library not already at :func:`blas_threads` to it, recording
    ``(library, count before)`` in ``changed`` for the outermost call to set back."""
    n = blas_threads()
    for lib in _libraries():
        if lib.num_threads != n:
            changed.append((lib, lib.num_threads))
            lib.set_num_threads(n)


def blas_limited(func: F) -> F:
    """Run ``func`` with the BLAS thread pool limited to :func:`blas_threads` (once: a
    call made inside another limited call runs under the outer limit).

    Only libraries not already at that count are set, and set back afterwards (a
    ``threadpoolctl`` limit context costs about 15 µs, a millisecond solve's 1 %). SciPy's
    own OpenBLAS loads with ``scipy.linalg``, often inside a limited call: the next
    limited call made inside it limits that library too (the outermost call sets it
    back), and one made after it finds it at once.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "depth", 0):
            if _blas is not None and _blas[0] != ("scipy.linalg" in sys.modules):
                _limit(_inside.changed)  # loaded since the outer call began
            return func(*args, **kwargs)
        changed: list = []
        _limit(changed)
        _inside.depth, _inside.changed = 1, changed
        try:
            return func(*args, **kwargs)
        finally:
            _inside.depth = 0
            for lib, before in changed:
                lib.set_num_threads(before)
            _libraries()  # a call that loaded scipy.linalg scans now, not the next call

    return wrapper  # type: ignore[return-value]
