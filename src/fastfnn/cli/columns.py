"""From a table's columns to a model's inputs: feature kinds, checked cells, targets.

A feature column is *numeric* when its cells are numbers (missing cells allowed: they are imputed
by the model's pipeline) or *categorical* when it holds text (one-hot encoded). Text cells reach
the model as pandas reads them (no stripping; a missing cell is NaN), so that the saved pipeline
gives the same predictions on ``pd.read_csv(DATA)`` in plain Python as the command does. A text
column in which nearly every cell is a number (:data:`STRAY_SHARE`) is taken for a numeric column with a
stray cell, an error naming its line. Infinite values are errors; missing targets are errors.
"""

from dataclasses import dataclass, field

import numpy as np

from .data import DataError, names_list, short

#: A text column whose non-missing cells are at least this share of numbers is numeric with a
#: stray cell (an error), not categorical.
STRAY_SHARE = 0.95
#: How a missing text cell is given to the pipeline of model files of metadata version 1 (their
#: text imputer treats only this as missing); later models take NaN, None and pandas' NA.
LEGACY_MISSING_TEXT = ""
#: A text column with at least this share of distinct values among its cells (and at least
#: :data:`ID_MIN_ROWS` cells) looks like an identifier: a warning suggests --id or --drop.
ID_SHARE = 0.9
ID_MIN_ROWS = 20
#: A regression target with at most this many distinct integer values looks like classes.
FEW_CLASSES = 10
#: Largest magnitude that can be standardised: StandardScaler sums squares in float64, and the
#: square of a value over sqrt(max float64) = 1.3e154 overflows (its variance becomes inf and
#: the scaled column NaN); a margin of 1e4 for the sum over the rows.
LARGEST_STANDARDISED = float(np.sqrt(np.finfo(np.float64).max)) / 1e4


@dataclass
class Features:
    """The feature columns of a table, ready for the model's pipeline."""

    frame: object  # pandas DataFrame: numeric columns as float64 (NaN: missing), text as str
    numeric: list = field(default_factory=list)
    categorical: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)  # column -> number of missing cells


def feature_kinds(table, names):
    """{name: 'numeric' or 'categorical'} for the columns ``names`` of ``table``."""
    return {name: _kind(table, name) for name in names}


def features(table, kinds, dtype, fills_numeric=True, check_scale=False, missing_text=np.nan,
             strip_text=False):
    """The :class:`Features` of ``table`` for ``kinds`` ({column: kind}, in model order).
    Numbers stay float64 whatever ``dtype``, as ``pd.read_csv`` hands them to the saved
    pipeline in plain Python (the pipeline computes in its own precision).
    Without ``fills_numeric`` (a model that has no numeric imputer) a missing numeric cell is
    an error; with ``check_scale`` (before training) a numeric value too large to standardise
    or to hold in ``dtype`` is (:func:`check_magnitude`), and so is a column with no value
    (a fitted model's imputers fill one at prediction). A missing text cell becomes
    ``missing_text`` (NaN; :data:`LEGACY_MISSING_TEXT` for models of metadata version 1, whose
    text cells were also stripped: ``strip_text``)."""
    import pandas as pd

    columns, missing = {}, {}
    for name, kind in kinds.items():
        cells = table.frame[name]
        n_missing = int(cells.isna().sum())
        if n_missing == len(cells) and check_scale:
            raise DataError(f"{table.shown}: column {name!r} has no values (every cell is "
                            "missing)")
        if n_missing:
            missing[name] = n_missing
        if kind == "numeric":
            hint = "" if fills_numeric else ("; the model was trained without missing numbers "
                                             "and cannot fill them")
            values = numeric_values(table, name, allow_missing=fills_numeric,
                                    missing_hint=hint)
            if check_scale:
                check_magnitude(table, name, values, dtype)
            columns[name] = values
        else:
            columns[name] = _text_values(cells, strip=strip_text, missing=missing_text)
    frame = pd.DataFrame(columns, index=table.frame.index)
    return Features(frame, [n for n, k in kinds.items() if k == "numeric"],
                    [n for n, k in kinds.items() if k == "categorical"], missing)


def numeric_values(table, name, allow_missing=False, hint="", missing_hint=""):
    """Column ``name`` as float64 (n_rows,): NaN for missing cells when ``allow_missing``;
    any other cell that is not a finite number is a DataError at its line."""
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    cells = table.frame[name]
    if is_bool_dtype(cells):
        values = cells.to_numpy(dtype=np.float64, na_value=np.nan)
    elif is_numeric_dtype(cells):
        values = cells.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        parsed = pd.to_numeric(_stripped(cells), errors="coerce")
        bad = np.flatnonzero(cells.notna().to_numpy() & parsed.isna().to_numpy())
        if bad.size:
            table.fail(int(bad[0]), name, f"{short(cells.iloc[bad[0]])!r} is not a number{hint}")
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(values)
    if not allow_missing and nan.any():
        table.fail(int(np.flatnonzero(nan)[0]), name, "missing value (an empty or NaN cell)"
                   f"{missing_hint}; fill it or remove the row")
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        table.fail(int(infinite[0]), name, f"{short(cells.iloc[infinite[0]])!r} is not a "
                   "finite number (inf is not allowed)")
    return values


def check_magnitude(table, name, values, dtype=np.float64, what="column"):
    """Refuse the first value of column ``name`` (float64 ``values``, NaN for missing) that is
    too large to standardise (over :data:`LARGEST_STANDARDISED`) or to hold in ``dtype``."""
    limit = min(LARGEST_STANDARDISED, float(np.finfo(dtype).max))
    with np.errstate(invalid="ignore"):
        big = np.flatnonzero(np.abs(values) > limit)
    if not big.size:
        return
    if limit < LARGEST_STANDARDISED:
        why = (f"is too large for --dtype {np.dtype(dtype).name} (largest "
               f"{np.finfo(dtype).max:.2g}); rescale the {what} or train in float64")
    else:
        why = (f"is too large to standardise (over {limit:.1e}, the squares summed for "
               f"the variance overflow float64); rescale the {what}, e.g. divide it by a "
               f"power of ten")
    table.fail(int(big[0]), name, f"{values[big[0]]:g} {why}")


def _kind(table, name):
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    cells = table.frame[name]
    if is_numeric_dtype(cells) or is_bool_dtype(cells):
        return "numeric"
    import pandas as pd

    present = cells.notna().to_numpy()
    parsed = pd.to_numeric(_stripped(cells), errors="coerce").notna().to_numpy()
    n = present.sum()
    if n and parsed[present].sum() >= STRAY_SHARE * n:
        numeric_values(table, name, allow_missing=True)  # raises at the first stray cell
    return "categorical"


def _stripped(cells):
    return cells.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)


def _text_values(cells, strip=True, missing=LEGACY_MISSING_TEXT):
    """Text cells as an object array of str (stripped with ``strip``), ``missing`` where a
    cell is missing."""
    values = cells.astype(object).to_numpy()
    present = cells.notna().to_numpy()
    out = np.full(len(values), missing, dtype=object)
    out[present] = [str(v).strip() if strip else str(v) for v in values[present]]
    return out


def identifier_like(frame, name):
    """(distinct, present) when text column ``name`` of ``frame`` has a distinct value in
    nearly every cell (an identifier, which one-hot encoding cannot generalise from); else
    None."""
    cells = frame[name]
    present = int(cells.notna().sum())
    distinct = int(cells.nunique(dropna=True))
    if present >= ID_MIN_ROWS and distinct >= ID_SHARE * present:
        return distinct, present
    return None


# ---- targets ------------------------------------------------------------------------------------


def regression_targets(table, names):
    """(y, notes): y float64, (n,) for one target or (n, k) for several."""
    hint = " (for class labels, use --classify)"
    columns = [numeric_values(table, name, hint=hint) for name in names]
    notes = []
    for name, values in zip(names, columns):
        distinct = np.unique(values)
        if (len(distinct) <= FEW_CLASSES and np.all(distinct == np.round(distinct))
                and len(values) >= 3 * len(distinct)):
            shown = ", ".join(f"{v:g}" for v in distinct)
            notes.append(f"target {name!r} holds only {len(distinct)} distinct integers "
                         f"({shown}): if they are classes, use --classify")
    y = columns[0] if len(columns) == 1 else np.column_stack(columns)
    return y, notes


def class_targets(table, names):
    """y: class labels (n,) for one target; a 0/1 indicator matrix (n, k) for several
    (multilabel)."""
    if len(names) == 1:
        return _labels(table, names[0])
    columns = []
    for name in names:
        values = _labels(table, name)
        if values.dtype == bool:
            values = values.astype(np.int64)
        if values.dtype == object or not set(np.unique(values)) <= {0, 1}:
            raise DataError(
                f"{table.shown}: column {name!r} holds "
                f"{names_list([str(v) for v in np.unique(values)], 5)}; with several --target "
                "columns and --classify, each target is a 0/1 label (multilabel)")
        columns.append(values.astype(np.int64))
    return np.column_stack(columns)


def _labels(table, name):
    """Class labels of one column: integers, floats or booleans when every cell is one, else
    the stripped strings. Missing cells are an error."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    cells = table.frame[name]
    missing = np.flatnonzero(cells.isna().to_numpy())
    if missing.size:
        table.fail(int(missing[0]), name, "missing class label (an empty or NaN cell); fill it "
                   "or remove the row")
    if is_bool_dtype(cells):
        return cells.to_numpy(dtype=bool)
    if is_numeric_dtype(cells):
        values = numeric_values(table, name)
        fractional = np.flatnonzero(values != np.round(values))
        if fractional.size:
            cell = str(cells.iloc[fractional[0]])  # (its text, not NumPy's repr)
            table.fail(int(fractional[0]), name, f"{cell!r} is not a class label: labels are "
                       "integers or text (for a numeric target, drop --classify)")
        return values.astype(np.int64)
    return _text_values(cells)
