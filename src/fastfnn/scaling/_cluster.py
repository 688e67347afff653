"""Where the work runs: a Dask client for a local cluster, an address, or a client passed in."""

import logging
import os
from contextlib import contextmanager

from distributed import Client, LocalCluster

# Thread-count variables a worker's libraries read: fastfnn itself, Numba, OpenMP and the BLAS.
_THREAD_VARIABLES = ("FASTFNN_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(threads_per_worker):
    """Environment variables that give each worker process ``threads_per_worker`` threads.

    Parameters
    ----------
    threads_per_worker : int
        Threads of one worker process (a fit or a prediction uses at most that many cores).

    Returns
    -------
    dict of str to str
    """
    return {name: str(threads_per_worker) for name in _THREAD_VARIABLES}


def _check_counts(n_workers, threads_per_worker):
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@contextmanager
def _spawn_environ_restored():
    """Yields ``restore()``, which (as the block's end does) puts back this process's values
    of the variables a LocalCluster's nannies set in it before they start their workers
    (dask's ``distributed.nanny.pre-spawn-environ``: ``OMP_NUM_THREADS=1``...), which would
    otherwise limit this process's own fits to one thread from then on."""
    import dask

    names = set(_THREAD_VARIABLES) | set(dask.config.get("distributed.nanny.pre-spawn-environ",
                                                         {}))
    before = {name: os.environ.get(name) for name in names}

    def restore():
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    try:
        yield restore
    finally:
        restore()


@contextmanager
def cluster_client(scheduler="local", *, n_workers=2, threads_per_worker=1):
    """A ``distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : "local", str or distributed.Client, default="local"
        ``"local"`` (or None) starts a ``LocalCluster`` of ``n_workers`` worker processes with
        ``threads_per_worker`` threads each, whose thread-count variables
        (``FASTFNN_NUM_THREADS``, ``OMP_NUM_THREADS``, ...) say the same, and closes it at the
        end. Another string is a scheduler's address (``"tcp://host:8786"``): a client is
        connected and closed at the end, the cluster is left running; start its workers with
        ``dask worker ADDRESS --nthreads 1`` and ``FASTFNN_NUM_THREADS=1`` for one core per
        fit. A ``Client`` is used as it is and left open.
    n_workers, threads_per_worker : int, default=2, 1
        Size of a local cluster (ignored otherwise).

    Yields
    ------
    distributed.Client
    """
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is None or scheduler == "local":
        _check_counts(n_workers, threads_per_worker)
        with _spawn_environ_restored() as restore, LocalCluster(
                n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                dashboard_address=":0", silence_logs=logging.ERROR,
                env=worker_env(threads_per_worker)) as cluster, \
                Client(cluster, set_as_default=False) as client:
            restore()  # the workers have started, with their own variables (worker_env)
            yield client
        return
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be 'local', a scheduler address or a "
                        f"distributed.Client, got {type(scheduler).__name__}.")
    with Client(scheduler, set_as_default=False) as client:
        yield client
