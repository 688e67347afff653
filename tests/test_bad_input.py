"""Bad input: the same exception types as scikit-learn's MLPs, messages that say what to do, and
a failed fit/partial_fit that leaves an already fitted estimator exactly as it was.

scikit-learn is the oracle for the exception type: each bad call is made on MLPRegressor /
MLPClassifier as well, and fastfnn must raise the same type (or, where fastfnn differs on
purpose, the difference is stated in the test).
"""

import copy
import pickle
import warnings
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import InvalidParameterError

from fastfnn import FNNClassifier, FNNRegressor
from fastfnn.network import Network

HIDDEN = (6, 4)


def data(kind="reg", n=60, seed=0, n_features=4):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    if kind == "reg":
        y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.randn(n)
    elif kind == "multi":
        y = np.c_[X[:, 0], X[:, 1] * X[:, 2]]
    else:
        y = np.array([0, 1, 2])[np.arange(n) % 3]
    return X, y


def both(kind, **params):
    """(fastfnn, scikit-learn) estimators with the same parameters."""
    params = {"hidden_layer_sizes": HIDDEN, "random_state": 0, "max_iter": 5, **params}
    if kind in ("reg", "multi"):
        return FNNRegressor(**params), MLPRegressor(**params)
    return FNNClassifier(**params), MLPClassifier(**params)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def raises_like_sklearn(ff, sk, method, *args, **kwargs):
    """Call ``method`` on both; both must raise, fastfnn with scikit-learn's exception type.

    Returns fastfnn's exception."""
    with pytest.raises(Exception) as sk_err:
        quiet(getattr(sk, method), *args, **kwargs)
    with pytest.raises(Exception) as ff_err:
        quiet(getattr(ff, method), *args, **kwargs)
    assert type(ff_err.value) is type(sk_err.value), (ff_err.value, sk_err.value)
    return ff_err.value


# ---- snapshot of everything a fit could change --------------------------------------------


def snapshot(est):
    """A deep copy of the estimator's whole state (RandomStates as their state tuples)."""
    state = {}
    for key, value in est.__dict__.items():
        if isinstance(value, np.random.RandomState):
            state[key] = ("RandomState", copy.deepcopy(value.get_state()))
        else:
            state[key] = copy.deepcopy(value)
    return state


def assert_same(a, b, path="est"):
    """Recursive equality: arrays bit for bit (NaN equal), objects by their __dict__."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert_same(vars(a), vars(b), f"{path}.__dict__")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_snapshot_comparison_detects_changes():
    """The comparison used below is not blind: one changed weight, loss or optimizer entry."""
    X, y = data()
    est = quiet(FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", random_state=0,
                             max_iter=3).fit, X, y)
    before = snapshot(est)
    for mutate in (
        lambda e: e.coefs_[1].__setitem__((0, 0), e.coefs_[1][0, 0] + 1e-12),
        lambda e: e.loss_curve_.append(1.0),
        lambda e: e._optimizer.velocity.__setitem__(0, 1.0),
        lambda e: setattr(e, "n_iter_", 4),
    ):
        changed = copy.deepcopy(est)
        mutate(changed)
        with pytest.raises(AssertionError):
            assert_same(snapshot(changed), before)
    assert_same(snapshot(copy.deepcopy(est)), before)


# ---- invalid data -------------------------------------------------------------------------


BAD_DATA = {
    "nan in X": lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), y),
    "inf in X": lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), y),
    "nan in y": lambda X, y: (X, np.where(np.arange(len(y)) == 3, np.nan, y)),
    "inf in y": lambda X, y: (X, np.where(np.arange(len(y)) == 3, -np.inf, y)),
    "mismatched lengths": lambda X, y: (X[:-1], y),
    "empty X": lambda X, y: (X[:0], y[:0]),
    "1-D X": lambda X, y: (X[:, 0], y),
    "no features": lambda X, y: (X[:, :0], y),
}
HINTS = {
    "nan in X": "impute", "inf in X": "Replace", "nan in y": "Impute", "inf in y": "Replace",
    "mismatched lengths": "same length", "empty X": "non-empty", "1-D X": "reshape",
    "no features": "at least one column",
}


@pytest.mark.parametrize("case", list(BAD_DATA))
@pytest.mark.parametrize("kind", ["reg", "clf"])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bad_data_raises_like_sklearn(method, kind, case):
    X, y = data(kind)
    if kind == "clf" and "y" in case.split()[-1] and case != "mismatched lengths":
        y = y.astype(float)  # NaN labels: float y
    X_bad, y_bad = BAD_DATA[case](X, y)
    ff, sk = both(kind, solver="sgd")
    kwargs = {"classes": [0, 1, 2]} if (kind == "clf" and method == "partial_fit") else {}
    err = raises_like_sklearn(ff, sk, method, X_bad, y_bad, **kwargs)
    assert isinstance(err, ValueError)
    assert HINTS[case] in str(err), str(err)
    assert not hasattr(ff, "coefs_")


@pytest.mark.parametrize("case", ["nan in X", "inf in X", "1-D X", "empty X"])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_bad_data_at_predict(method, case):
    X, y = data("clf")
    ff, sk = both("clf")
    quiet(ff.fit, X, y)
    quiet(sk.fit, X, y)
    X_bad, y_bad = BAD_DATA[case](X, y)
    args = (X_bad, y_bad) if method == "score" else (X_bad,)
    err = raises_like_sklearn(ff, sk, method, *args)
    assert HINTS[case] in str(err)


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_wrong_feature_count_at_predict(kind):
    X, y = data(kind)
    ff, sk = both(kind)
    quiet(ff.fit, X, y)
    quiet(sk.fit, X, y)
    err = raises_like_sklearn(ff, sk, "predict", X[:, :3])
    assert "X has 3 features, but FNN" in str(err) and "expecting 4 features" in str(err)


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_sample_weight_of_wrong_length(kind):
    X, y = data(kind)
    ff, sk = both(kind)
    raises_like_sklearn(ff, sk, "fit", X, y, sample_weight=np.ones(len(y) - 1))


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_predict_before_fit(kind):
    X, y = data(kind)
    ff, sk = both(kind)
    for method in ["predict", "score"] + (["predict_proba", "predict_log_proba"]
                                          if kind == "clf" else []):
        args = (X, y) if method == "score" else (X,)
        err = raises_like_sklearn(ff, sk, method, *args)
        assert isinstance(err, NotFittedError)


def test_partial_fit_unseen_labels():
    X, y = data("clf")
    ff, sk = both("clf", solver="sgd")
    for est in (ff, sk):
        quiet(est.partial_fit, X, y, classes=[0, 1, 2])
    y4 = y.copy()
    y4[0] = 3
    err = raises_like_sklearn(ff, sk, "partial_fit", X, y4)
    assert isinstance(err, ValueError) and "classes=np.unique(y_all)" in str(err)
    # labels outside `classes` in the very first call, and no classes at all
    ff, sk = both("clf", solver="sgd")
    raises_like_sklearn(ff, sk, "partial_fit", X, y4, classes=[0, 1, 2])
    assert not hasattr(ff, "classes_")  # (scikit-learn keeps the classes_ of the failed call)
    ff, sk = both("clf", solver="sgd")
    err = raises_like_sklearn(ff, sk, "partial_fit", X, y)
    assert "classes must be passed on the first call" in str(err)


def test_partial_fit_with_different_classes_argument():
    X, y = data("clf")
    ff, sk = both("clf", solver="adam")
    for est in (ff, sk):
        quiet(est.partial_fit, X, y, classes=[0, 1, 2])
    raises_like_sklearn(ff, sk, "partial_fit", X, y, classes=[0, 1, 2, 3])


def test_warm_start_with_other_classes():
    X, y = data("clf")
    ff, sk = both("clf", warm_start=True)
    for est in (ff, sk):
        quiet(est.fit, X, y)
    err = raises_like_sklearn(ff, sk, "fit", X, np.where(y == 2, 1, y))
    assert "warm_start=False" in str(err)


# ---- invalid parameters -------------------------------------------------------------------


INVALID_PARAMS = [
    dict(hidden_layer_sizes=0), dict(hidden_layer_sizes="7"), dict(activation="softmax"),
    dict(solver="newton"), dict(alpha=-1.0), dict(batch_size=0), dict(batch_size="big"),
    dict(learning_rate="optimal"), dict(learning_rate_init=0.0), dict(power_t=-0.5),
    dict(max_iter=0), dict(max_iter=2.5), dict(shuffle="yes"), dict(random_state="seed"),
    dict(tol=-1e-4), dict(momentum=1.5), dict(nesterovs_momentum=None),
    dict(early_stopping=1.0), dict(validation_fraction=1.0), dict(beta_1=1.0),
    dict(beta_2=-0.1), dict(epsilon=0.0), dict(n_iter_no_change=0), dict(max_fun=0),
    dict(warm_start="no"), dict(verbose="loud"),
]


@pytest.mark.parametrize("params", INVALID_PARAMS, ids=lambda d: "-".join(map(str, d.items())))
@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_invalid_parameters(kind, params):
    X, y = data(kind)
    ff, sk = both(kind, **params)
    err = raises_like_sklearn(ff, sk, "fit", X, y)
    assert isinstance(err, InvalidParameterError)
    param = next(iter(params))
    assert f"The '{param}' parameter of FNN" in str(err)
    assert "must be" in str(err)  # says what is allowed


@pytest.mark.parametrize("name, accepted, refused",
                         [("early_stopping", False, 0), ("max_iter", 5, 5.0), ("shuffle", True, 1)])
def test_a_value_equal_to_an_accepted_one_is_still_refused_for_its_type(name, accepted, refused):
    """The parameters scikit-learn's validation accepted are remembered (per class and values):
    a value Python finds equal (0 == False, 5 == 5.0) but of a type scikit-learn refuses is
    refused after the accepted one was fitted, as scikit-learn refuses it."""
    X, y = data("reg")
    quiet(both("reg", **{name: accepted})[0].fit, X, y)
    ff, sk = both("reg", **{name: refused})
    err = raises_like_sklearn(ff, sk, "fit", X, y)
    assert isinstance(err, InvalidParameterError) and f"The '{name}' parameter" in str(err)


@pytest.mark.parametrize("params", [dict(loss="hinge"), dict(out_activation="exp"),
                                    dict(out_activation="softmax")])
def test_invalid_regressor_parameters(params):
    X, y = data("reg")
    with pytest.raises(InvalidParameterError, match="must be a str among"):
        FNNRegressor(**params).fit(X, y)


def test_loss_is_the_first_positional_parameter():
    X, y = data("reg")
    for cls in (FNNRegressor, MLPRegressor):
        with pytest.raises(InvalidParameterError, match="'loss' parameter"):
            cls((10,)).fit(X, y)


@pytest.mark.parametrize("kind", ["reg", "clf"])
@pytest.mark.parametrize("sizes", [(5, 0), [0], (3, -1)])
def test_hidden_layer_of_size_zero(kind, sizes):
    X, y = data(kind)
    ff, sk = both(kind, hidden_layer_sizes=sizes)
    err = raises_like_sklearn(ff, sk, "fit", X, y)
    assert type(err) is ValueError and "at least one unit" in str(err)


def test_poisson_with_out_activation_or_negative_targets():
    """fastfnn raises where scikit-learn trains on a NaN loss (its loss_curve_ is all NaN)."""
    X, y = data("reg")
    with pytest.raises(ValueError, match="'exp' output activation"):
        FNNRegressor("poisson", out_activation="logistic").fit(X, np.abs(y))
    with pytest.raises(ValueError, match="non-negative targets.*squared_error"):
        FNNRegressor("poisson", HIDDEN).fit(X, y)  # loss first, as MLPRegressor
    sk = quiet(MLPRegressor("poisson", HIDDEN, max_iter=3, random_state=0).fit, X, y)
    assert np.isnan(sk.loss_)


# ---- partial_fit availability, early stopping ---------------------------------------------


@pytest.mark.parametrize("cls", [FNNRegressor, FNNClassifier])
def test_partial_fit_not_available_for_lbfgs(cls):
    """Both fastfnn estimators hide partial_fit for lbfgs (AttributeError, like
    MLPClassifier). MLPRegressor exposes it by a bug and silently runs a full L-BFGS fit."""
    est = cls(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as err:
        est.partial_fit
    assert "solver='sgd' or 'adam' or 'adamw'" in str(err.value.__cause__)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")  # scikit-learn's bug
    assert hasattr(cls(solver="sgd"), "partial_fit") and hasattr(cls(), "partial_fit")


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_partial_fit_with_early_stopping(kind):
    X, y = data(kind)
    ff, sk = both(kind, early_stopping=True)
    kwargs = {"classes": [0, 1, 2]} if kind == "clf" else {}
    err = raises_like_sklearn(ff, sk, "partial_fit", X, y, **kwargs)
    assert "partial_fit does not support early_stopping=True" in str(err)
    assert "set early_stopping=False" in str(err)
    assert not hasattr(ff, "coefs_")


def test_validation_set_too_small():
    X, y = data("reg", n=10)  # ceil(0.1 * 10) = 1 validation row
    ff, sk = both("reg", early_stopping=True, validation_fraction=0.1)
    err = raises_like_sklearn(ff, sk, "fit", X, y)
    assert "Increase 'validation_fraction'" in str(err)


# ---- warm start with another layout ---------------------------------------------------------


@pytest.mark.parametrize("change", ["features", "outputs"])
def test_warm_start_with_another_layout(change):
    """scikit-learn raises ValueError too (on features from validate_data, on outputs from a
    broadcast deep inside backprop); fastfnn says which sizes differ and what to keep."""
    X, y = data("multi")
    ff, sk = both("multi", warm_start=True)
    for est in (ff, sk):
        quiet(est.fit, X, y)
    args = (X[:, :3], y) if change == "features" else (X, np.c_[y, y[:, 0]])
    err = raises_like_sklearn(ff, sk, "fit", *args)
    assert type(err) is ValueError
    if change == "outputs":
        assert "must stay the same for warm_start and partial_fit" in str(err)


def test_warm_start_with_other_hidden_layer_sizes():
    """fastfnn raises ValueError; scikit-learn silently keeps training the old layout (its
    forward pass follows coefs_, not hidden_layer_sizes), so its model no longer matches its
    parameters."""
    X, y = data("multi")
    ff, sk = both("multi", warm_start=True)
    for est in (ff, sk):
        quiet(est.fit, X, y)
        est.set_params(hidden_layer_sizes=(6, 5))
    with pytest.raises(ValueError, match=r"layer sizes \[4, 6, 4, 2\] but this call needs "
                                         r"\[4, 6, 5, 2\]"):
        ff.fit(X, y)
    quiet(sk.fit, X, y)
    assert sk.coefs_[1].shape == (6, 4)


@pytest.mark.parametrize("change", [dict(loss="poisson"), dict(out_activation="tanh"),
                                    dict(loss="huber"), dict(loss="absolute_error")])
def test_warm_start_with_another_output(change):
    """The fitted output activation and loss cannot change under warm_start (scikit-learn
    keeps out_activation_ and trains it with the new loss's delta; another loss on the same
    output would leave loss_curve_, best_loss_ and tol comparing two losses' values)."""
    X, y = data("reg")
    ff = FNNRegressor(hidden_layer_sizes=HIDDEN, warm_start=True, max_iter=3)
    quiet(ff.fit, X, np.abs(y))
    before = snapshot(ff)
    ff.set_params(**change)
    with pytest.raises(ValueError, match="must stay the same for warm_start.*warm_start=False"):
        ff.fit(X, np.abs(y))
    ff.set_params(loss="squared_error", out_activation="identity")
    assert_same(snapshot(ff), before)


def test_predict_does_not_depend_on_the_current_loss_parameter():
    X, y = data("reg")
    ff = quiet(FNNRegressor(hidden_layer_sizes=HIDDEN, max_iter=3).fit, X, y)
    expected = ff.predict(X)
    ff.set_params(loss="poisson")
    np.testing.assert_array_equal(ff.predict(X), expected)


def test_partial_fit_with_another_layout():
    X, y = data("multi")
    ff = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd")
    ff.partial_fit(X, y)
    with pytest.raises(ValueError, match="layer sizes"):
        ff.partial_fit(X, y[:, 0])


# ---- divergence ---------------------------------------------------------------------------


def diverging_data(scale=1e6):
    X, y = data("reg", n=60)
    return X * scale, y * scale


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_diverging_fit_raises_like_sklearn(solver):
    # adam's steps are bounded by the learning rate: it needs far larger inputs to overflow
    X, y = diverging_data(1e6 if solver == "sgd" else 1e300)
    ff, sk = both("reg", solver=solver, learning_rate_init=1e6, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sklearn's overflow in matmul
        err = raises_like_sklearn(ff, sk, "fit", X, y)
    assert type(err) is ValueError and "non-finite parameter weights" in str(err)
    assert "learning_rate_init" in str(err)


def test_adam_step_with_overflowing_second_moment_matches_sklearn():
    """Where g*g overflows, the second moment is inf and the step 0, as in NumPy/scikit-learn
    (under fastmath 'reassoc' it used to be NaN, fixed in _kernels.py)."""
    X, y = diverging_data(1e150)
    ff, sk = both("reg", solver="adam", learning_rate_init=1.0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        quiet(sk.fit, X, y)
        assert all(np.isfinite(c).all() for c in sk.coefs_)
        quiet(ff.fit, X, y)
    for a, b in zip(ff.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_diverging_fit_with_early_stopping_raises_and_keeps_the_model():
    """scikit-learn restores the best (finite) weights and reports a NaN loss_ as if the fit
    had worked; fastfnn raises (the training loss diverged) and the fitted model stays."""
    X, y = diverging_data()
    ff, sk = both("reg", solver="sgd", learning_rate_init=1e3, max_iter=15,
                  early_stopping=True, n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        quiet(sk.fit, X, y)
    assert not np.isfinite(sk.loss_curve_).all()
    quiet(ff.set_params(learning_rate_init=1e-3, max_iter=2).fit, X, y)
    before = pickle.dumps(ff)
    ff.set_params(learning_rate_init=1e3, max_iter=15)
    with pytest.raises(ValueError, match="diverged"):
        quiet(ff.fit, X, y)
    ff.set_params(learning_rate_init=1e-3, max_iter=2)
    assert pickle.dumps(ff) == before


# ---- a failed fit leaves a fitted estimator exactly as it was ---------------------------------


def _fitted(kind, solver, **params):
    X, y = data(kind)
    est = both(kind, solver=solver, **params)[0]
    quiet(est.fit, X, y)
    if solver != "lbfgs":
        quiet(est.partial_fit, X, y)  # optimizer state with history
    return est, X, y


FAILURES = {
    "nan X": lambda est, X, y: est.fit(BAD_DATA["nan in X"](X, y)[0], y),
    "mismatched lengths": lambda est, X, y: est.fit(X[:-2], y),
    "bad sample_weight": lambda est, X, y: est.fit(X, y, sample_weight=np.ones(3)),
    "invalid parameter": lambda est, X, y: (est.set_params(alpha=-1), est.fit(X, y)),
    "hidden size 0": lambda est, X, y: (est.set_params(hidden_layer_sizes=(3, 0)),
                                        est.fit(X, y)),
    "warm start, features": lambda est, X, y: (est.set_params(warm_start=True),
                                               est.fit(X[:, :3], y)),
    "warm start, hidden": lambda est, X, y: (est.set_params(warm_start=True,
                                                            hidden_layer_sizes=(6,)),
                                             est.fit(X, y)),
    "diverging refit": lambda est, X, y: (
        est.set_params(solver="sgd", learning_rate_init=1e6, max_iter=20),
        est.fit(*_scaled(est, X, y))),
    "diverging warm refit": lambda est, X, y: (
        est.set_params(solver="sgd", learning_rate_init=1e6, max_iter=20, warm_start=True),
        est.fit(*_scaled(est, X, y))),
    "too small validation set": lambda est, X, y: (
        est.set_params(early_stopping=True, validation_fraction=0.01), est.fit(X, y)),
    "non-finite step, warm": lambda est, X, y: (
        est.set_params(solver="adam", warm_start=True), _with_a_nan_step(est.fit, X, y)),
}


def _scaled(est, X, y):
    return X * 1e6, (y * 1e6 if isinstance(est, FNNRegressor) else y)


PARTIAL_FIT_FAILURES = {
    "nan X": lambda est, X, y: est.partial_fit(BAD_DATA["nan in X"](X, y)[0], y),
    "features": lambda est, X, y: est.partial_fit(X[:, :3], y),
    "early stopping": lambda est, X, y: (est.set_params(early_stopping=True),
                                         est.partial_fit(X, y)),
    # partial_fit keeps its optimizer (and learning rate): diverge through the data
    "diverging data": lambda est, X, y: (
        est.set_params(batch_size=8),
        est.partial_fit(X * 1e200, y * 1e200 if isinstance(est, FNNRegressor) else y)),
    "non-finite step": lambda est, X, y: _with_a_nan_step(est.partial_fit, X, y),
}


def _with_a_nan_step(method, X, y):
    """Run ``method`` with a compiled step that leaves a NaN weight behind (any solver, any
    loss; adam on a classifier hardly diverges from data alone: bounded deltas and steps)."""
    original = Network.run_batches

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        self.theta[0] = np.nan
        return out

    with mock.patch.object(Network, "run_batches", poisoned):
        method(X, y)


def _check_unchanged_after(failure, est, X, y, random_state_instance=False):
    before = snapshot(est)
    predictions = est.predict(X)
    params = est.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises((ValueError, TypeError)):
            quiet(failure, est, X, y)
    est.set_params(**params)  # the failure may have changed a parameter on purpose
    assert_same(snapshot(est), before)
    np.testing.assert_array_equal(est.predict(X), predictions)


@pytest.mark.parametrize("solver, failure", [
    (solver, failure) for solver in ("sgd", "adam", "lbfgs") for failure in FAILURES
    if not (solver == "lbfgs" and failure == "too small validation set")  # no early stopping
])
@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_failed_fit_leaves_fitted_model_unchanged(kind, solver, failure):
    est, X, y = _fitted(kind, solver, early_stopping=False)
    _check_unchanged_after(FAILURES[failure], est, X, y)


@pytest.mark.parametrize("kind, solver, failure", [
    (kind, solver, failure) for kind in ("reg", "clf") for solver in ("sgd", "adam")
    for failure in PARTIAL_FIT_FAILURES
    if not (kind == "clf" and solver == "adam" and failure == "diverging data")
])
def test_failed_partial_fit_leaves_fitted_model_unchanged(kind, solver, failure):
    est, X, y = _fitted(kind, solver)
    _check_unchanged_after(PARTIAL_FIT_FAILURES[failure], est, X, y)


def test_failed_fit_with_early_stopping_history_unchanged():
    X, y = data("clf", n=90)
    est = FNNClassifier(HIDDEN, solver="sgd", early_stopping=True, random_state=0,
                        max_iter=8, learning_rate_init=0.1)  # (positional: no `loss` here)
    quiet(est.fit, X, y)
    assert est.validation_scores_ and est._best_coefs is not None
    for failure in ("nan X", "warm start, features", "warm start, hidden"):
        _check_unchanged_after(FAILURES[failure], est, X, y)


def test_failed_fit_leaves_unfitted_estimator_unfitted():
    X, y = diverging_data()
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", learning_rate_init=1e6,
                       max_iter=20)
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert not hasattr(est, "coefs_") and not hasattr(est, "n_features_in_")
    assert set(vars(est)) == set(est.get_params())


def test_failed_fit_does_not_advance_a_random_state_instance():
    X, y = diverging_data()
    rng = np.random.RandomState(7)
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", learning_rate_init=1e6,
                       max_iter=20, random_state=rng)
    state = rng.get_state()[1].copy()
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    np.testing.assert_array_equal(rng.get_state()[1], state)
    quiet(est.set_params(learning_rate_init=1e-3).fit, X / 1e6, y / 1e6)
    assert not np.array_equal(rng.get_state()[1], state)  # a successful fit does draw


# ---- KeyboardInterrupt ----------------------------------------------------------------------


def _interrupt_on_call(monkeypatch, cls, name, n):
    """Make ``cls.name`` raise KeyboardInterrupt on its n-th call (the first n-1 run)."""
    original = getattr(cls, name)
    calls = {"n": 0}

    def wrapper(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)
    return calls


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_keyboard_interrupt_keeps_the_last_good_weights(monkeypatch, kind, solver):
    """run_batches is called once per epoch on this small problem: interrupting the 3rd call
    leaves the weights of 2 whole epochs, exactly those of a fit with max_iter=2."""
    X, y = data(kind)
    ff = both(kind, solver=solver, max_iter=10, batch_size=16)[0]
    reference = quiet(both(kind, solver=solver, max_iter=2, batch_size=16)[0].fit, X, y)
    calls = _interrupt_on_call(monkeypatch, Network, "run_batches", 3)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        ff.fit(X, y)
    assert calls["n"] == 3
    assert ff.n_iter_ == 2 and len(ff.loss_curve_) == 2 and ff.t_ == 2 * len(y)
    for a, b in zip(ff.coefs_ + ff.intercepts_, reference.coefs_ + reference.intercepts_):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
    assert ff.loss_curve_ == reference.loss_curve_
    assert np.all(np.isfinite(ff.predict(X)))


def test_keyboard_interrupt_with_early_stopping_restores_the_best(monkeypatch):
    X, y = data("reg", n=100)
    ff = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="sgd", early_stopping=True,
                      random_state=0, learning_rate_init=0.05, max_iter=10)
    _interrupt_on_call(monkeypatch, Network, "run_batches", 5)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        ff.fit(X, y)
    assert len(ff.validation_scores_) == ff.n_iter_ == 4
    assert ff.best_validation_score_ == max(ff.validation_scores_)


def test_keyboard_interrupt_in_lbfgs_keeps_the_last_iterate(monkeypatch):
    """fastfnn keeps the last accepted L-BFGS iterate (scikit-learn lets the interrupt
    propagate, leaving half-updated coefs_)."""
    X, y = data("reg")
    ff = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="lbfgs", random_state=0, max_iter=50)
    calls = _interrupt_on_call(monkeypatch, Network, "loss_grad_data", 12)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        ff.fit(X, y)
    assert calls["n"] == 12
    assert 0 < ff.n_iter_ < 11
    monkeypatch.undo()
    reference = quiet(FNNRegressor(hidden_layer_sizes=HIDDEN, solver="lbfgs", random_state=0,
                                   max_iter=ff.n_iter_).fit, X, y)
    for a, b in zip(ff.coefs_, reference.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert ff.loss_ == pytest.approx(reference.loss_, rel=1e-12)


def test_keyboard_interrupt_before_the_first_epoch_keeps_the_initial_weights(monkeypatch):
    X, y = data("reg")
    ff = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="adam", random_state=0)
    _interrupt_on_call(monkeypatch, Network, "run_batches", 1)
    with pytest.warns(UserWarning, match="interrupted"):
        ff.fit(X, y)
    assert ff.n_iter_ == 0 and ff.loss_curve_ == [] and ff.loss_ is None
    initial = quiet(MLPRegressor(hidden_layer_sizes=HIDDEN, random_state=0, max_iter=1).fit,
                    X, y)._best_coefs  # scikit-learn's initial weights (no early stopping)
    np.testing.assert_array_equal(ff.coefs_[0], initial[0])


def test_pickled_after_failure_still_works():
    est, X, y = _fitted("clf", "adam")
    with pytest.raises(ValueError):
        est.partial_fit(X[:, :3], y)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))


def test_sparse_nan_and_label_binarizer_untouched():
    """Sparse X with NaN is refused too; a classifier's label binarizer survives a failure."""
    X, y = data("clf")
    est = quiet(FNNClassifier(HIDDEN, random_state=0, max_iter=3).fit, X, y)
    lb = est._label_binarizer
    assert isinstance(lb, LabelBinarizer)
    X_bad = sp.csr_matrix(BAD_DATA["nan in X"](X, y)[0])
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X_bad, np.array(["a", "b", "c"])[y])
    assert est._label_binarizer is lb
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
