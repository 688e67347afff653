"""Threads: how many cores a fit or a prediction uses, and how.

* **Training** splits each minibatch's rows across the cores (``_kernels.run_batches_parallel_``:
  each thread runs forward and backward on its rows with single-threaded BLAS, then the gradient
  sums are added). On 2 cores that trains 1.5-1.7x faster than one thread on the benchmark's
  deep and medium networks, where threads inside BLAS do not pay; on wide layers it is on par
  with two-thread BLAS. Batches with less work (DATA_PARALLEL_FLOPS) stay on one thread: there
  the per-batch fork and join and the other core's availability decide more than the split. It needs a thread-safe Numba threading layer (OpenMP
  or TBB): with only the 'workqueue' layer, and in a process forked from one that trained (GNU
  OpenMP is not fork-safe), training stays on one thread.
* **Prediction** runs one product per layer over large chunks of rows: there BLAS's own threads
  are used, for large products only.

``FASTFNN_NUM_THREADS=N`` caps both (``1``: a single thread everywhere). threadpoolctl's controller
is built once (that costs about 2.5 ms) and reused (about 10 us per change), so small fits and
``partial_fit`` loops do not pay for it each time.
"""

import os
import threading
from contextlib import contextmanager

import numpy as np

# Training flops per batch (6 * rows * sum(fan_in * fan_out)) from which the rows are split
# across threads. Measured on 2 vCPUs: from ~1 MFLOP a split batch is faster on average (small:
# 1.3x) but its speed varies by 2x from run to run with the other core's availability, while one
# thread is steady; from ~10 MFLOP (deep, medium, wide) the gain (1.5-1.7x) holds up.
DATA_PARALLEL_FLOPS = 1e7
# Parts such a batch is split into: each part's gradient sums are computed on their own and
# added in part order, so the bits do not depend on how many threads run the parts. Each part
# beyond the first holds a gradient-sized buffer, so more parts cost memory (n_params each).
PARTS = 2
# Per-product work (rows * largest fan_in * fan_out) from which BLAS's second thread pays off.
TWO_THREAD_WORK = 2**24

_controller = None
_lock = threading.Lock()
_forked = False  # set in a child process made by fork()


def _mark_forked():
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_mark_forked)


def _threadsafe_layer():
    """True when Numba can run parallel code with OpenMP or TBB (not only 'workqueue')."""
    from numba import config

    layer = config.THREADING_LAYER
    for pool, layers in (("tbbpool", ("default", "safe", "threadsafe", "tbb")),
                         ("omppool", ("default", "threadsafe", "omp"))):
        if layer in layers:
            try:
                __import__(f"numba.np.ufunc.{pool}")
                return True
            except ImportError:
                pass
    return False


def max_threads():
    """``FASTFNN_NUM_THREADS`` if set, else the cores this process may run on (affinity), at
    most Numba's thread count."""
    env = os.environ.get("FASTFNN_NUM_THREADS")
    if env:
        return max(1, int(env))
    from numba import get_num_threads

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, get_num_threads()))


def training_parts(sizes, batch_size):
    """Parts each minibatch's rows are split into, chosen from the problem alone (never from
    the thread count, so that the result is the same bits on any number of threads): PARTS for
    batches with enough work (each part keeping at least 8 rows), else 1."""
    sizes = np.asarray(sizes)
    flops = 6.0 * batch_size * float(np.sum(sizes[:-1] * sizes[1:]))
    if flops < DATA_PARALLEL_FLOPS:
        return 1
    return max(1, min(PARTS, batch_size // 8))


def training_threads(parts):
    """Threads that run a batch's parts: up to one per part, where Numba's threading layer
    is thread-safe and this process was not forked from one that trained; else 1."""
    if parts <= 1 or _forked or not _threadsafe_layer():
        return 1
    return max(1, min(max_threads(), parts))


@contextmanager
def numba_threads(n_threads):
    """Within the block, Numba's parallel loops of the calling thread use ``n_threads``
    threads (Numba's setting is per calling thread; restored after)."""
    if n_threads <= 1:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def blas_threads(sizes, rows):
    """BLAS threads for products of ``rows`` rows through layers ``sizes``, where the rows are
    not split across threads already (predict, full-batch L-BFGS, small training batches)."""
    sizes = np.asarray(sizes)
    work = rows * int(np.max(sizes[:-1] * sizes[1:]))
    return min(max_threads(), 2) if work >= TWO_THREAD_WORK else 1


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
def limit_blas(n_threads):
    """Within the block, BLAS libraries use at most ``n_threads`` threads."""
    with controller().limit(limits=n_threads, user_api="blas"):
        yield
