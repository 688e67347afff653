"""``fastfnn export MODEL OUT.onnx``: the saved pipeline as ONNX, checked with onnxruntime against
the model's own predictions; without skl2onnx a message saying what to install."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_cli_harness import ROOT, assert_one_line_error, run_forked

from fastfnn import load_model


def _feeds(frame, session):
    """onnxruntime inputs: one (n, 1) array per column, typed as the ONNX input."""
    feeds = {}
    for spec in session.get_inputs():
        column = frame[[spec.name]]
        if spec.type == "tensor(string)":
            feeds[spec.name] = column.fillna("").astype(str).to_numpy(object)
        else:
            kind = np.float32 if spec.type == "tensor(float)" else np.float64
            feeds[spec.name] = column.to_numpy(kind)
    return feeds


def test_export_matches_the_model(tmp_path):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.RandomState(0)
    n = 150
    frame = pd.DataFrame({"u": rng.uniform(-2, 2, n).round(4), "v": rng.uniform(-2, 2, n).round(4),
                          "kind": rng.choice(["a", "b", "c"], n)})
    frame["y"] = (np.sin(frame.u) + frame.v * (frame.kind == "a")).round(4)
    frame.loc[::13, "kind"] = np.nan
    frame.to_csv(tmp_path / "text.csv", index=False)
    gappy = frame.copy()
    gappy.loc[::11, "u"] = np.nan
    gappy.to_csv(tmp_path / "gappy.csv", index=False)
    fit = ["--epochs", "5", "--hidden", "8", "--quiet"]
    runs = run_forked({
        "fit text": (["fit", "text.csv", "--save", "text.model", *fit], tmp_path),
        "fit gappy": (["fit", "gappy.csv", "--save", "gappy.model", *fit], tmp_path),
        "fit iris": (["fit", "iris", "--classify", "--save", "iris.model", *fit], tmp_path),
        "export text": (["export", "text.model", "text.onnx"], tmp_path),
        "export gappy": (["export", "gappy.model", "gappy.onnx"], tmp_path),
        "export iris": (["export", "iris.model", "iris.onnx"], tmp_path),
    })
    for key, result in runs.items():
        assert result.returncode == 0, (key, result.stderr)
    for name in ("text", "gappy"):  # what is printed is what the file holds
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
        held = "; ".join(f"{i.name} ({i.type[7:-1]}, (N, 1))" for i in session.get_inputs())
        assert f"inputs   {held}\n" in runs[f"export {name}"].stdout
        assert held == "u (double, (N, 1)); v (double, (N, 1)); kind (string, (N, 1))"
    assert "outputs  variable (double, (N, 1))" in runs["export text"].stdout

    for name, tol in (("text", 1e-12), ("gappy", 1e-12)):  # float64 with or without gaps
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"))
        data = frame if name == "text" else gappy
        X = data[["u", "v", "kind"]]
        expected = load_model(tmp_path / f"{name}.model").predict(X)
        got = session.run(None, _feeds(X, session))[0].ravel()
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)

    session = ort.InferenceSession(str(tmp_path / "iris.onnx"))
    iris = pd.read_csv(ROOT / "data" / "iris.csv").drop(columns="species")
    model = load_model(tmp_path / "iris.model")
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        ("X", "tensor(double)", [None, 4])]  # numeric columns only: one (N, F) input
    label, proba = session.run(None, {"X": iris.to_numpy(np.float64)})
    np.testing.assert_array_equal(label, model.predict(iris))
    np.testing.assert_allclose(proba, model.predict_proba(iris), rtol=1e-6, atol=1e-9)


def test_columns_of_a_streamed_model_stay_float64_and_renamed_inputs_are_printed(tmp_path):
    """A streamed model (a scaler, then the network: no ColumnTransformer to join the inputs)
    exported with one input per column keeps float64 (a column of timestamps: float32 would
    be 1e-2 off), and two names that become one input name are printed with their columns."""
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"a b": 1.7e9 + rng.uniform(0, 3600, 300).round(3),
                          "a_b": rng.normal(size=300).round(4)})
    frame["y"] = ((frame["a b"] - 1.7e9) / 3600 + frame["a_b"]).round(4)
    frame.to_csv(tmp_path / "ts.csv", index=False)
    runs = run_forked({
        "fit": (["fit", "ts.csv", "--stream", "--no-early-stopping", "--epochs", "3",
                 "--hidden", "8", "--quiet", "--save", "ts.model"], tmp_path)})
    assert runs["fit"].returncode == 0, runs["fit"].stderr
    runs = run_forked({"export": (["export", "ts.model", "ts.onnx", "--inputs", "columns"],
                                  tmp_path)})
    assert runs["export"].returncode == 0, runs["export"].stderr
    assert "renamed: a_b <- 'a b', a_b1 <- 'a_b'\n" in runs["export"].stdout
    session = ort.InferenceSession(str(tmp_path / "ts.onnx"))
    X = frame[["a b", "a_b"]]
    got = session.run(None, {"a_b": X[["a b"]].to_numpy(), "a_b1": X[["a_b"]].to_numpy()})[0]
    np.testing.assert_allclose(got.ravel(), load_model(tmp_path / "ts.model").predict(X),
                               rtol=1e-12, atol=1e-12)


def test_export_without_skl2onnx_says_what_to_install(tmp_path, monkeypatch, capsys):
    """As if skl2onnx were not installed (an import that fails): one line naming the extra."""
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # `import skl2onnx` fails
    monkeypatch.delitem(sys.modules, "fastfnn.onnx", raising=False)
    monkeypatch.chdir(tmp_path)
    from fastfnn.cli import main

    (tmp_path / "m.model").write_bytes(b"")
    code = main(["export", "m.model", "m.onnx"])
    out, err = capsys.readouterr()
    assert_one_line_error(subprocess.CompletedProcess([], code, out, err),
                          'pip install "fastfnn[onnx]"', command="export")
    assert not (tmp_path / "m.onnx").exists()
