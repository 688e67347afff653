"""Threads: how many cores a fit or a prediction uses, and how, without touching process state.

* **Training** splits each minibatch's rows into parts (``training_parts``: chosen from the
  problem alone) whose gradient sums are computed on their own and added in part order
  (``_kernels.run_batches_parallel_``), so the result is the same bits on one thread or several.
  The parts run on up to ``max_threads()`` threads; on 2 cores that trains 1.5-1.7x faster than
  one thread on the benchmark's deep and medium networks. Batches with little work
  (DATA_PARALLEL_FLOPS) stay one part on one thread: there the fork and join and the other
  core's availability decide more than the split. Parallel parts need a thread-safe Numba
  threading layer (OpenMP or TBB): with only 'workqueue', and in a process forked from one that
  trained (GNU OpenMP is not fork-safe), the parts run one after the other.
* **Prediction** and full-batch L-BFGS run one product per layer over large chunks of rows:
  there BLAS's own threads are used, for large products only.

The BLAS thread count is set inside the compiled calls (``_kernels.blas_threads_local``) and
restored when they end, and Numba's thread count with its per-thread setting. Known limit: in
the OpenBLAS builds checked, OpenBLAS's "thread-local" setter is process-wide, so another thread
calling BLAS during a fit or prediction sees fastfnn's count meanwhile (a sequential program
sees no change). Limits the host sets are respected: ``FASTFNN_NUM_THREADS``, the CPU
affinity, Numba's thread count (``NUMBA_NUM_THREADS``), ``OMP_NUM_THREADS``, the BLAS library's
thread count (threadpoolctl's ``threadpool_limits``, ``OPENBLAS_NUM_THREADS``) and, inside a
Dask worker, the worker's thread count.
"""

import os
import sys
from contextlib import contextmanager

import numpy as np

from . import _kernels as K

# Training flops per batch (6 * rows * sum(fan_in * fan_out)) from which the rows are split
# into parts. Measured on 2 vCPUs: from ~1 MFLOP a split batch is faster on average (small:
# 1.3x) but its speed varies by 2x from run to run with the other core's availability, while one
# thread is steady; from ~10 MFLOP (deep, medium, wide) the gain (1.5-1.7x) holds up.
DATA_PARALLEL_FLOPS = 1e7
# Parts such a batch is split into. Each part beyond the first holds a gradient-sized buffer, so
# more parts cost memory (n_params each); two keep a wide fit's memory at scikit-learn's. On
# more cores each part's products use BLAS threads (max_threads() // PARTS).
PARTS = 2
# Per-product work (rows * largest fan_in * fan_out) from which BLAS threads pay off.
MULTI_THREAD_WORK = 2**24

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


def _positive_int(name, text):
    """``int(text)`` for the environment variable ``name``; ValueError unless it is >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (a thread count), got {text!r}.")
    return value


def _dask_worker_threads():
    """The thread count of the Dask worker running this code, or None outside one."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except Exception:  # noqa: BLE001 - not in a worker (ValueError), or another version
        return None


def max_threads():
    """The threads fastfnn may use: ``FASTFNN_NUM_THREADS`` if set (a positive integer, else
    ValueError), else the least of the host's limits (module docstring)."""
    env = os.environ.get("FASTFNN_NUM_THREADS")
    if env is not None:
        return _positive_int("FASTFNN_NUM_THREADS", env)
    from numba import get_num_threads

    try:
        limits = [len(os.sched_getaffinity(0))]
    except AttributeError:  # not on Linux
        limits = [os.cpu_count() or 1]
    limits.append(get_num_threads())
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.strip().isdigit() and int(omp) > 0:
        limits.append(int(omp))
    if K.BLAS.get_threads is not None:
        limits.append(K.BLAS.get_threads())
    worker = _dask_worker_threads()
    if worker:
        limits.append(worker)
    return max(1, min(limits))


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
    """``(threads, blas_threads)``: threads that run a batch's parts (up to one per part, where
    Numba's threading layer is thread-safe and this process was not forked from one that
    trained), and BLAS threads inside each part (the rest of the budget)."""
    budget = max_threads()  # read (and checked) on every fit
    if parts <= 1:
        return 1, 1
    if _forked or not _threadsafe_layer():
        return 1, 1
    threads = max(1, min(budget, parts))
    return threads, max(1, budget // parts)


def blas_threads(sizes, rows):
    """BLAS threads for products of ``rows`` rows through layers ``sizes`` on the calling
    thread (predict, full-batch L-BFGS): all of ``max_threads()`` for large products, else 1."""
    budget = max_threads()
    sizes = np.asarray(sizes)
    work = rows * int(np.max(sizes[:-1] * sizes[1:]))
    return budget if work >= MULTI_THREAD_WORK else 1


@contextmanager
def numba_threads(n_threads):
    """Within the block, Numba's parallel loops started by the calling thread use
    ``n_threads`` threads (Numba's setting is per calling thread; restored after)."""
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
