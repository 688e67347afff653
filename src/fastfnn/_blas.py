"""The thread count of the BLAS behind the compiled kernels.

Numba's ``np.dot`` calls SciPy's OpenBLAS (through ``scipy.linalg.cython_blas``). A second BLAS
thread pays only on large products and collapses when the other core is busy, so the trainer picks
a count per problem (``limit_threads``), overridable with ``FASTFNN_NUM_THREADS``. threadpoolctl's
controller is built once (that costs about 2.5 ms) and reused (about 10 us per change), so small
fits and ``partial_fit`` loops do not pay for it each time.
"""

import threading
from contextlib import contextmanager

_controller = None
_lock = threading.Lock()


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
