"""Tables read one partition at a time: CSV or Parquet files (one, or a glob of many), dask
DataFrames, or a dask Array of features with a dask Array of targets.

A table knows its partitions, its feature columns and its target, and loads partition ``i`` as
``(X, y)`` in memory: X a float64 pandas DataFrame of the feature columns (a NumPy array for
array input), y a NumPy array (None when there is no target); ``where(i, row)`` says where a
row came from (file and line for CSV files), and ``skipped`` lists the files that held no data
rows. CSV files are read block by block by :mod:`._csv` (the same partitions as
``dask.dataframe.read_csv``, without building a dask graph); the partitions of Parquet files
and dask collections are computed by dask's synchronous scheduler in the calling thread (one
partition's tasks; about 4 ms of overhead against 20-40 ms through
``get_partition(i).compute()`` and the thread pool).
"""

import glob
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd

from ._csv import CsvTable

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


class EmptyFileWarning(UserWarning):
    """A file of the table held no data rows and was left out."""


def warn_skipped(table):
    """One :class:`EmptyFileWarning` per file of ``table`` that held no data rows."""
    for path in getattr(table, "skipped", ()):
        warnings.warn(f"{path}: no data rows (a header only, or an empty file); skipped.",
                      EmptyFileWarning, stacklevel=4)


class FrameTable:
    """A dask DataFrame read partition by partition: features and target by column name."""

    def __init__(self, frame, features, target):
        self.frame = frame
        self.features = list(features)
        self.target = target  # a column name, a list of names, or None
        self.n_partitions = frame.npartitions
        self._parts = frame.to_delayed()

    skipped = ()

    def where(self, i, row=None):
        """Where partition ``i`` (or its data row ``row``, 0-based) is."""
        return f"partition {i}" + ("" if row is None else f", row {row + 1}")

    def load(self, i):
        (part,) = dask.compute(self._parts[i], scheduler="sync")
        missing = [c for c in self.features if c not in part.columns]
        if missing:
            raise ValueError(f"partition {i}: missing column(s) {missing}; every partition "
                             f"needs the columns of the first.")
        try:
            X = part[self.features].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"partition {i}: a feature column holds a value that is not a "
                             f"number ({err}); fix the data or drop the column.") from err
        y = None if self.target is None else part[self.target].to_numpy()
        return pd.DataFrame(X, columns=self.features, copy=False), y


class ArrayTable:
    """A dask Array of features (n, n_features) and one of targets, read block by block."""

    def __init__(self, X, y):
        if X.ndim != 2:
            raise ValueError(f"the features must be a 2-D dask Array, got {X.ndim} dimensions.")
        self.X = X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
        self.y = None if y is None else _align(self.X, y)
        self.features = None
        self.target = None
        self.n_partitions = self.X.numblocks[0]
        self._X = self.X.to_delayed().ravel()
        self._y = None if self.y is None else self.y.to_delayed().reshape(self.n_partitions, -1)

    skipped = ()

    def where(self, i, row=None):
        """Where block ``i`` (or its row ``row``, 0-based) is."""
        return f"row block {i}" + ("" if row is None else f", row {row + 1}")

    def load(self, i):
        if self._y is None:
            (X,) = dask.compute(self._X[i], scheduler="sync")
            return np.asarray(X, dtype=np.float64), None
        X, y = dask.compute(self._X[i], self._y[i, 0], scheduler="sync")
        return np.asarray(X, dtype=np.float64), np.asarray(y)


def _align(X, y):
    """y as a dask Array whose row blocks are X's."""
    if isinstance(y, (dd.Series, dd.DataFrame)):
        y = y.to_dask_array(lengths=True)
    if not isinstance(y, da.Array):
        raise TypeError("with a dask Array of features, the target must be a dask Array (or "
                        f"a dask Series) of the same rows, got {type(y).__name__}.")
    if y.ndim == 2 and len(y.chunks[1]) > 1:
        y = y.rechunk({1: -1})
    if y.chunks[0] != X.chunks[0] and not (np.isnan(X.shape[0]) or np.isnan(y.shape[0])):
        y = y.rechunk({0: X.chunks[0]})
    if y.numblocks[0] != X.numblocks[0]:
        raise ValueError(f"the target has {y.numblocks[0]} row blocks and the features "
                         f"{X.numblocks[0]}: give both the same row chunks.")
    return y


def _matches(path):
    """The files a path or glob names, sorted; FileNotFoundError when none."""
    path = os.fspath(path)
    matches = sorted(glob.glob(path))
    if not matches:
        raise FileNotFoundError(f"no file matches {path!r}: check the path (a glob such as "
                                f"'data/part-*.csv' may name many files).")
    return matches


def _parquet_with_rows(matches):
    """``(the Parquet files or folders of matches that hold rows, the files that hold none)``:
    files without rows are left out, as CSV files are, so that the same rows make the same
    partitions in either format (their footers are read; a folder is kept whole)."""
    import pyarrow.parquet as pq

    def rows(path):
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as err:  # noqa: BLE001 - pyarrow's errors name no file
            raise ValueError(f"{path}: not a readable Parquet file ({err}).") from None

    empty = [path for path in matches if os.path.isfile(path) and rows(path) == 0]
    kept = [path for path in matches if path not in empty]
    if not kept:
        shown = matches[0] if len(matches) == 1 else f"{len(matches)} files ({matches[0]}, ...)"
        raise ValueError(f"{shown}: no data rows.")
    return kept, empty


def read_parquet(matches, *, blocksize=None, read_kwargs=None):
    """A dask DataFrame of Parquet files (or a folder of them); row groups are combined up to
    ``blocksize`` bytes."""
    kwargs = dict(read_kwargs or {})
    if blocksize is not None:
        kwargs["blocksize"] = blocksize
    return dd.read_parquet(matches if len(matches) > 1 else matches[0], **kwargs)


def _target_columns(columns, target):
    if target is None:
        return columns[-1]
    names = [target] if isinstance(target, str) else list(target)
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"target column(s) {missing} not in the table, whose columns are "
                         f"{columns}.")
    return target if isinstance(target, str) else names


def frame_table(frame, target=None, *, features=None, with_target=True):
    """A :class:`FrameTable`: the target (default: the last column) and the features (default:
    every other column; for prediction, the model's ``feature_names_in_``)."""
    columns = list(frame.columns)
    if not columns:
        raise ValueError("the table has no columns.")
    tcol = _target_columns(columns, target) if with_target else None
    tnames = [] if tcol is None else ([tcol] if isinstance(tcol, str) else tcol)
    if features is None:
        features = [c for c in columns if c not in tnames]
    missing = [c for c in features if c not in columns]
    if missing:
        raise ValueError(f"feature column(s) {missing} not in the table, whose columns are "
                         f"{columns}: give a table with the columns the model was trained on.")
    if not features:
        raise ValueError("the table has no feature columns besides the target.")
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(frame.dtypes[c])]
    if bad:
        raise ValueError(f"feature column(s) {bad} are not numeric (read as "
                         f"{[str(frame.dtypes[c]) for c in bad]}): every feature must be a "
                         f"number; drop or encode these columns.")
    return FrameTable(frame, features, tcol)


def open_table(source, target=None, *, features=None, with_target=True, labels=False,
               blocksize=None, read_kwargs=None):
    """A table from a path or glob of CSV or Parquet files, a dask DataFrame, or a dask Array
    (``target`` then a dask Array of the same rows, or None for prediction).

    CSV files become a :class:`~fastfnn.scaling._csv.CsvTable` (cut into blocks of
    ``blocksize`` bytes as dask cuts them; files without data rows skipped, listed in its
    ``skipped``); ``labels``: the target holds class labels (kept as read, not as float64; a
    CSV table's as text, until its ``settle_labels``)."""
    if isinstance(source, (str, os.PathLike)):
        matches = _matches(source)
        if not (matches[0].endswith(PARQUET_SUFFIXES) or os.path.isdir(matches[0])):
            def columns(names):
                tcol = _target_columns(names, target) if with_target else None
                tnames = [] if tcol is None else ([tcol] if isinstance(tcol, str) else tcol)
                return ([c for c in names if c not in tnames] if features is None
                        else list(features)), tcol

            return CsvTable(matches, columns, blocksize=_bytes(blocksize),
                            read_kwargs=read_kwargs, labels=labels)
        matches, skipped = _parquet_with_rows(matches)
        table = frame_table(read_parquet(matches, blocksize=blocksize, read_kwargs=read_kwargs),
                            target, features=features, with_target=with_target)
        table.skipped = skipped
        return table
    if isinstance(source, dd.DataFrame):
        return frame_table(source, target, features=features, with_target=with_target)
    if isinstance(source, da.Array):
        if with_target and target is None:
            raise ValueError("with a dask Array of features, pass the targets as `target` (a "
                             "dask Array of the same rows).")
        return ArrayTable(source, target if with_target else None)
    raise TypeError(f"the data must be a path or glob of CSV/Parquet files, a dask DataFrame "
                    f"or a dask Array, got {type(source).__name__}; wrap in-memory data with "
                    f"dask.array.from_array(X, chunks=ROWS) or dask.dataframe.from_pandas.")


def _bytes(blocksize):
    """``blocksize`` ("16MB", an int or None) in bytes."""
    if blocksize is None:
        return None
    from dask.utils import parse_bytes

    size = parse_bytes(blocksize) if isinstance(blocksize, str) else int(blocksize)
    if size < 1:
        raise ValueError(f"blocksize must be a positive number of bytes, got {blocksize!r}.")
    return size


def iter_partitions(table, indices, *, prefetch=True):
    """Yield ``(i, X, y)`` for each partition index in order; with ``prefetch`` the next
    partition is read in a background thread while the caller works on this one (two
    partitions in memory at most)."""
    indices = [int(i) for i in indices]
    if not prefetch or len(indices) < 2:
        for i in indices:
            yield (i, *table.load(i))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastfnn-read") as pool:
        pending = pool.submit(table.load, indices[0])
        for k, i in enumerate(indices):
            X, y = pending.result()
            pending = pool.submit(table.load, indices[k + 1]) if k + 1 < len(indices) else None
            yield i, X, y
            del X, y
