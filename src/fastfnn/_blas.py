"""The thread count of the BLAS behind the compiled kernels.

Numba's ``np.dot`` calls SciPy's OpenBLAS (through ``scipy.linalg.cython_blas``). A second BLAS
thread pays only on large products and collapses when the other core is busy, so the trainer picks
a count per problem (``limit_threads``), overridable with ``FASTFNN_NUM_THREADS``. threadpoolctl's
controller is built once (that costs about 2.5 ms) and reused (about 10 us per change), so small
fits and ``partial_fit`` loops do not pay for it each time.
"""

import os
import threading
from contextlib import contextmanager

import numpy as np

# Per-product work (rows * largest fan_in*fan_out) from which a second BLAS thread pays off when
# training (three products per layer and batch); predict, with one product per layer, needs more.
TWO_THREAD_WORK = 2**24

_controller = None
_lock = threading.Lock()


def threads_for(sizes, rows, passes=3):
    """BLAS threads for products of ``rows`` rows through layers ``sizes``.

    ``FASTFNN_NUM_THREADS`` if set; else 2 (where there are 2 cores) only when each batch's
    largest product is big enough: on narrow layers a second thread costs time.
    """
    env = os.environ.get("FASTFNN_NUM_THREADS")
    if env:
        return max(1, int(env))
    sizes = np.asarray(sizes)
    work = passes * rows * int(np.max(sizes[:-1] * sizes[1:])) / 3
    return min(os.cpu_count() or 1, 2) if work >= TWO_THREAD_WORK else 1


def controller():
    """The process's threadpoolctl controller, built on first use."""
    global _controller
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS numba calls first)

            _controller = ThreadpoolController()
    return _controller


@contextmanager
def limit_threads(n_threads):
    """Within the block, BLAS libraries use at most ``n_threads`` threads."""
    with controller().limit(limits=n_threads, user_api="blas"):
        yield
