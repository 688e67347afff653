"""The ``fastfnn`` command end to end: entry points, the main fit, save and predict, gradcheck,
and the one-line errors for bad data (run as processes: exit codes, output, files written).

Files and streams (never overwriting an input), model files, tables (text columns, missing
cells, several targets, Parquet) and ONNX export have their own test_cli_*.py files.
"""

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli_harness import (PNG_MAGIC, ROOT, assert_one_line_error, fastfnn,
                              regression_table, run_forked, write_csv)

from fastfnn import HIDDEN_ACTIVATIONS, FNNRegressor, gradcheck_cases, load_model
from fastfnn.cli import main
from fastfnn.cli.data import DATASETS, DataError, load_dataset, read_table
from fastfnn.cli.options import Staged



# The progress bar is a scikit-learn callback (scikit-learn >= 1.9); without the callback API
# training runs without a bar.
CALLBACKS = hasattr(FNNRegressor(), "set_callbacks")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a small regression CSV (3 features) and a model fitted on it."""
    d = tmp_path_factory.mktemp("cli")
    write_csv(d / "train.csv", *regression_table())
    result = run_forked({"fit": (["fit", "train.csv", "--hidden", "8", "--epochs", "5", "--save",
                                  "m.model"], d)})["fit"]  # with the progress bar
    assert result.returncode == 0, result.stderr
    if CALLBACKS:
        assert "5/5" in result.stderr and "loss=" in result.stderr
    return d


# ---- help, version, entry points ----------------------------------------------------------------


def test_help_lists_the_commands_and_python_m_matches_the_console_script(capsys):
    script = Path(sys.executable).parent / ("fastfnn.exe" if os.name == "nt" else "fastfnn")
    if not script.exists():
        pytest.skip("the fastfnn console script is not installed next to this Python")
    from_script = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                                 timeout=120)
    from_module = fastfnn("--help")
    assert from_script.returncode == from_module.returncode == 0
    assert from_script.stdout == from_module.stdout
    for command in ("fit", "predict", "export", "gradcheck", "bench"):
        assert command in from_module.stdout
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("fastfnn ")
    assert main([]) == 0  # no command: the help


def test_import_fastfnn_stays_light():
    code = ("import sys, fastfnn; print(sorted(m for m in ('tqdm', 'matplotlib', 'fastfnn.cli', "
            "'sklearn.pipeline', 'skl2onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_cli_uses_only_the_public_api():
    """The command is a client of the library: it imports ``fastfnn``'s public names, its
    public modules (onnx, scaling, bench, precompile) and its own package, nothing else of
    fastfnn."""
    import ast

    import fastfnn

    allowed_modules = {"fastfnn", "fastfnn.onnx", "fastfnn.bench", "fastfnn.scaling",
                       "fastfnn.precompile"}
    for path in (ROOT / "src" / "fastfnn" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    node.module.split(".")[0] == "fastfnn":
                for alias in node.names:
                    if node.module == "fastfnn":
                        assert alias.name in fastfnn.__all__, (path.name, alias.name)
                    else:
                        assert node.module in allowed_modules, (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "fastfnn":
                        assert alias.name in allowed_modules, (path.name, alias.name)


@pytest.mark.parametrize("command, option", [
    ("fit", "--hidden"), ("predict", "--output"), ("gradcheck", "--tol"), ("export", "OUT.onnx"),
])
def test_command_help(command, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: fastfnn {command}")
    assert option in out


def test_fit_choices_come_from_the_registries(capsys):
    import fastfnn

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(fastfnn.HIDDEN_ACTIVATIONS) + "}" in out
    assert "{" + ",".join(fastfnn.REGRESSION_LOSSES) + "}" in out


def test_bench_help(tmp_path):
    pytest.importorskip("fastfnn.bench")
    result = run_forked({"help": (["bench", "--help"], tmp_path)})["help"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fastfnn bench")


@pytest.mark.parametrize("argv", [
    ["fit", "--hidden", "64,x"], ["fit", "--epochs", "0"], ["fit", "--test-size", "1"],
    ["fit", "--dtype", "float16"], ["fit", "--activation", "nope"], ["fit", "--target", "a,,b"],
    ["fit", "--target", "a,b,a"],
    ["predict", "model-only"], ["export", "model-only"], ["frobnicate"],
])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# ---- fit ----------------------------------------------------------------------------------------


def test_default_fit_reaches_a_good_test_r2(tmp_path):
    """The README's main job: `fastfnn fit` on the bundled Friedman #1 data, with the default
    validation split and early stopping."""
    result = fastfnn("fit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "friedman1 (bundled dataset): 2000 rows, 10 features, target 'y' (the last column" \
        in out
    assert "early stopping on a 0.1 validation split (--no-early-stopping: off)" in out
    epochs = int(re.search(r"trained  (\d+) epochs in [0-9.]+ s: [0-9,]+ samples/s \(\d+ x "
                           r"1440 rows", out).group(1))
    if epochs < 200:
        assert re.search(rf"note     stopped early at epoch {epochs}: the validation score "
                         r"did not improve .* kept the weights of epoch \d+", out)
    r2 = float(re.search(r"test     R² ([0-9.]+), RMSE ([0-9.]+)", out).group(1))
    assert r2 > 0.9  # the noise in Friedman #1 caps any model at about 0.96
    if CALLBACKS:  # stderr is a file here: plain progress lines, no carriage-return frames
        assert "\r" not in result.stderr
        lines = result.stderr.splitlines()
        if lines and lines[0].startswith("fastfnn: note: compiling fastfnn's kernels"):
            lines = lines[1:]  # a cold Numba cache (as in a fresh clone's first tests): once
        shown = [int(re.fullmatch(r"epoch (\d+)/200: loss=[0-9.e-]+, val=[0-9.]+", line)
                     .group(1)) for line in lines]
        assert shown == sorted(set(shown)) and shown[-1] == epochs  # the last epoch run, once
        assert len(lines) <= 11  # one line per 20 epochs, and the last
        assert "loss=" in result.stderr and "val=" in result.stderr
    assert list(tmp_path.iterdir()) == []  # writes nothing unless asked


def test_progress_bar_does_not_change_the_model(work):
    """The bar observes training only: the saved model equals a plain fit of the same pipeline
    (scaled features and target; 160 training rows: no default early stopping)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model, metadata = load_model(work / "m.model", return_metadata=True)
    data = np.loadtxt(work / "train.csv", delimiter=",", skiprows=1)
    X_train, _, y_train, _ = train_test_split(data[:, :3], data[:, 3], test_size=0.2,
                                              random_state=0)
    plain = TransformedTargetRegressor(
        Pipeline([("scale", StandardScaler()),
                  ("fnn", FNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0))]),
        transformer=StandardScaler())
    with pytest.warns(Warning):  # ConvergenceWarning after 5 epochs
        plain.fit(X_train, y_train)
    saved = model.regressor_[-1]
    assert not saved.early_stopping
    for a, b in zip(saved.coefs_ + saved.intercepts_,
                    plain.regressor_[-1].coefs_ + plain.regressor_[-1].intercepts_):
        np.testing.assert_array_equal(a, b)
    record = metadata["fastfnn_cli"]
    assert record["features"] == ["a", "b", "c"] and record["targets"] == ["target"]
    assert record["task"] == "regression" and record["dtype"] == "float64"


def test_save_then_predict_equals_the_estimator(work):
    model = load_model(work / "m.model")
    import pandas as pd

    frame = pd.read_csv(work / "train.csv")
    expected = model.predict(frame[["a", "b", "c"]])

    result = fastfnn("predict", "m.model", "train.csv", "--output", "pred.csv", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = (work / "pred.csv").read_text().splitlines()
    assert lines[0] == "target" and len(lines) == 201
    np.testing.assert_array_equal(np.array(lines[1:], dtype=float), expected)  # exact

    # stdout; the target column absent and the features in another order: matched by name
    write_csv(work / "features.csv", ["c", "a", "b"], frame[["c", "a", "b"]].to_numpy())
    # other names but exactly the feature count: taken in training order, with a note
    write_csv(work / "renamed.csv", ["p", "q", "r"], frame[["a", "b", "c"]].to_numpy())
    # no header row: the first row is data, which the fallback would lose; refused
    rows = frame[["a", "b", "c"]].to_numpy()
    (work / "headless.csv").write_text("\n".join(",".join(str(float(v)) for v in r)
                                                 for r in rows) + "\n")
    runs = run_forked({"stdout": (["predict", "m.model", "features.csv"], work),
                       "renamed": (["predict", "m.model", "renamed.csv", "-o", "-"], work),
                       "headless": (["predict", "m.model", "headless.csv"], work)})
    assert_one_line_error(runs["headless"], f"holds {str(float(rows[0, 0]))!r} where a column",
                          "no header row", command="predict")
    assert runs["stdout"].returncode == 0, runs["stdout"].stderr
    assert runs["stdout"].stdout == (work / "pred.csv").read_text()
    assert runs["renamed"].returncode == 0 and "training order" in runs["renamed"].stderr
    assert runs["renamed"].stdout == (work / "pred.csv").read_text()


def test_classify_float32_early_stopping_and_plot(tmp_path):
    try:
        import matplotlib  # noqa: F401  (in the test extra; the rest runs without it)
        plot = ["--plot", "loss.png"]
    except ImportError:
        plot = []
    runs = run_forked({
        "fit": (["fit", "iris", "--classify", "--dtype", "float32", "--early-stopping",
                 "--validation-fraction", "0.2", "--seed", "1", "--save", "iris.model", *plot],
                tmp_path),
        "predict": (["predict", "iris.model", ROOT / "src/fastfnn/data/iris.csv"], tmp_path)})
    result, pred = runs["fit"], runs["predict"]
    assert result.returncode == 0, result.stderr
    assert re.search(r"test     accuracy [0-9.]+, balanced accuracy [0-9.]+ \(30 rows\)",
                     result.stdout)
    if CALLBACKS:
        assert "val=" in result.stderr  # validation score in the progress bar
    model, metadata = load_model(tmp_path / "iris.model", return_metadata=True)
    fnn = model[-1]
    if plot:
        png = (tmp_path / "loss.png").read_bytes()
        assert png[:8] == PNG_MAGIC
        width, height = (int.from_bytes(png[i:i + 4], "big") for i in (16, 20))
        # loss, training/test error, confusion matrix (and gradient norms): two rows of two
        assert (width, height) == (1280, 920)
    assert metadata["fastfnn_cli"]["task"] == "classification"
    assert fnn.coefs_[0].dtype == np.float32 and fnn.early_stopping
    assert sorted(os.listdir(tmp_path)) == ["iris.model"] + ["loss.png"] * bool(plot)

    assert pred.returncode == 0, pred.stderr
    labels = pred.stdout.splitlines()
    assert labels[0] == "species" and set(labels[1:]) <= {"setosa", "versicolor", "virginica"}


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "sine", "--plot", "out.png"])
    out, err = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], code, out, err),
                          'pip install "fastfnn[plot]"')
    assert out == "" and os.listdir(tmp_path) == []


def test_lbfgs_and_other_bundled_sets(tmp_path):
    runs = run_forked({
        "lbfgs": (["fit", "sine", "--solver", "lbfgs", "--hidden", "16", "--activation", "tanh",
                   "--epochs", "300"], tmp_path),
        "quiet": (["fit", "diabetes", "--quiet", "--epochs", "3"], tmp_path),
        "cut short": (["fit", "diabetes", "--epochs", "3"], tmp_path),
        "stalled": (["fit", "sine", "--hidden", "8", "--tol", "0.01", "--n-iter-no-change", "2"],
                    tmp_path),
    })
    lbfgs, quiet = runs["lbfgs"], runs["quiet"]
    assert ("note     stopped at --epochs 3 with the loss still falling (scikit-learn's "
            "ConvergenceWarning)") in runs["cut short"].stdout
    stalled = runs["stalled"].stdout
    epochs = int(re.search(r"trained  (\d+) epochs", stalled).group(1))
    assert epochs < 200 and (f"note     stopped at epoch {epochs}: the training loss did not "
                             "improve by --tol 0.01 for 2 epochs") in stalled
    assert lbfgs.returncode == 0, lbfgs.stderr
    assert "L-BFGS iterations" in lbfgs.stdout
    assert float(re.search(r"R² ([0-9.]+)", lbfgs.stdout).group(1)) > 0.9
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("trained  3 epochs")


class _Stream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def _epochs(bar, fitted):
    from types import SimpleNamespace

    bar.setup(None, SimpleNamespace(task_name="fit"))
    for estimator in fitted:
        assert bar.on_fit_task_end(None, SimpleNamespace(task_name="epoch"),
                                   fitted_estimator=estimator) is False
    assert bar.on_fit_task_end(None, SimpleNamespace(task_name="fit")) is False  # the root
    bar.teardown(None, None)


def test_progress_bar_is_a_fit_callback():
    """The bar follows scikit-learn's FitCallback protocol: one step per epoch (or L-BFGS
    iteration) subtask, the loss and validation score of the epoch's fitted copy; it never asks
    to stop. On a terminal the frame drawn last shows the last epoch's loss (one final frame,
    not two with different losses)."""
    from types import SimpleNamespace

    from fastfnn.cli.progress import ProgressBar

    callback = pytest.importorskip("sklearn.callback")
    stream = _Stream(terminal=True)
    bar = ProgressBar(total=3, stream=stream)
    assert isinstance(bar, callback.FitCallback)
    _epochs(bar, [SimpleNamespace(loss_=0.5, validation_scores_=None),
                  SimpleNamespace(loss_=0.25, validation_scores_=[0.5, 0.875])])
    frames = [f for f in stream.getvalue().split("\r") if f.strip()]
    assert "2/3" in frames[-1] and "loss=0.25, val=0.8750" in frames[-1]
    assert not any("2/3" in f and "loss=0.5" in f for f in frames)


def test_progress_off_a_terminal_is_a_line_every_tenth_of_the_run():
    """In a log file: no carriage returns, a line every ceil(total / 10) epochs and one for the
    last epoch run when training stops early."""
    from types import SimpleNamespace

    from fastfnn.cli.progress import ProgressBar

    stream = _Stream(terminal=False)
    _epochs(ProgressBar(total=40, stream=stream),
            [SimpleNamespace(loss_=1.0 / k, validation_scores_=None) for k in range(1, 14)])
    assert stream.getvalue() == "".join(f"epoch {k}/40: loss={1.0 / k:.4g}\n"
                                        for k in (4, 8, 12, 13))
    quiet = _Stream(terminal=False)
    _epochs(ProgressBar(total=40, stream=quiet, disable=True),
            [SimpleNamespace(loss_=1.0, validation_scores_=None)] * 5)
    assert quiet.getvalue() == ""


# ---- gradcheck -------------------------------------------------------------------------------


def test_gradcheck_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.endswith("   ok")]
    n = len(gradcheck_cases())  # every hidden activation, every (loss, output) pair, derivation
    assert len(rows) == n
    for hidden in HIDDEN_ACTIVATIONS:
        assert any(r.startswith(f"{hidden}, squared_error + identity") for r in rows), hidden
    assert any(r.startswith("logistic, squared_error + logistic *") for r in rows)
    assert any(r.startswith("tanh, log_loss + softmax") for r in rows)
    assert f"{n} of {n} checks within 1e-07" in out
    for row in rows:  # three layers, each a relative error
        errors = [float(v) for v in row.split()[-4:-1]]
        assert len(errors) == 3 and max(errors) < 1e-7


def test_gradcheck_fails_on_a_tiny_tolerance(capsys):
    assert main(["gradcheck", "--tol", "1e-14", "--sizes", "2,3,2"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_gradcheck_refuses_a_step_before_printing(capsys):
    """An eps check_gradients refuses is one error line, with no table begun above it."""
    assert main(["gradcheck", "--eps", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("fastfnn gradcheck: error: eps=1.0 is above 0.1")


# ---- errors: one line on stderr, exit 1, nothing written --------------------------------------


def _make_error_files(d):
    numbers = [[i, (i * 7) % 11, i % 5] for i in range(40)]
    write_csv(d / "text.csv", ["a", "b", "y"], numbers[:20] + [[4, "abc", 6]] + numbers[20:])
    write_csv(d / "inf.csv", ["a", "b", "y"], [[1, 2, 3], ["-inf", 5, 6]])
    write_csv(d / "nan_target.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5, "NaN"]])
    write_csv(d / "ragged.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5]])
    write_csv(d / "only_target.csv", ["y"], [[1], [2]])
    write_csv(d / "header_only.csv", ["a", "b", "y"], [])
    write_csv(d / "dup.csv", ["a", "a", "y"], [[1, 2, 3]])
    write_csv(d / "ten.csv", ["a", "y"], [[i, i * i] for i in range(10)])
    write_csv(d / "fractional.csv", ["a", "y"], [[i, i / 3] for i in range(10)])
    write_csv(d / "empty_column.csv", ["a", "b", "y"], [[i, "", i] for i in range(10)])
    (d / "empty.csv").write_text("")
    (d / "table.parquet").write_text("a,y\n1,2\n")  # a CSV file named as Parquet
    (d / "binary.csv").write_bytes(bytes(range(256)))
    (d / "latin1.csv").write_bytes("a,b,y\n1,caf\xe9,2\n".encode("latin-1"))
    shutil.copy(ROOT / "data" / "sine.csv", d / "sine.csv")


SAVE = ["--save", "out.model", "--plot", "out.png"]

# (argv, fragments of the message, command): each through its own (forked) process.
ERRORS = {
    "missing file": (["fit", "nope.csv", *SAVE], ["nope.csv: no such file"], "fit"),
    "empty file": (["fit", "empty.csv", *SAVE], ["empty.csv: the file is empty"], "fit"),
    "stray text cell": (["fit", "text.csv", *SAVE],
                        ["text.csv, line 22, column 'b': 'abc' is not a number"], "fit"),
    "missing target": (["fit", "sine.csv", "--target", "z", *SAVE],
                       ["sine.csv: missing column z", "'x', 'y'"], "fit"),
    "inf": (["fit", "inf.csv", *SAVE], ["inf.csv, line 3, column 'a'", "not a finite"], "fit"),
    "directory": (["fit", ".", *SAVE], [".: is a directory"], "fit"),
    "header only": (["fit", "header_only.csv"], ["header_only.csv", "no data rows"], "fit"),
    "not parquet": (["fit", "table.parquet"], ["table.parquet: not a readable Parquet file"],
                    "fit"),
    "duplicate column": (["fit", "dup.csv"], ["dup.csv: the header names column 'a' twice"],
                         "fit"),
    "nan target": (["fit", "nan_target.csv"],
                   ["nan_target.csv, line 3, column 'y': missing value"], "fit"),
    "ragged row": (["fit", "ragged.csv"], ["ragged.csv, line 3: 2 cells", "3 columns"], "fit"),
    "binary": (["fit", "binary.csv"], ["binary.csv: not a text CSV file"], "fit"),
    "latin-1": (["fit", "latin1.csv"], ["latin1.csv: not a text CSV file", "UTF-8"], "fit"),
    "no features": (["fit", "only_target.csv"], ["at least one feature column"], "fit"),
    "empty column": (["fit", "empty_column.csv"], ["column 'b' has no values"], "fit"),
    "split too small": (["fit", "ten.csv", "--test-size", "0.1"],
                        ["ten.csv: 10 rows are too few", "--test-size 0.1"], "fit"),
    "validation too small": (["fit", "ten.csv", "--early-stopping", *SAVE],
                             ["validation set is too small"], "fit"),
    "fractional labels": (["fit", "fractional.csv", "--classify"],
                          ["fractional.csv, line 3, column 'y'", "drop --classify"], "fit"),
    "labels without --classify": (["fit", "iris"], [
        "iris.csv (bundled), line 2, column 'species'", "use --classify"], "fit"),
    "lbfgs early stopping": (["fit", "sine.csv", "--solver", "lbfgs", "--early-stopping"],
                             ["--early-stopping needs a stochastic --solver (not lbfgs)"], "fit"),
    "lbfgs plot": (["fit", "sine.csv", "--solver", "lbfgs", "--plot", "p.png"], ["lbfgs"], "fit"),
    "bad loss pair": (["fit", "sine.csv", "--classify", "--loss", "poisson"],
                      ["--loss and --out-activation are for regression"], "fit"),
    "bad output activation": (["fit", "sine.csv", "--out-activation", "softmax", "--epochs", "1"],
                              ["out_activation"], "fit"),
}


@pytest.fixture(scope="module")
def error_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    _make_error_files(d)
    return d, set(os.listdir(d))


@pytest.fixture(scope="module")
def error_runs(error_dir):
    d, _ = error_dir
    return run_forked({key: (argv, d) for key, (argv, _, _) in ERRORS.items()})


@pytest.mark.parametrize("case_id", ERRORS)
def test_error(error_runs, case_id):
    _, fragments, command = ERRORS[case_id]
    result = error_runs[case_id]
    assert_one_line_error(result, *fragments, command=command)
    if case_id not in ("validation too small", "bad output activation"):  # after the header
        assert result.stdout == ""


def test_errors_write_nothing(error_dir, error_runs):
    d, before = error_dir
    assert set(os.listdir(d)) == before  # no model, plot, prediction or temporary file


def test_staged_files_vanish_when_the_block_fails(tmp_path):
    target = tmp_path / "model.out"
    with pytest.raises(RuntimeError):
        with Staged() as staged:
            Path(staged.path(target)).write_text("half")
            raise RuntimeError
    assert os.listdir(tmp_path) == []
    with Staged() as staged:
        Path(staged.path(target)).write_text("whole")
        staged.commit()
    assert os.listdir(tmp_path) == ["model.out"] and target.read_text() == "whole"


# ---- datasets ---------------------------------------------------------------------------------


def test_datasets_match_their_generator_and_load():
    check = subprocess.run([sys.executable, str(ROOT / "data" / "make_datasets.py"), "--check"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    for name in DATASETS:
        X, y, features, target = load_dataset(name)
        assert X.shape[0] == y.shape[0] > 100 and X.shape[1] == len(features)
        assert (ROOT / "data" / f"{name}.csv").read_bytes() == \
            (ROOT / "src" / "fastfnn" / "data" / f"{name}.csv").read_bytes()
    X, y, _, _ = load_dataset("friedman1")
    reference = np.loadtxt(ROOT / "data" / "friedman1.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(np.column_stack([X, y]), reference)


def test_csv_reading_is_the_same_without_pyarrow(tmp_path, monkeypatch):
    """pandas' C engine (no pyarrow installed) reads what the pyarrow engine reads, and what
    plain pd.read_csv reads: timestamps and times of day as their cells' text."""
    text = ('a,b,c,when,at\n1,x,2.5,2021-06-15T11:30:00,10:30\n\n"3",,,,\n'
            '-4,"y\nz",1e3,2022-01-01 10:00,11:00:01\n')
    (tmp_path / "t.csv").write_text(text)
    import pandas as pd

    from fastfnn.cli import data

    pytest.importorskip("pyarrow")
    with_pyarrow = read_table(tmp_path / "t.csv").frame
    monkeypatch.setattr(data, "csv_engine", lambda: "c")
    without = read_table(tmp_path / "t.csv").frame
    pd.testing.assert_frame_equal(without.astype(object), with_pyarrow.astype(object))
    plain = pd.read_csv(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(with_pyarrow.astype(object), plain.astype(object))
    assert list(without["a"]) == [1, 3, -4] and without["b"].iloc[2] == "y\nz"
    assert with_pyarrow["when"].iloc[0] == "2021-06-15T11:30:00"


def test_read_table_skips_blank_lines_and_strips_a_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa, b ,y\n\n1,2,3\n 4 ,5,6\n".encode("utf-8"))
    table = read_table(path)
    assert table.header == ["a", "b", "y"]
    np.testing.assert_array_equal(table.frame[["a", "y"]].to_numpy(float), [[1, 3], [4, 6]])
    assert table.where(1) == "line 4"  # the blank line counts
    with pytest.raises(DataError, match="missing column z"):
        table.require(["z"])
