"""The toy datasets shipped with fastfnn, and the CSV reading the ``fastfnn`` command uses.

CSV files have a header row and one sample per line; the target is the last column unless another
is named. Reading is done with the standard library's ``csv`` module and NumPy (no pandas), so a bad
cell is reported by file, line and column in a one-line :class:`DataError`.

>>> from fastfnn.cli.data import load_dataset
>>> X, y, feature_names, target_name = load_dataset("friedman1")
>>> X.shape, target_name
((2000, 10), 'y')
"""

import csv
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

#: Bundled datasets (package data ``fastfnn/data/<name>.csv``): name -> one-line description.
DATASETS = {
    "friedman1": "Friedman #1 regression, 2000 rows x 10 features (5 irrelevant), noise sd 1",
    "sine": "1-D noisy sine curve, 500 rows: y = sin(x) + 0.1 N(0, 1)",
    "diabetes": "diabetes progression (Efron et al. 2004), 442 patients x 10 features",
    "iris": "iris species (Fisher 1936), 150 flowers x 4 measurements; classification",
}
DEFAULT_DATASET = "friedman1"


class DataError(ValueError):
    """A CSV file that cannot be used; the message names the file, line and column if known."""


def dataset_path(name):
    """Path of the bundled dataset ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise DataError(f"no bundled dataset {name!r}; the bundled ones are: {', '.join(DATASETS)}")
    return os.fspath(resources.files("fastfnn") / "data" / f"{name}.csv")


@dataclass
class Table:
    """A parsed CSV file: column names and the data rows as strings (with their line numbers)."""

    path: str
    header: list
    rows: list
    lines: list

    def column_index(self, name):
        """Position of the column called ``name`` (DataError if there is none)."""
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(
                f"{self.path}: no column {name!r} (the columns are: {_names(self.header)})"
            ) from None

    def floats(self, columns):
        """The given column positions as a float64 array (n_rows, len(columns)); every cell must
        be a finite number."""
        cells = [[row[j] for j in columns] for row in self.rows]
        try:
            values = np.array(cells, dtype=np.float64).reshape(len(self.rows), len(columns))
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all():
            return values
        for i, row in enumerate(cells):  # slow path: find the first bad cell
            for j, cell in zip(columns, row):
                self._check_number(cell, i, j)
        raise DataError(f"{self.path}: could not read the numbers")  # pragma: no cover

    def labels(self, column):
        """Class labels of one column: integers or floats when every cell is a number, else the
        stripped strings. Empty cells are an error."""
        cells = [row[column].strip() for row in self.rows]
        for i, cell in enumerate(cells):
            if not cell:
                self._fail(i, column, "empty cell (missing value)")
        try:
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            return np.array(cells, dtype=object)
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            self._fail(i, column, f"{cells[i]!r} is not a finite number")
        if np.all(values == np.round(values)):
            return values.astype(np.int64)
        return values

    def _check_number(self, cell, i, j):
        text = cell.strip()
        if not text:
            self._fail(i, j, "empty cell (missing value)")
        try:
            value = float(text)
        except ValueError:
            self._fail(i, j, f"{_short(text)!r} is not a number")
        if not np.isfinite(value):
            self._fail(i, j, f"{text!r} is not a finite number (NaN and inf are not allowed)")

    def _fail(self, i, j, problem):
        raise DataError(f"{self.path}, line {self.lines[i]}, column {self.header[j]!r}: {problem}")


def read_csv(path, name=None):
    """Parse a CSV file with a header row into a :class:`Table` (DataError on any problem).

    Blank lines are skipped; every other line must have as many cells as the header. ``name``
    is how messages call the file (default: ``path``).
    """
    shown = os.fspath(path) if name is None else name
    try:
        return _read_csv(path, shown)
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{shown}: cannot read the file ({exc.strerror or exc})") from None


def _read_csv(path, shown):
    if os.path.isdir(path):
        raise DataError(f"{shown}: is a directory, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header, rows, lines = None, [], []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{shown}, line {reader.line_num}: {len(row)} cells, but the header has "
                        f"{len(header)} columns"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except PermissionError:
        raise DataError(f"{shown}: permission denied") from None
    except UnicodeDecodeError:
        raise DataError(f"{shown}: not a text CSV file (it is not valid UTF-8)") from None
    except csv.Error as exc:
        raise DataError(f"{shown}: not a valid CSV file ({exc})") from None
    if header is None:
        raise DataError(f"{shown}: the file is empty (expected a header row and data rows)")
    if not rows:
        raise DataError(f"{shown}: the file has a header but no data rows")
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{shown}: column {j + 1} of the header has no name")
        if name in header[:j]:
            raise DataError(f"{shown}: the header names column {name!r} twice")
    return Table(shown, header, rows, lines)


def split_target(table, target=None, classify=False):
    """Features and target of a table: ``(X, y, feature_names, target_name)``.

    The target is the last column unless ``target`` names another; every other column is a
    feature and must be numeric. With ``classify`` the target holds class labels (numbers or
    strings), otherwise finite numbers.
    """
    t = table.column_index(target) if target is not None else len(table.header) - 1
    features = [j for j in range(len(table.header)) if j != t]
    if not features:
        raise DataError(
            f"{table.path}: needs at least one feature column besides the target "
            f"{table.header[t]!r}"
        )
    X = table.floats(features)
    if classify:
        y = table.labels(t)
    else:
        try:
            y = table.floats([t])[:, 0]
        except DataError as exc:
            raise DataError(f"{exc} (for class labels, use --classify)") from None
    return X, y, [table.header[j] for j in features], table.header[t]


def load_dataset(name=DEFAULT_DATASET, classify=None):
    """Load a bundled dataset: ``(X, y, feature_names, target_name)``, target = last column.

    ``classify`` defaults to True for 'iris' (string labels) and False otherwise.
    """
    classify = (name == "iris") if classify is None else classify
    return split_target(read_csv(dataset_path(name), f"{name}.csv"), classify=classify)


def _names(names, limit=12):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _short(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "..."
