"""Text cells as scikit-learn's imputers can read them: :class:`TextCells`.

pandas marks a missing text cell in several ways: ``NaN`` (the default reader), ``None``,
``pandas.NA`` (nullable string and pyarrow columns) or ``NaT``. scikit-learn's
``SimpleImputer`` takes one marker, and ``pandas.NA`` none at all (comparing with it raises
"boolean value of NA is ambiguous"). ``TextCells`` turns every one of them into ``None`` and
keeps every other cell as it is, so that one imputer after it sees every gap.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


def _missing(cell):
    """Whether ``cell`` is a missing marker: None, a float NaN, pandas' NA or NaT."""
    if cell is None:
        return True
    if isinstance(cell, float):
        return cell != cell
    return type(cell).__name__ in ("NAType", "NaTType")  # pandas' (not imported)


_MISSING = np.frompyfunc(_missing, 1, 1)


class TextCells(TransformerMixin, BaseEstimator):
    """Every missing text cell (None, NaN, pandas' NA, NaT) as None; other cells unchanged.

    ``fit`` records the column count (and names, from a frame); ``transform`` returns an
    object array (n_samples, n_features). Stateless otherwise: nothing is learned.
    """

    def fit(self, X, y=None):
        """Record ``n_features_in_`` (and ``feature_names_in_`` for a frame)."""
        columns = getattr(X, "columns", None)
        self.n_features_in_ = np.shape(X)[1]
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(columns, dtype=object)
        return self

    def transform(self, X):
        """(n_samples, n_features) object array of X's cells, missing ones None."""
        check_is_fitted(self, "n_features_in_")
        cells = X.to_numpy(dtype=object) if hasattr(X, "to_numpy") else np.asarray(X, object)
        if cells.ndim != 2 or cells.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {cells.shape}; TextCells was fitted on "
                             f"{self.n_features_in_} column(s).")
        cells = cells.copy()
        cells[_MISSING(cells).astype(bool)] = None
        return cells

    def get_feature_names_out(self, input_features=None):
        """The input's column names (the cells keep their columns)."""
        check_is_fitted(self, "n_features_in_")
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return names
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags
