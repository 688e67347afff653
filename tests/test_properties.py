"""Property tests of the public functions on random inputs (Hypothesis).

Whatever the input (shapes with 0 rows, 1 row, 1 column; float16/32/64, int, bool, object,
complex; NaN, infinity, huge values; sparse CSR/CSC/COO; pandas DataFrames) and whatever the
parameters (learning rates, batch sizes, L2 strength and validation fractions at their extremes,
every hidden activation, every regression loss), a call either

* succeeds, and then the fitted weights are finite and ``predict``/``predict_proba`` agree with
  a NumPy forward pass of ``coefs_``/``intercepts_`` (written here from the formulas); or
* raises a clear ValueError or TypeError (never a Numba error type, never a crash) and leaves an
  already fitted estimator byte-identical (``pickle.dumps``).

``check_gradients`` returns a relative error in [0, 1] or raises the same way.

Profiles: HYPOTHESIS_PROFILE=default (25 examples per test, derandomized: the same examples on
every run) or HYPOTHESIS_PROFILE=thorough (500 random examples per test).
"""

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.special import erf, expit, softmax
from sklearn.exceptions import NotFittedError

import fastfnn
from fastfnn import FNNClassifier, FNNRegressor, check_gradients
from fastfnn.losses import REGRESSOR_OUTPUTS

settings.register_profile(
    "fastfnn-default", max_examples=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fastfnn-thorough", max_examples=500, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile("fastfnn-" + os.environ.get("HYPOTHESIS_PROFILE", "default"))

DTYPES = ("float16", "float32", "float64", "int64", "bool", "object", "complex128")
FORMATS = ("ndarray", "list", "dataframe", "csr", "csc", "coo")
SPECIALS = (np.nan, np.inf, -np.inf, 1e300, -1e300, 3.4e38, 1e-300, 65504.0)
N_FEATURES = 3  # of the fitted estimators below

# ---- a NumPy forward pass, the oracle of predict --------------------------------------------

ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0, z),
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    "silu": lambda z: z * expit(z),
    "exp": np.exp,
    "softmax": lambda z: softmax(z, axis=1),
}


def numpy_forward(est, X):
    """Output activations (n, n_outputs) of the fitted ``est`` for X, in float64."""
    A = np.asarray(X, dtype=np.float64)
    L = len(est.coefs_)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        Z = A @ W.astype(np.float64) + b.astype(np.float64)
        A = ACTIVATIONS[est.activation if i < L - 1 else est.out_activation_](Z)
    return A


def dense(X):
    if sp.issparse(X):
        return X.toarray()
    return np.asarray(X.to_numpy() if isinstance(X, pd.DataFrame) else X)


def assert_matches_numpy(est, X):
    """predict (and predict_proba) of a fitted estimator against the NumPy forward pass, where
    X is finite and moderate (elsewhere both may overflow, differently)."""
    values = dense(X).astype(np.complex128).real if dense(X).dtype.kind == "c" else dense(X)
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not (np.isfinite(values).all() and np.abs(values).max() < 1e3):
        return
    expected = numpy_forward(est, values)
    if not np.isfinite(expected).all() or np.abs(expected).max() > 1e6:
        return
    computed32 = np.dtype(est.coefs_[0].dtype) == np.float32 and dense(X).dtype == np.float32
    rtol, atol = (2e-3, 1e-4) if computed32 else (1e-9, 1e-11)
    if isinstance(est, FNNClassifier):
        proba = est.predict_proba(X)
        if est.n_outputs_ == 1 and len(est.classes_) == 2:
            expected = np.c_[1 - expected, expected]
        np.testing.assert_allclose(proba[:, -expected.shape[1]:], expected, rtol=rtol,
                                   atol=atol)
    else:
        out = est.predict(X)
        np.testing.assert_allclose(out, expected.reshape(out.shape), rtol=rtol, atol=atol)


# ---- what may come out ----------------------------------------------------------------------


def assert_clear_error(err):
    """A user error: ValueError or TypeError (scikit-learn's InvalidParameterError and
    NotFittedError are both), from fastfnn or scikit-learn, with a message."""
    assert isinstance(err, (ValueError, TypeError)), repr(err)
    assert not type(err).__module__.startswith(("numba", "llvmlite")), repr(err)
    assert str(err).strip(), repr(err)


def outcome(call):
    """``(result, None)`` or ``(None, exception)`` of ``call()``, warnings silenced; anything
    but a clear user error fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except Exception as err:  # noqa: BLE001 - the property is about which errors come out
            assert_clear_error(err)
            event("raised", type(err).__name__)
            return None, err
    event("raised", "nothing")
    return result, None


def assert_fitted_sanely(est, X):
    """A fit that succeeded: finite weights and losses, predictions as the NumPy forward."""
    for W in est.coefs_ + est.intercepts_:
        assert np.isfinite(W).all()
    assert np.isfinite(est.loss_)
    if getattr(est, "loss_curve_", None) is not None:
        assert np.isfinite(est.loss_curve_).all()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # feature names, overflow in the oracle
        assert_matches_numpy(est, X)


# ---- random inputs --------------------------------------------------------------------------


def convert(values, dtype, fmt):
    """The float64 matrix ``values`` as ``dtype`` in container ``fmt``."""
    if dtype in ("int64", "bool"):
        finite = np.nan_to_num(values, nan=0.0, posinf=5.0, neginf=-5.0).clip(-5, 5)
        X = np.round(finite).astype(dtype)
    elif dtype == "object":
        X = values.astype(object)
    elif dtype == "complex128":
        X = values + 0.5j
    else:
        with np.errstate(over="ignore"):
            X = values.astype(dtype)
    if fmt == "list":
        return X.tolist()
    if fmt == "dataframe":
        return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    if fmt in ("csr", "csc", "coo") and dtype not in ("object", "float16"):  # scipy: none
        return getattr(sp, f"{fmt}_matrix")(X)
    return X


@st.composite
def matrices(draw, rows=st.integers(0, 12), cols=st.integers(0, 4)):
    """(X, dense float64 values): random shape, dtype, container; sometimes a special value
    (NaN, infinity, huge, tiny, float16's largest)."""
    n, d = draw(rows), draw(cols)
    seed = draw(st.integers(0, 2**16))
    values = np.random.RandomState(seed).randn(n, d)
    special = draw(st.one_of(st.none(), st.none(), st.sampled_from(SPECIALS)))
    if special is not None and values.size:
        values.flat[draw(st.integers(0, values.size - 1))] = special
    dtype = draw(st.sampled_from(DTYPES))
    return convert(values, dtype, draw(st.sampled_from(FORMATS)))


@st.composite
def targets(draw, n, classifier):
    """y for n rows (sometimes another length or two columns; labels for a classifier, now
    and then continuous ones)."""
    rows = draw(st.sampled_from([n] * 4 + [max(n - 1, 0), n + 1]))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    if classifier:
        kind = draw(st.sampled_from(["int", "int", "str", "float", "multilabel", "continuous"]))
        if kind == "multilabel":
            return rng.randint(0, 2, (rows, 2))
        if kind == "continuous":
            return rng.randn(rows)
        y = rng.randint(0, draw(st.integers(1, 3)), rows)
        return {"int": y, "str": y.astype(str), "float": y.astype(float)}[kind]
    shape = (rows,) if draw(st.booleans()) else (rows, draw(st.integers(1, 2)))
    y = rng.randn(*shape)
    special = draw(st.one_of(st.none(), st.none(), st.sampled_from(SPECIALS)))
    if special is not None and y.size:
        y.flat[0] = special
    return y


def n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


SOLVERS = ("sgd", "adam", "lbfgs")


@st.composite
def estimators(draw, classifier=None):
    classifier = draw(st.booleans()) if classifier is None else classifier
    params = dict(
        hidden_layer_sizes=draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)),
        activation=draw(st.sampled_from(fastfnn.HIDDEN_ACTIVATIONS)),
        solver=draw(st.sampled_from(SOLVERS)),
        max_iter=draw(st.integers(1, 3)),
        random_state=0,
    )
    if classifier:
        return FNNClassifier(**params)
    return FNNRegressor(loss=draw(st.sampled_from(fastfnn.REGRESSION_LOSSES)), **params)


# ---- fit on any input -----------------------------------------------------------------------


@st.composite
def sample_weights(draw, n):
    """None, or n weights: positive, with zeros, all zero, negative, NaN, infinite, huge, or
    of another length."""
    kind = draw(st.one_of(st.just("none"), st.sampled_from(
        ["positive", "some zero", "all zero", "negative", "nan", "inf", "huge", "length"])))
    if kind == "none":
        return None
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    w = rng.rand(n + (kind == "length")) + 0.1
    if kind == "some zero":
        w[: n // 2] = 0.0
    elif kind == "all zero":
        w[:] = 0.0
    elif w.size and kind in ("negative", "nan", "inf", "huge"):
        w[0] = {"negative": -1.0, "nan": np.nan, "inf": np.inf, "huge": 1e308}[kind]
    return w.tolist() if draw(st.booleans()) else w


@PROFILE
@given(data=st.data())
def test_fit_on_any_input_fits_sanely_or_raises_a_clear_error(data):
    est = data.draw(estimators())
    classifier = isinstance(est, FNNClassifier)
    X = data.draw(matrices())
    y = data.draw(targets(n_rows(X), classifier))
    sample_weight = data.draw(sample_weights(n_rows(X)))
    method = data.draw(st.sampled_from(["fit", "fit", "partial_fit"]))
    if method == "partial_fit" and est.solver != "lbfgs":
        kwargs = {"classes": np.unique(np.asarray(y))} if classifier and np.ndim(y) == 1 else {}
        fitted, err = outcome(lambda: est.partial_fit(X, y, sample_weight=sample_weight,
                                                      **kwargs))
    else:
        fitted, err = outcome(lambda: est.fit(X, y, sample_weight=sample_weight))
    if err is not None:
        assert not hasattr(est, "coefs_")
        with pytest.raises(NotFittedError):
            est.predict(X)
        return
    assert fitted is est
    assert est.n_features_in_ == np.shape(dense(X))[1]
    assert_fitted_sanely(est, X)


# ---- a failed call leaves a fitted estimator as it was ----------------------------------------


def _fitted(classifier, solver):
    rng = np.random.RandomState(0)
    X = rng.randn(30, N_FEATURES)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0) if classifier else X[:, 0] - X[:, 1]
    make = FNNClassifier if classifier else FNNRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pickle.dumps(make(hidden_layer_sizes=(4,), solver=solver, max_iter=5,
                                 random_state=0).fit(X, y))


FITTED = {(c, s): _fitted(c, s) for c in (False, True) for s in SOLVERS}

EXTREMES = dict(
    learning_rate_init=st.sampled_from([1e-300, 1e-12, 1e-3, 10.0, 1e3, 1e300]),
    alpha=st.sampled_from([0.0, 1e-4, 1e6, 1e300]),
    batch_size=st.sampled_from([1, 2, "auto", 10_000]),
    max_iter=st.sampled_from([1, 2]),
    momentum=st.sampled_from([0.0, 0.9, 1.0]),
    beta_1=st.sampled_from([0.0, 0.9, 0.999999]),
    beta_2=st.sampled_from([0.0, 0.999, 0.999999]),
    epsilon=st.sampled_from([1e-300, 1e-8, 1e8]),
    early_stopping=st.booleans(),
    validation_fraction=st.sampled_from([0.0, 1e-9, 0.1, 0.5, 0.999999]),
    n_iter_no_change=st.sampled_from([1, 10]),
    tol=st.sampled_from([0.0, 1e-4, 1e300]),
    learning_rate=st.sampled_from(["constant", "invscaling", "adaptive"]),
    power_t=st.sampled_from([0.0, 0.5, 100.0]),
    warm_start=st.booleans(),
)


@PROFILE
@given(data=st.data())
def test_a_failed_call_leaves_a_fitted_estimator_byte_identical(data):
    classifier = data.draw(st.booleans())
    solver = data.draw(st.sampled_from(SOLVERS))
    est = pickle.loads(FITTED[classifier, solver])
    changes = data.draw(st.fixed_dictionaries({}, optional=EXTREMES))
    est.set_params(**changes)
    methods = ["fit", "predict", "score"] + (["predict_proba"] if classifier else [])
    methods += ["partial_fit"] if solver != "lbfgs" else []
    method = data.draw(st.sampled_from(methods))
    X = data.draw(matrices(cols=st.sampled_from([N_FEATURES, N_FEATURES, 1, 0])))
    args = [X]
    if method in ("fit", "partial_fit", "score"):
        args.append(data.draw(targets(n_rows(X), classifier)))
    before = pickle.dumps(est)
    result, err = outcome(lambda: getattr(est, method)(*args))
    if err is not None or method in ("predict", "score", "predict_proba"):
        assert pickle.dumps(est) == before
    if err is None:
        assert_fitted_sanely(est, X)


# ---- parameters at their extremes on clean data -----------------------------------------------


@PROFILE
@given(data=st.data())
def test_extreme_parameters_fit_sanely_or_raise_and_keep_the_model(data):
    classifier = data.draw(st.booleans())
    solver = data.draw(st.sampled_from(SOLVERS))
    est = pickle.loads(FITTED[classifier, solver])
    params = data.draw(st.fixed_dictionaries({}, optional=EXTREMES))
    params["activation"] = data.draw(st.sampled_from(fastfnn.HIDDEN_ACTIVATIONS))
    params["hidden_layer_sizes"] = data.draw(st.sampled_from([(4,), (3, 2)]))
    if not classifier:
        params["loss"] = data.draw(st.sampled_from(fastfnn.REGRESSION_LOSSES))
        if params["loss"] == "squared_error":
            params["out_activation"] = data.draw(st.sampled_from(REGRESSOR_OUTPUTS))
    est.set_params(**params)
    n = data.draw(st.sampled_from([1, 2, 5, 40]))
    rng = np.random.RandomState(data.draw(st.integers(0, 2**16)))
    X = rng.randn(n, N_FEATURES).astype(data.draw(st.sampled_from(["float32", "float64"])))
    scale = data.draw(st.sampled_from([1.0, 1e3, 1e6]))
    y = rng.randint(0, 3, n) if classifier else scale * np.abs(X[:, 0] + 0.5 * X[:, 1])
    before, fitted_dtype = pickle.dumps(est), est.coefs_[0].dtype
    fitted, err = outcome(lambda: est.fit(X, y))
    if err is not None:
        assert pickle.dumps(est) == before
        return
    assert est.coefs_[0].dtype == (fitted_dtype if est.warm_start else X.dtype)
    assert_fitted_sanely(est, X)


# ---- check_gradients ------------------------------------------------------------------------


GRADIENT_BREAKS = ("coefs shape", "NaN weight", "intercept count", "string weight",
                   "no layers", "X columns", "X values", "y rows", "y columns",
                   "sample_weight length", "zero sample_weight", "eps", "output")


def broken(draw):
    """None (every input valid: half the examples) or the one input to break."""
    return draw(st.one_of(st.none(), st.sampled_from(GRADIENT_BREAKS)))


def layer_pair(rng, sizes, breaks):
    """(coefs, intercepts) of layer widths ``sizes``, broken as ``breaks`` says."""
    coefs = [rng.randn(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.randn(b) for b in sizes[1:]]
    if breaks == "coefs shape":
        coefs[-1] = rng.randn(sizes[-2] + 1, sizes[-1])
    elif breaks == "NaN weight":
        intercepts[0][0] = np.nan
    elif breaks == "intercept count":
        intercepts = intercepts[:-1]
    elif breaks == "string weight":
        coefs[0] = coefs[0].astype(object)
        coefs[0].flat[0] = "w"
    elif breaks == "no layers":
        coefs, intercepts = [], []
    return coefs, intercepts


def gradient_data(draw, rng, n_features, n_outputs, breaks, classes=None):
    """X (n, n_features) (any dtype and container; finite unless broken), y (n, n_outputs)
    (labels from ``classes`` for a classifier), sample_weight, eps; one broken as told."""
    n = draw(st.integers(1, 6))
    cols = n_features + 1 if breaks == "X columns" else n_features
    values = rng.randn(n, cols)
    if breaks == "X values":
        values.flat[0] = draw(st.sampled_from(SPECIALS[:3]))
    dtypes = ("float32", "float64", "int64") if breaks != "X values" else ("float64",)
    X = convert(values, draw(st.sampled_from(dtypes)), draw(st.sampled_from(FORMATS)))
    rows = n + 1 if breaks == "y rows" else n
    if classes is not None:
        y = rng.choice(classes, rows)
    else:
        y = rng.rand(rows, n_outputs + (breaks == "y columns"))
    weights = {"sample_weight length": np.ones(n + 1), "zero sample_weight": np.zeros(n)}
    sample_weight = weights.get(breaks, draw(st.sampled_from([None, rng.rand(n) + 0.1])))
    eps = draw(st.sampled_from([0.0, -1.0, np.nan, np.inf])) if breaks == "eps" else 1e-6
    return X, y, sample_weight, eps


def assert_relative_error(value, per_layer, n_layers):
    errors = np.asarray(value if per_layer else [value], dtype=np.float64).ravel()
    if per_layer:
        assert np.shape(value) == (n_layers, 2)
    assert ((errors >= 0) & (errors <= 1)).all(), value


OUTPUTS = {"squared_error": REGRESSOR_OUTPUTS}


@PROFILE
@given(data=st.data())
def test_check_gradients_on_a_pair_gives_an_error_in_0_1_or_raises(data):
    breaks = broken(data.draw)
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    rng = np.random.RandomState(data.draw(st.integers(0, 2**16)))
    pair = layer_pair(rng, sizes, breaks)
    loss = data.draw(st.sampled_from(fastfnn.REGRESSION_LOSSES
                                     + ("binary_log_loss", "log_loss")))
    out = None
    if breaks == "output":
        out = "softmax" if loss != "log_loss" else "exp"
    elif loss == "squared_error":
        out = data.draw(st.sampled_from((None,) + REGRESSOR_OUTPUTS))
    X, y, sample_weight, eps = gradient_data(data.draw, rng, sizes[0], sizes[-1], breaks)
    if loss == "log_loss":
        y = np.eye(y.shape[1])[rng.randint(0, y.shape[1], len(y))]
    per_layer = data.draw(st.booleans())
    value, err = outcome(lambda: check_gradients(
        pair, X, y, eps, loss=loss, out_activation=out, sample_weight=sample_weight,
        activation=data.draw(st.sampled_from(fastfnn.HIDDEN_ACTIVATIONS)),
        alpha=data.draw(st.sampled_from([0.0, 1e-3, 10.0])), per_layer=per_layer))
    if breaks is None:
        assert err is None
    elif breaks != "zero sample_weight":  # all-zero weights: no loss to differentiate
        assert err is not None
    if err is None:
        assert_relative_error(value, per_layer, len(sizes) - 1)


FITTED_FOR_GRADIENTS = {c: _fitted(c, "lbfgs") for c in (False, True)}


@PROFILE
@given(data=st.data())
def test_check_gradients_on_an_estimator_gives_an_error_in_0_1_or_raises(data):
    classifier = data.draw(st.booleans())
    est = pickle.loads(FITTED_FOR_GRADIENTS[classifier])
    breaks = data.draw(st.one_of(st.none(), st.sampled_from(
        ("X columns", "X values", "y rows", "y columns", "sample_weight length", "eps"))))
    rng = np.random.RandomState(data.draw(st.integers(0, 2**16)))
    X, y, sample_weight, eps = gradient_data(
        data.draw, rng, N_FEATURES, est.n_outputs_, breaks,
        classes=est.classes_ if classifier and breaks != "y columns" else None)
    per_layer = data.draw(st.booleans())
    before = pickle.dumps(est)
    value, err = outcome(lambda: check_gradients(est, X, y, eps, sample_weight=sample_weight,
                                                 per_layer=per_layer))
    assert pickle.dumps(est) == before
    assert (err is None) == (breaks is None), (breaks, err)
    if err is None:
        assert_relative_error(value, per_layer, len(est.coefs_))


def test_check_gradients_rejects_what_is_not_a_model():
    for model in (None, "model", [np.ones((2, 1))], ([], [], [])):
        with pytest.raises(TypeError, match="pair"):
            check_gradients(model, np.ones((2, 2)), np.ones(2))
