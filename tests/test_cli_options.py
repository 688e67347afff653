"""What each of ``fastfnn fit``'s options does, and the refusal of options a command cannot
honour: --drop, --id, --class-weight, --cv, --quiet (what it keeps), the identifier warning,
rare text values grouped and kept sparse, the metrics of an imbalanced table, the plot of a
regressor, the streaming progress bar and options refused by search and --stream.

Oracles: pandas on the same file (column names, shares of classes), scikit-learn's metric
functions and splitters applied here to the saved model, scipy's sparse check on the saved
pipeline's output, and the processes' peak resident memory.
"""

import importlib.util
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from test_cli_harness import PNG_MAGIC, assert_one_line_error, run_forked

from fastfnn import load_model
from fastfnn.cli import main

ROWS = 400


def _people(n=ROWS, seed=0):
    """name (unique per row), city (text), x1, x2, noise (numbers), y (regression target),
    default ('yes' for about 4% of the rows)."""
    rng = np.random.RandomState(seed)
    x1, x2 = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    city = rng.choice(["Oslo", "Lima", "Pune"], n)
    frame = pd.DataFrame({"name": [f"person {i}" for i in range(n)], "city": city,
                          "x1": x1.round(5), "x2": x2.round(5),
                          "noise": rng.standard_normal(n).round(5)})
    frame["y"] = (np.sin(x1) + x2 * (city == "Oslo") + 0.05 * rng.standard_normal(n)).round(5)
    frame["default"] = np.where(x1 + 0.3 * rng.standard_normal(n) > 1.75, "yes", "no")
    return frame


def _many_values(n, values, seed=0):
    """A numeric column and one text column of ``values`` values (each in about n / values
    rows; a tenth of them in only one row)."""
    rng = np.random.RandomState(seed)
    code = rng.randint(0, values, n)
    code[: values // 10] = np.arange(values - values // 10, values)  # the rare ones, once
    code[values // 10:][np.isin(code[values // 10:], np.arange(values - values // 10,
                                                                values))] = 0
    effect = rng.standard_normal(values)
    x = rng.standard_normal(n)
    return pd.DataFrame({"x": x.round(5), "tail": [f"N{c:05d}" for c in code],
                         "y": (x + effect[code]).round(5)})


def _sizes(n=90):
    """id (text), x (numbers), size (text whose values look like numbers: 10, 20, L), y."""
    rng = np.random.RandomState(1)
    size = np.array(["10", "20", "L"])[np.arange(n) % 3]
    x = rng.standard_normal(n).round(4)
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x": x, "size": size,
                         "y": (x + (size == "20") + 2 * (size == "L")).round(4)})


def _stamps(n=200, seed=0):
    """x (numbers), when (timestamps, three values), at (times of day, two values), y."""
    rng = np.random.RandomState(seed)
    x, k, h = rng.standard_normal(n), rng.randint(0, 3, n), rng.randint(0, 2, n)
    when = np.array(["2021-01-01T10:00:00", "2021-06-15 11:30", "2022-03-03T08:00"])[k]
    return pd.DataFrame({"x": x.round(5), "when": when, "at": np.array(["10:30", "14:00"])[h],
                         "y": (x + 3 * k - h + 0.05 * rng.standard_normal(n)).round(5)})


# cells that pandas alone would read otherwise: ids as numbers, the size column (no 'L', one
# gap) as floats; an x column with no value at all; integers with a gap beside the text
# columns; the features by position (a header that does not name them)
SIZES_NEW = "id,x,size\n007,0.5,10\n12345678901234567,0.2,20\n,0.1,\n"
SIZES_GAP = "id,x,size\nA,,10\nB,,L\n"
SIZES_INT_GAP = "id,x,size\nA,1,10\nB,,L\nC,3,20\n"
SIZES_BY_POSITION = "p,q\n0.5,10\n0.1,\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("options")
    people = _people()
    people.to_csv(d / "people.csv", index=False)
    people[["x1", "x2", "noise", "y"]].to_csv(d / "numbers.csv", index=False)
    _many_values(20_000, 2_000).to_csv(d / "tails.csv", index=False)
    _many_values(20_000, 2_000).assign(tail=0.0).to_csv(d / "no_tails.csv", index=False)
    sizes = _sizes()
    sizes.to_csv(d / "sizes.csv", index=False)
    (d / "sizes_new.csv").write_text(SIZES_NEW)
    (d / "sizes_gap.csv").write_text(SIZES_GAP)
    (d / "sizes_int_gap.csv").write_text(SIZES_INT_GAP)
    (d / "sizes_by_position.csv").write_text(SIZES_BY_POSITION)
    _stamps().to_csv(d / "stamps.csv", index=False)
    (d / "semicolons.csv").write_text("a;b;y\n1;2;3\n4;5;6\n")
    fit = ["fit", "people.csv", "--hidden", "8", "--epochs", "5"]
    cases = {
        "sizes": (["fit", "sizes.csv", "--id", "id", "--hidden", "8", "--epochs", "5",
                   "--no-early-stopping", "--save", "sizes.model", "--quiet"], d),
        "sizes new": (["predict", "sizes.model", "sizes_new.csv"], d),
        "sizes gap": (["predict", "sizes.model", "sizes_gap.csv"], d),
        "sizes int gap": (["predict", "sizes.model", "sizes_int_gap.csv"], d),
        "sizes by position": (["predict", "sizes.model", "sizes_by_position.csv"], d),
        "stamps": (["fit", "stamps.csv", "--hidden", "8", "--epochs", "5", "--save",
                    "stamps.model", "--report", "stamps.json", "--quiet"], d),
        "stamps predict": (["predict", "stamps.model", "stamps.csv"], d),
        "sizes stream": (["predict", "sizes.model", "sizes_new.csv", "--stream", "-o",
                          "streamed.csv"], d),
        "drop and id": (fit + ["--target", "y", "--drop", "default,noise", "--id", "name",
                               "--save", "m.model", "--quiet"], d),
        "predict with id": (["predict", "m.model", "people.csv"], d),
        "identifier": (fit + ["--target", "y", "--drop", "default", "--quiet"], d),
        "drop unknown": (fit + ["--drop", "nope"], d),
        "id is the target": (fit + ["--target", "y", "--id", "y"], d),
        "class weight without classify": (fit + ["--class-weight", "balanced"], d),
        "imbalanced": (["fit", "people.csv", "--drop", "name,y", "--classify", "--hidden", "8",
                        "--epochs", "5", "--save", "imb.model", "--quiet"], d),
        "balanced": (["fit", "people.csv", "--drop", "name,y", "--classify", "--hidden", "8",
                      "--epochs", "5", "--class-weight", "balanced", "--save", "bal.model",
                      "--quiet"], d),
        "cv": (["fit", "numbers.csv", "--cv", "3", "--hidden", "8", "--epochs", "5",
                "--report", "cv.json", "--save", "cv.model", "--quiet"], d),
        "cv and test size": (["fit", "numbers.csv", "--cv", "3", "--test-size", "0.3"], d),
        "cv and plot": (["fit", "numbers.csv", "--cv", "3", "--plot", "p.png"], d),
        "quiet stop": (["fit", "numbers.csv", "--hidden", "8", "--tol", "0.5",
                        "--n-iter-no-change", "2", "--no-early-stopping", "--quiet"], d),
        "plot": (["fit", "people.csv", "--target", "y", "--drop", "default", "--id", "name",
                  "--hidden", "8", "--epochs", "8", "--no-early-stopping", "--plot", "r.png",
                  "--quiet"], d),
        "tails": (["fit", "tails.csv", "--hidden", "8", "--epochs", "1", "--no-early-stopping",
                   "--save", "tails.model"], d),
        "no tails": (["fit", "no_tails.csv", "--hidden", "8", "--epochs", "1",
                      "--no-early-stopping"], d),
        "stream test size": (["fit", "numbers.csv", "--stream", "--test-size", "0.3"], d),
        "stream tol": (["fit", "numbers.csv", "--stream", "--tol", "0.01"], d),
        "stream scoring": (["fit", "numbers.csv", "--stream", "--scoring", "loss"], d),
        "semicolons": (["fit", "semicolons.csv"], d),
        "fractional labels": (["fit", "numbers.csv", "--classify", "--target", "x1"], d),
        "scoring of another task": (["fit", "numbers.csv", "--scoring", "accuracy"], d),
        "scoring of classes": (["fit", "people.csv", "--classify", "--target", "default",
                                "--scoring", "r2"], d),
        # 320 training rows leave 32 for validation: early stopping is off by default
        "scoring without early stopping": (["fit", "numbers.csv", "--scoring", "r2"], d),
        "new parameters": (["fit", "numbers.csv", "--solver", "adamw", "--schedule", "cosine",
                            "--dropout", "0.1,0.2", "--max-grad-norm", "2", "--scoring",
                            "neg_mean_absolute_error", "--early-stopping", "--hidden", "8,4",
                            "--epochs", "3", "--save", "new.model", "--quiet"], d),
        "dropout with lbfgs": (["fit", "numbers.csv", "--solver", "lbfgs", "--dropout", "0.1"],
                               d),
    }
    return d, people, run_forked(cases)


def test_drop_and_id_leave_the_features_and_id_comes_back_in_predict(runs):
    d, people, runs = runs
    assert runs["drop and id"].returncode == 0, runs["drop and id"].stderr
    model, metadata = load_model(d / "m.model", return_metadata=True)
    assert list(metadata["fastfnn_cli"]["features"]) == ["city", "x1", "x2"]
    assert metadata["fastfnn_cli"]["id"] == "name"
    printed = pd.read_csv(io.StringIO(runs["predict with id"].stdout))
    assert list(printed.columns) == ["name", "y"]
    assert list(printed["name"]) == list(people["name"])
    np.testing.assert_array_equal(printed["y"], model.predict(people))
    assert_one_line_error(runs["drop unknown"], "missing column nope (named by --drop)")
    assert_one_line_error(runs["id is the target"], "column 'y' is the target")
    assert_one_line_error(runs["class weight without classify"], "--class-weight",
                          "needs --classify")


def test_predict_reads_a_models_text_columns_and_id_as_their_cells(runs):
    """A cell's text is the category the model was trained on, whatever else its column holds
    in the file predicted, and whether the columns are taken by name or by position; ids are
    written as DATA has them; a column with no value, or an integer column's gap, is filled
    as the model's imputers fill a missing cell. Oracle: the saved pipeline on the cells."""
    d, _, runs = runs
    assert runs["sizes"].returncode == 0, runs["sizes"].stderr
    model = load_model(d / "sizes.model")
    for case, ids, cells in [
            ("sizes new", ["007", "12345678901234567", ""],
             {"x": [0.5, 0.2, 0.1], "size": ["10", "20", np.nan]}),
            ("sizes gap", ["A", "B"], {"x": [np.nan, np.nan], "size": ["10", "L"]}),
            ("sizes int gap", ["A", "B", "C"], {"x": [1, np.nan, 3], "size": ["10", "L", "20"]}),
            ("sizes by position", None, {"x": [0.5, 0.1], "size": ["10", np.nan]})]:
        assert runs[case].returncode == 0, runs[case].stderr
        printed = pd.read_csv(io.StringIO(runs[case].stdout), dtype={"id": str},
                              keep_default_na=False)
        assert list(printed.get("id", [])) == (ids or [])
        expected = model.predict(pd.DataFrame({"x": np.array(cells["x"], float),
                                               "size": np.array(cells["size"], object)}))
        np.testing.assert_array_equal(printed["y"].astype(float), expected)
    if importlib.util.find_spec("dask") is not None:  # (without it: the extra is named)
        assert_one_line_error(runs["sizes stream"], "text columns (size)", "--no-stream",
                              command="predict")


def test_timestamps_and_times_are_text_in_fit_as_in_predict(runs):
    """Columns of timestamps and times of day are text columns whose categories are their
    cells' text in fit as in predict: the saved model predicts from pd.read_csv's frame what
    the command prints, and fit's test metrics are scikit-learn's on those predictions."""
    from sklearn import metrics
    from sklearn.model_selection import train_test_split

    d, _, runs = runs
    for case in ("stamps", "stamps predict"):
        assert runs[case].returncode == 0, runs[case].stderr
    model = load_model(d / "stamps.model")
    frame = pd.read_csv(d / "stamps.csv")
    encoder = model.regressor_[0].named_transformers_["categorical"][-1]
    assert [list(c) for c in encoder.categories_] == [sorted(set(frame["when"])),
                                                      sorted(set(frame["at"]))]
    printed = pd.read_csv(io.StringIO(runs["stamps predict"].stdout))
    np.testing.assert_array_equal(printed["y"], model.predict(frame))
    _, test = train_test_split(frame, test_size=0.2, random_state=0)
    network = json.loads((d / "stamps.json").read_text())["metrics"]["network"]
    assert network["R²"] == pytest.approx(metrics.r2_score(test["y"], model.predict(test)),
                                          rel=1e-12)


def test_a_text_column_unique_per_row_is_named_even_with_quiet(runs):
    _, _, runs = runs
    out = runs["identifier"].stdout
    assert (f"note     text column 'name' holds {ROWS} distinct values in {ROWS} rows: an "
            "identifier") in out
    assert "--id name" in out and "--drop name" in out
    assert "name" not in runs["drop and id"].stdout  # given as --id: no warning


def test_imbalanced_classes_show_balanced_accuracy_and_the_majority(runs):
    """On a table with ~4% positives, accuracy alone would flatter any model: the command
    prints balanced accuracy and what always answering the majority class scores, and says
    so when the network does no better."""
    from sklearn import metrics
    from sklearn.model_selection import train_test_split

    d, people, runs = runs
    y = people["default"].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(people, y, test_size=0.2,
                                                        random_state=0, stratify=y)
    majority = np.mean(y_test == pd.Series(y_train).mode()[0])
    assert 0.9 < majority < 1
    for case, weighted in (("imbalanced", None), ("balanced", "balanced")):
        out = runs[case].stdout
        assert runs[case].returncode == 0, runs[case].stderr
        model = load_model(d / ("imb.model" if case == "imbalanced" else "bal.model"))
        assert model[-1].class_weight == weighted
        pred = model.predict(X_test)
        network, _, base = _row(out, "balanced accuracy")
        assert network == pytest.approx(metrics.balanced_accuracy_score(y_test, pred), abs=5e-5)
        assert _row(out, "accuracy")[2] == pytest.approx(majority, abs=5e-5)
        assert base == 0.5
        f1 = metrics.f1_score(y_test, pred, average="macro", zero_division=0)
        assert _row(out, "F1 (macro)")[0] == pytest.approx(f1, abs=5e-5)
        if metrics.balanced_accuracy_score(y_test, pred) <= 0.5:
            assert "is no better than always predicting the majority class" in out
    assert "confusion matrix of the network" in runs["imbalanced"].stdout


def _row(out, name):
    """(network, linear, baseline) of the metric ``name`` in the printed table."""
    found = re.search(rf"^ +{re.escape(name)} +(\S+) +(\S+) +(\S+)$", out, re.M)
    return tuple(float(v) for v in found.groups())


def test_cv_reports_each_fold_and_their_spread(runs):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    d, people, runs = runs
    assert runs["cv"].returncode == 0, runs["cv"].stderr
    report = json.loads((d / "cv.json").read_text())
    folds = report["cv"]["per_fold"]
    assert len(folds) == 3 and report["cv"]["splitter"] == "KFold"
    for model in ("network", "linear", "baseline"):
        values = [fold[model]["R²"] for fold in folds]
        assert report["metrics"][model]["R²"] == pytest.approx(np.mean(values))
        assert report["cv"]["std"][model]["R²"] == pytest.approx(np.std(values))
    X = people[["x1", "x2", "noise"]].to_numpy()
    y = people["y"].to_numpy()
    for fold, (train, test) in zip(folds, KFold(3, shuffle=True, random_state=0).split(X)):
        mean, std = X[train].mean(0), X[train].std(0)
        ridge = Ridge(alpha=1.0).fit((X[train] - mean) / std, y[train])
        assert fold["linear"]["R²"] == pytest.approx(ridge.score((X[test] - mean) / std,
                                                                 y[test]), abs=1e-9)
    out = runs["cv"].stdout
    mean_r2 = report["metrics"]["network"]["R²"]
    assert out.startswith(f"cv       R² {mean_r2:.4f}")
    assert re.search(r"R²\s+-?[0-9.]+ ± [0-9.]+", out)
    assert load_model(d / "cv.model").predict(people).shape == (ROWS,)  # refitted on all rows
    assert_one_line_error(runs["cv and test size"], "--test-size", "--cv K tests on each")
    assert_one_line_error(runs["cv and plot"], "--plot draws the curves of one training run")


def test_quiet_keeps_how_training_stopped(runs):
    _, _, runs = runs
    out = runs["quiet stop"].stdout
    epochs = int(re.search(r"trained  (\d+) epochs", out).group(1))
    assert epochs < 200
    assert (f"note     stopped at epoch {epochs}: the training loss did not improve by --tol "
            "0.5 for 2 epochs") in out
    assert "data     " not in out and runs["quiet stop"].stderr == ""


def test_regression_plot_has_the_curves_and_predicted_against_actual(runs):
    d, _, runs = runs
    assert runs["plot"].returncode == 0, runs["plot"].stderr
    png = (d / "r.png").read_bytes()
    assert png[:8] == PNG_MAGIC
    width, height = (int.from_bytes(png[i:i + 4], "big") for i in (16, 20))
    assert (width, height) == (1280, 920)  # loss, train/test error, predicted/actual, norms


def test_rare_text_values_are_grouped_and_stay_sparse(runs):
    """A text column of 2,000 values over 20,000 rows: one-hot encoded into a sparse matrix
    that reaches the network as CSR, its values seen in fewer than 5 training rows grouped
    (and named in a note); the peak memory stays near that of the same table without the
    text column (a dense encoding would add 16,000 x 2,000 x 8 bytes = 256 MB)."""
    import scipy.sparse
    from sklearn.model_selection import train_test_split

    d, _, runs = runs
    for case in ("tails", "no tails"):
        assert runs[case].returncode == 0, runs[case].stderr
    model = load_model(d / "tails.model")
    frame = pd.read_csv(d / "tails.csv")
    pipe = model.regressor_
    assert scipy.sparse.issparse(pipe[0].transform(frame.head(100)))
    encoder = pipe[0].named_transformers_["categorical"][-1]
    train, _ = train_test_split(frame, test_size=0.2, random_state=0)  # the command's split
    counts = train["tail"].value_counts()
    assert encoder.min_frequency == 5
    rare = encoder.infrequent_categories_[0]
    assert len(rare) >= 200 and set(rare) == set(counts.index[counts < 5])
    assert (f"note     text column 'tail': {len(rare)} of its {len(encoder.categories_[0])} "
            "values seen in fewer than 5 training rows") in runs["tails"].stdout
    extra_mb = (runs["tails"].maxrss_kb - runs["no tails"].maxrss_kb) / 1024
    assert extra_mb < 120, extra_mb


def test_options_a_command_cannot_honour_are_refused(runs, capsys):
    d, _, runs = runs
    assert_one_line_error(runs["stream test size"], "--test-size is not available with "
                          "--stream")
    assert_one_line_error(runs["stream tol"], "--tol is not available with --stream")
    assert_one_line_error(runs["semicolons"], "besides the target 'a;b;y'", "holds ';'",
                          "comma-separated")
    first = pd.read_csv(d / "numbers.csv")["x1"][0]  # the cell's text, not NumPy's repr
    assert_one_line_error(runs["fractional labels"], f"'{first}' is not a class label")
    assert_one_line_error(runs["scoring of another task"], "--scoring accuracy scores a "
                          "classification, but this is a regression", "--classify")
    assert_one_line_error(runs["scoring of classes"], "--scoring r2 scores a regression, but "
                          "this is a classification")
    assert_one_line_error(runs["scoring without early stopping"], "--scoring is what early "
                          "stopping scores", "320 training rows", "--early-stopping")
    with pytest.raises(SystemExit) as exit_:  # search cross-validates: it has no test split
        main(["search", "numbers.csv", "--param", "alpha=0.1,1", "--test-size", "0.9"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --test-size 0.9" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_streaming_bar_counts_epochs_not_partitions():
    """3 partitions x 5 epochs: a bar of 5 epochs (the partition shown beside it), not 15
    steps; off a terminal, no bar at all."""
    from fastfnn.cli.streaming import _Bar

    stream = _Terminal()
    bar = _Bar(5, disable=False, stream=stream)
    for epoch in range(1, 6):
        for done in range(1, 4):
            bar.partition(epoch, done, 3)
    bar.close()
    frames = [f for f in stream.getvalue().split("\r") if f.strip()]
    assert "5/5" in frames[-1] and "epoch 5/5, partition 3/3" in frames[-1]
    assert not any("/15" in f for f in frames)
    quiet = io.StringIO()
    bar = _Bar(5, disable=False, stream=quiet)
    bar.partition(1, 1, 3)
    bar.close()
    assert quiet.getvalue() == ""


def test_new_estimator_parameters_pass_through(runs, capsys):
    """--solver and --schedule offer fastfnn.SOLVERS and fastfnn.SCHEDULES; --dropout,
    --max-grad-norm and --scoring reach the estimator."""
    import fastfnn

    d, _, runs = runs
    assert runs["new parameters"].returncode == 0, runs["new parameters"].stderr
    fnn = load_model(d / "new.model").regressor_[-1]
    params = fnn.get_params()
    assert (params["solver"], params["learning_rate"]) == ("adamw", "cosine")
    assert tuple(params["dropout"]) == (0.1, 0.2) and params["max_grad_norm"] == 2
    assert params["scoring"] == "neg_mean_absolute_error" and params["early_stopping"]
    assert_one_line_error(runs["dropout with lbfgs"], "--dropout needs a stochastic --solver")
    assert_one_line_error(runs["stream scoring"], "--scoring is not available with --stream")
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(fastfnn.SOLVERS) + "}" in out
    assert "{" + ",".join(fastfnn.SCHEDULES) + "}" in out
    for bad in (["--dropout", "1.5"], ["--dropout", "0.1,x"], ["--scoring", "accuracyy"]):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", *bad])
        assert exit_.value.code == 2
        assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv, refused", [
    (["fit", "numbers.csv", "--stream", "--test-size", "0.2"], "--test-size is not available"),
    (["predict", "model.skops", "numbers.csv", "--stream"], "need --output FILE"),
    (["search", "numbers.csv", "--param", "alpha=0.1,1", "--cv", "1"], "--cv needs 2 folds"),
    (["search", "numbers.csv", "--param", "alpha=0.1,1", "--class-weight", "balanced"],
     "it needs --classify"),
])
def test_an_option_a_command_refuses_is_named_before_dask_is_asked_for(argv, refused,
                                                                        monkeypatch, capsys):
    """With Dask absent (its import failing as it does where it is not installed), a command
    that needs it names the option it cannot honour first: a user fixes the command line
    before installing anything. Oracle: the error text the command gives for the option."""
    from fastfnn.cli import streaming
    from fastfnn.cli.options import CLIError

    def no_dask(what):
        raise CLIError(f"{what} needs Dask, which is not installed")

    monkeypatch.setattr(streaming, "scaling_module", no_dask)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and refused in err[0] and "Dask" not in err[0], err
