"""The scikit-learn API around the estimators: signature and tags as MLPRegressor/MLPClassifier,
pickle, clone, Pipeline, GridSearchCV, cross_val_score, metadata routing, pandas feature names,
the regressor's extra ``out_activation``, and ``check_gradients`` on fitted estimators.

Oracles: scikit-learn's own MLPs (same seed) and NumPy references of the loss and of one SGD
step written out in this file.
"""

import copy
import inspect
import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

import fastfnn
from fastfnn import FNNClassifier, FNNRegressor, check_gradients

pd = pytest.importorskip("pandas")

HIDDEN = (6, 4)


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def data(kind, n=80, seed=0, n_features=4):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    Z = np.tanh(X @ rng.randn(n_features, 3)) + 0.2 * rng.randn(n, 3)
    y = {
        "reg": lambda: Z[:, 0] + 0.5,
        "multi": lambda: Z[:, :2] * [1.0, 3.0],
        "poisson": lambda: rng.poisson(np.exp(Z[:, 0])).astype(float),
        "unit": lambda: 1 / (1 + np.exp(-2 * Z[:, 0])),  # targets in (0, 1)
        "binary": lambda: (Z[:, 0] > 0).astype(int),
        "multiclass": lambda: np.argmax(Z, axis=1),
        "multilabel": lambda: (Z > 0).astype(int),
        "strings": lambda: np.array(["x", "y", "z"])[np.argmax(Z, axis=1)],
    }[kind]()
    return X, y


# ---- signature, parameters, tags --------------------------------------------------------------


TRAINING_ADDITIONS = ["dropout", "max_grad_norm", "scoring"]


@pytest.mark.parametrize("ff_cls, sk_cls, extra", [
    (FNNRegressor, MLPRegressor, ["out_activation"] + TRAINING_ADDITIONS),
    (FNNClassifier, MLPClassifier, ["class_weight"] + TRAINING_ADDITIONS),
])
def test_constructor_signature_is_sklearns(ff_cls, sk_cls, extra):
    """Same names, order, kinds (positional / keyword-only) and defaults; each estimator adds
    its keyword-only parameters at the end (fastfnn's additions)."""
    ff = inspect.signature(ff_cls).parameters
    sk = inspect.signature(sk_cls).parameters
    assert list(ff) == list(sk) + extra
    for name, p in sk.items():
        assert ff[name].kind == p.kind, name
        assert ff[name].default == p.default or (
            isinstance(p.default, float) and np.isclose(ff[name].default, p.default)), name
    for name in extra:
        assert ff[name].kind == inspect.Parameter.KEYWORD_ONLY
    assert ff_cls().get_params().keys() == set(sk_cls().get_params()) | set(extra)


@pytest.mark.parametrize("ff_cls, sk_cls", [(FNNRegressor, MLPRegressor),
                                            (FNNClassifier, MLPClassifier)])
def test_method_signatures_are_sklearns(ff_cls, sk_cls):
    public = {m for m in dir(sk_cls) if not m.startswith("_") and callable(getattr(sk_cls, m))}
    assert public <= set(dir(ff_cls))
    for name in ("fit", "partial_fit", "predict", "score", "predict_proba",
                 "predict_log_proba"):
        if hasattr(sk_cls, name):
            ff = list(inspect.signature(getattr(ff_cls, name)).parameters.values())
            sk = list(inspect.signature(getattr(sk_cls, name)).parameters.values())
            assert ff[:len(sk)] == sk, name
            added = FIT_ADDITIONS if name == "fit" else []
            assert [p.name for p in ff[len(sk):]] == added, name
            assert all(p.kind == p.KEYWORD_ONLY and p.default is None for p in ff[len(sk):])


# fit's keyword-only additions: a given validation set (HistGradientBoosting's names)
FIT_ADDITIONS = ["X_val", "y_val", "sample_weight_val"]


def test_regressor_default_out_activation_and_first_positional_loss():
    est = FNNRegressor("poisson", (5,), "tanh")
    assert (est.loss, est.hidden_layer_sizes, est.activation) == ("poisson", (5,), "tanh")
    assert FNNRegressor().out_activation == "identity"
    with pytest.raises(TypeError):
        FNNRegressor("squared_error", (5,), "relu", "adam")  # the rest is keyword-only
    # the classifier's loss: an attribute, not a parameter, in both
    assert FNNClassifier().loss == MLPClassifier().loss
    assert "loss" not in FNNClassifier().get_params() and "loss" not in MLPClassifier().get_params()


@pytest.mark.parametrize("ff, sk", [(FNNRegressor(), MLPRegressor()),
                                    (FNNClassifier(), MLPClassifier())])
def test_tags_and_metadata_routing_are_sklearns(ff, sk):
    assert get_tags(ff) == get_tags(sk)
    ff_routing = ff.get_metadata_routing()
    sk_routing = sk.get_metadata_routing()
    assert ff_routing.fit.requests == {**sk_routing.fit.requests,
                                       **dict.fromkeys(FIT_ADDITIONS)}
    for method in ("partial_fit", "score"):
        assert getattr(ff_routing, method).requests == getattr(sk_routing, method).requests
    with sklearn.config_context(enable_metadata_routing=True):
        ff.set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        ff.set_partial_fit_request(sample_weight=True)
        sk.set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        sk.set_partial_fit_request(sample_weight=True)
        ff_routing, sk_routing = ff.get_metadata_routing(), sk.get_metadata_routing()
        assert ff_routing.fit.requests["sample_weight"] is True
        assert ff_routing.fit.requests == {**sk_routing.fit.requests,
                                           **dict.fromkeys(FIT_ADDITIONS)}
        for method in ("partial_fit", "score"):
            assert getattr(ff_routing, method).requests == \
                getattr(sk_routing, method).requests


def test_public_names():
    assert set(fastfnn.__all__) == {"FNNRegressor", "FNNClassifier", "FNNGridSearchCV",
                                    "FNNRandomizedSearchCV", "FNNEnsembleRegressor",
                                    "FNNEnsembleClassifier", "check_gradients",
                                    "gradcheck_cases", "HIDDEN_ACTIVATIONS", "REGRESSION_LOSSES",
                                    "SOLVERS", "SCHEDULES", "save_model", "load_model",
                                    "TextCells", "__version__"}
    assert all(hasattr(fastfnn, name) for name in fastfnn.__all__)


# ---- pickle, clone ------------------------------------------------------------------------


FITTED = [
    ("reg", dict(solver="adam")), ("multi", dict(solver="sgd")),
    ("poisson", dict(solver="lbfgs")), ("binary", dict(solver="sgd", early_stopping=True)),
    ("multiclass", dict(solver="lbfgs")), ("multilabel", dict(solver="adam")),
    ("strings", dict(solver="adam")),
]


def make(kind, **params):
    params = {"hidden_layer_sizes": HIDDEN, "random_state": 0, "max_iter": 20, **params}
    if kind == "poisson":
        params["loss"] = "poisson"
    if kind in ("reg", "multi", "poisson", "unit"):
        return FNNRegressor(**params)
    return FNNClassifier(**params)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, params", FITTED, ids=[k for k, _ in FITTED])
def test_pickle_round_trip_gives_identical_predictions(kind, params, dtype):
    X, y = data(kind)
    X = X.astype(dtype)
    est = make(kind, **params).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if isinstance(est, FNNClassifier):
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(back.classes_, est.classes_)
    assert back.get_params() == est.get_params() or kind == "never"
    for a, b in zip(back.coefs_, est.coefs_):
        assert a.dtype == b.dtype == dtype


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_pickle_mid_partial_fit_continues_identically(solver):
    """The optimizer state travels in the pickle: continuing after a round trip gives the
    same weights as continuing without one."""
    X, y = data("multiclass")
    est = make("multiclass", solver=solver)
    est.partial_fit(X[:40], y[:40], classes=[0, 1, 2])
    back = pickle.loads(pickle.dumps(est))
    for e in (est, back):
        e.partial_fit(X[40:], y[40:])
        e.partial_fit(X[:40], y[:40])
    for a, b in zip(back.coefs_ + back.intercepts_, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert back.loss_curve_ == est.loss_curve_


def test_clone_gives_an_unfitted_copy_with_the_same_parameters():
    X, y = data("reg")
    est = make("reg", out_activation="tanh", alpha=0.3).fit(X, y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    twin.fit(X, y)
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))  # same seed, same model


def test_fit_returns_self_and_refit_resets():
    X, y = data("binary")
    est = make("binary", solver="adam")
    assert est.fit(X, y) is est
    first = [c.copy() for c in est.coefs_]
    est.fit(X, y)  # warm_start=False: a fresh fit from the same seed
    for a, b in zip(first, est.coefs_):
        np.testing.assert_array_equal(a, b)
    assert len(est.loss_curve_) == est.n_iter_


# ---- model selection: the same numbers as scikit-learn's MLP ------------------------------


def test_pipeline_matches_sklearn():
    X, y = data("multiclass")
    X = X * 50 + 3
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=30, solver="adam")
    ff = make_pipeline(StandardScaler(), FNNClassifier(**params)).fit(X, y)
    sk = make_pipeline(StandardScaler(), MLPClassifier(**params)).fit(X, y)
    np.testing.assert_allclose(ff.predict_proba(X), sk.predict_proba(X), rtol=1e-8)
    assert ff.score(X, y) == sk.score(X, y)
    assert isinstance(ff, Pipeline)


def test_grid_search_matches_sklearn():
    X, y = data("reg", n=90)
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(3,), (5, 3)]}
    base = dict(random_state=0, max_iter=25, solver="lbfgs")
    ff = GridSearchCV(FNNRegressor(**base), grid, cv=3).fit(X, y)
    sk = GridSearchCV(MLPRegressor(**base), grid, cv=3).fit(X, y)
    np.testing.assert_allclose(ff.cv_results_["mean_test_score"],
                               sk.cv_results_["mean_test_score"], rtol=1e-6)
    assert ff.best_params_ == sk.best_params_
    assert isinstance(ff.best_estimator_, FNNRegressor)
    np.testing.assert_allclose(ff.predict(X), sk.predict(X), rtol=1e-6)


@pytest.mark.parametrize("kind", ["reg", "strings"])
def test_cross_val_score_matches_sklearn(kind):
    X, y = data(kind, n=90)
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=15, solver="sgd",
                  learning_rate_init=0.05)
    ff_cls, sk_cls = (FNNRegressor, MLPRegressor) if kind == "reg" else (FNNClassifier,
                                                                          MLPClassifier)
    cv = KFold(3, shuffle=True, random_state=1)
    ff = cross_val_score(ff_cls(**params), X, y, cv=cv)
    sk = cross_val_score(sk_cls(**params), X, y, cv=cv)
    np.testing.assert_allclose(ff, sk, rtol=1e-8)


def test_metadata_routing_passes_sample_weight():
    X, y = data("reg", n=90)
    sw = np.random.RandomState(3).uniform(0.2, 2.0, len(y))
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=10, solver="adam")
    with sklearn.config_context(enable_metadata_routing=True):
        est = FNNRegressor(**params).set_fit_request(sample_weight=True)
        est.set_score_request(sample_weight=True)
        res = cross_validate(est, X, y, cv=KFold(3), params={"sample_weight": sw})
    for k, (train, test) in enumerate(KFold(3).split(X)):
        direct = FNNRegressor(**params).fit(X[train], y[train], sample_weight=sw[train])
        assert res["test_score"][k] == pytest.approx(
            direct.score(X[test], y[test], sample_weight=sw[test]), rel=1e-12)


# ---- pandas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reg", "multiclass"])
def test_dataframe_sets_feature_names_like_sklearn(kind):
    X, y = data(kind)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ff = make(kind, solver="adam").fit(df, y)
    sk_cls = MLPRegressor if kind == "reg" else MLPClassifier
    sk = sk_cls(**{k: v for k, v in ff.get_params().items() if k in sk_cls().get_params()})
    sk.fit(df, y)
    np.testing.assert_array_equal(ff.feature_names_in_, ["a", "b", "c", "d"])
    assert ff.feature_names_in_.dtype == sk.feature_names_in_.dtype == object
    np.testing.assert_allclose(ff.predict(df), sk.predict(df), rtol=1e-8)
    # ndarray after a DataFrame fit: the same warning as scikit-learn
    for est in (ff, sk):
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            est.predict(X)
    # renamed / reordered columns: the same error
    for est in (ff, sk):
        with pytest.raises(ValueError, match="feature names should match"):
            est.predict(df[["b", "a", "c", "d"]])
    ff_np = make(kind, solver="adam").fit(X, y)
    assert not hasattr(ff_np, "feature_names_in_")


def test_pandas_series_target_and_float32_frame():
    X, y = data("reg")
    df = pd.DataFrame(X.astype(np.float32), columns=list("abcd"))
    est = make("reg", solver="sgd").fit(df, pd.Series(y))
    assert est.coefs_[0].dtype == np.float32
    assert est.predict(df).dtype == np.float32


def test_fit_checks_plain_arrays_without_validate_data_and_all_else_with_it(monkeypatch):
    """Plain float arrays skip ``validate_data`` in fit; every other input, and every input a
    check rejects, still goes through it (and so gets scikit-learn's result or error)."""
    import fastfnn._base

    calls = []
    real = fastfnn._base.validate_data

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fastfnn._base, "validate_data", counted)
    X, y = data("reg")
    Xc, yc = data("multiclass")

    def n_calls(fit):
        calls.clear()
        fit()
        return len(calls)

    plain = [
        lambda: make("reg", solver="sgd").fit(X, y),
        lambda: make("reg", solver="sgd").fit(X.astype(np.float32), y.astype(np.float32)),
        lambda: make("reg", solver="sgd").fit(np.asfortranarray(X), np.c_[y, -y]),
        lambda: make("multiclass", solver="sgd").fit(Xc, yc),
        lambda: make("reg", solver="sgd").fit(X, y).partial_fit(X, y),
    ]
    for fit in plain:
        assert n_calls(fit) == 0
    # what the shortcut returns is what validate_data returns, on a twin estimator
    for X_in, y_in in [(X, y), (np.asfortranarray(X.astype(np.float32)), np.c_[y, -y]),
                       (Xc, yc)]:
        est, twin = make("reg"), make("reg")
        got = est._check_fit_data(X_in, y_in, reset=True, y_numeric=True)
        want = real(twin, X_in, y_in, accept_sparse=["csr", "csc"], multi_output=True,
                    y_numeric=True, dtype=(np.float64, np.float32), reset=True)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.flags.c_contiguous == b.flags.c_contiguous
            np.testing.assert_array_equal(a, b)
        assert est.n_features_in_ == twin.n_features_in_
    others = [
        lambda: make("reg", solver="sgd").fit(X.tolist(), y),  # a list
        lambda: make("reg", solver="sgd").fit(X.astype(np.float16), y),  # converted
        lambda: make("multiclass", solver="sgd").fit(Xc, yc.astype(str)),  # string labels
        lambda: make("reg", solver="sgd").fit(pd.DataFrame(X, columns=list("abcd")), y),
    ]
    for fit in others:
        assert n_calls(fit) == 1
    bad = [
        (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y, "NaN"),
        (X, np.r_[np.inf, y[1:]], "infinity"),
        (X, y[:-1], "inconsistent numbers of samples"),
        (X[:0], y[:0], "0 sample"),
        (X[:, :0], y, "0 feature"),
    ]
    for X_bad, y_bad, message in bad:
        with pytest.raises(ValueError, match=message):
            n_calls(lambda: make("reg", solver="sgd").fit(X_bad, y_bad))
        assert len(calls) == 1
    est = make("reg", solver="sgd").fit(X, y)
    with pytest.raises(ValueError, match="features"):
        n_calls(lambda: est.partial_fit(X[:, :3], y))
    assert len(calls) == 1
    # a refit with an array drops the names a DataFrame fit set, as scikit-learn does
    est = make("reg", solver="sgd").fit(pd.DataFrame(X, columns=list("abcd")), y)
    assert n_calls(lambda: est.fit(X, y)) == 1
    assert not hasattr(est, "feature_names_in_") and est.n_features_in_ == 4


# ---- predict dtype and layouts ----------------------------------------------------------------


def test_predict_dtype_follows_numpy_promotion_like_sklearn():
    """float32 model: float32 X predicts float32 (and so do float16, bool, int8 and int16:
    NumPy promotes them with float32 to float32), float64 or int64 X float64 (computed in
    float64, as scikit-learn's ``X @ coefs_``); float64 model: float64 always."""
    X, y = data("reg")
    X32 = X.astype(np.float32)
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=5, solver="sgd")
    ff, sk = FNNRegressor(**params).fit(X32, y), MLPRegressor(**params).fit(X32, y)
    for Xp in (X32, X, X.astype(np.float16), X > 0, (3 * X).astype(np.int8),
               (3 * X).astype(np.int16), (3 * X).astype(np.int64)):
        assert ff.predict(Xp).dtype == sk.predict(Xp).dtype
        np.testing.assert_allclose(ff.predict(Xp), sk.predict(Xp), rtol=1e-4)
    # the float64 path of a float32 model is the exact float64 evaluation of its weights
    ref = MLPRegressor(**params).fit(X32, y)
    ref.coefs_ = [c.astype(np.float64) for c in ff.coefs_]
    ref.intercepts_ = [b.astype(np.float64) for b in ff.intercepts_]
    np.testing.assert_allclose(ff.predict(X), ref.predict(X), rtol=1e-12)
    ff64 = FNNRegressor(**params).fit(X, y)
    assert ff64.predict(X32).dtype == np.float64


@pytest.mark.parametrize("hidden", [(), 5, [3, 3, 3]])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_hidden_layer_layouts_match_sklearn(hidden, solver):
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=hidden, random_state=0, max_iter=10, solver=solver,
                  learning_rate_init=0.05)
    ff, sk = FNNClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    assert ff.n_layers_ == sk.n_layers_
    for a, b in zip(ff.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ff.predict_proba(X), sk.predict_proba(X), rtol=1e-9)


def test_n_iter_no_change_inf_never_stops():
    X, y = data("reg")
    est = make("reg", solver="sgd", tol=1e9, n_iter_no_change=np.inf, max_iter=12).fit(X, y)
    assert est.n_iter_ == 12


def test_score_with_sample_weight_matches_sklearn():
    X, y = data("multiclass")
    sw = np.arange(len(y)) % 4 + 0.5
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=8, solver="adam")
    ff, sk = FNNClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    assert ff.score(X, y, sample_weight=sw) == sk.score(X, y, sample_weight=sw)


# ---- the regressor's out_activation: NumPy oracles ------------------------------------------


def _act(name, z):
    return {"identity": lambda: z, "relu": lambda: np.maximum(z, 0),
            "tanh": lambda: np.tanh(z), "logistic": lambda: 1 / (1 + np.exp(-z)),
            "exp": lambda: np.exp(z)}[name]()


def _dact(name, a):  # derivative written in terms of the output a
    return {"identity": lambda: np.ones_like(a), "relu": lambda: (a > 0) * 1.0,
            "tanh": lambda: 1 - a**2, "logistic": lambda: a * (1 - a)}[name]()


def reference_loss(est, X, y):
    """NumPy: full-batch objective of fastfnn (summed over outputs) plus the L2 term."""
    A = [X]
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        Z = A[-1] @ W + b
        last = i == len(est.coefs_) - 1
        A.append(_act(est.out_activation_ if last else est.activation, Z))
    P = A[-1]
    Y = np.asarray(y, float).reshape(len(X), -1)
    if getattr(est, "loss", "squared_error") == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(Y > 0, Y * np.log(Y / P), 0) - Y + P
    else:
        per = 0.5 * (P - Y) ** 2
    l2 = 0.5 * est.alpha * sum(np.sum(W**2) for W in est.coefs_) / len(X)
    return per.sum(axis=1).mean() + l2, A


@pytest.mark.parametrize("out", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("kind", ["unit", "multi"])
def test_out_activation_lbfgs_loss_is_the_numpy_objective(out, kind):
    X, y = data(kind)
    est = make(kind, solver="lbfgs", activation="logistic", out_activation=out, alpha=1e-2,
               max_iter=30).fit(X, y)
    assert est.out_activation_ == out
    value, A = reference_loss(est, X, y)
    assert est.loss_ == pytest.approx(value, rel=1e-10)
    np.testing.assert_allclose(est.predict(X), A[-1].reshape(est.predict(X).shape),
                               rtol=1e-12)
    if out == "logistic":
        assert np.all((est.predict(X) > 0) & (est.predict(X) < 1))


@pytest.mark.parametrize("out", ["identity", "logistic", "tanh", "relu"])
def test_out_activation_sgd_step_is_the_numpy_step(out):
    """One full-batch SGD step (no momentum, no shuffle) from the initial weights equals the
    step computed by the NumPy backprop with the general output delta (a - y) * act'(a)."""
    X, y = data("unit")
    params = dict(solver="sgd", activation="tanh", out_activation=out, alpha=0.1,
                  momentum=0.0, shuffle=False, batch_size=len(y), learning_rate_init=0.3)
    est = make("unit", **params, max_iter=1).fit(X, y)
    # the initial weights: scikit-learn's draw from the same seed (its _best_coefs keep it)
    sk = MLPRegressor(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=1,
                      activation="tanh").fit(X, y)
    start, start_b = sk._best_coefs, sk._best_intercepts
    ref = copy.deepcopy(est)
    ref.coefs_, ref.intercepts_ = [w.copy() for w in start], [b.copy() for b in start_b]
    _, A = reference_loss(ref, X, y)
    n = len(y)
    D = (A[-1] - y.reshape(-1, 1)) * _dact(out, A[-1])
    for i in range(len(start) - 1, -1, -1):
        gW = (A[i].T @ D + 0.1 * start[i]) / n
        gb = D.sum(axis=0) / n
        if i > 0:
            D = (D @ start[i].T) * _dact("tanh", A[i])
        np.testing.assert_allclose(est.coefs_[i], start[i] - 0.3 * gW, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(est.intercepts_[i], start_b[i] - 0.3 * gb, rtol=1e-12,
                                   atol=1e-14)


# ---- check_gradients on fitted estimators -----------------------------------------------------


GRAD_CONFIGS = {
    "reg": ("reg", dict()),
    "reg relu": ("reg", dict(activation="relu")),
    "multi-output": ("multi", dict()),
    "poisson": ("poisson", dict()),
    "out logistic": ("unit", dict(out_activation="logistic")),
    "out tanh": ("unit", dict(out_activation="tanh")),
    "out relu": ("unit", dict(out_activation="relu")),
    "binary": ("binary", dict()),
    "multiclass": ("multiclass", dict()),
    "multilabel": ("multilabel", dict()),
    "strings": ("strings", dict()),
    "alpha": ("multiclass", dict(alpha=0.7)),
    "identity hidden": ("reg", dict(activation="identity", alpha=0.2)),
    "logistic hidden": ("multi", dict(activation="logistic")),
    "no hidden layer": ("multiclass", dict(hidden_layer_sizes=())),
}


@pytest.mark.parametrize("with_weights", [False, True])
@pytest.mark.parametrize("config", list(GRAD_CONFIGS))
def test_check_gradients_on_fitted_estimators(config, with_weights):
    kind, params = GRAD_CONFIGS[config]
    X, y = data(kind, n=12)
    est = make(kind, **{"hidden_layer_sizes": (3, 2), "activation": "tanh", "solver": "adam",
                        "max_iter": 5, "learning_rate_init": 0.05, **params})
    sw = np.random.RandomState(1).uniform(0.1, 2.0, len(X)) if with_weights else None
    est.fit(X, y, sample_weight=sw)
    before = pickle.dumps(est)
    predictions = est.predict(X)
    error = check_gradients(est, X, y, eps=1e-6, sample_weight=sw)
    assert isinstance(error, float)
    assert error < 1e-7, error
    assert pickle.dumps(est) == before  # never changes the model
    np.testing.assert_array_equal(est.predict(X), predictions)


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    """Not a test that cannot fail: a gradient scaled by 1.01 is reported (~5e-3)."""
    from fastfnn.network import Network

    X, y = data("reg", n=12)
    est = make("reg", hidden_layer_sizes=(3, 2), activation="tanh", max_iter=3).fit(X, y)
    original = Network.loss_grad

    def wrong(self, *args, **kwargs):
        value, grad = original(self, *args, **kwargs)
        return value, grad * 1.01

    monkeypatch.setattr(Network, "loss_grad", wrong)
    assert check_gradients(est, X, y) > 1e-3


def test_check_gradients_float32_model_is_checked_in_float64():
    X, y = data("multiclass", n=12)
    est = make("multiclass", hidden_layer_sizes=(3,), activation="tanh", max_iter=5)
    est.fit(X.astype(np.float32), y)
    assert est.coefs_[0].dtype == np.float32
    assert check_gradients(est, X, y) < 1e-7
    assert est.coefs_[0].dtype == np.float32


@pytest.mark.parametrize("cls", [FNNRegressor, FNNClassifier])
def test_check_gradients_unfitted_raises_not_fitted(cls):
    X, y = data("binary", n=12)
    with pytest.raises(NotFittedError):
        check_gradients(cls(), X, y)


# ---- warm start across a change of mode -------------------------------------------------------


def _fresh_history(sk, early_stopping):
    """What fastfnn does where scikit-learn fails: start the new mode's history as its
    _initialize would, from the current weights."""
    sk._no_improvement_count = 0
    if not hasattr(sk, "loss_curve_"):
        sk.loss_curve_ = []
    if early_stopping:
        sk.validation_scores_, sk.best_validation_score_, sk.best_loss_ = [], -np.inf, None
        sk._best_coefs = [c.copy() for c in sk.coefs_]
        sk._best_intercepts = [b.copy() for b in sk.intercepts_]
    else:
        sk.validation_scores_, sk.best_validation_score_, sk.best_loss_ = None, None, np.inf


@pytest.mark.parametrize("first, second", [
    (dict(early_stopping=False), dict(early_stopping=True)),
    (dict(early_stopping=True), dict(early_stopping=False)),
    (dict(solver="lbfgs"), dict(solver="sgd")),
    (dict(solver="lbfgs"), dict(solver="adam", early_stopping=True)),
])
def test_warm_start_across_a_change_of_mode(first, second):
    """scikit-learn fails here (AttributeError/TypeError on the other mode's history); fastfnn
    continues with a fresh history of the new mode, which is scikit-learn's result once that
    history is set up by hand."""
    X, y = data("reg", n=100)
    params = dict(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=6, solver="sgd",
                  learning_rate_init=0.02, n_iter_no_change=2)
    ff, sk = FNNRegressor(**{**params, **first}), MLPRegressor(**{**params, **first})
    for est in (ff, sk):
        est.fit(X, y)
        est.set_params(warm_start=True, **second)
    with pytest.raises((AttributeError, TypeError)):
        copy.deepcopy(sk).fit(X, y)
    _fresh_history(sk, second.get("early_stopping", first.get("early_stopping", False)))
    ff.fit(X, y)
    sk.fit(X, y)
    for a, b in zip(ff.coefs_ + ff.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ff.loss_curve_, sk.loss_curve_, rtol=1e-9)
    if sk.best_loss_ is None:
        assert ff.best_loss_ is None
    else:
        assert ff.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-9)
    assert (ff.validation_scores_ is None) == (sk.validation_scores_ is None)
    if sk.validation_scores_ is not None:
        np.testing.assert_allclose(ff.validation_scores_, sk.validation_scores_, rtol=1e-9)


def test_partial_fit_after_a_change_of_solver_makes_a_new_optimizer():
    """scikit-learn keeps the old optimizer object (an SGD optimizer under solver='adam')."""
    X, y = data("reg")
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", random_state=0, max_iter=3)
    est.fit(X, y)
    est.set_params(solver="adam")
    est.partial_fit(X, y)
    assert est._optimizer.name == "adam" and est._optimizer.steps[0] > 0
    sk = MLPRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", random_state=0, max_iter=3)
    sk.fit(X, y).set_params(solver="adam").partial_fit(X, y)
    assert type(sk._optimizer).__name__ == "SGDOptimizer"
