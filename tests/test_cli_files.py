"""``fastfnn`` never overwrites an input and never loses a file; model files are safe.

Every case runs as its own process (see test_cli_harness): refusals happen before any work,
streams (``-``, ``/dev/stdout``, FIFOs) are written, not replaced, symbolic links are written
through, and model files that are damaged, unreadable, pickles or of the old format are refused
with a message saying what to do.
"""

import os
import stat
import threading

import numpy as np
import pandas as pd
import pytest
from test_cli_harness import (assert_one_line_error, fastfnn, regression_table, run_forked,
                              write_csv)

from fastfnn import load_model

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A folder with d.csv (regression), m.model fitted on it, and links to both."""
    d = tmp_path_factory.mktemp("files")
    write_csv(d / "d.csv", *regression_table(n=120))
    runs = run_forked({"fit": (["fit", "d.csv", "--hidden", "4", "--epochs", "3", "--save",
                                "m.model", "--quiet"], d)})
    assert runs["fit"].returncode == 0, runs["fit"].stderr
    os.link(d / "d.csv", d / "hard.csv")
    os.symlink("d.csv", d / "link.csv")
    os.symlink(".", d / "here")
    os.link(d / "m.model", d / "hard.model")
    return d


def _snapshot(d):
    return {name: (p.lstat().st_mode, p.read_bytes() if p.is_file() else None)
            for name in sorted(os.listdir(d)) for p in [d / name]}


# (argv, fragments of the one-line error, command)
REFUSALS = {
    "predict over its data": (["predict", "m.model", "d.csv", "--output", "d.csv"],
                              ["--output d.csv: is the input DATA d.csv"], "predict"),
    "predict over its model": (["predict", "m.model", "d.csv", "-o", "m.model"],
                               ["--output m.model: is the input MODEL m.model"], "predict"),
    "predict over a hard link": (["predict", "m.model", "d.csv", "-o", "hard.csv"],
                                 ["--output hard.csv: is the input DATA d.csv"], "predict"),
    "predict over a symlink": (["predict", "m.model", "d.csv", "-o", "link.csv"],
                               ["--output link.csv: is the input DATA"], "predict"),
    "predict over the model's link": (["predict", "hard.model", "d.csv", "-o", "m.model"],
                                      ["is the input MODEL hard.model"], "predict"),
    "fit saving over its data": (["fit", "d.csv", "--save", "d.csv"],
                                 ["--save d.csv: is the input DATA d.csv"], "fit"),
    "fit saving over a hard link": (["fit", "hard.csv", "--save", "d.csv"],
                                    ["--save d.csv: is the input DATA hard.csv"], "fit"),
    "fit saving through a linked directory": (["fit", "d.csv", "--save", "here/d.csv"],
                                              ["--save here/d.csv: is the input DATA"], "fit"),
    "fit plotting over its data": (["fit", "d.csv", "--plot", "link.csv"],
                                   ["--plot link.csv: is the input DATA d.csv"], "fit"),
    "fit plot equal to save": (["fit", "d.csv", "--save", "x.out", "--plot", "here/x.out"],
                               ["--save x.out and --plot here/x.out are the same file"], "fit"),
    "export over its model": (["export", "m.model", "hard.model"],
                              ["OUT.onnx hard.model: is the input MODEL m.model"], "export"),
    "fit save to stdout": (["fit", "d.csv", "--save", "-"], ["--save -: stdout"], "fit"),
    "missing directory": (["fit", "d.csv", "--save", "nodir/m.model"],
                          ["--save nodir/m.model: the directory nodir does not exist"], "fit"),
    "directory output": (["predict", "m.model", "d.csv", "-o", "here"],
                         ["--output here: is a directory"], "predict"),
}


@pytest.fixture(scope="module")
def refusals(d):
    before = _snapshot(d)
    runs = run_forked({key: (argv, d) for key, (argv, _, _) in REFUSALS.items()})
    return runs, before, _snapshot(d)


@pytest.mark.parametrize("case_id", REFUSALS)
def test_refused_before_any_work(refusals, case_id):
    runs, _, _ = refusals
    _, fragments, command = REFUSALS[case_id]
    assert_one_line_error(runs[case_id], *fragments, command=command)
    assert runs[case_id].stdout == ""  # refused before reading the data or training
    assert ".part" not in runs[case_id].stderr  # the user's paths, no temporary file


def test_refusals_change_no_file(refusals):
    _, before, after = refusals
    assert after == before


def test_streams_are_written_not_replaced(d):
    """``-o -``, ``-o /dev/stdout`` (stdout a file here, a pipe below) and a FIFO get the same
    bytes as a regular output file; the FIFO stays a FIFO."""
    os.mkfifo(d / "out.fifo")
    received = []
    reader = threading.Thread(target=lambda: received.append((d / "out.fifo").read_bytes()))
    reader.start()
    runs = run_forked({
        "file": (["predict", "m.model", "d.csv", "-o", "pred.csv"], d),
        "dash": (["predict", "m.model", "d.csv", "-o", "-"], d),
        "dev stdout": (["predict", "m.model", "d.csv", "-o", "/dev/stdout"], d),
        "fifo": (["predict", "m.model", "d.csv", "-o", "out.fifo"], d),
    })
    reader.join(timeout=60)
    if reader.is_alive():  # the command never opened the FIFO: unblock the reader, then fail
        os.close(os.open(d / "out.fifo", os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    for key, result in runs.items():
        assert result.returncode == 0, (key, result.stderr)
    expected = (d / "pred.csv").read_text()
    frame = pd.read_csv(d / "d.csv")
    np.testing.assert_array_equal(np.loadtxt(d / "pred.csv", skiprows=1),
                                  load_model(d / "m.model").predict(frame[["a", "b", "c"]]))
    assert runs["dash"].stdout == runs["dev stdout"].stdout == expected
    assert received == [expected.encode()]
    assert stat.S_ISFIFO((d / "out.fifo").lstat().st_mode)
    piped = fastfnn("predict", "m.model", "d.csv", "-o", "/dev/stdout", cwd=d)
    assert piped.returncode == 0 and piped.stdout == expected, piped.stderr


def test_a_symlink_output_is_written_through(d):
    (d / "real_pred.csv").write_text("old\n")
    os.symlink("real_pred.csv", d / "pred_link.csv")
    runs = run_forked({"link": (["predict", "m.model", "d.csv", "-o", "pred_link.csv"], d)})
    assert runs["link"].returncode == 0, runs["link"].stderr
    assert (d / "pred_link.csv").is_symlink()
    assert (d / "real_pred.csv").read_text().startswith("target\n")


@pytest.mark.skipif(ROOT_USER, reason="root can write in read-only directories and read any file")
def test_read_only_directory_and_unreadable_model(d):
    (d / "ro").mkdir()
    (d / "ro").chmod(0o555)
    (d / "locked.model").write_bytes((d / "m.model").read_bytes())
    (d / "locked.model").chmod(0)
    try:
        runs = run_forked({
            "ro": (["fit", "d.csv", "--save", "ro/m.model"], d),
            "locked": (["predict", "locked.model", "d.csv"], d),
        })
    finally:
        (d / "ro").chmod(0o755)
    assert_one_line_error(runs["ro"], "--save ro/m.model: cannot write in the directory ro "
                          "(permission denied)")
    assert runs["ro"].stdout == "" and os.listdir(d / "ro") == []
    assert_one_line_error(runs["locked"], "locked.model: cannot read the file (permission "
                          "denied)", command="predict")


def test_bad_model_files_are_refused(d, tmp_path):
    import joblib

    from fastfnn import FNNRegressor, save_model

    good = (d / "m.model").read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    (tmp_path / "damaged.model").write_bytes(bytes(damaged))
    (tmp_path / "truncated.model").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.model").write_text("not a model\n")
    with open(tmp_path / "old.model", "wb") as f:  # the earlier, pickle-based format
        f.write(b"FASTFNN-MODEL 1\n")
        joblib.dump({"model": "anything"}, f)
    joblib.dump({"model": "a pickle"}, tmp_path / "pickle.model")
    X = np.random.RandomState(0).standard_normal((30, 3))
    save_model(FNNRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, X[:, 0]),
               tmp_path / "library.model")
    os.mkfifo(tmp_path / "fifo.model")  # nothing writes to it: a read would wait for ever
    write_csv(tmp_path / "d.csv", *regression_table(n=20))
    cases = {name: (["predict", f"{name}.model", "d.csv"], tmp_path) for name in
             ("damaged", "truncated", "text", "old", "pickle", "library", "missing", "fifo")}
    runs = run_forked(cases)
    expected = {
        "damaged": ["damaged.model: damaged fastfnn model file"],
        "truncated": ["truncated.model: damaged fastfnn model file"],
        "text": ["text.model: not a fastfnn model file"],
        "old": ["old.model: a model file of an earlier fastfnn", "pickle",
                "retrain the model with 'fastfnn fit ... --save'"],
        "pickle": ["pickle.model: a pickle or joblib file"],
        "library": ["library.model: a fastfnn model file, but not one written by 'fastfnn fit "
                    "--save'", "fastfnn.load_model"],
        "missing": ["missing.model: no such file"],
        "fifo": ["fifo.model: not a regular file"],
    }
    for name, fragments in expected.items():
        assert_one_line_error(runs[name], *fragments, command="predict")
        assert runs[name].stdout == ""


def test_a_huge_line_is_refused_with_bounded_memory(tmp_path):
    """A 200 MB file that is one line: the error comes at once, and the process's peak memory
    stays far below the file's size (compared with a tiny bad file in the same kind of
    process)."""
    size = 200 * 2**20
    with open(tmp_path / "huge.csv", "w") as f:
        f.write("a,b,")
        for _ in range(size // 2**20):
            f.write("9" * 2**20)
    with open(tmp_path / "wide_row.csv", "w") as f:
        f.write("a,b\n1,2\n3,")
        for _ in range(size // 2**20):
            f.write("9" * 2**20)
        f.write("\n")
    (tmp_path / "small.csv").write_text("a,b\n1\n")
    cases = {}
    for engine, hide in (("pyarrow", ()), ("c", ("pyarrow",))):  # with and without pyarrow
        for name in ("small", "huge", "wide_row"):
            cases[name, engine] = (["fit", f"{name}.csv"], tmp_path, hide)
    runs = run_forked(cases)
    for engine in ("pyarrow", "c"):
        assert_one_line_error(runs["small", engine], "small.csv, line 2: 1 cells")
        assert_one_line_error(runs["huge", engine], "huge.csv, line 1: longer than 1024 KiB")
        assert_one_line_error(runs["wide_row", engine], "wide_row.csv")
        for name in ("huge", "wide_row"):
            grown_mb = (runs[name, engine].maxrss_kb - runs["small", engine].maxrss_kb) / 1024
            assert grown_mb < 50, (name, engine, grown_mb)  # the file: 200 MB on one line
    assert_one_line_error(runs["wide_row", "c"], "wide_row.csv, line 3: longer than 1024 KiB")


def test_permission_errors_are_named_as_such(d, monkeypatch, capsys):
    """The same two messages where the user may write and read anything (root): the file
    system's answers simulated in this process."""
    import fastfnn
    from fastfnn.cli import main, options

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.chdir(d)
    monkeypatch.setattr(fastfnn, "load_model", refuse)
    assert main(["predict", "m.model", "d.csv"]) == 1
    assert capsys.readouterr().err == ("fastfnn predict: error: m.model: cannot read the file "
                                       "(permission denied)\n")
    monkeypatch.setattr(options.os, "access", lambda path, mode: False)
    assert main(["fit", "d.csv", "--save", "sub.model"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("fastfnn fit: error: --save sub.model: cannot write in the "
                                 "directory . (permission denied)\n")
