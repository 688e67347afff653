"""The command line's record in a model file (``metadata["fastfnn_cli"]``): what ``info`` says of
it, ``predict`` with records of every writer (earlier versions and search's included), and a
record whose fields are missing, of the wrong type or at odds with the model: one error naming
the field, nothing printed before it. Also ``fit --plot`` when a class is only in the test rows.

Oracles: the saved model's own predictions in this process (pandas reading the written CSV),
its fitted network (epochs), scikit-learn's ``train_test_split`` (which rows are the test rows)
and ``log_loss``.
"""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from test_cli_harness import PNG_MAGIC, assert_one_line_error, run_forked

from fastfnn import load_model, save_model

RECORD = "the model file's command-line record: field"
ONNX = all(importlib.util.find_spec(name) for name in ("skl2onnx", "onnxruntime"))


def _numbers(n=120, seed=0):
    """a, b (numbers), y (regression target)."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({"a": rng.standard_normal(n).round(5),
                          "b": rng.standard_normal(n).round(5)})
    frame["y"] = (frame.a - 2 * frame.b).round(5)
    return frame


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(folder, runs): a folder with numbers.csv, m.model (fit --save) and cv.model (fit --cv 3
    --save); the runs of fit and of info on cv.model."""
    d = tmp_path_factory.mktemp("records")
    _numbers().to_csv(d / "numbers.csv", index=False)
    fit = ["fit", "numbers.csv", "--hidden", "4", "--epochs", "4", "--quiet"]
    runs = run_forked({"fit": (fit + ["--save", "m.model"], d),
                       "cv": (fit + ["--cv", "3", "--save", "cv.model"], d),
                       "info cv": (["info", "cv.model"], d)})
    for result in runs.values():
        assert result.returncode == 0, result.stderr
    return d, runs


@pytest.fixture(scope="module")
def craft(saved):
    """``craft(name, change)`` writes ``name``: m.model with its record changed by
    ``change(record)``, checksummed anew; returns ``name``."""
    d, _ = saved
    model, metadata = load_model(d / "m.model", return_metadata=True)

    def write(name, change):
        record = json.loads(json.dumps(metadata["fastfnn_cli"]))
        change(record)
        save_model(model, d / name, metadata={"fastfnn_cli": record})
        return name
    return write


def _without(*fields):
    def change(record):
        for field in fields:
            del record[field]
    return change


def _with(**fields):
    return lambda record: record.update(fields)


# (field named in the error, change of the record)
BAD = {
    "no targets": ("targets", _without("targets")),
    "targets a text": ("targets", _with(targets="y")),
    "no target": ("targets", _with(targets=[])),
    "two targets, one output": ("targets", _with(targets=["y", "z"])),
    "split null": ("split", _with(split=None)),
    "test rows a text": ("split", _with(split={"test_rows": "24"})),
    "a feature twice": ("features", _with(features=["a", "a"])),
    "features reordered": ("features", _with(features=["b", "a"],
                                             feature_kinds={"b": "numeric", "a": "numeric"})),
    "kind missing": ("feature_kinds", _with(feature_kinds={"a": "numeric"})),
    "odd kind": ("feature_kinds", _with(feature_kinds={"a": "numeric", "b": "date"})),
    "kinds a list": ("feature_kinds", _with(feature_kinds=["numeric", "numeric"])),
    "metrics a list": ("test_metrics", _with(test_metrics=[0.5])),
    "reference a text": ("reference_metrics", _with(reference_metrics={"linear": {"R²": "x"}})),
    "iterations a text": ("training", _with(training={"iterations": "4"})),
    "notes a text": ("training", _with(training={"notes": "stopped"})),
    "one fold": ("cv", _with(cv={"folds": 1})),
    "version a text": ("version", _with(version="2")),
    "dtype": ("dtype", _with(dtype="float16")),
    "task": ("task", _with(task="clustering")),
    "task of another model": ("task", _with(task="classification")),
    "id a number": ("id", _with(id=5)),
    "id a feature": ("id", _with(id="a")),
    "dropped a text": ("dropped", _with(dropped="c")),
    "parameters a list": ("parameters", _with(parameters=[1, 2])),
    "sha256 a number": ("data_file", _with(data_file={"sha256": 5})),
    "rows negative": ("rows", _with(rows=-1)),
    "versions of numbers": ("versions", _with(versions={"numpy": 2})),
    "imputed a text": ("imputed", _with(imputed="numeric")),
}


def test_a_bad_record_is_an_error_naming_the_field(saved, craft):
    """Every case with info; a few with predict and export too (one check serves them all)."""
    d, _ = saved
    cases = {}
    for key, (field, change) in BAD.items():
        name = craft(f"{key.replace(' ', '_')}.model", change)
        cases[key, "info"] = (["info", name], d)
        if key in ("no targets", "split null", "kind missing", "id a number"):
            cases[key, "predict"] = (["predict", name, "numbers.csv"], d)
            if ONNX:  # (without the extra, export says to install it first)
                cases[key, "export"] = (["export", name, f"{name}.onnx"], d)
    runs = run_forked(cases)
    for (key, command), result in runs.items():
        assert_one_line_error(result, f"{RECORD} {BAD[key][0]!r}", command=command)
        assert result.stdout == "", (key, result.stdout)


def test_records_of_earlier_versions_and_of_search_still_load(saved, craft):
    """A record of metadata version 1 (its fields only, metrics as text) and one of 'search
    --save' before it wrote what the metrics are (no id, split or cv): info describes them and
    predict writes the model's predictions."""
    d, _ = saved

    def first_version(record):
        kept = ("fastfnn_version", "features", "feature_kinds", "imputed", "targets", "task",
                "dtype", "data")
        _without(*[k for k in list(record) if k not in kept])(record)
        record.update(version=1, test_metrics={"R²": "0.5000", "RMSE": "1.0000"})

    def earlier_search(record):
        _without("id", "split", "dropped", "reference_metrics", "training")(record)
        record.update(test_metrics={"cross-validated R²": "0.5000"})

    version_1 = craft("v1.model", first_version)
    searched = craft("search.model", earlier_search)
    cases = {}
    for name in (version_1, searched):
        cases[f"info {name}"] = (["info", name], d)
        cases[f"predict {name}"] = (["predict", name, "numbers.csv", "-o", f"{name}.csv"], d)
    runs = run_forked(cases)
    for result in runs.values():
        assert result.returncode == 0, result.stderr
    lines = runs[f"info {version_1}"].stdout.splitlines()
    at = lines.index("metrics  at training time")  # the metrics as the file holds them
    assert sorted(lines[at + 1].strip().split(", ")) == ["RMSE 1.0000", "R² 0.5000"]
    assert "metrics  cross-validated by the search" in runs[f"info {searched}"].stdout
    frame = pd.read_csv(d / "numbers.csv")
    expected = load_model(d / "m.model").predict(frame)
    for name in (version_1, searched):
        written = pd.read_csv(d / f"{name}.csv")
        assert list(written.columns) == ["y"]
        np.testing.assert_array_equal(written["y"].to_numpy(), expected)


def test_info_of_a_cross_validated_model_says_how_its_network_trained(saved):
    d, runs = saved
    out = runs["info cv"].stdout
    epochs = load_model(d / "cv.model").regressor_[-1].n_iter_
    assert f"trained  {epochs} epochs in " in out and "on every row" in out
    assert "after 3 folds in" in out
    assert "metrics  at training time (mean of 3 folds)" in out


def test_plot_draws_when_a_class_is_only_in_the_test_rows(tmp_path):
    """The test rows' log-loss is undefined when they hold a class the training rows lack (as
    the metrics leave it): the fit with --plot draws the picture, the class a row of the
    confusion matrix."""
    pytest.importorskip("matplotlib")
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a": rng.randn(60), "b": rng.randn(60)})
    frame["cls"] = np.where(frame.a > 0, "pos", "neg")
    frame.loc[7, "cls"] = "rare"
    frame.to_csv(tmp_path / "rare.csv", index=False)
    _, test = train_test_split(np.arange(60), test_size=0.2, random_state=4)
    assert 7 in test  # the only 'rare' row is a test row
    runs = run_forked({"fit": (["fit", "rare.csv", "--classify", "--epochs", "3", "--hidden", "5",
                                "--seed", "4", "--quiet", "--plot", "rare.png", "--save",
                                "rare.model"], tmp_path)})
    result = runs["fit"]
    assert result.returncode == 0, result.stderr
    png = (tmp_path / "rare.png").read_bytes()
    assert png[:8] == PNG_MAGIC
    width, height = (int.from_bytes(png[i:i + 4], "big") for i in (16, 20))
    assert (width, height) == (1280, 920)  # loss, error curves, confusion, gradient norms
    assert "\n         rare       1" in result.stdout  # its row of the confusion matrix

    from fastfnn.cli.plot import _log_loss

    model = load_model(tmp_path / "rare.model")
    X = model[0].transform(frame[["a", "b"]])
    proba = model[-1].predict_proba(X[test])
    with pytest.raises(ValueError):
        log_loss(frame.cls[test], proba, labels=model.classes_)
    assert np.isnan(_log_loss(model[-1], X[test], frame.cls[test].to_numpy()))
    kept = np.setdiff1d(test, [7])
    assert _log_loss(model[-1], X[kept], frame.cls[kept].to_numpy()) == pytest.approx(
        log_loss(frame.cls[kept], model[-1].predict_proba(X[kept]), labels=model.classes_))
