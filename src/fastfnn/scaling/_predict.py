"""Prediction at scale: predictions of a table larger than memory, written in its row order."""

import os
import uuid
from collections import deque
from contextlib import ExitStack

import numpy as np
import pandas as pd
from dask_ml.wrappers import ParallelPostFit
from sklearn.utils.validation import check_is_fitted

from ._cluster import cluster_client
from ._data import iter_partitions, open_table, warn_skipped

_METHODS = ("predict", "predict_proba")


def _model_table(model, source, blocksize, read_kwargs):
    """The table of ``source`` with the model's features: by name when the model was fitted
    on named columns (any order; other columns ignored), else every column."""
    check_is_fitted(model)
    names = getattr(model, "feature_names_in_", None)
    table = open_table(source, features=None if names is None else list(names),
                       with_target=False, blocksize=blocksize, read_kwargs=read_kwargs)
    warn_skipped(table)
    n_in = getattr(model, "n_features_in_", None)
    n_have = len(table.features) if table.features is not None else table.X.shape[1]
    if n_in is not None and n_have != n_in:
        raise ValueError(f"the data has {n_have} feature columns and the model expects {n_in}: "
                         f"drop the target and other columns, or name the features (a model "
                         f"fitted on named columns picks its own).")
    return table


def predict_dask(model, source, *, method="predict", blocksize="16MB", read_kwargs=None):
    """Lazy predictions of a fitted model: one task per partition
    (``dask_ml.wrappers.ParallelPostFit``), computed where dask computes (a ``Client``'s
    cluster when one is the default, else local threads).

    Parameters
    ----------
    model : fitted estimator or Pipeline
    source : str, os.PathLike, dask DataFrame or dask Array
        A CSV/Parquet file or glob, or a dask collection of features.
    method : {"predict", "predict_proba"}, default="predict"
    blocksize : str or int, default="16MB"
        Bytes per partition of a CSV file.
    read_kwargs : dict, optional
        More arguments for ``dask.dataframe.read_csv`` / ``read_parquet``.

    Returns
    -------
    dask Array or dask Series
        The predictions in the table's row order; ``.compute()`` or ``.to_delayed()`` them.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    return _lazy(model, method, _model_table(model, source, blocksize, read_kwargs))


def _lazy(model, method, table):
    """``method``'s predictions of each partition of ``table``, lazily (ParallelPostFit's)."""
    if not hasattr(model, method):
        raise AttributeError(f"{type(model).__name__} has no {method} method.")
    data = table.frame[table.features] if table.features is not None else table.X
    return getattr(ParallelPostFit(estimator=_NoRowsAnswered(model)), method)(data)


class _NoRowsAnswered:
    """A fitted model's prediction methods for dask's partitions: a partition of no rows
    (dask hands it on as any other; scikit-learn refuses no rows) is answered by no rows, of
    the shape and dtype of the model's answer to one placeholder row."""

    def __init__(self, model):
        self.model = model

    @property
    def classes_(self):  # (ParallelPostFit reads the probabilities' columns here)
        return self.model.classes_

    def predict(self, X):
        return self._answer("predict", X)

    def predict_proba(self, X):
        return self._answer("predict_proba", X)

    def _answer(self, method, X):
        if X.shape[0]:
            return getattr(self.model, method)(X)
        if isinstance(X, pd.DataFrame):
            from dask.dataframe.utils import meta_nonempty

            row = meta_nonempty(X).iloc[:1]
        else:
            row = np.zeros((1,) + X.shape[1:], X.dtype)
        return getattr(self.model, method)(row)[:0]


def _columns(model, method, name, n_columns, columns=None):
    """The header: ``columns`` as given (one name per column), else named after ``name``."""
    if columns is not None:
        if len(columns) != n_columns:
            raise ValueError(f"columns gives {len(columns)} name(s) for the {n_columns} "
                             f"column(s) of the model's {method}.")
        return list(columns)
    if method == "predict_proba":
        return [f"{name}_{c}" for c in model.classes_]
    return [name] if n_columns == 1 else [f"{name}_{k}" for k in range(n_columns)]


def _local_parts(model, method, table, prefetch):
    """Each partition's predictions, in order (none for a partition without rows)."""
    for _, X, _ in iter_partitions(table, range(table.n_partitions), prefetch=prefetch):
        yield getattr(model, method)(X) if len(X) else np.empty(0)


def _cluster_parts(lazy, client, window):
    """Each partition's predictions, computed on the cluster ``window`` at a time, in order."""
    parts = np.ravel(lazy.to_delayed()).tolist()
    pending = deque()
    for part in parts:
        pending.append(client.compute(part))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _write(parts, out, columns_of):
    rows, header = 0, True
    for pred in parts:
        pred = np.asarray(pred)
        if not len(pred):  # an empty partition's
            continue
        pred = pred.reshape(len(pred), -1)
        pd.DataFrame(pred, columns=columns_of(pred.shape[1])).to_csv(out, header=header,
                                                                     index=False)
        rows, header = rows + len(pred), False
    return rows


def predict_streaming(model, source, output, *, name="prediction", method="predict",
                      scheduler=None, n_workers=2, window=None, blocksize="16MB",
                      prefetch=True, read_kwargs=None, on_partition=None, columns=None):
    """Write a fitted model's predictions of a table larger than memory to CSV, in row order.

    Partitions are predicted one after another and appended to the file, so the memory held
    is a partition or two (or ``window`` partitions' predictions on a cluster), whatever the
    table's size. A path is written to a temporary file beside it, renamed on success: a
    failed run leaves no partial file behind.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        E.g. ``fit_streaming(...).model`` or ``fastfnn.load_model(path)``. A model fitted on
        named columns takes its features by name (any order; other columns ignored).
    source : str, os.PathLike, dask DataFrame or dask Array
        A CSV/Parquet file or glob, or a dask collection of features.
    output : str, os.PathLike or text file
        Where the CSV goes (a header row, then one row per input row).
    name : str, default="prediction"
        The column name (``name_0``, ``name_1``, ... for several outputs; ``name_CLASS`` for
        probabilities).
    method : {"predict", "predict_proba"}, default="predict"
    scheduler : None, "local", str or distributed.Client, optional
        None predicts in this process. Otherwise the partitions are predicted on a cluster
        (``dask_ml.wrappers.ParallelPostFit``, one task per partition), ``window`` at a time,
        and written here in order: ``"local"`` starts a local cluster of ``n_workers``
        single-threaded workers, a string connects to a scheduler, a Client is used as is.
        The workers read the files themselves: they must see the same paths.
    n_workers : int, default=2
    window : int, optional
        Partitions in flight on a cluster (default: twice the cluster's threads).
    blocksize : str or int, default="16MB"
        Bytes per partition of a CSV file.
    prefetch : bool, default=True
        In this process, read the next partition while one is predicted.
    read_kwargs : dict, optional
        More arguments for ``dask.dataframe.read_csv`` / ``read_parquet``.
    on_partition : callable, optional
        Called as ``on_partition(done, total)`` after each partition is written.
    columns : list of str, optional
        The header's column names, one per output (or class, for probabilities), in place of
        those made of ``name``; ValueError at the first partition when they do not match.

    Returns
    -------
    int
        Rows written.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    table = _model_table(model, source, blocksize, read_kwargs)
    total = table.n_partitions

    def columns_of(n):
        return _columns(model, method, name, n, columns)

    with ExitStack() as stack:
        if scheduler is None:
            parts = _local_parts(model, method, table, prefetch)
        else:
            client = stack.enter_context(cluster_client(scheduler, n_workers=n_workers))
            size = window or 2 * max(1, sum(client.nthreads().values()))
            parts = _cluster_parts(_lazy(model, method, table), client, size)
        parts = _progress(parts, on_partition, total)
        if not isinstance(output, (str, os.PathLike)):
            return _write(parts, output, columns_of)
        return _write_atomic(parts, output, columns_of)


def _progress(parts, on_partition, total):
    for k, pred in enumerate(parts):
        yield pred
        if on_partition is not None:
            on_partition(k + 1, total)


def _write_atomic(parts, path, columns_of):
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.part")
    try:
        with open(tmp, "x", newline="") as out:
            rows = _write(parts, out, columns_of)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return rows
