"""Threads: how many cores a fit or a prediction uses, and how, without touching process state.

Every matrix product runs on fastfnn's private single-threaded BLAS (``_blas``); the cores are
used by splitting the work into parts of fixed size, run under Numba's ``prange``:

* **Training** splits each minibatch's rows into parts (``_parts.training_parts``: from the
  problem and a measurement of this machine, never from the thread count) whose gradient sums
  are computed on their own and added in part order (``_kernels.run_batches_parallel_``), so
  the result is the same bits on one thread or several; ``part_threads`` runs them on up to
  one thread each.
* **Prediction** runs chunks of rows (a fixed size) on up to one thread each where a chunk holds
  enough work (``_parts.prediction_threads``, measured on the machine); a row's result does not
  depend on its chunk.

Parallel parts need a thread-safe Numba threading layer (OpenMP or TBB): with only
'workqueue', and in a process forked from one that trained (GNU OpenMP is not fork-safe), the
parts run one after the other. Numba's thread count is set with its per-thread setting and
restored. No process-wide thread count is ever changed. Limits the host sets are respected:
``FASTFNN_NUM_THREADS``, the CPU affinity, Numba's thread count (``NUMBA_NUM_THREADS``),
``OMP_NUM_THREADS``, the host's BLAS libraries' thread counts (threadpoolctl's
``threadpool_limits``, ``OPENBLAS_NUM_THREADS``) and, inside a Dask worker, the worker's
thread count; only the one-time timing of the training split runs on two threads where such a
limit allows one, within the CPU affinity (``_parts``: the split decides the bits, so every
process on a machine must split alike).
"""

import functools
import importlib
import os
import sys
from contextlib import contextmanager

from . import _blas, _env
from . import _kernels as K
from . import _tuning

_forked = False  # set in a child process made by fork()


def _mark_forked():
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_mark_forked)


def _threadsafe_layer():
    """True when Numba can run parallel code with OpenMP or TBB (not only 'workqueue')."""
    from numba import config

    layer = config.THREADING_LAYER
    return any(layer in layers and _importable(f"numba.np.ufunc.{pool}")
               for pool, layers in (("tbbpool", ("default", "safe", "threadsafe", "tbb")),
                                    ("omppool", ("default", "threadsafe", "omp"))))


@functools.cache
def _importable(module):
    """Whether ``module`` imports, tried once per process: a pool whose library is missing
    fails the same way every time, and each failed try loads its extension afresh (some
    150 us, on every fit and prediction that asks for threads)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


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
    ValueError), else the least of the host's limits (module docstring). Read at every fit and
    prediction."""
    env = _env.positive_int("FASTFNN_NUM_THREADS", "a thread count")
    if env is not None:
        return env
    from numba import get_num_threads

    limits = [_env.usable_cpus(), get_num_threads()]
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.strip().isdigit() and int(omp) > 0:
        limits.append(int(omp))
    host_blas = _blas.BLAS.host_threads()
    if host_blas is not None:
        limits.append(host_blas)
    worker = _dask_worker_threads()
    if worker:
        limits.append(worker)
    return max(1, min(limits))


def _can_run_parallel():
    """True where Numba's parallel loops may run here (module docstring)."""
    return not _forked and _threadsafe_layer()


def part_threads(parts):
    """Threads that run ``parts`` parts that need not wait for each other (a batch's, or a
    prediction's chunks): up to one per part, within ``max_threads()``, where Numba's
    threading layer is thread-safe and this process was not forked from one that trained."""
    budget = max_threads()  # read (and checked) on every call
    if parts <= 1 or not _can_run_parallel():
        return 1
    return max(1, min(budget, parts))


@contextmanager
def numba_threads(n_threads, exact=False):
    """Within the block, Numba's parallel loops started by the calling thread use
    ``n_threads`` threads (Numba's setting is per calling thread; restored after). One thread
    is left to the serial kernels, which start none, unless ``exact``."""
    if n_threads <= 1 and not exact:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def describe_choices():
    """What fastfnn chose on this machine, and why, one line each (``fastfnn bench`` prints
    them): the BLAS and its CPU kernels, the product paths and the threads (the lines of the
    training split and of prediction's threads are ``_parts.describe()``'s)."""
    from numba import config

    return [
        _blas.BLAS.describe(),
        f"product paths: a plain loop where a dimension is <= {K.THIN} (matrix-vector: "
        "one-output layers, where a gemm call costs 2-6x the loop), else the tile kernel or "
        "gemm, by the rule for this CPU's vector width (prediction: the tile kernel):",
        *(f"  {line}" for line in _tuning.describe()),
        f"threads: up to {max_threads()} (affinity, Numba, OMP, BLAS and Dask limits, "
        f"FASTFNN_NUM_THREADS); Numba threading layer {config.THREADING_LAYER!r}, parallel "
        f"parts {'possible' if _can_run_parallel() else 'not possible'} here",
    ]
