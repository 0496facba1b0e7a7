"""One BLAS thread policy for the search.

numpy and scipy each load their own OpenBLAS, each with a pool of one thread
per core. A fit alternates between them (scipy's LAPACK for the
factorization, numpy's for the products), and an idle OpenBLAS pool spins
before it sleeps: two pools spinning against each other, and against other
users of a shared login node, made a fit several times slower than with
one thread. Every entry point of the
search therefore runs its BLAS calls under one limit, set on every loaded
BLAS library together (threadpoolctl) and restored afterwards, so nothing
outside the search (a trainer in the same process) is affected. Nested
entries cost a counter, not a library call.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from threadpoolctl import ThreadpoolController

#: BLAS threads of the search. Measured (benchmarks/results/spline_speed.md) on
#: fit + leave-one-out at N = 1,000 and 2,500 on a shared 2-core machine: the CPU
#: time is the same with 1, 2 or the default thread count; under a background
#: load one thread has the shortest wall time (3.6 s against 3.7-3.8 s at
#: N = 2,500); only with a core to spare do two threads finish sooner (1.0 s
#: against 1.9 s at N = 2,500). A controller shares a login node, so one.
SEARCH_BLAS_THREADS = 1

_lock = threading.Lock()
_depth = 0
_limiter: Any = None

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _blas_libraries() -> Any:
    """Every BLAS library loaded once the search's numpy and scipy.linalg are."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    return ThreadpoolController().select(user_api="blas")


@contextmanager
def search_threads() -> Iterator[None]:
    """Run the enclosed block with ``SEARCH_BLAS_THREADS`` threads in every BLAS library."""
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _blas_libraries().limit(limits=SEARCH_BLAS_THREADS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


def in_search_threads(func: F) -> F:
    """Decorator: ``func`` runs under :func:`search_threads`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _depth:  # already inside: the limit holds
            return func(*args, **kwargs)
        with search_threads():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
