"""The command line's Dask paths: ``fit --stream``, ``predict --stream`` (automatic for a glob)
and ``search``, checked against fastfnn.load_model and scikit-learn's in-process GridSearchCV."""

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
    from sklearn.model_selection import GridSearchCV
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
    oracle = GridSearchCV(model, {"regressor__fnn__alpha": [0.0001, 3.0]}, cv=3).fit(X, y)
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
                                  cv=3).fit(X, y)
    assert runs["halving"].returncode == 0, runs["halving"].stderr
    assert f"mean R² {halving.best_score_:.4f}" in runs["halving"].stdout


def test_search_parameter_errors(tables):
    runs = run_forked({
        "unknown": (["search", "data.csv", "--param", "alhpa=1,2"], tables),
        "no-dask": (["search", "data.csv", "--param", "alpha=1,2"], tables, ["dask"]),
    })
    assert_one_line_error(runs["unknown"], "--param alhpa", "alpha", command="search")
    assert_one_line_error(runs["no-dask"], 'pip install "fastfnn[dask]"', command="search")
