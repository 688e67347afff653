"""The command line's Dask paths: ``fit --stream``, ``predict --stream`` (automatic for a glob)
and ``search``, checked against fastfnn.load_model and scikit-learn's in-process GridSearchCV;
the model files of search and of the streaming fit, used by predict and described by info."""

import os
import re

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pytest.importorskip("dask_ml")

from test_cli_harness import (assert_one_line_error, regression_table,  # noqa: E402
                              run_forked, write_csv)

import fastfnn  # noqa: E402


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """data.csv (240 rows) and the same rows split into dir/part-0..2.csv."""
    root = tmp_path_factory.mktemp("scaling")
    header, rows = regression_table(n=240, seed=3)
    write_csv(root / "data.csv", header, rows)
    (root / "dir").mkdir()
    for k in range(3):
        write_csv(root / "dir" / f"part-{k}.csv", header, rows[k * 80:(k + 1) * 80])
    return root


def test_streaming_fit_and_predict_of_a_glob(tables):
    runs = run_forked({
        "fit": (["fit", "dir/part-*.csv", "--save", "m.skops", "--epochs", "3", "--hidden", "8",
                 "--solver", "adamw", "--dropout", "0.1", "--max-grad-norm", "5"], tables),
        "predict": (["predict", "m.skops", "dir/part-*.csv", "--output", "p.csv"], tables),
        "no-output": (["predict", "m.skops", "dir/part-*.csv"], tables),
        "lbfgs": (["fit", "dir/part-*.csv", "--solver", "lbfgs"], tables),
        "no-dask": (["fit", "dir/part-*.csv"], tables, ["dask", "fastfnn.scaling"]),
    })
    fit = runs["fit"]
    assert fit.returncode == 0, fit.stderr
    assert "is a glob pattern" in fit.stdout
    epochs = [line for line in fit.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 3 and "validation R²" in epochs[0]
    assert "best     epoch" in fit.stdout
    assert fit.stderr == ""  # a log file, not a terminal: the epoch lines, no bar frames

    assert runs["predict"].returncode == 0, runs["predict"].stderr
    written = pd.read_csv(tables / "p.csv")
    rows = pd.concat([pd.read_csv(tables / "dir" / f"part-{k}.csv") for k in range(3)],
                     ignore_index=True)
    model = fastfnn.load_model(tables / "m.skops")
    params = model[-1].get_params() if hasattr(model, "steps") else model.get_params()
    assert (params["solver"], params["dropout"], params["max_grad_norm"]) == ("adamw", 0.1, 5)
    expected = model.predict(rows[["a", "b", "c"]])
    assert list(written.columns) == ["target"] and len(written) == len(rows) == 240
    np.testing.assert_allclose(written["target"].to_numpy(), expected, rtol=0, atol=1e-12)

    assert_one_line_error(runs["no-output"], "--output FILE", command="predict")
    assert_one_line_error(runs["lbfgs"], "--solver lbfgs", "a stochastic solver")
    assert_one_line_error(runs["no-dask"], 'pip install "fastfnn[dask]"')


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_search_equals_gridsearchcv(tables):
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    runs = run_forked({"search": (
        ["search", "data.csv", "--param", "alpha=0.0001,3", "--cv", "3", "--workers", "2",
         "--hidden", "8", "--epochs", "30", "--learning-rate", "0.01", "--save", "best.skops",
         "--quiet"], tables), "halving": (
        ["search", "data.csv", "--kind", "halving", "--param", "alpha=0.0001,3", "--cv", "3",
         "--workers", "1", "--hidden", "8", "--epochs", "30", "--learning-rate", "0.01",
         "--quiet"], tables)})
    run = runs["search"]
    assert run.returncode == 0, run.stderr

    # The same estimator as 'fastfnn fit' builds for an all-numeric table, searched in-process.
    frame = pd.read_csv(tables / "data.csv")
    X, y = frame[["a", "b", "c"]], frame["target"].to_numpy()
    prepare = ColumnTransformer([("numeric", Pipeline([("scale", StandardScaler())]),
                                  ["a", "b", "c"])], sparse_threshold=0,
                                verbose_feature_names_out=False)
    fnn = fastfnn.FNNRegressor(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.01,
                               random_state=0, early_stopping=False)
    model = TransformedTargetRegressor(Pipeline([("prepare", prepare), ("fnn", fnn)]),
                                       transformer=StandardScaler())
    folds = KFold(3, shuffle=True, random_state=0)  # as 'fit --cv 3' splits (--seed 0)
    oracle = GridSearchCV(model, {"regressor__fnn__alpha": [0.0001, 3.0]}, cv=folds).fit(X, y)
    best_alpha = oracle.best_params_["regressor__fnn__alpha"]
    assert f"best     alpha={best_alpha:g}: mean R² {oracle.best_score_:.4f}" in run.stdout
    for score in oracle.cv_results_["mean_test_score"]:
        assert f"{score:.4f}" in run.stdout
    saved = fastfnn.load_model(tables / "best.skops")
    np.testing.assert_allclose(saved.predict(X), oracle.best_estimator_.predict(X),
                               rtol=0, atol=1e-10)
    # successive halving over the network's epochs inside the command's model
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    halving = HalvingGridSearchCV(model, {"regressor__fnn__alpha": [0.0001, 3.0]},
                                  resource="regressor__fnn__max_iter", max_resources=30,
                                  cv=folds).fit(X, y)
    assert runs["halving"].returncode == 0, runs["halving"].stderr
    assert f"mean R² {halving.best_score_:.4f}" in runs["halving"].stdout


def test_search_parameter_errors(tables):
    """Names and values the network refuses, and the option checks 'fit' makes (the oracle:
    'fit's own message for the same options), each one line before any fit."""
    write_csv(tables / "one.csv", ["a", "label"], [(i, "x") for i in range(20)])
    fixed = {"classify loss": ["--classify", "--loss", "absolute_error"],
             "lbfgs early stopping": ["--solver", "lbfgs", "--early-stopping"],
             "scoring without early stopping": ["--scoring", "r2", "--no-early-stopping"]}
    runs = run_forked({
        "unknown": (["search", "data.csv", "--param", "alhpa=1,2"], tables),
        "no-dask": (["search", "data.csv", "--param", "alpha=1,2"], tables, ["dask"]),
        "halving epochs": (["search", "data.csv", "--kind", "halving", "--param",
                            "max_iter=3,9"], tables),
        "bad value": (["search", "data.csv", "--param", "alpha=0.1,nan"], tables),
        "bad name value": (["search", "data.csv", "--param", "learning_rate=0.01"], tables),
        "one class": (["search", "one.csv", "--classify", "--param", "alpha=1,2"], tables),
        **{f"search {k}": (["search", "data.csv", "--param", "alpha=1,2", *v], tables)
           for k, v in fixed.items()},
        **{f"fit {k}": (["fit", "data.csv", *v], tables) for k, v in fixed.items()},
    })
    assert_one_line_error(runs["unknown"], "--param alhpa", "alpha", command="search")
    assert_one_line_error(runs["halving epochs"], "--param max_iter", "--epochs",
                          command="search")
    assert_one_line_error(runs["no-dask"], 'pip install "fastfnn[dask]"', command="search")
    assert_one_line_error(runs["bad value"], "--param alpha=nan", "'alpha' parameter",
                          "Got nan", command="search")
    assert_one_line_error(runs["bad name value"], "--param learning_rate=0.01",
                          "'invscaling'", command="search")
    assert_one_line_error(runs["one class"], "one.csv", "single class", command="search")
    for k in fixed:
        said = runs[f"fit {k}"].stderr.strip().split("error: ", 1)[1]
        assert_one_line_error(runs[f"search {k}"], said, command="search")


def test_search_candidates_are_the_models_fit_trains_with_their_options(tables):
    """Searching the loss or the output activation: each candidate is the model 'fit' builds
    with those options (the target standardised for squared error with the identity output
    only), on the folds 'fit --cv' splits: the oracle is 'fit --cv 3' with each option, to the
    printed digits. A candidate that fails on every fold scores nan, with a note saying why
    (the oracle: 'fit's refusal of the same options)."""
    header, rows = regression_table(n=240, seed=4)
    low = min(float(r[-1]) for r in rows)
    write_csv(tables / "positive.csv", header,
              [(*r[:-1], f"{float(r[-1]) - low + 0.1:.6f}") for r in rows])
    common = ["--cv", "3", "--hidden", "8", "--epochs", "20", "--learning-rate", "0.01",
              "--quiet"]
    options = {"loss=squared_error, out_activation=identity": [],
               "loss=squared_error, out_activation=relu": ["--out-activation", "relu"],
               "loss=poisson, out_activation=identity": ["--loss", "poisson"]}
    runs = run_forked({
        "search": (["search", "positive.csv", "--param", "loss=squared_error,poisson",
                    "--param", "out_activation=identity,relu", *common], tables),
        **{name: (["fit", "positive.csv", *given, *common], tables)
           for name, given in options.items()}})
    for result in runs.values():
        assert result.returncode == 0, result.stderr
    table = runs["search"].stdout
    for name in options:
        r2 = re.search(r"R² (\S+),", runs[name].stdout).group(1)
        assert re.search(rf"^ +\d+ +{re.escape(r2)} .*{name}$", table, re.M), (name, r2, table)
    assert "transformer" not in table
    # poisson takes only its exp output, as 'fit' says: that candidate fails on every fold
    assert re.search(r"^ +4 +nan +nan +loss=poisson, out_activation=relu$", table, re.M)
    assert ("note     some fits failed, their candidates scored nan: ValueError: "
            "loss='poisson' always uses the 'exp' output activation") in table


def _keyed(n=240, seed=5):
    """key (text, one per row), a, b (numbers), y1, y2 (regression targets), lab3 (three
    colours), m1, m2 (0/1 labels)."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({"key": [f"k{i:03d}" for i in range(n)],
                          "a": rng.standard_normal(n).round(5),
                          "b": rng.standard_normal(n).round(5)})
    frame["y1"] = (2 * frame.a + frame.b).round(5)
    frame["y2"] = (frame.a - frame.b).round(5)
    frame["lab3"] = np.array(["red", "green", "blue"])[np.digitize(frame.a, [-0.5, 0.5])]
    frame["m1"], frame["m2"] = (frame.a > 0).astype(int), (frame.b > 0).astype(int)
    return frame


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_models_of_search_and_stream_predict_and_say_what_their_metrics_are(tmp_path):
    frame = _keyed()
    frame[["key", "a", "b", "y1", "y2"]].to_csv(tmp_path / "keyed.csv", index=False)
    frame[["a", "b", "y1", "y2"]].to_csv(tmp_path / "numbers.csv", index=False)
    small = ["--hidden", "4", "--quiet"]
    fits = run_forked({
        "stream": (["fit", "numbers.csv", "--target", "y1,y2", "--stream", "--partition-size",
                    "2KB", "--epochs", "2", "--save", "st.skops", *small], tmp_path),
        "search": (["search", "keyed.csv", "--target", "y1", "--drop", "y2", "--id", "key",
                    "--param", "alpha=0.001,0.1", "--cv", "2", "--workers", "2", "--epochs",
                    "3", "--save", "srch.skops", *small], tmp_path)})
    for result in fits.values():
        assert result.returncode == 0, result.stderr
    runs = run_forked({
        "predict stream": (["predict", "st.skops", "numbers.csv", "--no-stream", "-o",
                            "st.csv"], tmp_path),
        "predict search": (["predict", "srch.skops", "keyed.csv", "-o", "srch.csv"], tmp_path),
        "info stream": (["info", "st.skops"], tmp_path),
        "info search": (["info", "srch.skops"], tmp_path)})
    for result in runs.values():
        assert result.returncode == 0, result.stderr

    streamed = fastfnn.load_model(tmp_path / "st.skops")
    written = pd.read_csv(tmp_path / "st.csv")
    assert list(written.columns) == ["y1", "y2"]
    np.testing.assert_array_equal(written.to_numpy(), streamed.predict(frame[["a", "b"]]))
    searched = fastfnn.load_model(tmp_path / "srch.skops")
    written = pd.read_csv(tmp_path / "srch.csv")
    assert list(written.columns) == ["key", "y1"]
    assert written["key"].tolist() == frame["key"].tolist()
    np.testing.assert_array_equal(written["y1"].to_numpy(), searched.predict(frame))

    out = runs["info search"].stdout
    alpha = searched.regressor_[-1].alpha
    best = re.search(r"^best     alpha=\S+: mean R² (\S+)$", fits["search"].stdout, re.M)
    assert "dropped  y2\n" in out and "id       key " in out
    assert f"search   grid, 2-fold cross-validation; best alpha={alpha}\n" in out
    assert ("metrics  cross-validated by the search: the best candidate's mean score over 2 "
            f"folds\n         cross-validated R² {best.group(1)}\n") in out
    out = runs["info stream"].stdout
    best = re.search(r"^best     epoch (\d+): validation R² (\S+) \((\d+) rows; the model kept",
                     fits["stream"].stdout, re.M)
    epoch, score, rows = best.groups()
    assert "trained  2 epochs in " in out
    assert (f"metrics  on the validation partitions held out of the streamed training ({rows} "
            f"rows), at the best epoch ({epoch}: the model kept)\n"
            f"         validation R² {score}\n") in out


def test_streamed_predictions_have_the_in_memory_column_names(tmp_path):
    """predict --stream names its columns as predict does in memory (several targets: their
    names; --proba: TARGET=CLASS, or TARGET=1 per label), to a file and to stdout, and writes
    the same predictions."""
    frame = _keyed()
    frame[["a", "b", "y1", "y2"]].to_csv(tmp_path / "numbers.csv", index=False)
    frame[["a", "b", "lab3"]].to_csv(tmp_path / "colours.csv", index=False)
    frame[["a", "b", "m1", "m2"]].to_csv(tmp_path / "labels.csv", index=False)
    small = ["--hidden", "4", "--epochs", "3", "--quiet"]
    fits = run_forked({
        "multi": (["fit", "numbers.csv", "--target", "y1,y2", "--save", "multi.skops", *small],
                  tmp_path),
        "colours": (["fit", "colours.csv", "--classify", "--save", "colours.skops", *small],
                    tmp_path),
        "labels": (["fit", "labels.csv", "--classify", "--target", "m1,m2", "--save",
                    "labels.skops", *small], tmp_path)})
    for result in fits.values():
        assert result.returncode == 0, result.stderr
    cases = {"multi": ("numbers.csv", []), "colours": ("colours.csv", []),
             "colours proba": ("colours.csv", ["--proba"]),
             "labels proba": ("labels.csv", ["--proba"])}
    argv = {}
    for key, (data, extra) in cases.items():
        model = f"{key.split()[0]}.skops"
        for how in ("stream", "no-stream"):
            argv[f"{key} {how}"] = (["predict", model, data, f"--{how}", "-o",
                                     f"{key.replace(' ', '_')}_{how}.csv", *extra], tmp_path)
    argv["stdout"] = (["predict", "colours.skops", "colours.csv", "--stream", "--proba", "-o",
                       "-"], tmp_path)
    runs = run_forked(argv)
    for result in runs.values():
        assert result.returncode == 0, result.stderr
    colours = fastfnn.load_model(tmp_path / "colours.skops")
    labels = fastfnn.load_model(tmp_path / "labels.skops")
    X = frame[["a", "b"]]
    expected = {
        "multi": (["y1", "y2"], fastfnn.load_model(tmp_path / "multi.skops").predict(X)),
        "colours": (["lab3"], colours.predict(X)),
        "colours proba": ([f"lab3={c}" for c in colours.classes_], colours.predict_proba(X)),
        "labels proba": (["m1=1", "m2=1"], labels.predict_proba(X)),
    }
    for key, (names, values) in expected.items():
        for how in ("stream", "no-stream"):
            written = pd.read_csv(tmp_path / f"{key.replace(' ', '_')}_{how}.csv")
            assert list(written.columns) == names, (key, how)
            got = written.to_numpy().reshape(np.shape(values))
            if got.dtype.kind == "f":
                np.testing.assert_allclose(got, values, rtol=0, atol=1e-12)
            else:
                np.testing.assert_array_equal(got, values)
    assert runs["stdout"].stdout.splitlines()[0] == ",".join(expected["colours proba"][0])
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".part")]


def test_a_halving_search_counts_its_candidates_not_its_rows(capsys):
    """Successive halving's results hold a row per candidate and round: the table and the
    saved record count the candidates (the oracle: the grid's own length)."""
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import HalvingGridSearchCV, ParameterGrid

    from fastfnn.cli import search as command

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.standard_normal(300)
    grid = {"alpha": list(np.logspace(-3, 3, 12))}
    found = HalvingGridSearchCV(Ridge(), grid, cv=3, min_resources=30).fit(X, y)
    n = len(ParameterGrid(grid))
    assert command._n_searched(found) == n < len(found.cv_results_["params"])
    command._table(found, "R²")
    assert f"{n} candidates over {len(found.n_candidates_)} rounds" in capsys.readouterr().out
