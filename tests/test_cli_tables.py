"""``fastfnn fit`` and ``predict`` on real tables: text columns, missing cells, several targets,
probabilities, Parquet, stray cells and missing columns (each command its own process).

Oracles: pandas/NumPy on the same file (medians, categories, line numbers), and the saved model
loaded with ``fastfnn.load_model`` and applied in this process.
"""

import io
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
        "regression": (fit + ["--target", "y,y2", "--save", "reg.model"], d),
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
