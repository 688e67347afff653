"""Inputs that are not what they claim: a model "file" that is a FIFO, a device or a directory
is refused unread (a FIFO without a writer must not hang the load); a CSV row longer than its
header is refused at its line, never read with its columns shifted."""

import os
import threading

import pytest

import fastfnn
from fastfnn import FNNRegressor


def _within(seconds, call):
    """``call()``'s exception (or None), failing the test where it does not return in time."""
    result = {}

    def run():
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    return result.get("error")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_model_path_that_is_no_regular_file_is_refused_unread(tmp_path, kind):
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        path = tmp_path / "model.skops"
        os.mkfifo(path)
    elif kind == "device":
        path = "/dev/zero"
        if not os.path.exists(path):
            pytest.skip("no /dev/zero here")
    else:
        path = tmp_path
    error = _within(30, lambda: fastfnn.load_model(path))
    assert isinstance(error, fastfnn.model_io.ModelFileError), error
    assert ("not a regular file" in str(error)) or ("directory" in str(error))


@pytest.mark.parametrize("line", [2, 3])
def test_a_csv_row_longer_than_its_header_is_refused_at_its_line(tmp_path, line):
    """pandas takes the extra first cells of a block's first row as an index and shifts every
    column; the streaming reader names the row instead."""
    pytest.importorskip("dask")
    from fastfnn.scaling import fit_streaming

    rows = [f"{i},{i + 1},{i + 2}" for i in range(40)]
    rows[line - 2] = "9," + rows[line - 2]
    (tmp_path / "part-1.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"part-1.csv, line {line} \(4 cells, the header has "
                                         r"3\)"):
        fit_streaming(FNNRegressor(max_iter=1), str(tmp_path / "part-*.csv"), target="y",
                      epochs=1, validation_fraction=0.0)


def test_reading_options_that_would_move_rows_between_blocks_are_refused(tmp_path):
    """CSV files are read in byte blocks, one header a file: options that change which bytes
    make a row (skiprows, nrows, header, compression...) would give wrong partitions silently."""
    pytest.importorskip("dask")
    from fastfnn.scaling import fit_streaming

    (tmp_path / "part-1.csv").write_text("a;b;y\n" + "\n".join(f"{i};{i};{i}" for i in range(9)))
    glob = str(tmp_path / "part-*.csv")
    with pytest.raises(ValueError, match=r"read_kwargs \['nrows', 'skiprows'\] are not taken"):
        fit_streaming(FNNRegressor(max_iter=1), glob, target="y", epochs=1,
                      read_kwargs={"sep": ";", "skiprows": 2, "nrows": 5})
    fitted = fit_streaming(FNNRegressor(max_iter=1), glob, target="y", epochs=1,
                           validation_fraction=0.0, read_kwargs={"sep": ";"})
    assert fitted.n_train_rows == 9
