"""End to end on three tables that ship inside scikit-learn (no downloads): the command trains,
saves, predicts and exports; then the saved model is used from plain Python on what
``pd.read_csv`` gives, and the ONNX file from onnxruntime, with the command's predictions.

* breast cancer (569 rows, 30 numeric columns whose names hold spaces, two text classes, an
  identifier column given with --id);
* digits (1797 rows, 64 pixel columns, ten classes);
* diabetes (442 rows; its ``sex`` column written as text, cells of ``bmi`` and ``sex`` blanked).

Oracles: the command's printed predictions (CSV read with pandas) against the saved model in this
process and against onnxruntime; the report's metrics against scikit-learn's metric functions
on the test rows drawn again with ``train_test_split`` and the same seed, and the linear
reference against ridge / logistic regression fitted here on features prepared with pandas.
"""

import io
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split
from test_cli_harness import run_forked

from fastfnn import load_model

FIT = ["--hidden", "16", "--epochs", "15", "--quiet"]


def _cancer():
    data = datasets.load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.insert(0, "patient", [f"P{i:04d}" for i in range(len(frame))])
    frame["diagnosis"] = np.asarray(data.target_names)[data.target]
    return frame


def _digits():
    return datasets.load_digits(as_frame=True).frame


def _diabetes():
    frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    frame["sex"] = np.where(frame["sex"] == 1, "female", "male").astype(object)
    frame.loc[::17, "bmi"] = np.nan
    frame.loc[5::23, "sex"] = np.nan
    return frame


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    tables = {"cancer": _cancer(), "digits": _digits(), "diabetes": _diabetes()}
    for name, frame in tables.items():
        frame.to_csv(d / f"{name}.csv", index=False)
    fit = {"cancer": ["--classify", "--id", "patient"], "digits": ["--classify"],
           "diabetes": []}
    cases = {}
    for name in tables:
        cases[f"fit {name}"] = (["fit", f"{name}.csv", "--save", f"{name}.model", "--report",
                                 f"{name}.json", *FIT, *fit[name]], d)
        cases[f"predict {name}"] = (["predict", f"{name}.model", f"{name}.csv"], d)
        cases[f"proba {name}"] = (["predict", f"{name}.model", f"{name}.csv", "--proba"], d)
        cases[f"export {name}"] = (["export", f"{name}.model", f"{name}.onnx"], d)
    cases["info cancer"] = (["info", "cancer.model"], d)
    cases["fit diabetes32"] = (["fit", "diabetes.csv", "--dtype", "float32", "--save",
                                "diabetes32.model", "--report", "diabetes32.json", *FIT], d)
    cases["predict diabetes32"] = (["predict", "diabetes32.model", "diabetes.csv"], d)
    runs = run_forked(cases)
    for key, result in runs.items():
        if key.startswith("proba") and "diabetes" in key:
            continue  # a regression model: refused, checked below
        if key.startswith("export"):
            pytest.importorskip("skl2onnx")
        assert result.returncode == 0, (key, result.stdout, result.stderr)
    return d, tables, runs


def _printed(result):
    return pd.read_csv(io.StringIO(result.stdout))


def test_the_saved_model_predicts_from_plain_python_as_the_command_does(real):
    """What pd.read_csv gives (NaN in a text column, a string dtype, extra columns such as the
    target and the identifier) goes straight into the saved model; None for a missing text
    cell as well."""
    d, tables, runs = real
    for name, target in (("cancer", "diagnosis"), ("digits", "target"),
                         ("diabetes", "target")):
        printed = _printed(runs[f"predict {name}"])
        model = load_model(d / f"{name}.model")
        frame = pd.read_csv(d / f"{name}.csv")
        got = model.predict(frame.drop(columns=target))
        if name == "diabetes":
            np.testing.assert_array_equal(got, printed[target].to_numpy())
            assert frame["sex"].isna().sum() > 0 and frame["bmi"].isna().sum() > 0
            as_object = frame.assign(sex=frame["sex"].astype(object).where(frame["sex"].notna(),
                                                                           None))
            assert as_object["sex"].map(lambda v: v is None).sum() == frame["sex"].isna().sum()
            np.testing.assert_array_equal(model.predict(as_object), got)
            pyarrow = pd.read_csv(d / f"{name}.csv", engine="pyarrow") \
                if _has("pyarrow") else frame
            np.testing.assert_array_equal(model.predict(pyarrow), got)
            # pandas' NA: nullable and string columns, pyarrow-backed frames
            readers = [dict(dtype={"sex": "string"}), dict(dtype_backend="numpy_nullable")]
            readers += [dict(dtype_backend="pyarrow")] if _has("pyarrow") else []
            for kwargs in readers:
                gaps = pd.read_csv(d / f"{name}.csv", **kwargs)
                assert gaps["sex"].isna().sum() == frame["sex"].isna().sum()
                np.testing.assert_array_equal(model.predict(gaps.drop(columns=target)), got)
        else:
            np.testing.assert_array_equal(got.astype(str), printed[target].astype(str))
    ids = _printed(runs["predict cancer"])["patient"]
    assert list(ids) == list(tables["cancer"]["patient"])  # --id carried through


def test_a_float32_model_predicts_from_plain_python_as_the_command_does(real):
    """--dtype float32: the network trains in float32, and the command hands the saved
    pipeline the numbers pd.read_csv gives, so that its predictions are plain Python's and
    fit's test metrics are scikit-learn's on the saved model's predictions for the test rows."""
    from sklearn import metrics

    d, _, runs = real
    model = load_model(d / "diabetes32.model")
    fnn = model.regressor_[-1]
    assert {a.dtype for a in fnn.coefs_ + fnn.intercepts_} == {np.dtype(np.float32)}
    frame = pd.read_csv(d / "diabetes.csv")
    np.testing.assert_array_equal(_printed(runs["predict diabetes32"])["target"],
                                  model.predict(frame))
    _, test, _, y_test = _test_rows(frame, "target", False)
    pred = model.predict(test)
    report = json.loads((d / "diabetes32.json").read_text())
    assert report["metrics"]["network"] == {
        "R²": metrics.r2_score(y_test, pred),
        "RMSE": metrics.root_mean_squared_error(y_test, pred),
        "MAE": metrics.mean_absolute_error(y_test, pred)}


def test_onnx_files_give_the_commands_predictions(real):
    ort = pytest.importorskip("onnxruntime")
    d, tables, runs = real
    for name in ("cancer", "digits"):  # numeric columns only: one (N, F) double input
        session = ort.InferenceSession(str(d / f"{name}.onnx"))
        (inp,) = session.get_inputs()
        features = json.loads((d / f"{name}.json").read_text())["data"]["features"]
        assert (inp.name, inp.type, inp.shape) == ("X", "tensor(double)", [None, len(features)])
        assert f"inputs   X (double, (N, {len(features)}))" in runs[f"export {name}"].stdout
        X = pd.read_csv(d / f"{name}.csv")[list(features)].to_numpy(np.float64)
        label, proba = session.run(None, {"X": X})
        target = "diagnosis" if name == "cancer" else "target"
        printed = _printed(runs[f"predict {name}"])[target].astype(str).to_numpy()
        np.testing.assert_array_equal(label.astype(str), printed)
        printed = _printed(runs[f"proba {name}"]).drop(columns="patient", errors="ignore")
        np.testing.assert_allclose(proba, printed.to_numpy(), rtol=1e-9, atol=1e-12)
    session = ort.InferenceSession(str(d / "diabetes.onnx"))
    frame = pd.read_csv(d / "diabetes.csv")
    feeds = {}
    for spec in session.get_inputs():  # one per column: double, or string ('' if missing)
        column = frame[spec.name]
        if spec.type == "tensor(string)":
            feeds[spec.name] = column.fillna("").astype(object).to_numpy().reshape(-1, 1)
        else:
            assert spec.type == "tensor(double)"
            feeds[spec.name] = column.to_numpy(np.float64).reshape(-1, 1)
    assert set(feeds) == set(frame.columns) - {"target"}
    got = session.run(None, feeds)[0].ravel()
    np.testing.assert_allclose(got, _printed(runs["predict diabetes"])["target"], rtol=1e-12,
                               atol=1e-9)


def _test_rows(frame, target, classify):
    y = frame[target].to_numpy()
    return train_test_split(frame, y, test_size=0.2, random_state=0,
                            stratify=y if classify else None)


def test_reported_metrics_are_scikit_learns_on_the_test_rows(real):
    from sklearn import metrics
    from sklearn.linear_model import LogisticRegression, Ridge

    d, tables, _ = real
    report = json.loads((d / "cancer.json").read_text())
    train, test, y_train, y_test = _test_rows(tables["cancer"], "diagnosis", True)
    model = load_model(d / "cancer.model")
    proba = model.predict_proba(test)[:, 1]
    net = report["metrics"]["network"]
    assert net["accuracy"] == pytest.approx(metrics.accuracy_score(y_test, model.predict(test)))
    assert net["balanced accuracy"] == pytest.approx(
        metrics.balanced_accuracy_score(y_test, model.predict(test)))
    assert net["ROC AUC"] == pytest.approx(metrics.roc_auc_score(y_test == "malignant", proba))
    assert net["log-loss"] == pytest.approx(metrics.log_loss(y_test, model.predict_proba(test)))
    assert report["metrics"]["baseline"]["accuracy"] == pytest.approx(
        np.mean(y_test == pd.Series(y_train).mode()[0]))
    features = list(report["data"]["features"])
    mean, std = train[features].mean(), train[features].std(ddof=0)
    linear = LogisticRegression(max_iter=1000).fit((train[features] - mean) / std, y_train)
    assert report["metrics"]["linear"]["accuracy"] == pytest.approx(
        linear.score((test[features] - mean) / std, y_test), abs=1e-9)
    matrix = report["confusion_matrix"]
    assert matrix["labels"] == ["benign", "malignant"]
    assert matrix["matrix"] == metrics.confusion_matrix(
        y_test, model.predict(test), labels=matrix["labels"]).tolist()
    assert report["split"] == {"test_size": 0.2, "seed": 0, "train_rows": 455, "test_rows": 114}
    assert report["data"]["id"] == "patient" and "patient" not in features
    assert report["versions"]["scikit-learn"] and len(report["data"]["sha256"]) == 64

    report = json.loads((d / "diabetes.json").read_text())
    train, test, y_train, y_test = _test_rows(tables["diabetes"], "target", False)
    pred = load_model(d / "diabetes.model").predict(test)
    net = report["metrics"]["network"]
    assert net["R²"] == pytest.approx(metrics.r2_score(y_test, pred))
    assert net["RMSE"] == pytest.approx(np.sqrt(metrics.mean_squared_error(y_test, pred)))
    assert net["MAE"] == pytest.approx(metrics.mean_absolute_error(y_test, pred))
    assert report["metrics"]["baseline"]["R²"] == pytest.approx(
        metrics.r2_score(y_test, np.full(len(y_test), y_train.mean())))
    # the linear reference: ridge on medians filled, standardised numbers and one-hot sex
    numeric = [c for c in train.columns if c not in ("sex", "target")]
    medians, common = train[numeric].median(), train["sex"].mode()[0]

    def prepared(rows):
        X = rows[numeric].fillna(medians)
        sex = rows["sex"].fillna(common)
        return np.column_stack([X, sex == "female", sex == "male"]).astype(float)

    A = prepared(train)
    mean, std = A[:, :len(numeric)].mean(0), A[:, :len(numeric)].std(0)

    def scaled(A):
        return np.column_stack([(A[:, :len(numeric)] - mean) / std, A[:, len(numeric):]])

    ridge = Ridge(alpha=1.0).fit(scaled(A), y_train)
    assert report["metrics"]["linear"]["R²"] == pytest.approx(
        ridge.score(scaled(prepared(test)), y_test), abs=1e-9)


def test_info_shows_what_the_file_holds(real):
    d, _, runs = real
    out = runs["info cancer"].stdout
    _, metadata = load_model(d / "cancer.model", return_metadata=True)
    record = metadata["fastfnn_cli"]
    assert record["id"] == "patient" and record["task"] == "classification"
    assert "classes benign, malignant" in out
    assert "id       patient" in out
    assert f"accuracy {record['test_metrics']['accuracy']:.4f}" in " ".join(out.split())
    assert "mean radius (numeric)" in out and "hidden_layer_sizes=16" in out
    assert f"fastfnn {record['versions']['fastfnn']}" in out


def test_proba_of_a_regressor_is_refused(real):
    _, _, runs = real
    assert runs["proba diabetes"].returncode == 1
    assert "--proba is for classifiers" in runs["proba diabetes"].stderr


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None
