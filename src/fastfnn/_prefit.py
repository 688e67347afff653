"""Fits made ahead, handed to the ``fit`` call that asks for exactly them.

A search trains its candidates together (``_fitmany.fit_together``) before scikit-learn's own
search loop runs; that loop then calls ``fit`` on each candidate's clone with the fold's rows,
as it always does. While the made fits are offered (:func:`offering`), an FNN estimator's
``fit`` first looks for one made with its exact parameters on exactly its data (a digest of X,
y and the sample weights) and takes it instead of training (:func:`take`). Anything that does
not match trains as usual: the results are scikit-learn's either way.
"""

import copy
import hashlib
import pickle
import threading
from contextlib import contextmanager

import joblib
import numpy as np

_LOCK = threading.Lock()
_OFFERED = []  # the dicts of fits on offer, innermost last


def key_of(estimator, digest):
    """What a made fit is filed under: the estimator's type and parameters, and the
    :func:`data_digest` of its training data.

    The parameters are digested as their pickle (SHA-1; joblib's hash, which pickles them in
    Python, took 0.38 ms an estimator, 7% of a tiny network's search): values that differ
    pickle differently, so two keys are equal only for equal parameters; equal parameters
    that pickle apart would only train again. None where neither can digest a parameter (a
    lambda): such a fit is never made ahead."""
    params = estimator.get_params(deep=False)
    try:
        digested = hashlib.sha1(pickle.dumps(params, protocol=5)).hexdigest()
    except Exception:  # noqa: BLE001 - what pickle cannot write, joblib's hash may
        try:
            digested = joblib.hash(params)
        except Exception:  # noqa: BLE001
            return None
    return type(estimator).__qualname__, digested, digest


def data_digest(X, y, sample_weight):
    """A digest of the training data (arrays, sparse matrices, frames): of a numeric NumPy
    array its dtype, shape and bytes (SHA-1: a search digests every fold's rows once per
    candidate, and joblib's hash took 3x as long), of anything else joblib's hash."""
    digest = hashlib.sha1()
    for part in (X, y, sample_weight):
        if isinstance(part, np.ndarray) and part.dtype.kind in "biufc":
            part = np.ascontiguousarray(part)
            digest.update(repr((part.dtype.str, part.shape)).encode())
            digest.update(part.reshape(-1).view(np.uint8))  # (any size, zero too)
        else:
            digest.update(joblib.hash(part).encode())
    return digest.hexdigest()


@contextmanager
def offering(fits):
    """Within the block, ``fits`` ({key: [fitted estimator, ...]}: one for each fit asking
    for that key, the same one repeated where equal fits share it) are on offer to
    :func:`take`."""
    with _LOCK:
        _OFFERED.append(fits)
    try:
        yield
    finally:
        with _LOCK:
            _OFFERED.remove(fits)


def take(estimator, X, y, sample_weight):
    """The made fit of ``estimator`` on (X, y, sample_weight) (removed from the offer: a copy
    while it is on offer again), or None where none is on offer."""
    if not _OFFERED:
        return None
    wanted = key_of(estimator, data_digest(X, y, sample_weight))
    if wanted is None:
        return None
    with _LOCK:
        for fits in reversed(_OFFERED):
            made = fits.get(wanted)
            if made:
                fitted = made.pop()
                return copy.deepcopy(fitted) if any(f is fitted for f in made) else fitted
    return None
