"""CSV files read one block at a time, each problem reported at its file and line.

The files are cut into byte blocks exactly as ``dask.dataframe.read_csv`` cuts them
(``dask.bytes.read_bytes``'s offsets, each block extended to whole lines by fsspec's
``seek_delimiter``), so a partition here holds the same rows as the same partition of dask's
frame. Each block is parsed by pandas' C reader on its own, with its file's own header: files
may order their columns differently, and a file that lacks a column, holds a cell that is not a
number, bytes that are not UTF-8 or a row of the wrong length is an error naming that file and
line, raised when its block is read. A file with a header and no data rows (or no bytes at all)
holds no partition: it is listed in :attr:`CsvTable.skipped`.

Class labels are read as their cells' text in every block (one block of numbers and another
holding a word must not read the same label two ways), and typed once every label of the table
is known (:meth:`CsvTable.settle_labels`): as reading the whole column at once would type them.

Only one block's bytes, its parsed frame and the float64 features are held at a time, and
nothing is kept between blocks: the memory of a read is a few times the block size, whatever
the number or size of the files.
"""

import csv
import io
import os

import numpy as np
import pandas as pd
from fsspec.utils import seek_delimiter

#: Bytes read at a time while counting the lines before a block (only to report a problem).
_COUNT_CHUNK = 1 << 20


class CsvDataError(ValueError):
    """A CSV file that cannot be used; the message names the file, and the line if known."""


def block_offsets(size, blocksize):
    """(offsets, lengths) of the blocks of a file of ``size`` bytes, as dask's ``read_bytes``
    computes them: the file cut into ``size // blocksize`` equal parts (one when smaller),
    spare bytes spread around; none for an empty file."""
    if size == 0:
        return [], []
    if blocksize is None:
        return [0], [size]
    step = size / (size // blocksize) if size % blocksize and size > blocksize else blocksize
    place, offsets, lengths = 0, [0], []
    while size - place > (step * 2) - 1:
        place += step
        offsets.append(int(place))
        lengths.append(offsets[-1] - offsets[-2])
    lengths.append(size - offsets[-1])
    return offsets, lengths


def read_block(f, offset, length):
    """(start, bytes) of the block at ``offset``: from the first line start after ``offset``
    (0 stays 0) to the end of the line holding byte ``offset + length``."""
    f.seek(offset)
    seek_delimiter(f, b"\n", 2**16)
    start = f.tell()
    f.seek(offset + length)
    seek_delimiter(f, b"\n", 2**16)
    end = f.tell()
    f.seek(start)
    return start, f.read(end - start)


def lines_before(path, start):
    """The number of line breaks in the first ``start`` bytes of ``path``."""
    count = 0
    with open(path, "rb") as f:
        while start > 0:
            chunk = f.read(min(_COUNT_CHUNK, start))
            if not chunk:
                break
            count, start = count + chunk.count(b"\n"), start - len(chunk)
    return count


def _record_lines(data, skip_header):
    """The 0-based line (within ``data``) of each data record, blank lines skipped as pandas
    skips them (quoted line breaks are not followed: used only to report a problem)."""
    lines = data.split(b"\n")
    records = [k for k, line in enumerate(lines) if line.strip(b"\r\t ")]
    return records[1:] if skip_header else records


# pandas.read_csv's arguments a block may be read with: how a cell is written, not where rows are.
READ_KWARGS = ("sep", "delimiter", "decimal", "thousands", "quotechar", "quoting", "doublequote",
               "escapechar", "comment", "na_values", "keep_default_na", "na_filter",
               "skipinitialspace", "true_values", "false_values")

class CsvTable:
    """CSV files read partition by partition: features and target by column name.

    Parameters
    ----------
    files : list of str
        The files, in order.
    columns : callable
        ``columns(header) -> (features, target)``: the feature names and the target (a name, a
        list of names, or None) from the first non-empty file's header.
    blocksize : int or None
        Bytes per block (None: one block per file).
    read_kwargs : dict, optional
        More arguments for ``pandas.read_csv``: those of ``READ_KWARGS``, which describe a
        cell; arguments that would change which bytes make a row or a block (``skiprows``,
        ``nrows``, ``header``, ``compression``, ``encoding``...) are refused.
    labels : bool
        The target holds class labels: read as text until :meth:`settle_labels` types them.
    """

    def __init__(self, files, columns, blocksize=None, read_kwargs=None, labels=False):
        self.read_kwargs = dict(read_kwargs or {})
        self._label_values = None  # text -> label, once settle_labels has typed them
        unknown = sorted(set(self.read_kwargs) - set(READ_KWARGS))
        if unknown:
            raise ValueError(f"read_kwargs {unknown} are not taken for CSV files, which are read "
                             f"in blocks (byte offsets, one header a file, UTF-8): give only "
                             f"{', '.join(READ_KWARGS)}.")
        self.skipped, self.headers, self.blocks = [], {}, []
        for path in files:
            header = self._header(path)
            if header is None:
                self.skipped.append(path)
                continue
            self.headers[path] = header
            offsets, lengths = block_offsets(os.path.getsize(path), blocksize)
            self.blocks += [(path, o, n) for o, n in zip(offsets, lengths)]
        if not self.headers:
            shown = files[0] if len(files) == 1 else f"{len(files)} files ({files[0]}, ...)"
            raise CsvDataError(f"{shown}: no data rows (a CSV file needs a header row and data "
                               f"rows).")
        first = next(iter(self.headers))
        features, self.target = columns(list(self.headers[first]))
        self.features = list(features)
        tnames = [] if self.target is None else (
            [self.target] if isinstance(self.target, str) else list(self.target))
        self._needed = self.features + [t for t in tnames if t not in self.features]
        self._text_columns = {t: str for t in tnames} if labels else {}
        for path, header in self.headers.items():
            missing = [c for c in self._needed if c not in header]
            if missing:
                raise CsvDataError(
                    f"{path}: missing column(s) {missing} (its columns are {header}; the first "
                    f"file {first} has {self.headers[first]}): give every file the same "
                    f"columns.")
        self.n_partitions = len(self.blocks)

    def _header(self, path):
        """The column names of ``path``, or None when it holds no data row."""
        if os.path.getsize(path) == 0:
            return None
        try:
            head = pd.read_csv(path, nrows=1, **self.read_kwargs)
        except UnicodeDecodeError as err:
            raise CsvDataError(f"{path}: not a text CSV file (not valid UTF-8 near byte "
                               f"{err.start} of its first lines).") from None
        except pd.errors.EmptyDataError:
            return None
        except (pd.errors.ParserError, ValueError) as err:
            raise CsvDataError(f"{path}: not a readable CSV file ({_first_line(err)}).") from None
        return None if len(head) == 0 else list(head.columns)

    def where(self, i, row=None):
        """Where partition ``i`` (or its data row ``row``, 0-based) is: 'FILE, line N'."""
        path, offset, length = self.blocks[i]
        with open(path, "rb") as f:
            start, data = read_block(f, offset, length)
        first = lines_before(path, start) + 1
        if row is None:
            return f"{path}, from line {first}"
        records = _record_lines(data, skip_header=offset == 0)
        if row >= len(records):  # pragma: no cover - quoted line breaks
            return path
        text = data.split(b"\n")[records[row]].decode("utf-8", errors="replace")
        cells, width = _cells(text), len(self.headers[path])
        return f"{path}, line {first + records[row]}" + (
            f" ({cells} cells, the header has {width})" if cells != width else "")

    def load(self, i):
        """Partition ``i`` as (X, y): X a float64 DataFrame of the features (one block), y the
        target's values (None without a target)."""
        path, offset, length = self.blocks[i]
        with open(path, "rb") as f:
            start, data = read_block(f, offset, length)
        frame = self._parse(path, offset, start, data)
        del data
        X = pd.DataFrame(self._float_features(frame, i), columns=self.features, copy=False)
        y = None if self.target is None else frame[self.target].to_numpy()
        if y is not None and self._label_values is not None:
            y = pd.Series(y.ravel()).map(self._label_values).to_numpy().reshape(y.shape)
        return X, y

    def settle_labels(self, texts):
        """Type the class labels from all of their texts (``texts``: every label of the
        table, none missing): as ``pandas.read_csv`` types a column holding just those
        (numbers where all are numbers, True/False, else text), every partition's labels
        read so from here on; returns the labels so typed, sorted (the classes)."""
        column = io.StringIO()
        pd.Series(texts, name="label").to_csv(column, index=False, quoting=csv.QUOTE_ALL)
        column.seek(0)
        typing = {k: v for k, v in self.read_kwargs.items()
                  if k in ("decimal", "thousands", "true_values", "false_values")}
        values = pd.read_csv(column, keep_default_na=False, **typing)["label"].to_numpy()
        self._label_values = dict(zip(texts, values))
        return np.unique(values)

    @property
    def frame(self):
        """The features as a lazy dask DataFrame, one partition per block (for cluster work)."""
        import dask.dataframe as dd

        meta = pd.DataFrame({c: pd.Series(dtype="float64") for c in self.features})
        return dd.from_map(_features_of, [self] * self.n_partitions, range(self.n_partitions),
                           meta=meta, label="read-csv-blocks")

    def __dask_tokenize__(self):
        return (type(self).__name__, self.blocks, self.features, self.target,
                sorted(self.read_kwargs.items()))

    def _parse(self, path, offset, start, data):
        kwargs = dict(self.read_kwargs)  # every column: usecols would hide a row too long
        if offset:
            kwargs.update(header=None, names=self.headers[path])
        if self._text_columns:
            kwargs["dtype"] = self._text_columns
        try:
            frame = pd.read_csv(io.BytesIO(data), **kwargs)
        except UnicodeDecodeError:
            try:
                data.decode("utf-8")
                bad = len(data)
            except UnicodeDecodeError as err:
                bad = err.start
            line = lines_before(path, start) + data[:bad].count(b"\n") + 1
            raise CsvDataError(f"{path}, line {line}: not valid UTF-8 text (byte "
                               f"{data[bad:bad + 1]!r}); is it a CSV file?") from None
        except (pd.errors.ParserError, ValueError) as err:
            raise CsvDataError(f"{self._bad_row(path, offset, start, data)}: not a readable CSV "
                               f"row ({_first_line(err)}).") from None
        if not frame.index.equals(pd.RangeIndex(len(frame))):
            # a first row longer than the header: pandas took its first cells as an index
            raise CsvDataError(f"{self._bad_row(path, offset, start, data)}: a row with more "
                               "cells than the header.")
        if len(frame.columns) and frame[frame.columns[-1]].isna().any():
            # pandas fills a short row's last cells as missing: look for one where the last
            # column has a gap (the lines are read only then)
            short = self._bad_row(path, offset, start, data, fewer=True)
            if short is not None:
                raise CsvDataError(f"{short}: a row with fewer cells than the header.")
        return frame

    def _bad_row(self, path, offset, start, data, fewer=False):
        """'FILE, line N' of the first row whose cell count differs from the header's (with
        ``fewer``: is less than it; None where none does)."""
        width = len(self.headers[path])
        first = lines_before(path, start) + 1
        text = data.decode("utf-8", errors="replace").split("\n")
        for k, line in enumerate(text):
            cells = _cells(line)
            if cells and (k > 0 or offset) and (cells < width if fewer else cells != width):
                return f"{path}, line {first + k} ({cells} cells, the header has {width})"
        return None if fewer else f"{path}, lines {first}-{first + len(text) - 1}"

    def _float_features(self, frame, i):
        """The features as one float64 (n, n_features) array; a cell that is not a number is
        an error at its line."""
        for name in self.features:
            cells = frame[name]
            if pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
                continue
            if pd.api.types.infer_dtype(cells, skipna=True) == "boolean":  # with blank cells
                frame[name] = cells.astype("boolean")
                continue
            parsed = pd.to_numeric(cells, errors="coerce")
            bad = np.flatnonzero(cells.notna().to_numpy() & parsed.isna().to_numpy())
            row = int(bad[0]) if bad.size else 0
            raise CsvDataError(f"{self.where(i, row)}, column {name!r}: "
                               f"{str(cells.iloc[row])[:40]!r} is not a number (the column is "
                               f"not numeric: every feature must be a number; drop or encode "
                               f"this column).")
        return frame[self.features].to_numpy(dtype=np.float64, na_value=np.nan)


def _cells(line):
    """The number of CSV cells of one line of text (0 for a blank line)."""
    import csv

    line = line.rstrip("\r")
    if not line.strip():
        return 0
    try:
        return len(next(csv.reader([line])))
    except (csv.Error, StopIteration):  # pragma: no cover - an unterminated quote
        return 0


def _features_of(table, i):
    """Partition ``i``'s features (a module-level function: sent to dask workers)."""
    return table.load(i)[0]


def _first_line(err):
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]
