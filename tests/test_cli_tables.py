"""``fastfnn fit`` and ``predict`` on real tables: text columns, missing cells, several targets,
probabilities, Parquet, stray cells and missing columns (each command its own process).

Oracles: pandas/NumPy on the same file (medians, categories, line numbers), the saved model
loaded with ``fastfnn.load_model`` and applied in this process, and scikit-learn's metrics
(RMSE, cross_validate, the confusion matrix) of its predictions.
"""

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split
from test_cli_harness import ROOT, assert_one_line_error, run_forked, write_csv

from fastfnn import load_model

N = 240


def model_input(frame, columns):
    """The saved pipeline's input, as the command gives it: text cells as str, '' if missing."""
    X = frame[columns].copy()
    for name in X.columns:
        if X[name].dtype == object or pd.api.types.is_string_dtype(X[name]):
            X[name] = X[name].fillna("").astype(object)
    return X


def _mixed_frame():
    """x1 (numeric, some cells missing), x2 (numeric), color (text, some missing), y and y2
    (regression targets), up and big (0/1 labels)."""
    rng = np.random.RandomState(0)
    x1, x2 = rng.uniform(-2, 2, N), rng.uniform(-2, 2, N)
    color = rng.choice(["red", "green", "blue"], N).astype(object)
    y = np.sin(x1) + x2 * (color == "red") + 0.1 * rng.standard_normal(N)
    frame = pd.DataFrame({"x1": x1.round(5), "x2": x2.round(5), "color": color,
                          "y": y.round(5), "y2": (x1 - x2).round(5),
                          "up": (x1 > 0).astype(int), "big": (x2 > 0.5).astype(int)})
    frame.loc[::17, "x1"] = np.nan
    frame.loc[5::23, "color"] = np.nan
    return frame


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    frame = _mixed_frame()
    frame.to_csv(d / "mixed.csv", index=False)
    new = frame.head(6).copy()
    new.loc[0, "color"], new.loc[1, "x2"] = "purple", np.nan  # unseen value, missing cell
    new.to_csv(d / "new.csv", index=False)
    frame[["x1", "y"]].to_csv(d / "no_x2.csv", index=False)
    classes = frame[["x1", "x2", "up"]].fillna(0).assign(level=(frame["x2"] > 0).astype(int)
                                                         + (frame["x2"] > 1).astype(int))
    classes.to_csv(d / "levels.csv", index=False)
    lines = (d / "mixed.csv").read_text().splitlines()
    lines.insert(3, "")  # a blank line, then a quoted cell over two lines
    lines[5] = lines[5].replace(",red,", ',"red\nish",').replace(",green,", ',"green\nish",') \
        .replace(",blue,", ',"blue\nish",')
    bad = lines[40].split(",")
    bad[1] = "banana"
    lines[40] = ",".join(bad)
    (d / "banana.csv").write_text("\n".join(lines) + "\n")
    banana_line = "\n".join(lines[:40]).count("\n") + 2  # the lines before it, then its own
    iris = pd.read_csv(ROOT / "data" / "iris.csv")
    first_test_row = train_test_split(np.arange(len(iris) + 1), test_size=0.2,
                                      random_state=0)[1][0]
    rare = iris.iloc[[first_test_row]].assign(species="rare")  # one row: not stratified
    pd.concat([iris.iloc[:first_test_row], rare, iris.iloc[first_test_row:]]).to_csv(
        d / "iris_rare.csv", index=False)
    parquet = None
    try:
        import pyarrow  # noqa: F401

        frame.to_parquet(d / "mixed.parquet")
        parquet = ["fit", "mixed.parquet", "--target", "y,y2", "--epochs", "5", "--hidden", "8",
                   "--save", "parquet.model"]
    except ImportError:
        pass
    fit = ["fit", "mixed.csv", "--epochs", "5", "--hidden", "8"]
    cases = {
        "regression": (fit + ["--target", "y,y2", "--save", "reg.model", "--report",
                              "reg.json"], d),
        "regression cv": (fit + ["--target", "y,y2", "--cv", "3", "--report", "cv.json",
                                 "--quiet"], d),
        "rare class": (["fit", "iris_rare.csv", "--classify", "--epochs", "5", "--hidden", "8",
                        "--save", "rare.model", "--report", "rare.json", "--quiet"], d),
        "multilabel": (fit + ["--target", "up,big", "--classify", "--save", "ml.model"], d),
        "iris": (["fit", "iris", "--classify", "--epochs", "20", "--save", "iris.model",
                  "--quiet"], d),
        "predict": (["predict", "reg.model", "mixed.csv", "-o", "reg.csv"], d),
        "predict new": (["predict", "reg.model", "new.csv"], d),
        "multilabel labels": (["predict", "ml.model", "mixed.csv"], d),
        "multilabel proba": (["predict", "ml.model", "mixed.csv", "--proba"], d),
        "iris proba": (["predict", "iris.model", ROOT / "data" / "iris.csv", "--proba"], d),
        "proba of a regressor": (["predict", "reg.model", "mixed.csv", "--proba"], d),
        "missing columns": (["predict", "reg.model", "no_x2.csv"], d),
        "banana": (["fit", "banana.csv", "--target", "y"], d),
        "levels": (["fit", "levels.csv", "--epochs", "2", "--no-early-stopping"], d),
        "three-level multilabel": (["fit", "levels.csv", "--target", "up,level", "--classify"],
                                   d),
        "target text without --classify": (fit + ["--target", "color"], d),
    }
    if parquet:
        cases["parquet"] = (parquet, d)
        cases["predict parquet"] = (["predict", "parquet.model", "mixed.parquet"], d)
    return d, frame, banana_line, run_forked(cases)


def test_text_column_and_missing_cells_are_prepared_in_the_pipeline(tables):
    d, frame, _, runs = tables
    fit = runs["regression"]
    assert fit.returncode == 0, fit.stderr
    out = fit.stdout
    assert "mixed.csv: 240 rows, 5 features, target 'y', 'y2'\n" in out  # named: no "last"
    assert "note     text column 'color' one-hot encoded" in out
    n_missing = int(frame[["x1", "x2", "color", "up", "big"]].isna().sum().sum())
    assert f"note     {n_missing} missing cells in 'x1', 'color' imputed" in out
    assert "numeric features standardised, text features one-hot encoded" in out

    model = load_model(d / "reg.model")
    features = ["x1", "x2", "color", "up", "big"]
    train, _ = train_test_split(frame, test_size=0.2, random_state=0)
    prepare = model.regressor_.named_steps["prepare"]
    numeric = prepare.named_transformers_["numeric"]
    np.testing.assert_allclose(numeric.named_steps["impute"].statistics_,
                               np.nanmedian(train[["x1", "x2", "up", "big"]], axis=0))
    onehot = prepare.named_transformers_["categorical"].named_steps["onehot"]
    assert list(onehot.categories_[0]) == sorted(train["color"].dropna().unique())

    pred = pd.read_csv(d / "reg.csv")
    assert list(pred.columns) == ["y", "y2"]
    np.testing.assert_array_equal(pred.to_numpy(), model.predict(model_input(frame, features)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_rmse_of_several_targets_is_scikit_learns(tables):
    """With several targets the RMSE is the mean of each target's (scikit-learn's), for the
    network and the references, in the report, in the model file and in each --cv fold.
    Oracle: scikit-learn's root_mean_squared_error and cross_validate on pd.read_csv's rows."""
    from sklearn.base import clone
    from sklearn.linear_model import Ridge
    from sklearn.metrics import root_mean_squared_error
    from sklearn.model_selection import KFold, cross_validate
    from sklearn.pipeline import Pipeline

    d, _, _, runs = tables
    assert runs["regression cv"].returncode == 0, runs["regression cv"].stderr
    model, metadata = load_model(d / "reg.model", return_metadata=True)
    frame = pd.read_csv(d / "mixed.csv")
    X, y = frame.drop(columns=["y", "y2"]), frame[["y", "y2"]].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    linear = Pipeline([("prepare", clone(model.regressor[0])), ("ridge", Ridge(alpha=1.0))])
    expected = {
        "network": root_mean_squared_error(y_test, model.predict(X_test)),
        "linear": root_mean_squared_error(y_test, linear.fit(X_train, y_train).predict(X_test)),
        "baseline": root_mean_squared_error(y_test, np.tile(y_train.mean(0), (len(y_test), 1)))}
    metrics = json.loads((d / "reg.json").read_text())["metrics"]
    for name, rmse in expected.items():
        assert metrics[name]["RMSE"] == pytest.approx(rmse, rel=1e-12), name
    assert metadata["fastfnn_cli"]["test_metrics"]["RMSE"] == metrics["network"]["RMSE"]
    folds = json.loads((d / "cv.json").read_text())["cv"]["per_fold"]
    scores = cross_validate(clone(model), X, y, cv=KFold(3, shuffle=True, random_state=0),
                            scoring="neg_root_mean_squared_error")["test_score"]
    np.testing.assert_allclose([fold["network"]["RMSE"] for fold in folds], -scores,
                               rtol=1e-12)


def test_a_class_absent_from_the_training_rows_stays_in_the_confusion_matrix(tables):
    """A test row of a class the network never saw is counted in the confusion matrix (printed,
    in the report and in the plot): its labels are the model's classes and those of the test
    rows and predictions. Oracle: scikit-learn's confusion_matrix (without labels) of the saved
    model's predictions on the test rows of pd.read_csv."""
    from sklearn.metrics import confusion_matrix

    d, _, _, runs = tables
    result = runs["rare class"]
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(d / "iris_rare.csv")
    y = frame.pop("species").to_numpy()
    _, X_test, _, y_test = train_test_split(frame, y, test_size=0.2, random_state=0)
    model = load_model(d / "rare.model")
    assert "rare" in y_test and "rare" not in model.classes_
    pred = model.predict(X_test)
    labels, matrix = sorted(set(y_test) | set(pred)), confusion_matrix(y_test, pred)
    assert matrix.sum() == len(y_test) == 31
    report = json.loads((d / "rare.json").read_text())
    assert report["confusion_matrix"] == {"labels": labels, "matrix": matrix.tolist()}
    lines = result.stdout.split("columns: predicted)\n")[1].splitlines()[:len(labels) + 1]
    assert [line.split() for line in lines] == [["true", *labels]] + [
        [label, *map(str, row)] for label, row in zip(labels, matrix)]
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from fastfnn.cli.plot import _confusion_panel

    ax = Figure().subplots()
    _confusion_panel(ax, model, X_test, y_test)
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix)
    assert [tick.get_text() for tick in ax.get_yticklabels()] == labels


def test_unseen_values_and_missing_cells_at_predict_time(tables):
    d, frame, _, runs = tables
    result = runs["predict new"]
    assert result.returncode == 0, result.stderr
    new = pd.read_csv(d / "new.csv")
    expected = load_model(d / "reg.model").predict(
        model_input(new, ["x1", "x2", "color", "up", "big"]))
    got = pd.read_csv(io.StringIO(result.stdout)).to_numpy()
    np.testing.assert_array_equal(got, expected)


def test_multilabel_targets_and_probabilities(tables):
    d, frame, _, runs = tables
    assert runs["multilabel"].returncode == 0, runs["multilabel"].stderr
    assert "accuracy (every label right)" in runs["multilabel"].stdout
    model = load_model(d / "ml.model")
    X = model_input(frame, ["x1", "x2", "color", "y", "y2"])
    labels = pd.read_csv(io.StringIO(runs["multilabel labels"].stdout))
    assert list(labels.columns) == ["up", "big"]
    np.testing.assert_array_equal(labels.to_numpy(), model.predict(X))
    proba = pd.read_csv(io.StringIO(runs["multilabel proba"].stdout))
    assert list(proba.columns) == ["up=1", "big=1"]
    np.testing.assert_array_equal(proba.to_numpy(), model.predict_proba(X))


def test_class_probabilities(tables):
    d, _, _, runs = tables
    assert runs["iris"].returncode == 0 and runs["iris proba"].returncode == 0
    proba = pd.read_csv(io.StringIO(runs["iris proba"].stdout))
    assert list(proba.columns) == ["species=setosa", "species=versicolor", "species=virginica"]
    iris = pd.read_csv(ROOT / "data" / "iris.csv")
    expected = load_model(d / "iris.model").predict_proba(iris.drop(columns="species"))
    np.testing.assert_array_equal(proba.to_numpy(), expected)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert_one_line_error(runs["proba of a regressor"], "--proba is for classifiers",
                          command="predict")


def test_table_errors_name_the_file_line_and_columns(tables):
    _, _, banana_line, runs = tables
    assert_one_line_error(runs["banana"],
                          f"banana.csv, line {banana_line}, column 'x2': 'banana' is not a number")
    assert_one_line_error(runs["missing columns"], "no_x2.csv: missing columns x2, color, up, "
                          "big", command="predict")
    assert_one_line_error(runs["three-level multilabel"], "levels.csv: column 'level' holds '0', "
                          "'1', '2'", "each target is a 0/1 label")
    assert_one_line_error(runs["target text without --classify"],
                          "mixed.csv, line 2, column 'color'", "use --classify")


def test_a_class_like_regression_target_gets_a_hint(tables):
    result = tables[3]["levels"]
    assert result.returncode == 0, result.stderr
    assert "target 'level' (the last column; --target to choose)" in result.stdout
    assert ("note     target 'level' holds only 3 distinct integers (0, 1, 2): if they are "
            "classes, use --classify") in result.stdout
    assert "early stopping" not in result.stdout  # --no-early-stopping


def test_parquet_gives_the_same_model_as_csv(tables):
    pytest.importorskip("pyarrow")
    d, frame, _, runs = tables
    assert runs["parquet"].returncode == 0, runs["parquet"].stderr
    test_line = re.compile(r"^test .*$", re.M)
    assert test_line.search(runs["parquet"].stdout).group() == \
        test_line.search(runs["regression"].stdout).group()
    assert runs["predict parquet"].returncode == 0, runs["predict parquet"].stderr
    assert runs["predict parquet"].stdout == (d / "reg.csv").read_text()


def test_small_tables_train_without_a_validation_split(tmp_path):
    write_csv(tmp_path / "small.csv", ["a", "y"], [[i, (i * 3) % 7] for i in range(100)])
    result = run_forked({"fit": (["fit", "small.csv", "--epochs", "2"], tmp_path)})["fit"]
    assert result.returncode == 0, result.stderr
    assert "note     80 training rows leave fewer than 50 for a validation split" in result.stdout


def test_a_true_false_column_with_blank_cells_is_numeric_as_without_them(tmp_path):
    """pandas reads a True/False column with blank cells as objects (True, False, NaN), one
    without as bools: both are the same numeric feature, its blanks filled as a number's. Oracle:
    the saved model in plain Python on what ``pd.read_csv`` gives (the README's promise), and the
    column's kind in ``info``: before, the blanks made it a text column whose categories
    'True'/'False' never matched pandas' bools (wrong numbers, no error), and a blank at predict
    time in a column trained without any was refused."""
    rng = np.random.RandomState(0)
    x, flag = rng.normal(size=200).round(5), rng.rand(200) < 0.5
    y = (2 * x + 3 * flag + 0.1 * rng.normal(size=200)).round(5)
    gaps = pd.DataFrame({"x": x, "flag": pd.Series(flag, dtype=object), "y": y})
    gaps.loc[::20, "flag"] = np.nan
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    pd.DataFrame({"x": x, "flag": flag, "y": y}).to_csv(tmp_path / "whole.csv", index=False)
    fit = ["--epochs", "20", "--hidden", "8", "--quiet"]
    cases = {
        "fit gaps": (["fit", "gaps.csv", "--save", "gaps.model", *fit], tmp_path),
        "fit whole": (["fit", "whole.csv", "--save", "whole.model", *fit], tmp_path),
        "info": (["info", "gaps.model", "--json"], tmp_path),
        "gaps on gaps": (["predict", "gaps.model", "gaps.csv"], tmp_path),
        "whole on gaps": (["predict", "whole.model", "gaps.csv"], tmp_path),
        "streamed": (["predict", "gaps.model", "gaps.csv", "--stream", "-o", "-"], tmp_path),
    }
    parquet = pytest.importorskip("pyarrow") and tmp_path / "gaps.parquet"
    gaps.to_parquet(parquet)  # True/False/None objects, read back as such
    cases["fit parquet"] = (["fit", parquet.name, "--save", "parquet.model", *fit], tmp_path)
    cases["parquet info"] = (["info", "parquet.model", "--json"], tmp_path)
    cases["parquet on parquet"] = (["predict", "parquet.model", parquet.name], tmp_path)
    runs = run_forked(cases)
    for run in runs.values():
        assert run.returncode == 0, run.stderr
    for info in ("info", "parquet info"):
        kinds = json.loads(runs[info].stdout)["feature_kinds"]
        assert kinds == {"x": "numeric", "flag": "numeric"}
    read = pd.read_csv(tmp_path / "gaps.csv")
    for model, run, frame in (("gaps", "gaps on gaps", read), ("whole", "whole on gaps", read),
                              ("gaps", "streamed", read),
                              ("parquet", "parquet on parquet", pd.read_parquet(parquet))):
        expected = load_model(tmp_path / f"{model}.model").predict(frame)
        got = pd.read_csv(io.StringIO(runs[run].stdout))["y"].to_numpy()
        np.testing.assert_array_equal(got, expected)


def test_a_parquet_date_column_predicts_in_plain_python_as_the_command_does(tmp_path):
    """A Parquet date column: the command reads its cells as text (str), and the saved model,
    handed what ``pd.read_parquet`` gives (Timestamps), encodes them alike (the oracle:
    ``fastfnn predict`` on the file; the encoder's categories are that text). Before, every
    date was an unseen category there."""
    pytest.importorskip("pyarrow")
    rng = np.random.RandomState(1)
    day = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.randint(0, 3, 150), unit="D")
    x = rng.normal(size=150).round(4)
    y = (x + (day.day == 2) + 0.05 * rng.normal(size=150)).round(4)
    pd.DataFrame({"day": day, "x": x, "y": y}).to_parquet(tmp_path / "days.parquet")
    runs = run_forked({"fit": (["fit", "days.parquet", "--save", "days.model", "--epochs", "30",
                                "--hidden", "8", "--quiet"], tmp_path)})
    assert runs["fit"].returncode == 0, runs["fit"].stderr
    runs = run_forked({"predict": (["predict", "days.model", "days.parquet"], tmp_path)})
    assert runs["predict"].returncode == 0, runs["predict"].stderr
    model = load_model(tmp_path / "days.model")
    read = pd.read_parquet(tmp_path / "days.parquet")
    assert isinstance(read["day"].iloc[0], pd.Timestamp)
    printed = pd.read_csv(io.StringIO(runs["predict"].stdout))["y"].to_numpy()
    np.testing.assert_array_equal(model.predict(read), printed)
    encoder = model.regressor_[0].named_transformers_["categorical"][-1]
    assert [list(c) for c in encoder.categories_] == [
        ["2021-01-01 00:00:00", "2021-01-02 00:00:00", "2021-01-03 00:00:00"]]
