"""Many stochastic fits trained together: each epoch of every fit of a group in one compiled
call, the models spread over threads.

A search or an ensemble trains dozens of small networks. Run one after another, each pays its
own Python epoch loop, and a 2-core machine runs one small network's batch on one core. Here
each fit is a ``trainer.StochasticFit``; per epoch, every fit does its Python part
(``begin_epoch``: shuffle, schedule, masks; ``end_epoch``: validation, stopping rules; a fit
whose part raises ends alone) and the compiled part of all of them runs as one
``_kernels.run_models_`` call per group of fits whose compiled groups have the same types
(update rule, dtype, dense or CSR input...), the models under ``prange``. Each model is
computed alone, exactly as its own fit would compute it: the same bits as a solo fit, on any
number of threads. A fit that stops leaves the others going. A search with
``FASTFNN_LANES=on`` asks for lanes too (``train_together(lanes=True)``): its fits that share
their minibatches train first as lanes of one call (``_lanes``), their solo fits to rounding.
"""

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels as K
from ._lanes import lane_sets
from ._threads import numba_threads, part_threads


def model_threads(n_jobs, n_models):
    """Threads over models for ``n_jobs`` (scikit-learn's meaning, as threads: None is 1, -1
    all that fastfnn may use, k at most k), never more than the models, within the host's
    limits (``FASTFNN_NUM_THREADS``, affinity, a Dask worker's threads...)."""
    allowed = part_threads(n_models)
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, allowed + 1 + n_jobs)
    return max(1, min(int(n_jobs), allowed))


_SCALARS = {bool: np.bool_, float: np.float64}  # Python scalars as Numba types them


def type_key(value):
    """A key that is equal for two values only where Numba gives them one type: an array's
    dtype, dimensions, layout, writability and alignment; a tuple's class and its items' keys;
    a scalar's NumPy class (a Python int's by whether it fits int64). Numba's own ``typeof``
    of a fit's groups builds its type objects in Python: 0.3 ms a fit, 17 us this way."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        layout = "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"
        return value.dtype.str, value.ndim, layout, flags.writeable, flags.aligned
    if isinstance(value, tuple):
        return (type(value), *map(type_key, value))
    if type(value) is int:
        return np.int64 if -2**63 <= value < 2**63 else np.uint64
    return _SCALARS.get(type(value), type(value))


def _same(group, other):
    """Whether two compiled groups (NamedTuples) hold the same arrays and equal scalars: the
    compiled loop would see no difference."""
    return all(a is b or (not isinstance(a, np.ndarray) and type(a) is type(b) and a == b)
               for a, b in zip(group, other))


def _typed_list(items):
    """A Numba typed list of ``items`` (one Numba type), made in cached compiled code."""
    typed = K.list_of_(items[0])
    for item in items[1:]:
        K.append_(typed, item)
    return typed


class _Group:
    """Fits whose compiled groups have one Numba type: their groups (params, rules,
    workspaces, data, models) in typed lists, made once; a fit's rule or model is replaced
    where an epoch changes it (a schedule's rate, dropout's key), not rebuilt every epoch (a
    typed list's items are typed one by one: tens of microseconds a model); where neither the
    rule nor the masks changed, the groups the network checked are not made again."""

    def __init__(self, fits, first_groups):
        self.fits = fits
        self.params, self.rules, self.works, self.datas, self.models = (
            _typed_list(g) for g in zip(*first_groups))
        self.batch_sizes = np.array([fit.batch_size for fit in fits], dtype=np.int64)
        self.sums = np.zeros((len(fits), 2))
        self.last = list(first_groups)
        self.masks = [fit.masks for fit in fits]  # the dropout masks each last groups hold

    def run_epoch(self, begun):
        """One epoch of the fits at positions ``begun`` (they began it): their compiled
        batches in one call, then each one's ``end_epoch``."""
        for k in begun:
            fit = self.fits[k]
            fit.loop.begin()
            rule = fit.optimizer.rule()
            if fit.masks is self.masks[k] and _same(rule, self.last[k][1]):
                continue  # the groups the network checked last epoch, unchanged
            groups = fit.loop.groups(rule, fit.masks)
            if not _same(groups[1], self.last[k][1]):
                K.set_item_(self.rules, k, groups[1])
            if not _same(groups[4], self.last[k][4]):
                K.set_item_(self.models, k, groups[4])
            self.last[k], self.masks[k] = groups, fit.masks
        K.run_models_(self.params, self.rules, self.works, self.datas, self.models,
                      np.asarray(begun, dtype=np.int64), self.batch_sizes, self.sums)
        for k in begun:
            fit = self.fits[k]
            fit.alone(fit.close_epoch, self.sums[k])


def train_together(fits, n_jobs=None, lanes=False):
    """Run every ``trainer.StochasticFit`` of ``fits`` until it is over (each then
    ``finish``-ed), the epochs of fits of one type in one compiled call, the models on
    :func:`model_threads` threads. With ``lanes``, fits that share their minibatches train
    first as lane sets (:mod:`fastfnn._lanes`: their values to rounding, not their bits), a
    set per task on those threads, each task running its fits' Python epochs too (so one
    thread's Python overlaps the others' compiled work). A KeyboardInterrupt ends every fit
    after its last whole epoch ("Training interrupted by user.", as a solo fit); during the
    lane sets, the fits not laned have none yet. A fit whose epoch raises (a scorer that
    fails, a warning turned into an error) ends there, its exception in its ``error``; the
    others go on."""
    threads = model_threads(n_jobs, len(fits))
    sets, rest = lane_sets(fits) if lanes else ([], range(len(fits)))
    try:
        if sets:
            _train_lane_sets(sets, threads)
        _train_groups([fits[k] for k in rest], threads)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    for fit in fits:
        if fit.error is None:
            fit.alone(fit.finish)


def _train_lane_sets(sets, threads):
    """``LaneSet.train`` of every set, on ``threads`` threads; on a KeyboardInterrupt (or an
    error in a set) every set stops after its epoch in hand, and the exception is raised
    again."""
    stop = threading.Event()
    with ThreadPoolExecutor(threads) as pool:
        done = [pool.submit(lanes.train, stop) for lanes in sets]
        try:
            for future in done:
                future.result()
        except BaseException:
            stop.set()
            raise


def _train_groups(fits, threads):
    """Train ``fits`` until each is over, the epochs of fits of one type in one
    ``run_models_`` call, the models on ``threads`` threads."""
    begun = [fit.alone(fit.begin_epoch) for fit in fits]
    by_type = {}
    for fit, started in zip(fits, begun):
        groups = fit.loop.groups(fit.optimizer.rule(), fit.masks)
        by_type.setdefault(type_key(groups), []).append((fit, groups, started))
    batches = []
    for members in by_type.values():
        group = _Group([m[0] for m in members], [m[1] for m in members])
        batches.append((group, [k for k, m in enumerate(members) if m[2]]))
    with numba_threads(threads, exact=True):
        while any(started for _, started in batches):
            for group, started in batches:
                if started:
                    group.run_epoch(started)
            batches = [(group, [k for k, fit in enumerate(group.fits)
                                if fit.alone(fit.begin_epoch)])
                       for group, _ in batches]
