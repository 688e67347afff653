"""Out-of-core training: a table larger than memory streamed through ``partial_fit``.

One pass reads the training partitions to standardise the features (scikit-learn's
``StandardScaler.partial_fit``, which merges per-partition means and variances) and to collect
the classes; then each epoch feeds the training partitions, in a new seeded order, rows shuffled
within each, to the estimator's ``partial_fit``, and scores the held-out partitions.
"""

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from ._data import iter_partitions, open_table, warn_skipped


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of :func:`fit_streaming`.

    Attributes
    ----------
    epoch : int
        1 for the first epoch.
    train_loss : float
        The estimator's ``loss_`` of each partition's ``partial_fit``, averaged over the
        epoch's training rows.
    validation_score : float or None
        R^2 (regressor) or accuracy (classifier) on the held-out partitions after the epoch;
        None without validation.
    best_epoch : int or None
        The epoch with the best validation score so far.
    n_rows : int
        Training rows seen in the epoch.
    seconds : float
        Wall time of the epoch, validation included.
    """

    epoch: int
    train_loss: float
    validation_score: float | None
    best_epoch: int | None
    n_rows: int
    seconds: float


@dataclass
class StreamingFit:
    """The result of :func:`fit_streaming`.

    Attributes
    ----------
    model : sklearn.pipeline.Pipeline
        ``StandardScaler`` (statistics of the training partitions) then the fitted estimator:
        ``model.predict`` takes raw features, as the table holds them.
    history : list of EpochRecord
    best_epoch, best_score : int or None, float or None
        The epoch with the best validation score and that score (None without validation).
    n_train_rows, n_validation_rows : int
    train_partitions, validation_partitions : tuple of int
        Partition indices of the table used for each.
    classes : ndarray or None
        The classes declared to the classifier's first ``partial_fit``.
    interrupted : bool
        True when KeyboardInterrupt stopped training after at least one epoch: the model is
        then the last (or best) one reached.
    skipped_files : tuple of str
        CSV files that held no data rows (a header only, or no bytes): left out, with a
        :class:`~fastfnn.scaling.EmptyFileWarning` each.
    """

    model: object
    history: list
    best_epoch: int | None
    best_score: float | None
    n_train_rows: int
    n_validation_rows: int
    train_partitions: tuple
    validation_partitions: tuple
    classes: np.ndarray | None = None
    interrupted: bool = False
    skipped_files: tuple = ()



def _check_arguments(estimator, epochs, validation_fraction, patience, dtype, callbacks):
    if getattr(estimator, "solver", None) == "lbfgs":
        raise ValueError("solver='lbfgs' needs all the data at once; streaming training uses "
                         "partial_fit: set solver='sgd', 'adam' or 'adamw'.")
    if not hasattr(estimator, "partial_fit"):
        raise TypeError(
            f"{type(estimator).__name__} has no partial_fit: pass the estimator itself (e.g. "
            f"FNNRegressor(solver='adam')); the features are standardised for you.")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be None or a positive integer, got {patience!r}.")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}.")
    for name, fn in callbacks.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}.")


class TooFewPartitionsError(ValueError):
    """A validation split asked of a table with fewer than 2 partitions (``n_partitions``):
    validation holds out whole partitions."""

    def __init__(self, message, n_partitions):
        super().__init__(message)
        self.n_partitions = n_partitions


def split_partitions(n_partitions, validation_fraction, rng):
    """(train, validation) partition indices: a seeded ``round(fraction * n)`` of the
    partitions (at least one, and one left to train) are held out, the rest train."""
    if validation_fraction == 0:
        return list(range(n_partitions)), []
    if n_partitions < 2:
        raise TooFewPartitionsError(
            f"the table has {n_partitions} partition(s); validation holds out whole partitions, "
            f"so it needs at least 2: give a smaller blocksize (e.g. '1MB'), more files, or "
            f"validation_fraction=0.", n_partitions)
    n_val = min(max(1, round(validation_fraction * n_partitions)), n_partitions - 1)
    held = rng.permutation(n_partitions)[:n_val]
    val = sorted(int(i) for i in held)
    return [i for i in range(n_partitions) if i not in set(val)], val


#: Largest feature magnitude that can be standardised: the scaler sums squares in float64,
#: and the square of a value over sqrt(max float64) = 1.3e154 overflows (a margin of 1e4
#: for the sum over rows).
LARGEST_VALUE = float(np.sqrt(np.finfo(np.float64).max)) / 1e4


def check_values(table, i, X, y, classify):
    """Refuse partition ``i``'s first missing, infinite or too large feature value, its
    first missing or infinite regression target or missing class label, naming where it is
    (file and line for CSV).

    ``X``: the float64 features (n, n_features); ``y``: the targets (n,) or (n, n_targets).
    """
    names = getattr(table, "features", None)
    A = np.asarray(X)
    bad = ~np.isfinite(A)
    if bad.any():
        row, col = (int(k[0]) for k in np.nonzero(bad))
        raise ValueError(f"{table.where(i, row)}{_column(names, col)}: a missing (NaN) or "
                         f"infinite feature value ({A[row, col]}): fill or drop those rows "
                         f"first.")
    big = np.abs(A) > LARGEST_VALUE
    if big.any():
        row, col = (int(k[0]) for k in np.nonzero(big))
        raise ValueError(f"{table.where(i, row)}{_column(names, col)}: {A[row, col]:g} is too "
                         f"large to standardise (over {LARGEST_VALUE:.1e}, the squares summed "
                         f"for the variance overflow float64): rescale the column, e.g. divide "
                         f"it by a power of ten.")
    if not classify:
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            values = pd.to_numeric(pd.Series(np.ravel(y)), errors="coerce").to_numpy()
        bad = ~np.isfinite(values.reshape(len(values), -1))
        if bad.any():
            row = int(np.nonzero(bad)[0][0])
            raise ValueError(f"{table.where(i, row)}: a missing, infinite or non-numeric "
                             f"target value ({np.ravel(y)[row]}).")
        return values
    missing = pd.isna(np.asarray(y, dtype=object).reshape(len(y), -1))
    if missing.any():
        row = int(np.nonzero(missing)[0][0])
        raise ValueError(f"{table.where(i, row)}: a missing class label: fill or drop those "
                         f"rows first.")
    return y


def _column(names, col):
    return f", column {names[col]!r}" if names else f", column {col}"


def _standardised(X, scaler, dtype, perm=None):
    """``scaler.transform(X)`` as a new ``dtype`` array (rows in ``perm``'s order): ``(X -
    mean_) / scale_`` in float64 on one copy, as the scaler computes it, then rounded to
    ``dtype`` once (float32: a second copy), so training sees the values prediction will."""
    A = np.asarray(X, dtype=np.float64)
    B = np.take(A, perm, axis=0) if perm is not None else np.array(A)
    if scaler.with_mean:
        B -= scaler.mean_
    if scaler.with_std:
        B /= scaler.scale_
    return B.astype(dtype, copy=False)


@dataclass
class _FirstPass:
    scaler: StandardScaler
    classes: np.ndarray | None
    n_train: int
    n_val: int
    ss_tot: np.ndarray | None  # per-output sum of squares of the validation targets
    empty: tuple = ()  # partitions without rows


def _first_pass(table, train, val, classify, dtype, prefetch):
    """Standardisation statistics of the training partitions, the classes (all partitions) and
    the validation targets' total sum of squares, in one streamed pass that also checks every
    value (:func:`check_values`)."""
    scaler, ystats = StandardScaler(), StandardScaler()
    labels, counts, held, empty = [], {"train": 0, "val": 0}, set(val), []
    for i, X, y in iter_partitions(table, sorted(train + val), prefetch=prefetch):
        if len(y) == 0:
            empty.append(i)
            continue
        y = check_values(table, i, X, y, classify)
        if classify:
            labels.append(np.unique(y))
        if i in held:
            counts["val"] += len(y)
            if not classify:
                ystats.partial_fit(y.reshape(len(y), -1))
        else:
            counts["train"] += len(y)
            scaler.partial_fit(X)
    if counts["train"] == 0:
        raise ValueError("the training partitions hold no rows.")
    if val and counts["val"] == 0:
        raise ValueError(f"the {len(val)} held-out validation partition(s) hold no rows "
                         f"({', '.join(table.where(i) for i in val[:3])}): remove the empty "
                         f"files, or set validation_fraction=0 to train without validation.")
    classes = None
    if classify:
        labels = np.unique(np.concatenate(labels))
        settle = getattr(table, "settle_labels", None)  # a CSV table's labels: text so far
        classes = labels if settle is None else settle(labels)
    ss_tot = (ystats.var_ * ystats.n_samples_seen_
              if counts["val"] and not classify else None)
    return _FirstPass(scaler, classes, counts["train"], counts["val"], ss_tot, tuple(empty))


def _r2(sse, ss_tot):
    """scikit-learn's r2_score from per-output sums (uniform average, finite when constant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot != 0, 1 - sse / ss_tot, np.where(sse == 0, 1.0, 0.0))
    return float(np.mean(r2))


def _validation_score(est, table, val, stats, classify, dtype, prefetch):
    """R^2 or accuracy of ``est`` on the held-out partitions, streamed."""
    correct, sse, n = 0, 0.0, 0
    for i, X, y in iter_partitions(table, val, prefetch=prefetch):
        if len(y) == 0:
            continue
        pred = est.predict(_standardised(X, stats.scaler, dtype))
        del X
        if not classify:
            y = y.astype(np.float64)
        if classify:
            correct += accuracy_score(y, pred, normalize=False)
        else:
            diff = y.reshape(len(y), -1) - np.asarray(pred).reshape(len(y), -1)
            sse = sse + (diff * diff).sum(axis=0)
        n += len(y)
    if n == 0:
        return float("nan")
    return correct / n if classify else _r2(sse, stats.ss_tot)


def _schedule_over_partitions(est, n_calls):
    """Fit the estimator's learning-rate schedule to a run of ``n_calls`` ``partial_fit``
    calls (one per training partition and epoch): 'adaptive' trains at the constant
    ``learning_rate_init`` (its stall rule would compare the losses of different partitions),
    and 'cosine' makes one cycle over the run (``max_iter = n_calls``)."""
    params = est.get_params()
    if params.get("learning_rate") == "adaptive" and "learning_rate_init" in params:
        est.set_params(learning_rate="constant")
    elif params.get("learning_rate") == "cosine":
        est.set_params(max_iter=n_calls)


def _train_epoch(est, table, order, stats, rng, classify, dtype, prefetch, report):
    """One epoch: ``partial_fit`` on each training partition of ``order``, rows shuffled.
    Returns (mean loss, rows)."""
    loss, rows = 0.0, 0
    for k, (i, X, y) in enumerate(iter_partitions(table, order, prefetch=prefetch)):
        n = len(y)
        if n:
            perm = rng.permutation(n)
            Xs = _standardised(X, stats.scaler, dtype, perm)
            del X
            y = y[perm] if classify else y[perm].astype(np.float64)
            first = classify and not hasattr(est, "classes_")
            est.partial_fit(Xs, y, **({"classes": stats.classes} if first else {}))
            del Xs
            loss, rows = loss + float(getattr(est, "loss_", np.nan)) * n, rows + n
        if report is not None:
            report(k + 1, len(order))
    return loss / max(rows, 1), rows


def fit_streaming(estimator, source, target=None, *, epochs=10, blocksize="16MB",
                  validation_fraction=0.1, patience=None, restore_best=True, random_state=None,
                  dtype=np.float64, prefetch=True, read_kwargs=None, on_epoch=None,
                  on_partition=None):
    """Train a copy of ``estimator`` on a table larger than memory, partition by partition.

    Partitions: a CSV file is cut into blocks of ``blocksize`` bytes (where dask cuts them,
    each read on its own), Parquet files into row groups, a glob gives many files; a dask
    DataFrame or Array keeps its own. A CSV or Parquet file without data rows is skipped with an
    :class:`~fastfnn.scaling.EmptyFileWarning`; a bad cell, row or file is a ValueError naming
    the file and line.
    At most two partitions are read at a time (the one training and, with ``prefetch``, the
    next), so the peak memory is a few partitions plus the model, whatever the table's size.

    1. Hold out a seeded ``validation_fraction`` of the partitions (whole partitions).
    2. One streamed pass over the table: standardisation statistics of the training rows
       (``StandardScaler.partial_fit``, per feature mean and variance merged over partitions),
       the classes (classifier), every value checked (finite, and small enough to
       standardise); held-out partitions without rows are refused.
    3. Each epoch: the training partitions in a new seeded order; each one's rows shuffled and
       standardised, then one ``partial_fit`` (one pass of minibatches of ``batch_size`` rows;
       the classifier's first call gets ``classes``); then R^2 (regressor) or accuracy
       (classifier) on the held-out partitions, and the best epoch so far.

    Differences from an in-memory ``fit`` of the same estimator:

    * Rows are shuffled within a partition and partitions among themselves, never across the
      whole table: a minibatch holds rows of one partition only. A table sorted by the target
      or by time streams non-i.i.d. partitions and trains worse; shuffle such a file once.
    * The estimator's own epoch rules (``max_iter``, ``tol``, ``n_iter_no_change``,
      ``early_stopping``, ``learning_rate='adaptive'``) do not apply to ``partial_fit``:
      ``epochs``, ``patience`` and the validation partitions here take their place. The copy
      trains 'adaptive' at the constant ``learning_rate_init``, and 'cosine' in one cycle over
      the run (its ``max_iter`` is set to ``epochs`` times the training partitions). The solver
      state (Adam moments, momentum, the 'invscaling' step count) carries over from partition
      to partition; each partition ends with one shorter minibatch, and ``batch_size='auto'``
      is ``min(200, rows of the partition)``. ``loss_curve_`` has one entry per partition.
    * The validation set is whole partitions drawn by the seed, not rows drawn at random.

    Parameters
    ----------
    estimator : FNNRegressor or FNNClassifier
        With ``solver='sgd'``, ``'adam'`` or ``'adamw'`` (any scikit-learn estimator with
        ``partial_fit`` works too). It is cloned; the argument is left unchanged. A
        ``random_state=None`` on it is replaced by one drawn from ``random_state`` here, so
        that the result depends on the data and this seed only.
    source : str, os.PathLike, dask DataFrame or dask Array
        A CSV (header row) or Parquet file, a glob of such files, a dask DataFrame, or a dask
        Array of features (n, n_features).
    target : str, list of str or dask Array, optional
        Target column(s) of a table (default: the last column; every other column is a
        feature), or the dask Array of targets of a dask Array of features (same row chunks).
    epochs : int, default=10
    blocksize : str or int, default="16MB"
        Bytes per partition of a CSV file, cut where ``dask.dataframe.read_csv`` cuts (a
        partition costs about six times this while it is read and trained on: 16 MB keeps
        the peak near 300 MB of imports plus 100 MB); None: one partition per CSV file.
        Parquet row groups are combined up to it. Ignored for a dask DataFrame or Array.
    validation_fraction : float in [0, 1), default=0.1
        Fraction of the partitions held out (0: none; else at least one, and the table needs 2
        partitions or more).
    patience : int, optional
        Stop after this many epochs without a better validation score (None: run all epochs).
    restore_best : bool, default=True
        Return the model of the best validation epoch rather than the last one.
    random_state : int, RandomState or None
        Seeds the split, the partition and row orders (and the estimator's, see above).
    dtype : float32 or float64, default=float64
        Training dtype (fastfnn trains float32 end to end).
    prefetch : bool, default=True
        Read the next partition in a background thread while one trains.
    read_kwargs : dict, optional
        More arguments for ``dask.dataframe.read_csv`` / ``read_parquet``.
    on_epoch : callable, optional
        Called with each :class:`EpochRecord`.
    on_partition : callable, optional
        Called as ``on_partition(epoch, done, total)`` after each training partition.

    Returns
    -------
    StreamingFit
        ``.model`` is a Pipeline (StandardScaler, fitted estimator) that predicts from raw
        features; ``.history`` holds one :class:`EpochRecord` per epoch.
    """
    _check_arguments(estimator, epochs, validation_fraction, patience, dtype,
                     {"on_epoch": on_epoch, "on_partition": on_partition})
    est, classify = clone(estimator), is_classifier(estimator)
    table = open_table(source, target, labels=classify, blocksize=blocksize,
                       read_kwargs=read_kwargs)
    warn_skipped(table)
    rng = check_random_state(random_state)
    train, val = split_partitions(table.n_partitions, validation_fraction, rng)
    if "random_state" in est.get_params() and est.random_state is None:
        est.set_params(random_state=int(rng.randint(np.iinfo(np.int32).max)))
    stats = _first_pass(table, train, val, classify, dtype, prefetch)
    trained = [i for i in train if i not in stats.empty]  # (a partition without rows: no call)
    _schedule_over_partitions(est, epochs * len(trained))
    history, best, best_est, interrupted = [], (None, -np.inf), None, False
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            report = None if on_partition is None else (
                lambda done, total, e=epoch: on_partition(e, done, total))
            loss, rows = _train_epoch(est, table, list(rng.permutation(train)), stats, rng,
                                      classify, dtype, prefetch, report)
            score = (_validation_score(est, table, val, stats, classify, dtype, prefetch)
                     if val else None)
            if score is not None and score > best[1]:
                best, best_est = (epoch, score), copy.deepcopy(est)
            record = EpochRecord(epoch, loss, score, best[0], rows, time.perf_counter() - start)
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if patience is not None and best[0] is not None and epoch - best[0] >= patience:
                break
    except KeyboardInterrupt:
        if not history:
            raise
        interrupted = True
    if restore_best and best_est is not None:
        est = best_est
    return StreamingFit(
        model=make_pipeline(stats.scaler, est), history=history, best_epoch=best[0],
        best_score=None if best[0] is None else best[1], n_train_rows=stats.n_train,
        n_validation_rows=stats.n_val, train_partitions=tuple(train),
        validation_partitions=tuple(val), classes=stats.classes, interrupted=interrupted,
        skipped_files=tuple(getattr(table, "skipped", ())))
