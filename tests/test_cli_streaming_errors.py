"""Streaming fit and predict on partitions that are empty, damaged or unlike the others; values
too large to standardise; outputs that cannot be written, refused before training; and the
streaming fit's memory, flat in the size of the data.

Oracles: the files themselves (the line of each planted fault is known), pandas reading the
written predictions back, and the peak resident memory (``ru_maxrss``) of a fresh process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pytest.importorskip("dask_ml")

from test_cli_harness import assert_one_line_error, run_forked, write_csv  # noqa: E402

from fastfnn import FNNRegressor  # noqa: E402
from fastfnn.scaling import EmptyFileWarning, fit_streaming, predict_streaming  # noqa: E402

HEADER = "a,b,c,y\n"
ROWS = 80  # per file


def _rows(seed, n=ROWS):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, (n, 3))
    return [f"{a:.5f},{b:.5f},{c:.5f},{a + b * c:.5f}\n" for a, b, c in X]


def _write(folder, fault=None):
    """part-0..3.csv in ``folder``; ``fault`` changes part-2.csv. Returns the line (1-based)
    of the planted fault in part-2.csv, when it has one."""
    folder.mkdir()
    line = None
    for k in range(4):
        rows = _rows(k)
        text = HEADER + "".join(rows)
        data = text.encode()
        if k == 2 and fault == "header only":
            data = HEADER.encode()
        elif k == 2 and fault == "no bytes":
            data = b""
        elif k == 2 and fault == "other columns":
            data = ("a,b,d,y\n" + "".join(rows)).encode()
        elif k == 2 and fault == "text cell":
            rows[40] = "0.5,abc,0.25,1.0\n"
            data, line = (HEADER + "".join(rows)).encode(), 42
        elif k == 2 and fault == "not utf-8":
            cut = len(HEADER) + sum(len(r) for r in rows[:30]) + 3  # inside line 32
            data, line = data[:cut] + b"\x83\xff" + data[cut:], 32
        elif k == 2 and fault == "short row":
            rows[9] = "0.5,0.25,1.0\n"
            data, line = (HEADER + "".join(rows)).encode(), 11
        elif k == 2 and fault == "long row":
            rows[59] = "0.5,0.25,1.0,2.0,3.0\n"
            data, line = (HEADER + "".join(rows)).encode(), 61
        elif k == 2 and fault == "nan":
            rows[19] = "0.5,,0.25,1.0\n"
            data, line = (HEADER + "".join(rows)).encode(), 21
        elif k == 2 and fault == "huge":
            rows[4] = "1e200,0.5,0.25,1.0\n"
            data, line = (HEADER + "".join(rows)).encode(), 6
        (folder / f"part-{k}.csv").write_bytes(data)
    return line


def _fit(path, **kw):
    return fit_streaming(FNNRegressor(hidden_layer_sizes=(4,), solver="adam", random_state=0),
                         path, "y", epochs=1, random_state=0, **kw)


# ---- the library: every error names the file and the line -------------------------------------


@pytest.mark.parametrize("fault, words", [
    ("text cell", ["column 'b'", "'abc' is not a number"]),
    ("not utf-8", ["not valid UTF-8"]),
    ("short row", ["3 cells", "the header has 4"]),
    ("long row", ["5 cells", "the header has 4"]),
    ("nan", ["column 'b'", "missing (NaN)"]),
    ("huge", ["column 'a'", "too large to standardise"]),
])
def test_fit_streaming_errors_name_the_file_and_line(tmp_path, fault, words):
    line = _write(tmp_path / "d", fault)
    with pytest.raises(ValueError) as err:
        _fit(str(tmp_path / "d" / "part-*.csv"))
    message = str(err.value)
    assert f"part-2.csv, line {line}" in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("fault, words", [("short row", ["3 cells", "fewer cells"]),
                                           ("long row", ["5 cells", "the header has 4"])])
def test_predict_streaming_refuses_a_row_of_another_cell_count(tmp_path, fault, words):
    """A short row is not a row with missing cells: refused at its line, as in fit."""
    _write(tmp_path / "clean")
    model = _fit(str(tmp_path / "clean" / "part-*.csv")).model
    line = _write(tmp_path / "d", fault)
    with pytest.raises(ValueError) as err:
        predict_streaming(model, str(tmp_path / "d" / "part-*.csv"), tmp_path / "p.csv",
                          name="y")
    message = str(err.value)
    assert f"part-2.csv, line {line}" in message, message
    for word in words:
        assert word in message, message


def test_fit_streaming_names_the_file_that_lacks_a_column(tmp_path):
    _write(tmp_path / "d", "other columns")
    with pytest.raises(ValueError, match=r"part-2\.csv: missing column\(s\) \['c'\]"):
        _fit(str(tmp_path / "d" / "part-*.csv"))


@pytest.mark.parametrize("fault", ["header only", "no bytes"])
def test_empty_files_are_skipped_with_a_warning_and_predict_works(tmp_path, fault):
    _write(tmp_path / "d", fault)
    glob = str(tmp_path / "d" / "part-*.csv")
    with pytest.warns(EmptyFileWarning, match=r"part-2\.csv: no data rows"):
        fit = _fit(glob, validation_fraction=0.34)
    assert fit.skipped_files == (str(tmp_path / "d" / "part-2.csv"),)
    assert fit.n_train_rows + fit.n_validation_rows == 3 * ROWS
    assert fit.n_validation_rows > 0 and fit.best_epoch == 1
    out = tmp_path / "p.csv"
    with pytest.warns(EmptyFileWarning, match=r"part-2\.csv"):
        rows = predict_streaming(fit.model, glob, out, name="y")
    assert rows == 3 * ROWS and len(pd.read_csv(out)) == 3 * ROWS


def test_no_validation_rows_is_refused(tmp_path):
    """A held-out partition without rows (here: a dask partition emptied by a filter) is
    refused, not a fit that reports '0 validation rows' and keeps no best epoch."""
    dd = pytest.importorskip("dask.dataframe")
    from fastfnn.scaling._stream import split_partitions

    frame = pd.DataFrame({"a": np.arange(400.0), "b": np.ones(400), "y": np.arange(400.0)})
    table = dd.from_pandas(frame, npartitions=4)
    table = table[table.a < 300]  # the last partition is empty
    seed = next(s for s in range(100)
                if split_partitions(4, 0.25, np.random.RandomState(s))[1] == [3])
    with pytest.raises(ValueError, match="validation partition.* hold no rows"):
        fit_streaming(FNNRegressor(solver="adam", hidden_layer_sizes=(4,)), table, "y",
                      epochs=1, validation_fraction=0.25, random_state=seed)


# ---- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream-errors")
    lines = {fault: _write(root / fault.replace(" ", "-"), fault)
             for fault in ("header only", "not utf-8", "other columns", "text cell", "huge")}
    return root, lines


def test_cli_streaming_errors_name_the_file(faulty):
    root, lines = faulty
    runs = run_forked({
        fault: (["fit", f"{fault.replace(' ', '-')}/part-*.csv", "--epochs", "1", "--hidden",
                 "4"], root)
        for fault in ("not utf-8", "other columns", "text cell", "huge")})
    assert_one_line_error(runs["not utf-8"], f"part-2.csv, line {lines['not utf-8']}",
                          "not valid UTF-8")
    assert_one_line_error(runs["other columns"], "part-2.csv: missing column(s) ['c']")
    assert_one_line_error(runs["text cell"], f"part-2.csv, line {lines['text cell']}",
                          "column 'b'", "'abc' is not a number", "--stream takes numeric")
    assert_one_line_error(runs["huge"], f"part-2.csv, line {lines['huge']}", "column 'a'",
                          "too large to standardise")


def test_cli_skips_a_header_only_partition_and_predicts_the_same_glob(faulty):
    root, _ = faulty
    runs = run_forked({
        "fit": (["fit", "header-only/part-*.csv", "--epochs", "2", "--hidden", "4", "--save",
                 "m.skops"], root),
        "predict": (["predict", "m.skops", "header-only/part-*.csv", "--output", "p.csv"],
                    root),
    })
    fit = runs["fit"]
    assert fit.returncode == 0, fit.stderr
    assert "note     header-only/part-2.csv: no data rows" in fit.stdout
    assert " 0 validation rows" not in fit.stdout
    assert "best     epoch" in fit.stdout
    predict = runs["predict"]
    assert predict.returncode == 0, predict.stderr
    assert "header-only/part-2.csv: no data rows" in predict.stderr
    assert len(pd.read_csv(root / "p.csv")) == 3 * ROWS


# ---- in memory: values too large to standardise; outputs probed before training ---------------


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    rng = np.random.RandomState(0)
    for exponent in (200, 155):
        a = rng.choice([-1, 1], 300) * rng.uniform(1, 9, 300) * 10.0 ** exponent
        pd.DataFrame({"a": a, "b": rng.rand(300), "y": rng.rand(300)}).to_csv(
            root / f"e{exponent}.csv", index=False)
    pd.DataFrame({"a": rng.rand(300), "y": a}).to_csv(root / "target.csv", index=False)
    pd.DataFrame({"a": rng.rand(300), "y": rng.rand(300)}).to_csv(root / "small.csv",
                                                                  index=False)
    return root


def test_values_too_large_to_standardise_name_the_column(large):
    runs = run_forked({
        "1e200": (["fit", "e200.csv", "--epochs", "1"], large),
        "1e155": (["fit", "e155.csv", "--epochs", "1"], large),
        "target": (["fit", "target.csv", "--epochs", "1"], large),
    })
    for key, name in (("1e200", "e200.csv"), ("1e155", "e155.csv")):
        assert_one_line_error(runs[key], f"{name}, line 2, column 'a'",
                              "too large to standardise")
        assert "NaN" not in runs[key].stderr and "StandardScaler" not in runs[key].stderr
    assert_one_line_error(runs["target"], "target.csv, line 2, column 'y'", "rescale the target")


def test_unwritable_outputs_are_refused_before_training(large):
    runs = run_forked({
        "save": (["fit", "small.csv", "--save", "/proc/x.model"], large),
        "plot": (["fit", "small.csv", "--plot", "/proc/x.png"], large),
        "stream save": (["fit", "small.csv", "--stream", "--save", "/proc/x.model"], large),
    })
    for key, option in (("save", "--save"), ("plot", "--plot"), ("stream save", "--save")):
        assert_one_line_error(runs[key], f"{option} /proc/x.", "cannot write")
        assert runs[key].stdout == "", runs[key].stdout  # refused before reading the data


def test_the_directory_probe_leaves_nothing_behind(tmp_path, large):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        ro = None  # root writes in any mode-555 folder: /sys refuses new files instead
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    target = "/sys/x.model" if ro is None else str(ro / "x.model")
    runs = run_forked({"ro": (["fit", "small.csv", "--save", target], large),
                       "ok": (["fit", "small.csv", "--epochs", "1", "--save",
                               str(tmp_path / "m.skops")], large)})
    assert_one_line_error(runs["ro"], f"--save {target}", "cannot")
    assert runs["ro"].stdout == ""
    assert runs["ok"].returncode == 0, runs["ok"].stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["m.skops"] + (["ro"] if ro else []))


# ---- memory: flat in the size of the data ------------------------------------------------------

_MEMORY = r"""
import json, os, resource, sys, warnings
import numpy as np
from fastfnn import FNNRegressor
from fastfnn.scaling import fit_streaming
warnings.simplefilter("ignore")
peaks = []
for folder in sys.argv[1:]:
    fit_streaming(FNNRegressor(hidden_layer_sizes=(8,), solver="adam", random_state=0),
                  os.path.join(folder, "part-*.csv"), "y", epochs=1, random_state=0)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(peaks))
"""


def _table(folder, mb, files=2):
    """``files`` CSV files of ``mb`` MB each: 21 float columns, one random block repeated."""
    folder.mkdir()
    rng = np.random.RandomState(0)
    block = pd.DataFrame(rng.uniform(-1, 1, (5000, 21)),
                         columns=[f"x{i}" for i in range(20)] + ["y"])
    body = block.to_csv(index=False, header=False, float_format="%.6f").encode()
    head = (",".join(block.columns) + "\n").encode()
    for k in range(files):
        with open(folder / f"part-{k}.csv", "wb") as f:
            f.write(head)
            while f.tell() < mb * 1e6:
                f.write(body)
    return folder


def test_streaming_fit_memory_is_flat_in_the_data_size(tmp_path):
    """With the default partition size, one process fits 2 x 20 MB then 2 x 80 MB of CSV: the
    second fit, four times the data, raises the peak RSS by less than 40 MB. (A partition size
    that follows the file size, or a pass that keeps what it read, grows it by hundreds.) glibc's
    mmap threshold is fixed at 1 MB so that freed arrays go back to the system and the peak
    counts what the fit holds, not what the allocator kept (its sliding threshold otherwise moves
    the peak by 40-75 MB from run to run)."""
    small, big = _table(tmp_path / "small", 20), _table(tmp_path / "big", 80)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_MEMORY), str(small), str(big)],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, FASTFNN_NUM_THREADS="1",
                                  MALLOC_MMAP_THRESHOLD_=str(2**20)))
    assert out.returncode == 0, out.stderr[-2000:]
    peak_small, peak_big = json.loads(out.stdout.strip().splitlines()[-1])
    assert peak_big - peak_small < 40, (peak_small, peak_big)


def test_one_partition_and_a_validation_split_is_an_error_in_the_commands_terms(tmp_path):
    """A file smaller than a partition makes one partition, and the validation holds out whole
    ones: the error names the command's options that change it (oracle: the options the help
    lists and what they do: a smaller partition size or no early stopping trains)."""
    write_csv(tmp_path / "small.csv", ["a", "b", "y"],
              [(i, i % 7, i % 5) for i in range(300)])
    fit = ["fit", "small.csv", "--stream", "--epochs", "1", "--hidden", "4", "--quiet"]
    runs = run_forked({
        "default": (fit, tmp_path),
        "smaller partitions": (fit + ["--partition-size", "1KB"], tmp_path),
        "no early stopping": (fit + ["--no-early-stopping"], tmp_path),
    })
    assert_one_line_error(runs["default"], "small.csv: the table has 1 partition(s) of "
                          "--partition-size 16MB", "give a smaller --partition-size (CSV), "
                          "more files or row groups (Parquet), or --no-early-stopping")
    from fastfnn.scaling import TooFewPartitionsError

    with pytest.raises(TooFewPartitionsError, match="1 partition") as refused:
        fit_streaming(FNNRegressor(hidden_layer_sizes=(4,)), str(tmp_path / "small.csv"), "y")
    assert refused.value.n_partitions == 1 and isinstance(refused.value, ValueError)
    assert runs["smaller partitions"].returncode == 0, runs["smaller partitions"].stderr
    assert runs["no early stopping"].returncode == 0, runs["no early stopping"].stderr
