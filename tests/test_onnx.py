"""ONNX export: onnxruntime reproduces predict / predict_proba (or a NumPy forward pass)."""

import importlib
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import erfc, expit, softmax

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from sklearn.compose import ColumnTransformer, TransformedTargetRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

import fastfnn  # noqa: E402
import fastfnn.onnx as fonnx  # noqa: E402
from fastfnn import FNNClassifier, FNNRegressor  # noqa: E402

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
NEW_HIDDEN = ["leaky_relu", "elu", "softplus", "gelu", "silu"]
ALL_HIDDEN = sorted(set(fastfnn.HIDDEN_ACTIVATIONS) | set(NEW_HIDDEN))

# the NumPy oracle: each activation written from its definition, in float64
REFERENCE = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "exp": np.exp,
    "softmax": lambda z: softmax(z, axis=1),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "softplus": lambda z: np.logaddexp(0, z),
    "gelu": lambda z: 0.5 * z * erfc(-z / np.sqrt(2)),  # = 0.5 z (1 + erf(z / sqrt 2))
    "silu": lambda z: z * expit(z),
}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def numpy_forward(model, X):
    """Output activations (n, n_outputs) of the fitted network, in float64."""
    a = np.asarray(X, np.float64)
    last = len(model.coefs_) - 1
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        a = REFERENCE[model.activation if i < last else model.out_activation_](
            a @ W.astype(np.float64) + b)
    return a


def run(onx, X):
    """onnxruntime's outputs for the single input X."""
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def close(actual, expected, dtype):
    """Equal to ``RTOL[dtype]`` relative to the size of the expected values."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64).reshape(expected.shape)
    scale = np.abs(expected).max()
    assert scale > 0
    assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def data(dtype, n=40, n_features=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features).astype(dtype)
    signal = X.astype(np.float64) @ rng.randn(n_features, 2)
    return X, signal  # signal (n, 2): targets are built from it


def small(cls, **params):
    return cls(**{"hidden_layer_sizes": (7, 5), "max_iter": 15, "random_state": 0, **params})


# ---- regressor --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out", ["identity", "exp", "logistic", "tanh", "relu"])
def test_regressor_output_activations(out, dtype):
    X, signal = data(dtype)
    y = expit(signal[:, 0]) + 0.5 if out != "logistic" else expit(signal[:, 0])
    params = dict(loss="poisson") if out == "exp" else dict(out_activation=out)
    model = small(FNNRegressor, random_state=2, **params).fit(X, y)
    assert model.out_activation_ == out and model.coefs_[0].dtype == dtype
    if out == "relu":  # (this seed leaves some outputs on each side of the kink)
        assert 0 < np.mean(model.predict(X) > 0) < 1
    onx = skl2onnx.to_onnx(model, X[:1])
    (pred,) = run(onx, X)
    assert pred.dtype == dtype and pred.shape == (len(X), 1)
    close(pred, model.predict(X), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_output_regressor_bare_and_in_pipeline(dtype):
    X, signal = data(dtype)
    Y = signal * 3 + 1
    model = small(FNNRegressor).fit(X, Y)
    close(run(skl2onnx.to_onnx(model, X[:1]), X)[0], model.predict(X), dtype)
    pipe = make_pipeline(StandardScaler(), small(FNNRegressor)).fit(X * 10 + 5, Y)
    (pred,) = run(skl2onnx.to_onnx(pipe, X[:1]), X * 10 + 5)
    assert pred.shape == (len(X), 2)
    close(pred, pipe.predict(X * 10 + 5), dtype)


def test_float64_network_with_float32_input_computes_in_float64():
    X, signal = data(np.float64)
    model = small(FNNRegressor).fit(X, signal[:, 0])
    X32 = X.astype(np.float32)
    (pred,) = run(skl2onnx.to_onnx(model, X32[:1]), X32)
    assert pred.dtype == np.float32
    expected = model.predict(X32)  # float64, computed from the float32 input
    assert_allclose(pred.ravel(), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


# ---- hidden activations -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_HIDDEN)
def test_hidden_activation_of_fitted_network(name, dtype):
    X, signal = data(dtype)
    model = small(FNNRegressor).fit(X * 3, signal)  # wide pre-activations, both signs
    model.activation = name
    reference = numpy_forward(model, X * 3)
    if name in fastfnn.HIDDEN_ACTIVATIONS:  # predict accepts it: it is the oracle
        close(reference, model.predict(X * 3), dtype)  # (and vouches for the NumPy forward)
        expected = model.predict(X * 3)
    else:
        expected = reference
    close(run(skl2onnx.to_onnx(model, X[:1]), X * 3)[0], expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_HIDDEN)
def test_hidden_activation_elementwise_over_a_wide_range(name, dtype):
    """A one-unit network computing act(x) exactly: the ONNX form against the definition."""
    X, _ = data(dtype, n_features=1)
    model = FNNRegressor(hidden_layer_sizes=(1,), max_iter=1).fit(X, X[:, 0])
    model.coefs_ = [np.ones((1, 1), dtype), np.ones((1, 1), dtype)]
    model.intercepts_ = [np.zeros(1, dtype), np.zeros(1, dtype)]
    model.activation = name
    small_x = np.geomspace(1e-8, 1, 9)
    grid = np.r_[np.linspace(-40, 40, 801), -small_x, small_x][:, None].astype(dtype)  # (n, 1)
    close(run(skl2onnx.to_onnx(model, grid[:1]), grid)[0], REFERENCE[name](grid), dtype)


# ---- classifier -------------------------------------------------------------------------------

def _targets(kind, signal, labels):
    if kind == "multilabel":
        return np.c_[signal > 0, signal.sum(axis=1) > 0].astype(int)  # (n, 3) indicators
    k = 2 if kind == "binary" else 3
    return np.asarray(labels)[np.digitize(signal[:, 0], np.quantile(signal[:, 0],
                                                                    np.arange(1, k) / k))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [3, -1, 10]], ids=["str", "int"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_classifier(kind, labels, dtype):
    X, signal = data(dtype)
    y = _targets(kind, signal, labels)
    model = small(FNNClassifier).fit(X, y)
    expected_out = {"binary": "logistic", "multiclass": "softmax", "multilabel": "logistic"}
    assert model.out_activation_ == expected_out[kind]
    for est in (model, make_pipeline(StandardScaler(), small(FNNClassifier)).fit(X, y)):
        label, proba = run(fonnx.to_onnx(est, X[:1]), X)
        assert_array_equal(label, est.predict(X))
        assert proba.dtype == dtype and proba.shape == est.predict_proba(X).shape
        close(proba, est.predict_proba(X), dtype)


def test_classifier_zipmap_and_nocl_options():
    X, signal = data(np.float32)
    y = _targets("multiclass", signal, ["cat", "dog", "emu"])
    model = small(FNNClassifier).fit(X, y)
    label, maps = run(skl2onnx.to_onnx(model, X[:1]), X)  # skl2onnx's default: zipmap
    assert_array_equal(label, model.predict(X))
    close([[m[c] for c in model.classes_] for m in maps], model.predict_proba(X), np.float32)
    onx = fonnx.to_onnx(model, X[:1], options={FNNClassifier: {"zipmap": False, "nocl": True}})
    label, _ = run(onx, X)
    assert_array_equal(model.classes_[label], model.predict(X))  # nocl: class indices


def test_zipmap_with_float64_input_is_a_clear_error():
    X, signal = data(np.float64)
    model = small(FNNClassifier).fit(X, signal[:, 0] > 0)
    with pytest.raises(ValueError, match="zipmap"):
        skl2onnx.to_onnx(model, X[:1])


# ---- the CLI's models and other pipelines -----------------------------------------------------

def cli_regressor(**fnn_params):
    """The regression model ``fastfnn fit`` saves."""
    pipe = Pipeline([("scale", StandardScaler()), ("fnn", small(FNNRegressor, **fnn_params))])
    return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_transformed_target_regressor(n_outputs, dtype, tmp_path):
    X, signal = data(dtype)
    X = X * 4 + 2
    y = (signal * 100 + 50)[:, :n_outputs].squeeze()
    model = cli_regressor().fit(X, y)
    path = tmp_path / "model.onnx"
    fonnx.save_onnx(model, path)  # no sample: a zero row of the network's dtype
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == ("tensor(double)" if dtype == np.float64
                                         else "tensor(float)")
    (pred,) = sess.run(None, {"X": X})
    assert pred.shape == (len(X), n_outputs)
    close(pred, model.predict(X), dtype)
    # the inverse is really applied: the raw network output is in standard units
    assert np.abs(pred).max() > 10 * np.abs(model.regressor_.predict(X)).max()


def test_save_onnx_pipeline_classifier(tmp_path):
    X, signal = data(np.float32)
    y = _targets("multiclass", signal, [0, 1, 2])
    model = make_pipeline(StandardScaler(), small(FNNClassifier)).fit(X, y)
    onx = fonnx.save_onnx(model, tmp_path / "clf.onnx")
    assert [o.name for o in onx.graph.output] == ["label", "probabilities"]
    sess = ort.InferenceSession(str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"X": X})
    assert_array_equal(label, model.predict(X))
    close(proba, model.predict_proba(X), np.float32)


@pytest.mark.parametrize("cls", [FNNRegressor, FNNClassifier])
def test_column_transformer_pipeline(cls, tmp_path):
    """One-hot categories, imputed and scaled numbers, one ONNX input per column.

    float32 columns: skl2onnx writes SimpleImputer as ai.onnx.ml Imputer, float32-only in
    onnxruntime."""
    pd = pytest.importorskip("pandas")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(1)
    n = 60
    df = pd.DataFrame({"a": rng.randn(n).astype(np.float32), "b": rng.randn(n).astype(np.float32),
                       "color": rng.choice(["red", "green", "blue"], n)})
    df.loc[::7, "a"] = np.nan
    score = np.nan_to_num(df.a.to_numpy()) + 2 * (df.color == "red") + df.b
    y = score > score.median() if cls is FNNClassifier else score
    columns = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a", "b"]),
    ])
    model = make_pipeline(columns, small(cls)).fit(df, y)
    onx = fonnx.to_onnx(model, df[:1])
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = sess.run(None, {c: df[[c]].to_numpy() for c in df.columns})
    expected = (model.predict(df),) if cls is FNNRegressor else (model.predict(df),
                                                                 model.predict_proba(df))
    if cls is FNNClassifier:
        assert_array_equal(outputs[0], expected[0])
        close(outputs[1], expected[1], np.float32)
    else:
        close(outputs[0], expected[0], np.float32)
    with pytest.raises(ValueError, match="X_sample"):
        fonnx.save_onnx(model, tmp_path / "unused.onnx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unknown", ["infrequent_if_exist", "ignore"])
def test_gaps_and_rare_text_values_in_the_models_dtype(dtype, unknown):
    """float64 imputation (onnxruntime's Imputer is float32-only: fastfnn's converter), text
    gaps (NaN or None in pandas, '' in ONNX) and one-hot encoding with rare values grouped over
    two text columns; unknown values go to the rare values' column or to none, as in
    scikit-learn. One input per column, numbers in the model's dtype; an array sample gives
    one (N, F) input to a ColumnTransformer that selects its columns by name."""
    pd = pytest.importorskip("pandas")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(2)
    n = 200
    df = pd.DataFrame({"a b": rng.randn(n).astype(dtype), "c": rng.randn(n).astype(dtype),
                       "t": rng.choice(list("pqrstuvw"), n, p=[.3, .3, .2, .1, .05, .03, .01,
                                                               .01]).astype(object),
                       "u": rng.choice(["x", "y", "z", "rare"], n, p=[.4, .3, .28, .02])
                       .astype(object)})
    df.loc[::7, "a b"] = np.nan
    df.loc[::5, "t"] = np.nan
    y = np.nan_to_num(df["a b"].to_numpy(np.float64)) + (df.t == "p") - (df.u == "z")
    text = make_pipeline(
        SimpleImputer(missing_values=np.nan, strategy="constant", fill_value=""),
        SimpleImputer(missing_values="", strategy="most_frequent"),
        OneHotEncoder(handle_unknown=unknown, min_frequency=8, dtype=dtype))
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    prepare = ColumnTransformer([("num", numbers, ["a b", "c"]), ("text", text, ["t", "u"])])
    model = make_pipeline(prepare, small(FNNRegressor)).fit(df, y)
    assert all(len(r) for r in prepare.named_transformers_["text"][-1].infrequent_categories_)
    new = df.head(20).copy()
    new.loc[1, "t"], new.loc[2, "u"], new.loc[3, "t"] = "never seen", "nor this", None
    sess = ort.InferenceSession(fonnx.to_onnx(model, df[:1]).SerializeToString())
    kind = "tensor(double)" if dtype == np.float64 else "tensor(float)"
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("a_b", kind), ("c", kind), ("t", "tensor(string)"), ("u", "tensor(string)")]
    feeds = {"a_b": new[["a b"]].to_numpy(), "c": new[["c"]].to_numpy(),
             "t": new[["t"]].fillna("").to_numpy(object), "u": new[["u"]].to_numpy(object)}
    close(sess.run(None, feeds)[0].ravel(), model.predict(new), dtype)

    X = df[["a b", "c"]]
    numeric = make_pipeline(ColumnTransformer([("num", numbers, ["a b", "c"])]),
                            small(FNNRegressor)).fit(X, y)
    sess = ort.InferenceSession(fonnx.to_onnx(numeric, X.to_numpy()[:1]).SerializeToString())
    ((name, kind_, shape),) = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
    assert (name, kind_, shape) == ("X", kind, [None, 2])
    close(sess.run(None, {"X": X.to_numpy()})[0].ravel(), numeric.predict(X), dtype)
    swapped = make_pipeline(ColumnTransformer([("num", numbers, ["c", "a b"])]),
                            small(FNNRegressor)).fit(X, y)
    with pytest.raises(ValueError, match="Pass a DataFrame sample"):
        fonnx.to_onnx(swapped, X.to_numpy()[:1])  # skl2onnx would ignore the new order


def test_several_inputs_are_joined_in_their_own_dtype():
    """One input per column of a DataFrame, with no ColumnTransformer to join them: float64
    stays float64 (timestamps: float32 would be 1e-2 off), an integer column an input of the
    network's dtype (integers alone gave a float32 output); two text columns reach the
    one-hot encoder as strings (an ONNX file onnxruntime loads)."""
    pd = pytest.importorskip("pandas")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(3)
    n = 120
    df = pd.DataFrame({"t": 1.7e9 + rng.uniform(0, 3600, n), "x": rng.randn(n),
                       "k": rng.randint(0, 5, n)})
    y = (df.t - 1.7e9) / 3600 + df.x + df.k
    seconds = pd.DataFrame({"t": (1.7e9 + rng.uniform(0, 3600, n)).astype(np.int64),
                            "k": df.k})
    for frame, steps in ((df, []), (df, [StandardScaler()]),
                         (df, [SimpleImputer(), StandardScaler()]), (seconds, [])):
        model = make_pipeline(*steps, small(FNNRegressor)).fit(frame, y)
        sess = ort.InferenceSession(fonnx.to_onnx(model, frame[:1]).SerializeToString())
        assert {i.type for i in sess.get_inputs()} == {"tensor(double)"}
        got = sess.run(None, {c: frame[[c]].to_numpy(np.float64) for c in frame.columns})[0]
        close(got.ravel(), model.predict(frame), np.float64)

    text = pd.DataFrame({"c": rng.choice(["x", "y", "z"], n), "d": rng.choice(["p", "q"], n)},
                        dtype=object)
    score = (text.c == "x").astype(float) - (text.d == "q")
    for model in (make_pipeline(OneHotEncoder(handle_unknown="ignore"), small(FNNRegressor)),
                  make_pipeline(fastfnn.TextCells(), OneHotEncoder(handle_unknown="ignore"),
                                small(FNNRegressor))):
        model.fit(text, score)
        sess = ort.InferenceSession(fonnx.to_onnx(model, text[:1]).SerializeToString())
        got = sess.run(None, {c: text[[c]].to_numpy() for c in text.columns})[0]
        close(got.ravel(), model.predict(text), np.float64)



def test_a_missing_cell_learned_as_a_category_is_refused():
    """After TextCells a missing cell is None, which an imputer of NaN leaves alone and the
    encoder learns as a category; an ONNX string input has no None (its missing cells are
    ''), so the export is refused, saying how to fill the cells, not run to other numbers."""
    pd = pytest.importorskip("pandas")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"city": rng.choice(["x", "y", "z"], 60).astype(object)})
    frame.loc[::10, "city"] = np.nan
    y = (frame.city == "x") * 2.0 + frame.city.isna() * 5.0
    for encoder in (OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    OneHotEncoder(sparse_output=False), OneHotEncoder(drop="first")):
        model = make_pipeline(fastfnn.TextCells(), SimpleImputer(strategy="most_frequent"),
                              encoder, small(FNNRegressor)).fit(frame, y)
        assert None in list(encoder.categories_[0])
        with pytest.raises(ValueError, match=r"learned a missing cell \(None\).*"
                                             r"SimpleImputer\(missing_values=None"):
            fonnx.to_onnx(model, frame[:1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_ensembles_export_their_members_mean(dtype):
    """An ensemble's graph is its members' networks and their mean: predict (several outputs
    too), predict_proba and the labels of binary, multiclass (string labels) and multilabel
    ensembles, bare and in a Pipeline."""
    X, signal = data(dtype, n=60)
    ensemble = dict(n_estimators=3, random_state=0)
    reg = fastfnn.FNNEnsembleRegressor(small(FNNRegressor), **ensemble)
    for target in (signal[:, 0], signal):
        reg.fit(X, target)
        close(run(fonnx.to_onnx(reg, X[:1]), X)[0], reg.predict(X), dtype)
    three = np.array(["a", "b", "c"])[np.digitize(signal[:, 0], [-0.5, 0.5])]
    for labels in (signal[:, 0] > 0, three, (signal > 0).astype(int)):
        clf = fastfnn.FNNEnsembleClassifier(small(FNNClassifier), **ensemble).fit(X, labels)
        for model in (clf, make_pipeline(StandardScaler(), clf).fit(X, labels)):
            label, proba = run(fonnx.to_onnx(model, X[:1]), X)
            close(proba, model.predict_proba(X), dtype)
            assert_array_equal(label, model.predict(X))

def test_an_array_sample_takes_positions_and_masks_a_column_transformer_keeps():
    """scikit-learn keeps a dropped remainder and an integer selection as positions, a mask
    as booleans: with an array sample (one (N, F) input) they select the same columns."""
    pd = pytest.importorskip("pandas")
    from sklearn.preprocessing import MinMaxScaler

    rng = np.random.RandomState(4)
    df = pd.DataFrame(rng.randn(60, 3) * [1, 10, 100], columns=["a", "b", "c"])
    y = df.a + df.b / 10 - df.c / 100
    for columns in (ColumnTransformer([("s", StandardScaler(), ["b", "c"])]),
                    ColumnTransformer([("s", StandardScaler(), ["b", "c"]),
                                       ("m", MinMaxScaler(), [0])]),
                    ColumnTransformer([("s", StandardScaler(), ["c"]),
                                       ("m", MinMaxScaler(), [True, False, False])])):
        model = make_pipeline(columns, small(FNNRegressor)).fit(df, y)
        X = df.to_numpy()
        close(run(fonnx.to_onnx(model, X[:1]), X)[0].ravel(), model.predict(df), np.float64)


def test_target_opset():
    X, signal = data(np.float64)
    model = small(FNNRegressor).fit(X, signal[:, 0])
    model.activation = "gelu"
    onx = fonnx.to_onnx(model, X[:1], target_opset=13)
    assert max(o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")) <= 13
    close(run(onx, X)[0], numpy_forward(model, X), np.float64)


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("attribute", ["activation", "out_activation_"])
def test_unknown_activation_names_it(attribute):
    X, signal = data(np.float32)
    model = small(FNNRegressor).fit(X, signal[:, 0])
    setattr(model, attribute, "swishy")
    with pytest.raises(ValueError, match="'swishy'.*ACTIVATION_NODES"):
        skl2onnx.to_onnx(model, X[:1])


def test_unsupported_target_transformer():
    X, signal = data(np.float64)
    model = TransformedTargetRegressor(
        regressor=small(FNNRegressor), transformer=FunctionTransformer(np.log1p, np.expm1))
    model.fit(X, np.abs(signal[:, 0]))
    with pytest.raises(ValueError, match="FunctionTransformer.*StandardScaler"):
        fonnx.to_onnx(model, X[:1])


def test_unfitted_model(tmp_path):
    with pytest.raises(NotFittedError):
        fonnx.save_onnx(cli_regressor(), tmp_path / "unused.onnx")
    assert not (tmp_path / "unused.onnx").exists()


@pytest.mark.parametrize("missing", ["skl2onnx", "onnxruntime"])
def test_import_without_the_extra_says_what_to_install(missing, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)  # makes the import fail
    monkeypatch.delitem(sys.modules, "fastfnn.onnx")
    with pytest.raises(ImportError, match=r'pip install "fastfnn\[onnx\]"'):
        importlib.import_module("fastfnn.onnx")
