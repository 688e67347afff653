"""Tables for the ``fastfnn`` command: CSV and Parquet files, and the bundled toy datasets.

CSV files have a header row and one sample per line. They are read with pandas, through its
pyarrow engine where pyarrow is installed (fast, multi-threaded, and no row longer than
:data:`LINE_LIMIT` is ever held: a file that is one huge line fails at once). Without pyarrow
the C engine reads them, after a streaming check of the line lengths. Parquet files
(``.parquet``) need pyarrow. A file that cannot be read is a one-line :class:`DataError` naming
the file and, where there is one, the line and column.

>>> from fastfnn.cli.data import load_dataset
>>> X, y, feature_names, target_name = load_dataset("friedman1")
>>> X.shape, target_name
((2000, 10), 'y')
"""

import csv
import importlib.util
import os
from dataclasses import dataclass
from importlib import resources

#: Bundled datasets (package data ``fastfnn/data/<name>.csv``): name -> one-line description.
DATASETS = {
    "friedman1": "Friedman #1 regression, 2000 rows x 10 features (5 irrelevant), noise sd 1",
    "sine": "1-D noisy sine curve, 500 rows: y = sin(x) + 0.1 N(0, 1)",
    "diabetes": "diabetes progression (Efron et al. 2004), 442 patients x 10 features",
    "iris": "iris species (Fisher 1936), 150 flowers x 4 measurements; classification",
}
DEFAULT_DATASET = "friedman1"
#: Longest CSV line read (pyarrow's block size): longer ones are an error, not a memory spike.
LINE_LIMIT = 1 << 20
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataError(ValueError):
    """A table that cannot be used; the message names the file, line and column if known."""


def dataset_path(name):
    """Path of the bundled dataset ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise DataError(f"no bundled dataset {name!r}; the bundled ones are: {', '.join(DATASETS)}")
    return os.fspath(resources.files("fastfnn") / "data" / f"{name}.csv")


def resolve_data(data):
    """(path, label, name in messages) of DATA: an existing path, else a bundled dataset."""
    if data in DATASETS and not os.path.exists(data):
        return dataset_path(data), f"{data} (bundled dataset)", f"{data}.csv (bundled)"
    if not os.path.exists(data):
        raise DataError(f"{data}: no such file (bundled datasets: {', '.join(DATASETS)})")
    return data, data, data


@dataclass
class Table:
    """A table read from a file: ``frame`` (a pandas DataFrame, one column per header name)."""

    path: str
    shown: str
    frame: object
    parquet: bool = False

    @property
    def header(self):
        return list(self.frame.columns)

    def where(self, row):
        """Where data row ``row`` (0-based) is in the file: 'line N' (CSV) or 'row N'."""
        if self.parquet:
            return f"row {row + 1}"
        return f"line {_line_of_record(self.path, row)}"

    def fail(self, row, column, problem):
        """Raise the DataError for the cell at data row ``row`` of ``column``."""
        raise DataError(f"{self.shown}, {self.where(row)}, column {column!r}: {problem}")

    def require(self, names, purpose=""):
        """Raise a DataError naming the columns of ``names`` that the table lacks."""
        missing = [name for name in names if name not in self.frame.columns]
        if missing:
            raise DataError(f"{self.shown}: missing column{'s' if len(missing) > 1 else ''}"
                            f" {names_list(missing, quote=False)}{purpose} (the columns are: "
                            f"{names_list(self.header)})")


def read_table(path, shown=None, text=()):
    """Read a CSV or Parquet file (by its suffix) into a :class:`Table`; DataError on any
    problem. ``shown`` is how messages call the file (default: ``path``). The CSV columns
    named in ``text`` (names, or a function of the header's names that returns them) are read
    as the text of their cells (a model's text columns and its id: ``007`` stays ``007``,
    whatever else the column holds); so is every column that pandas' pyarrow engine would
    read as dates, times or timestamps (its C engine, plain ``pd.read_csv``, keeps their
    text); the others are read as pandas infers."""
    path = os.fspath(path)
    shown = path if shown is None else shown
    if os.path.isdir(path):
        raise DataError(f"{shown}: is a directory, not a data file")
    try:
        if path.lower().endswith(PARQUET_SUFFIXES):
            frame, parquet = _read_parquet(path, shown), True
        else:
            frame, parquet = _read_csv(path, shown, text), False
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except PermissionError:
        raise DataError(f"{shown}: cannot read the file (permission denied)") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a directory, not a data file") from None
    except OSError as exc:
        raise DataError(f"{shown}: cannot read the file ({exc.strerror or exc})") from None
    if len(frame) == 0:
        raise DataError(f"{shown}: the file has a header but no data rows")
    return Table(path, shown, frame, parquet)


def _read_parquet(path, shown):
    if importlib.util.find_spec("pyarrow") is None:
        raise DataError(f"{shown}: reading Parquet files needs pyarrow: pip install pyarrow")
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors on a file that is not Parquet
        raise DataError(f"{shown}: not a readable Parquet file ({_first_line(exc)})") from None
    names = [str(name).strip() for name in frame.columns]
    _check_names(names, shown)
    frame.columns = names
    for name in names:
        if _booleans_with_gaps(frame[name]):  # True/False/None objects, as pandas writes them
            frame[name] = frame[name].astype("boolean")
    return frame


def _read_csv(path, shown, text=()):
    import pandas as pd

    header, raw = _read_header(path, shown)
    text = text(header) if callable(text) else text
    engine = csv_engine()
    if engine == "c":
        _scan(path, shown, len(header), stop_at_first_row=False)  # the C engine holds a line
    options = dict(engine=engine, encoding="utf-8-sig" if engine == "c" else None)
    try:
        frame = pd.read_csv(path, **options)
        if len(frame.columns) != len(header):  # pragma: no cover - pandas and csv disagree
            raise DataError(f"{shown}: could not read the header row")
        frame.columns = header
        for name in header:
            if name not in text and _booleans_with_gaps(frame[name]):
                frame[name] = frame[name].astype("boolean")  # a numeric column, as without gaps
        again = {cell: name for name, cell in zip(header, raw)
                 if _read_again(frame[name], name in text)}
        if again:  # (these columns alone: pyarrow's dtype dict fails on another's int gap)
            cells = pd.read_csv(path, usecols=list(again), dtype=dict.fromkeys(again, str),
                                **options)
            if len(cells) != len(frame):
                raise DataError(f"{shown}: the file changed while it was read")
            for cell, name in again.items():
                frame[name] = cells[cell]
    except (OSError, MemoryError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow parse errors: find the line
        _scan(path, shown, len(header))
        raise DataError(f"{shown}: not a readable CSV file ({_first_line(exc)})") from None
    return frame


def _booleans_with_gaps(cells):
    """Whether pandas read ``cells`` as True/False with missing cells (which it keeps as
    objects, where a column without gaps is of bool dtype)."""
    from pandas.api.types import infer_dtype, is_object_dtype

    return is_object_dtype(cells) and infer_dtype(cells, skipna=True) == "boolean"


def _read_again(cells, as_text):
    """Whether a column pandas read as ``cells`` is to be read again as its cells' text: it
    was parsed into values other than text, and is wanted ``as_text`` or holds neither numbers
    nor booleans (dates, times, timestamps)."""
    from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype

    if infer_dtype(cells, skipna=True) in ("string", "empty"):
        return False
    return as_text or not (is_numeric_dtype(cells) or is_bool_dtype(cells))


def csv_engine():
    """pandas' CSV engine: 'pyarrow' where pyarrow is installed, else 'c'."""
    return "pyarrow" if importlib.util.find_spec("pyarrow") is not None else "c"


def _bounded_lines(f, shown):
    """The lines of text file ``f``, each at most LINE_LIMIT characters (DataError if longer)."""
    number = 0
    while True:
        line = f.readline(LINE_LIMIT + 1)
        if not line:
            return
        number += 1
        if len(line) > LINE_LIMIT:
            raise DataError(f"{shown}, line {number}: longer than {LINE_LIMIT // 1024} KiB; is it a "
                            "CSV file with one row per line?")
        yield line


def _csv_rows(f, shown):
    """(first line, cells) of each record of CSV text file ``f``; blank lines are skipped."""
    reader = csv.reader(_bounded_lines(f, shown))
    before = 0
    try:
        for row in reader:
            start, before = before + 1, reader.line_num
            if row:
                yield start, row
    except csv.Error as exc:
        if "NUL" in str(exc):
            raise DataError(f"{shown}: not a text CSV file (it holds NUL bytes)") from None
        raise DataError(f"{shown}, line {reader.line_num}: not valid CSV ({exc})") from None


def _open_text(path):
    csv.field_size_limit(LINE_LIMIT)
    return open(path, newline="", encoding="utf-8-sig")


def _read_header(path, shown):
    """``(names, cells)``: the stripped column names of the first non-blank line, and its
    cells as they are."""
    try:
        with _open_text(path) as f:
            header = next((row for _, row in _csv_rows(f, shown)), None)
    except UnicodeDecodeError:
        raise DataError(f"{shown}: not a text CSV file (it is not valid UTF-8)") from None
    if header is None:
        raise DataError(f"{shown}: the file is empty (expected a header row and data rows)")
    names = [cell.strip() for cell in header]
    _check_names(names, shown)
    return names, header


def _check_names(names, shown):
    for j, name in enumerate(names):
        if not name:
            raise DataError(f"{shown}: column {j + 1} of the header has no name")
        if name in names[:j]:
            raise DataError(f"{shown}: the header names column {name!r} twice")


def _scan(path, shown, n_columns, stop_at_first_row=False):
    """Stream through a CSV file with bounded memory and raise the DataError for its first
    problem (a line too long, invalid UTF-8, bad quoting, a row of the wrong length)."""
    try:
        with _open_text(path) as f:
            rows = _csv_rows(f, shown)
            next(rows, None)  # the header
            for line, row in rows:
                if len(row) != n_columns:
                    raise DataError(f"{shown}, line {line}: {len(row)} cells, but the header "
                                    f"has {n_columns} columns")
                if stop_at_first_row:
                    return
    except UnicodeDecodeError:
        raise DataError(f"{shown}: not a text CSV file (it is not valid UTF-8)") from None


def _line_of_record(path, index):
    """The line on which data record ``index`` (0-based, header and blank lines excluded)
    starts; read again with bounded memory, only to report a problem."""
    with _open_text(path) as f:
        rows = _csv_rows(f, path)
        next(rows, None)
        for i, (line, _) in enumerate(rows):
            if i == index:
                return line
    return "?"  # pragma: no cover - the record was read before


def load_dataset(name=DEFAULT_DATASET, classify=None):
    """Load a bundled dataset: ``(X, y, feature_names, target_name)``, target = last column.

    ``classify`` defaults to True for 'iris' (string labels) and False otherwise.
    """
    import numpy as np

    classify = (name == "iris") if classify is None else classify
    frame = read_table(dataset_path(name), f"{name}.csv").frame
    features, target = list(frame.columns[:-1]), frame.columns[-1]
    y = frame[target].to_numpy(dtype=object if classify else np.float64)
    return frame[features].to_numpy(np.float64), y, features, target


def names_list(names, limit=12, quote=True):
    """'a', 'b', ... (at most ``limit`` names, then the count)."""
    shown = ", ".join(repr(n) if quote else str(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def short(text, limit=40):
    """``text`` cut to ``limit`` characters."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _first_line(exc):
    text = str(exc).strip()
    return short(text.splitlines()[0] if text else type(exc).__name__, 200)
