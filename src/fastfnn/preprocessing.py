"""Text cells as scikit-learn's imputers can read them: :class:`TextCells`.

pandas marks a missing text cell in several ways: ``NaN`` (the default reader), ``None``,
``pandas.NA`` (nullable string and pyarrow columns) or ``NaT``. scikit-learn's
``SimpleImputer`` takes one marker, and ``pandas.NA`` none at all (comparing with it raises
"boolean value of NA is ambiguous"). ``TextCells`` turns every one of them into ``None``, so
that one imputer after it sees every gap, and a date or a time (a Parquet date column's
Timestamps) into the text the ``fastfnn`` command reads for it (``str(cell)``); every other
cell stays as it is (the encoder compares numbers as numbers).
"""

import datetime

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _missing(cell):
    """Whether ``cell`` is a missing marker: None, a float NaN (Python's or NumPy's), pandas'
    NA or NaT, or NumPy's NaT."""
    if cell is None:
        return True
    if isinstance(cell, (float, np.floating)):
        return cell != cell
    if isinstance(cell, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(cell))
    return type(cell).__name__ in ("NAType", "NaTType")  # pandas' (not imported)


_MISSING = np.frompyfunc(_missing, 1, 1)
_WHEN = (datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64)
_DATE_AS_TEXT = np.frompyfunc(lambda cell: str(cell) if isinstance(cell, _WHEN) else cell, 1, 1)


class TextCells(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Every missing text cell (None, NaN, pandas' NA, NaT) as None; a date, time or duration
    as its text (``str(cell)``: a pandas Timestamp as ``'2021-01-01 00:00:00'``, as the
    ``fastfnn`` command reads it); other cells unchanged.

    ``fit`` records the column count (and names, from a frame), checked as scikit-learn's
    transformers check them, and ``dates_as_text_`` (a TextCells fitted before dates became
    text has none, and leaves them as they were: its encoder learned them so); ``transform``
    returns an object array (n_samples, n_features). Nothing else is learned.
    """

    def fit(self, X, y=None):
        """Record ``n_features_in_`` (and ``feature_names_in_`` for a frame), and that dates
        become text (``dates_as_text_``)."""
        validate_data(self, X, dtype=object, ensure_all_finite=False)
        self.dates_as_text_ = True
        return self

    def transform(self, X):
        """(n_samples, n_features) object array of X's cells, missing ones None, dates as
        text."""
        check_is_fitted(self, "n_features_in_")
        cells = validate_data(self, X, dtype=object, ensure_all_finite=False, reset=False)
        # a copy of its own (validation may hand back the input, or a read-only array of
        # pyarrow-backed columns)
        cells = np.array(cells, dtype=object)
        missing = _MISSING(cells).astype(bool)
        cells[missing] = None
        if getattr(self, "dates_as_text_", False):
            cells[~missing] = _DATE_AS_TEXT(cells[~missing])
        return cells

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags
