"""The search's one BLAS policy: a limit on every loaded BLAS library, restored afterwards."""

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from nas.search.spline import PolyharmonicSpline
from nas.search.threads import SEARCH_BLAS_THREADS, in_search_threads, search_threads


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_every_blas_library_runs_the_search_threads_and_gets_its_own_back() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_blas_threads()) == {2}
        with search_threads():
            assert set(_blas_threads()) == {SEARCH_BLAS_THREADS}
            with search_threads():  # nested: the limit holds, the outer exit restores
                assert set(_blas_threads()) == {SEARCH_BLAS_THREADS}
            assert set(_blas_threads()) == {SEARCH_BLAS_THREADS}
        assert set(_blas_threads()) == {2}


def test_a_fit_and_its_evaluation_run_under_the_limit() -> None:
    seen = []

    @in_search_threads
    def fit_and_record() -> float:
        x = np.random.default_rng(0).random((30, 3))
        spline = PolyharmonicSpline(x, x.sum(axis=1))
        seen.extend(_blas_threads())
        return float(spline(x[:2]).sum())

    with threadpool_limits(limits=2, user_api="blas"):
        fit_and_record()
        assert set(_blas_threads()) == {2}
    assert set(seen) == {SEARCH_BLAS_THREADS}
