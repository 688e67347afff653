"""The ``fastfnn`` command end to end, through subprocesses: exit codes, output, files written.

Error cases are independent processes, so they are started together (a thread pool) by one
fixture and checked by one parametrized test each; the whole file takes well under a minute.
"""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fastfnn import HIDDEN_ACTIVATIONS
from fastfnn.cli import main
from fastfnn.cli.data import DATASETS, DataError, load_dataset, read_csv
from fastfnn.cli.modelfile import MODEL_MAGIC, load_model
from fastfnn.cli.options import Staged
from fastfnn.gradcheck import gradcheck_cases

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fastfnn(*args, cwd=None, env=None):
    """Run ``python -m fastfnn ARGS``; returns the CompletedProcess (text mode)."""
    return subprocess.run([sys.executable, "-m", "fastfnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


def assert_one_line_error(result, *fragments, command="fit"):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fastfnn {command}: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a small regression CSV (3 features) and a model fitted on it."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (200, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    write_csv(d / "train.csv", ["a", "b", "c", "target"],
              [[f"{v:.6f}" for v in row] for row in np.column_stack([X, y])])
    result = fastfnn("fit", "train.csv", "--hidden", "8", "--epochs", "5", "--save", "m.model",
                     "--quiet", cwd=d)
    assert result.returncode == 0, result.stderr
    return d


# ---- help, version, entry points ----------------------------------------------------------------


def test_help_lists_the_commands_and_python_m_matches_the_console_script():
    script = Path(sys.executable).parent / ("fastfnn.exe" if os.name == "nt" else "fastfnn")
    if not script.exists():
        pytest.skip("the fastfnn console script is not installed next to this Python")
    from_script = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                                 timeout=120)
    from_module = fastfnn("--help")
    assert from_script.returncode == from_module.returncode == 0
    assert from_script.stdout == from_module.stdout
    for command in ("fit", "predict", "gradcheck", "bench"):
        assert command in from_module.stdout
    version = fastfnn("--version")
    assert version.returncode == 0 and version.stdout.startswith("fastfnn ")
    assert main([]) == 0  # no command: the help


def test_import_fastfnn_stays_light():
    code = ("import sys, fastfnn; print(sorted(m for m in ('tqdm', 'matplotlib', 'fastfnn.cli', "
            "'sklearn.pipeline') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_cli_uses_only_the_public_api():
    """The command is a client of the library: it imports ``fastfnn``'s public names, its
    public modules (onnx, bench) and its own package, nothing else of fastfnn."""
    import ast

    import fastfnn

    allowed_modules = {"fastfnn", "fastfnn.onnx", "fastfnn.bench"}
    not_yet_public = {("fastfnn.gradcheck", "gradcheck_cases")}  # until fastfnn exports it
    for path in (ROOT / "src" / "fastfnn" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    node.module.split(".")[0] == "fastfnn":
                for alias in node.names:
                    if node.module == "fastfnn":
                        assert alias.name in fastfnn.__all__, (path.name, alias.name)
                    else:
                        assert node.module in allowed_modules or \
                            (node.module, alias.name) in not_yet_public, (path.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "fastfnn":
                        assert alias.name in allowed_modules, (path.name, alias.name)


@pytest.mark.parametrize("command, option", [
    ("fit", "--hidden"), ("predict", "--output"), ("gradcheck", "--tol"),
])
def test_command_help(command, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"usage: fastfnn {command}")
    assert option in out


def test_fit_help_in_a_process():
    result = fastfnn("fit", "--help")
    assert result.returncode == 0 and "--classify" in result.stdout


def test_bench_help():
    pytest.importorskip("fastfnn.bench")
    result = fastfnn("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fastfnn bench")


@pytest.mark.parametrize("argv", [
    ["fit", "--hidden", "64,x"], ["fit", "--epochs", "0"], ["fit", "--test-size", "1"],
    ["fit", "--dtype", "float16"], ["predict", "model-only"], ["frobnicate"],
])
def test_bad_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# ---- fit ----------------------------------------------------------------------------------------


def test_default_fit_reaches_a_good_test_r2(tmp_path):
    """The README's main job: `fastfnn fit` on the bundled Friedman #1 data."""
    result = fastfnn("fit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "friedman1 (bundled dataset): 2000 rows, 10 features" in out
    assert re.search(r"trained  200 epochs in [0-9.]+ s: [0-9,]+ samples/s", out)
    r2 = float(re.search(r"test     R² ([0-9.]+), RMSE ([0-9.]+)", out).group(1))
    assert r2 > 0.9  # 0.9186 with the committed data and seed (noise ceiling ~0.96)
    assert "training" in result.stderr and "loss=" in result.stderr  # the progress bar
    assert list(tmp_path.iterdir()) == []  # writes nothing unless asked


def test_progress_bar_does_not_change_the_model(work):
    """The bar reads the estimator's verbose lines: the model equals a plain fit's."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from fastfnn import FNNRegressor

    record = load_model(work / "m.model")
    data = np.loadtxt(work / "train.csv", delimiter=",", skiprows=1)
    X_train, _, y_train, _ = train_test_split(data[:, :3], data[:, 3], test_size=0.2,
                                              random_state=0)
    plain = TransformedTargetRegressor(
        Pipeline([("scale", StandardScaler()),
                  ("fnn", FNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0))]),
        transformer=StandardScaler())
    with pytest.warns(Warning):  # ConvergenceWarning after 5 epochs
        plain.fit(X_train, y_train)
    saved = record["model"].regressor_[-1]
    for a, b in zip(saved.coefs_ + saved.intercepts_,
                    plain.regressor_[-1].coefs_ + plain.regressor_[-1].intercepts_):
        np.testing.assert_array_equal(a, b)
    assert record["feature_names"] == ["a", "b", "c"] and record["target_name"] == "target"


def test_save_then_predict_equals_the_estimator(work):
    record = load_model(work / "m.model")
    data = np.loadtxt(work / "train.csv", delimiter=",", skiprows=1)
    expected = record["model"].predict(data[:, :3])

    result = fastfnn("predict", "m.model", "train.csv", "--output", "pred.csv", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = (work / "pred.csv").read_text().splitlines()
    assert lines[0] == "target" and len(lines) == 201
    np.testing.assert_array_equal(np.array(lines[1:], dtype=float), expected)  # exact

    # stdout; the target column absent and the features in another order: matched by name
    write_csv(work / "features.csv", ["c", "a", "b"], data[:, [2, 0, 1]])
    to_stdout = fastfnn("predict", "m.model", "features.csv", cwd=work)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == (work / "pred.csv").read_text()

    # other names but exactly the feature count: taken in training order, with a note
    write_csv(work / "renamed.csv", ["p", "q", "r"], data[:, :3])
    renamed = fastfnn("predict", "m.model", "renamed.csv", cwd=work)
    assert renamed.returncode == 0 and "training order" in renamed.stderr
    assert renamed.stdout == (work / "pred.csv").read_text()


def test_classify_float32_early_stopping_and_plot(tmp_path):
    try:
        import matplotlib  # noqa: F401  (in the test extra; the rest runs without it)
        plot = ["--plot", "loss.png"]
    except ImportError:
        plot = []
    result = fastfnn("fit", "iris", "--classify", "--dtype", "float32", "--early-stopping",
                     "--validation-fraction", "0.2", "--seed", "1", "--save", "iris.model",
                     *plot, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"test     accuracy [0-9.]+ \(30 rows\)", result.stdout)
    assert "val=" in result.stderr  # validation score in the progress bar
    if plot:
        assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC
    record = load_model(tmp_path / "iris.model")
    assert record["task"] == "classification"
    assert record["model"][-1].coefs_[0].dtype == np.float32
    assert sorted(os.listdir(tmp_path)) == ["iris.model"] + ["loss.png"] * bool(plot)

    pred = fastfnn("predict", "iris.model", ROOT / "src/fastfnn/data/iris.csv", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    labels = pred.stdout.splitlines()
    assert labels[0] == "species" and set(labels[1:]) <= {"setosa", "versicolor", "virginica"}


def test_plot_without_matplotlib_says_how_to_install(tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(fake)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    result = fastfnn("fit", "sine", "--plot", "out.png", cwd=tmp_path, env=env)
    assert_one_line_error(result, 'pip install "fastfnn[plot]"')
    assert not (tmp_path / "out.png").exists()


def test_lbfgs_and_other_bundled_sets(tmp_path):
    result = fastfnn("fit", "sine", "--solver", "lbfgs", "--hidden", "16", "--activation",
                     "tanh", "--epochs", "300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "L-BFGS iterations" in result.stdout
    assert float(re.search(r"R² ([0-9.]+)", result.stdout).group(1)) > 0.9
    quiet = fastfnn("fit", "diabetes", "--quiet", "--epochs", "3", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("trained  3 epochs")


# ---- gradcheck -------------------------------------------------------------------------------


def test_gradcheck_passes():
    result = fastfnn("gradcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.endswith("   ok")]
    n = len(gradcheck_cases())  # every hidden activation, every (loss, output) pair, derivation
    assert len(rows) == n
    for hidden in HIDDEN_ACTIVATIONS:
        assert any(r.startswith(f"{hidden}, squared_error + identity") for r in rows), hidden
    assert any(r.startswith("logistic, squared_error + logistic *") for r in rows)
    assert any(r.startswith("tanh, log_loss + softmax") for r in rows)
    assert f"{n} of {n} checks within 1e-07" in result.stdout
    for row in rows:  # three layers, each a relative error
        errors = [float(v) for v in row.split()[-4:-1]]
        assert len(errors) == 3 and max(errors) < 1e-7



def test_gradcheck_fails_on_a_tiny_tolerance(capsys):
    assert main(["gradcheck", "--tol", "1e-14", "--sizes", "2,3,2"]) == 1
    assert "FAIL" in capsys.readouterr().out


# ---- errors: one line on stderr, exit 1, nothing written --------------------------------------


def _make_error_files(d):
    write_csv(d / "text.csv", ["a", "b", "y"], [[1, 2, 3], [4, "abc", 6]])
    write_csv(d / "nan.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5, 6], [7, "nan", 9]])
    write_csv(d / "inf.csv", ["a", "b", "y"], [[1, 2, 3], ["-inf", 5, 6]])
    write_csv(d / "nan_target.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5, "NaN"]])
    write_csv(d / "missing_cell.csv", ["a", "b", "y"], [[1, "", 3]])
    write_csv(d / "ragged.csv", ["a", "b", "y"], [[1, 2, 3], [4, 5]])
    write_csv(d / "only_target.csv", ["y"], [[1], [2]])
    write_csv(d / "header_only.csv", ["a", "b", "y"], [])
    write_csv(d / "two_features.csv", ["u", "v"], [[1, 2], [3, 4]])
    write_csv(d / "moved.csv", ["b", "a", "x"], [[1, 2, 3]])
    write_csv(d / "ten.csv", ["a", "y"], [[i, i * i] for i in range(10)])
    (d / "empty.csv").write_text("")
    (d / "binary.csv").write_bytes(bytes(range(256)))
    (d / "junk.model").write_text("not a model\n")
    (d / "damaged.model").write_bytes(MODEL_MAGIC + b"\x80\x04 garbage")
    import joblib
    joblib.dump({"model": "an ordinary pickle"}, d / "pickle.model")
    shutil.copy(ROOT / "data" / "sine.csv", d / "sine.csv")


SAVE = ["--save", "out.model", "--plot", "out.png"]

# The errors, each through its own process: (argv, fragments of the message, command).
PROCESS_ERRORS = {
    "missing file": (["fit", "nope.csv", *SAVE], ["nope.csv: no such file"], "fit"),
    "empty file": (["fit", "empty.csv", *SAVE], ["empty.csv: the file is empty"], "fit"),
    "non-numeric": (["fit", "text.csv", *SAVE],
                    ["text.csv, line 3, column 'b': 'abc' is not a number"], "fit"),
    "missing target": (["fit", "sine.csv", "--target", "z", *SAVE],
                       ["sine.csv: no column 'z'", "'x', 'y'"], "fit"),
    "nan": (["fit", "nan.csv", *SAVE], ["nan.csv, line 4, column 'b'", "not a finite"], "fit"),
    "inf": (["fit", "inf.csv", *SAVE], ["inf.csv, line 3, column 'a'", "not a finite"], "fit"),
    "not a model": (["predict", "junk.model", "sine.csv", "--output", "p.csv"],
                    ["junk.model: not a fastfnn model file"], "predict"),
    "feature count": (["predict", "good.model", "two_features.csv", "--output", "p.csv"],
                      ["two_features.csv: 2 columns, but the model needs 3 features"], "predict"),
}

# More errors, through cli.main in this process (same code path, no interpreter start-up).
IN_PROCESS_ERRORS = {
    "directory": (["fit", ".", *SAVE], [".: is a directory"], "fit"),
    "header only": (["fit", "header_only.csv"], ["header_only.csv", "no data rows"], "fit"),
    "nan target": (["fit", "nan_target.csv"], ["line 3, column 'y'", "not a finite"], "fit"),
    "empty cell": (["fit", "missing_cell.csv"],
                   ["line 2, column 'b': empty cell (missing value)"], "fit"),
    "ragged row": (["fit", "ragged.csv"], ["ragged.csv, line 3: 2 cells", "3 columns"], "fit"),
    "not utf-8": (["fit", "binary.csv"], ["binary.csv: not a text CSV"], "fit"),
    "no features": (["fit", "only_target.csv"], ["at least one feature column"], "fit"),
    "split too small": (["fit", "ten.csv", "--test-size", "0.1"],
                        ["ten.csv: 10 rows are too few", "--test-size 0.1"], "fit"),
    "validation too small": (["fit", "ten.csv", "--early-stopping", *SAVE],
                             ["validation set is too small"], "fit"),
    "labels without --classify": (["fit", "iris"], [
        "iris.csv (bundled), line 2, column 'species'", "use --classify"], "fit"),
    "no such directory": (["fit", "sine.csv", "--save", "nodir/m.model"],
                          ["--save nodir/m.model", "does not exist"], "fit"),
    "lbfgs plot": (["fit", "sine.csv", "--solver", "lbfgs", "--plot", "p.png"], ["lbfgs"], "fit"),
    "plain pickle": (["predict", "pickle.model", "sine.csv", "--output", "p.csv"],
                     ["pickle.model: not a fastfnn model file"], "predict"),
    "damaged model": (["predict", "damaged.model", "sine.csv"],
                      ["damaged.model: damaged fastfnn model file"], "predict"),
    "missing model": (["predict", "nope.model", "sine.csv"], ["nope.model: no such file"],
                      "predict"),
    "moved columns": (["predict", "good.model", "moved.csv", "--output", "p.csv"],
                      ["moved.csv: 3 columns, but the model needs 3 features"], "predict"),
    "bad predict data": (["predict", "good.model", "nan.csv", "--output", "p.csv"],
                         ["nan.csv, line 4, column 'b'"], "predict"),
    "missing predict data": (["predict", "good.model", "nope.csv", "--output", "p.csv"],
                             ["nope.csv: no such file"], "predict"),
}


@pytest.fixture(scope="module")
def error_dir(work, tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    shutil.copy(work / "m.model", d / "good.model")
    _make_error_files(d)
    return d, set(os.listdir(d))


@pytest.fixture(scope="module")
def error_runs(error_dir):
    """Every PROCESS_ERRORS command, started four at a time."""
    d, _ = error_dir
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda argv: fastfnn(*argv, cwd=d),
                           [argv for argv, _, _ in PROCESS_ERRORS.values()])
        return dict(zip(PROCESS_ERRORS, results))


@pytest.mark.parametrize("case_id", PROCESS_ERRORS)
def test_error_in_a_process(error_runs, case_id):
    _, fragments, command = PROCESS_ERRORS[case_id]
    result = error_runs[case_id]
    assert_one_line_error(result, *fragments, command=command)
    assert result.stdout == ""


@pytest.mark.parametrize("case_id", IN_PROCESS_ERRORS)
def test_error(error_dir, case_id, monkeypatch, capsys):
    d, _ = error_dir
    argv, fragments, command = IN_PROCESS_ERRORS[case_id]
    monkeypatch.chdir(d)
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess(argv, code, out, err), *fragments,
                          command=command)
    if case_id != "validation too small":  # raised by the estimator, after the header lines
        assert out == ""


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
    assert load_dataset("friedman1")[0].shape == (2000, 10)


def test_read_csv_skips_blank_lines_and_strips_a_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa, b ,y\n\n1,2,3\n 4 ,5,6\n".encode("utf-8"))
    table = read_csv(path)
    assert table.header == ["a", "b", "y"] and table.lines == [3, 4]
    np.testing.assert_array_equal(table.floats([0, 2]), [[1, 3], [4, 6]])
    with pytest.raises(DataError, match="no column 'z'"):
        table.column_index("z")
