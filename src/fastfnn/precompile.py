"""Compile fastfnn's kernels ahead of the first fit, into Numba's on-disk cache.

Numba compiles each kernel the first time a fit uses it (about 13 s for the first float64 fit on
a 2-core machine) and caches the machine code on disk, next to the source (``__pycache__``), or
where ``NUMBA_CACHE_DIR`` says. :func:`precompile` runs small fits and predictions through the
public estimators, so every kernel a common fit takes is compiled and cached before anyone
waits for it:

* float64 (NumPy's default) and, on request, float32;
* solvers 'adam', 'sgd' and 'lbfgs', regressor and classifier;
* the training loop with a batch's rows on one thread and split into parts on several (where
  the machine has them), the full-batch gradient, the validation loss of early stopping,
  prediction of many rows and of a few;
* many networks trained together: a search's candidates (``FNNGridSearchCV``) and an
  ensemble's members (``FNNEnsembleRegressor``) as models of one call (the lanes of
  ``FASTFNN_LANES=on`` compile at their first search);
* the small-product tile kernel, and the timings the first fit on a machine runs and keeps in
  fastfnn's cache folder (so the later first fit reads them): from which batch size a split
  batch's parts run on two threads, and from which chunk size a prediction's chunks run on
  threads of their own (``_parts``). Timed on a busy build machine, they are deferred, not
  measured; timed quietly, they await a confirmation at another moment. Either way the safe
  defaults are shipped with their evidence (and a quiet build's gains), and the first fit after
  the install takes them and measures nothing (a later one, from a retry time counted from that
  first use, measures where the machine is quiet, a quiet build's gains counting with its
  own).

Installing fastfnn from source (``pip install .``) runs it at build time, so the wheel carries
the cache for the machine that built it; Numba loads it only on a machine whose CPU, Numba
version and source file match, and compiles as usual otherwise. ``fastfnn precompile`` runs it
by hand: after an editable install, in a container image, or for float32.
"""

import time
import warnings

import numpy as np

from fastfnn import (FNNClassifier, FNNEnsembleRegressor, FNNGridSearchCV, FNNRegressor,
                     _compile_ahead)

# Small networks train on one thread; the wide one has enough work per batch to be split into
# parts on several threads where the machine measured that to pay (its fit runs the measurement;
# and predicts many rows on several). Predict's direct path (plain arrays) is compiled per
# depth: one, two and three hidden layers are prepared.
_SMALL = dict(batch_size=16, max_iter=2, random_state=0)
_WIDE = (256, 256)  # its fits and predictions time the machine (``_parts``)
_SPLIT = dict(hidden_layer_sizes=_WIDE, batch_size=200, max_iter=1, random_state=0)
_ROWS = 400  # rows each fit trains on
_PREDICT_ROWS = 2100  # rows the wide networks predict: more than one chunk


def _cases(dtype, features=10, seed=0):
    """(estimator, X, y) triples for :func:`precompile`: every solver, both estimators, one
    to three hidden layers, small networks and a wide one. Fits use the first ``_ROWS`` rows
    of X; the wide networks predict all of them, the others one row."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((_PREDICT_ROWS, features)).astype(dtype)
    y = X[:, 0] - 2.0 * X[:, 1]
    labels = (y > 0).astype(int) + (y > 1)
    cases = [
        (FNNRegressor(solver="adam", hidden_layer_sizes=(8, 8), early_stopping=True, **_SMALL),
         X, y),
        (FNNRegressor(solver="sgd", hidden_layer_sizes=(8,), **_SMALL), X, y),
        (FNNRegressor(solver="lbfgs", hidden_layer_sizes=(8, 8), max_iter=2, random_state=0),
         X, y),
        (FNNClassifier(hidden_layer_sizes=(8, 8, 8), **_SMALL), X, labels),
        # a search's candidates on a fold, trained together
        (FNNGridSearchCV(FNNRegressor(hidden_layer_sizes=(8,), **_SMALL),
                         {"alpha": [1e-4, 1e-3, 1e-2, 0.1, 1.0]}, cv=2), X, y),
        (FNNEnsembleRegressor(FNNRegressor(hidden_layer_sizes=(8,), **_SMALL), n_estimators=2,
                              random_state=0), X, y),
    ]
    cases += [(FNNRegressor(solver=solver, **_SPLIT), X, y) for solver in ("adam", "sgd")]
    cases.append((FNNRegressor(solver="lbfgs", hidden_layer_sizes=_WIDE, max_iter=1,
                               random_state=0), X, y))
    return cases


def precompile(dtypes=("float64",)):
    """Compile (or load from the cache) the kernels of common fits and predictions.

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}
        The input dtypes to prepare: float32 input trains in float32, with kernels of its own.

    Returns
    -------
    seconds : float
        Wall time taken: about 30-90 s per dtype on 2 cores with an empty cache, by CPU (a second
        process compiles each loop's last kernels and, here, the loops of the same groups:
        ``_compile_ahead``), a second or two when it was already filled.
    """
    start = time.perf_counter()
    for dtype in dtypes:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtypes must be float32 or float64, got {dtype!r}.")
    helper = _compile_ahead.HELPER
    helper.siblings = True  # every loop is to be compiled: the second process takes some
    try:
        for dtype in dtypes:
            for estimator, X, y in _cases(np.dtype(dtype)):
                wide = getattr(estimator, "hidden_layer_sizes", None) == _WIDE  # (searches: None)
                if wide:
                    helper.share_loops()
                    helper.wait()  # its timings need this process's cores to themselves
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # two epochs do not converge, on purpose
                    estimator.fit(X[:_ROWS], y[:_ROWS])
                if wide:  # with this process's cores to itself: many rows, in chunks
                    estimator.predict(X)  # (timed: ``_parts``)
                estimator.predict(X[:1])  # one row: the direct path
        helper.wait()  # all in the cache before this returns (and its process ends)
    finally:
        helper.siblings = False
    return time.perf_counter() - start
