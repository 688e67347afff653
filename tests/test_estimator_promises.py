"""Promises of the estimators that span calls: fits of one shared estimator from several threads,
predict after ``set_params``, and ``check_gradients`` on a fitted model.

Oracles: a solo fit with the same parameters (for the fitted attributes of concurrent fits),
the predictions of the model before and after a refit (for what readers may see while a fit
runs), scikit-learn's MLPRegressor holding the same weights (for predict's use of the
``activation`` parameter), and central finite differences of the huber / absolute-error loss
written out in NumPy (for the loss ``check_gradients`` checks).
"""

import copy
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.neural_network import MLPRegressor

import fastfnn
import fastfnn._base
from fastfnn import FNNClassifier, FNNRegressor, check_gradients
from fastfnn.gradcheck import gradients

N_FEATURES = 5
# the short fits do not converge; warnings.catch_warnings is not thread-safe, so filter here
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(n=120, seed=0, shift=0.0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, N_FEATURES)
    y = X[:, 0] - 2 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + shift
    return X, y


def small_regressor(**params):
    params = {"hidden_layer_sizes": (8, 4), "max_iter": 3, "tol": 0.0, "random_state": 0,
              "solver": "sgd", "learning_rate_init": 0.01, **params}
    return FNNRegressor(**params)


def assert_consistent(est, n_iter, n_epochs):
    """The fitted histories describe the same epochs as ``n_iter_`` says."""
    assert est.n_iter_ == n_iter
    assert len(est.loss_curve_) == n_epochs
    assert est.gradient_norms_.shape == (n_epochs, len(est.coefs_))
    assert est.loss_ == est.loss_curve_[-1]


def assert_same_model(est, reference):
    for a, b in zip(est.coefs_ + est.intercepts_, reference.coefs_ + reference.intercepts_):
        assert np.array_equal(a, b)
    assert est.loss_curve_ == reference.loss_curve_
    assert np.array_equal(est.gradient_norms_, reference.gradient_norms_)
    assert est.t_ == reference.t_


# ---- one estimator, fitted from several threads ---------------------------------------------


def _in_threads(call, n_calls, n_threads=4):
    """``call()`` n_calls times from n_threads threads, started together."""
    barrier = threading.Barrier(n_threads)

    def run(i):
        if i < n_threads:
            barrier.wait()
        call()

    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(run, range(n_calls)))


@pytest.mark.parametrize("rounds", range(3))
def test_fits_of_one_estimator_from_four_threads_leave_the_model_of_one_fit(rounds):
    X, y = data(n=2000)  # fits long enough to overlap
    est = small_regressor()
    _in_threads(lambda: est.fit(X, y), 8)
    reference = small_regressor().fit(X, y)
    assert_consistent(est, 3, 3)
    assert_same_model(est, reference)


@pytest.mark.parametrize("rounds", range(3))
def test_partial_fits_of_one_estimator_from_four_threads_are_applied_one_after_another(rounds):
    X, y = data(n=2000)
    est = small_regressor()
    _in_threads(lambda: est.partial_fit(X, y), 8)
    reference = small_regressor()
    for _ in range(8):
        reference.partial_fit(X, y)
    assert_consistent(est, 1, 8)
    assert_same_model(est, reference)


@pytest.fixture
def held_fit(monkeypatch):
    """Holds every stochastic training in ``fastfnn._base`` until ``release`` is set;
    ``entered`` counts the trainings that began, ``started`` is set by the first."""
    started, release, entered = threading.Event(), threading.Event(), []
    train = fastfnn._base.fit_stochastic

    def held(*args, **kwargs):
        entered.append(1)
        started.set()
        assert release.wait(60)
        return train(*args, **kwargs)

    monkeypatch.setattr(fastfnn._base, "fit_stochastic", held)
    yield started, release, entered
    release.set()


def test_a_fit_in_progress_holds_other_fits_but_not_predictions(held_fit):
    started, release, entered = held_fit
    XA, yA = data(seed=0)
    XB, yB = data(seed=1, shift=3.0)
    release.set()
    est = small_regressor().fit(XA, yA)
    expected_b = small_regressor().fit(XB, yB)
    release.clear()
    entered.clear()
    started.clear()
    rows = {n: np.random.RandomState(n).randn(n, N_FEATURES) for n in (3, 300)}
    before = {n: est.predict(x) for n, x in rows.items()}
    with ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(est.fit, XB, yB)
            assert started.wait(60)
            second = pool.submit(est.fit, XB, yB)
            # while the first fit trains, predictions see the model as it was, in full ...
            for n, x in rows.items():
                assert np.array_equal(est.predict(x), before[n])
            assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
            time.sleep(0.3)
            # ... and the second fit waits for the first to end before it starts training
            assert len(entered) == 1 and not second.done()
        finally:
            release.set()
        first.result(), second.result()
    assert len(entered) == 2
    assert_consistent(est, 3, 3)
    assert_same_model(est, expected_b)


def test_predictions_during_refits_are_those_of_one_published_model():
    """Readers predict while one thread refits a classifier alternately on 2 and on 3 classes:
    every result is the whole of one fitted model's (never a mix, never initial weights)."""
    rng = np.random.RandomState(0)
    X = rng.randn(150, N_FEATURES)
    y2 = (X[:, 0] > 0).astype(int)
    y3 = y2 + (X[:, 1] > 0.5)
    params = dict(hidden_layer_sizes=(6,), max_iter=20, tol=0.0, random_state=0)
    models = [FNNClassifier(**params).fit(X, y) for y in (y2, y3)]
    queries = [X[:3], X]
    expected = [[m.predict_proba(q) for m in models] for q in queries]
    est = FNNClassifier(**params).fit(X, y2)
    stop, seen, bad = threading.Event(), [], []

    def read():
        while not stop.is_set():
            for q, options in zip(queries, expected):
                try:
                    p = est.predict_proba(q)
                except Exception as exc:  # a half-published model may not even run
                    bad.append(repr(exc))
                    continue
                if not any(p.shape == o.shape and np.array_equal(p, o) for o in options):
                    bad.append(p.shape)
                seen.append(1)

    with ThreadPoolExecutor(2) as pool:
        readers = [pool.submit(read) for _ in range(2)]
        try:
            for i in range(12):
                est.fit(X, (y3, y2)[i % 2])
        finally:
            stop.set()
        for r in readers:
            r.result()
    assert seen and not bad, bad[:5]


def test_the_fit_lock_leaves_copies_pickles_clones_and_parameters_alone(tmp_path):
    X, y = data()
    est = small_regressor().fit(X, y)
    _in_threads(lambda: est.fit(X, y), 4)
    assert "_fit_lock" not in vars(est) and not any(
        isinstance(v, type(threading.RLock())) for v in vars(est).values())
    for other in (copy.deepcopy(est), pickle.loads(pickle.dumps(est))):
        assert_same_model(other, est)
        _in_threads(lambda: other.partial_fit(X, y), 4)  # its own lock, not est's
        assert_consistent(other, 1, 3 + 4)
    assert clone(est).get_params() == est.get_params()
    assert set(est.get_params()) == set(FNNRegressor().get_params())
    fastfnn.save_model(est, tmp_path / "model.skops")
    loaded = fastfnn.load_model(tmp_path / "model.skops")
    assert_same_model(loaded, est)
    _in_threads(lambda: loaded.partial_fit(X, y), 4)
    assert_consistent(loaded, 1, 3 + 4)


# ---- predict after set_params -----------------------------------------------------------------

ROWS = (1, 2, 3, 300, 3000)


@pytest.fixture(scope="module")
def fitted_pair():
    X, y = data(n=200)
    reg = FNNRegressor(hidden_layer_sizes=(7,), max_iter=30, random_state=0).fit(X, y)
    clf = FNNClassifier(hidden_layer_sizes=(7,), max_iter=30, random_state=0).fit(
        X, (y > 0).astype(int) + (y > 2))
    return reg, clf


@pytest.mark.parametrize("value", ["softmax", "exp", "bogus"])
def test_an_invalid_activation_set_after_fitting_fails_alike_for_any_row_count(fitted_pair,
                                                                                value):
    messages = set()
    for est in fitted_pair:
        est = copy.deepcopy(est)
        est.set_params(activation=value)
        methods = [est.predict] + ([est.predict_proba] if hasattr(est, "classes_") else [])
        for method in methods:
            for n in ROWS:
                X = np.random.RandomState(n).randn(n, N_FEATURES)
                with pytest.raises(ValueError, match="'activation' parameter") as info:
                    method(X)
                messages.add(str(info.value).replace(type(est).__name__, "<estimator>"))
    assert len(messages) == 1, messages
    assert repr(value) in messages.pop()


def _sklearn_twin(est, activation):
    """scikit-learn's MLPRegressor holding ``est``'s fitted weights and ``activation``."""
    twin = MLPRegressor(hidden_layer_sizes=est.hidden_layer_sizes, activation=activation)
    for name in ("coefs_", "intercepts_", "n_layers_", "n_outputs_", "out_activation_",
                 "n_features_in_"):
        setattr(twin, name, copy.deepcopy(getattr(est, name)))
    return twin


@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
def test_a_valid_activation_set_after_fitting_is_used_by_every_path_as_scikit_learn(
        fitted_pair, activation):
    est = copy.deepcopy(fitted_pair[0]).set_params(activation=activation)
    twin = _sklearn_twin(est, activation)
    for n in ROWS:
        X = np.random.RandomState(n).randn(n, N_FEATURES)
        np.testing.assert_allclose(est.predict(X), twin.predict(X), rtol=1e-10, atol=1e-12)


# ---- check_gradients on a fitted model --------------------------------------------------------


def _np_loss(coefs, intercepts, X, Y, alpha, loss, activation):
    """The full-batch loss, written out in NumPy: mean over samples of the loss summed over
    outputs, plus alpha/2 ||W||^2 / n."""
    A = X
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        A = A @ W + b
        if i < len(coefs) - 1:
            A = np.tanh(A) if activation == "tanh" else np.maximum(A, 0)
    R = np.abs(A - Y)
    per_output = {"huber": np.where(R <= 1, 0.5 * R * R, R - 0.5), "absolute_error": R,
                  "squared_error": 0.5 * R * R}[loss]
    l2 = 0.5 * alpha * sum((W * W).sum() for W in coefs) / len(X)
    return per_output.sum(axis=1).mean() + l2


def _np_finite_differences(coefs, intercepts, X, Y, alpha, loss, activation, eps):
    """Central differences of :func:`_np_loss` for every weight and bias, as two lists."""
    coefs = [W.copy() for W in coefs]
    intercepts = [b.copy() for b in intercepts]
    grads = []
    for block in coefs + intercepts:
        g = np.empty_like(block)
        for idx in np.ndindex(block.shape):
            v = block[idx]
            block[idx] = v + eps
            plus = _np_loss(coefs, intercepts, X, Y, alpha, loss, activation)
            block[idx] = v - eps
            minus = _np_loss(coefs, intercepts, X, Y, alpha, loss, activation)
            block[idx] = v
            g[idx] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads[:len(coefs)], grads[len(coefs):]


@pytest.mark.parametrize("loss", ["huber", "absolute_error"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_check_gradients_of_a_fitted_model_checks_the_loss_it_was_fitted_with(loss,
                                                                                activation):
    X, y = data(n=60, seed=3)
    y = 4 * y  # residuals well beyond huber's delta of 1: huber != squared error here
    est = FNNRegressor(loss, hidden_layer_sizes=(5,), activation=activation, alpha=0.1,
                       max_iter=5, random_state=0).fit(X, y)
    Xc, yc = X[:30], y[:30]
    want_W, want_b = _np_finite_differences(est.coefs_, est.intercepts_, Xc, yc[:, None],
                                            est.alpha, loss, activation, 1e-6)
    net, Xn, Y, sw, settings = est._gradient_problem(Xc, yc)
    analytic, numeric = gradients(net, Xn, Y, sw, settings.l2, eps=1e-6)
    for got in (numeric, analytic):
        for g, w in zip(net.coefs(got) + net.intercepts(got), want_W + want_b):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    assert check_gradients(est, Xc, yc) < 1e-6


@pytest.mark.parametrize("eps", [1e-320, 5e-324, 1e-15, 0.0, -1e-6, np.nan, np.inf, True,
                                 "1e-6", None])
def test_check_gradients_refuses_a_step_the_differences_cannot_resolve(fitted_pair, eps):
    X, y = data(n=20)
    with pytest.raises((ValueError, TypeError), match="eps"):
        check_gradients(fitted_pair[0], X, y, eps)


def test_check_gradients_accepts_steps_from_its_floor_up():
    X, y = data(n=20)
    est = FNNRegressor(hidden_layer_sizes=(4,), activation="tanh", max_iter=5,
                       random_state=0).fit(X, y)
    assert check_gradients(est, X, y, 1e-4) < 1e-6
    assert check_gradients(est, X, y, np.float32(1e-3)) < 1e-4
    assert 0 <= check_gradients(est, X, y, 2e-12) < 0.1


def test_check_gradients_refuses_saturated_outputs_instead_of_reporting_an_error(fitted_pair):
    clf = copy.deepcopy(fitted_pair[1])
    X, _ = data(n=20, seed=5)
    clf.coefs_[-1] *= 1e4
    clf.intercepts_[-1] *= 1e4
    wrong = np.roll(clf.predict(X), 1)  # labels the saturated model is certain against
    with pytest.raises(ValueError, match="saturated"):
        check_gradients(clf, X, wrong)


def test_check_gradients_refuses_a_loss_no_step_of_eps_moves():
    """Targets offset by 1e6: the loss (~5e11) rounds away every change a step of 2e-12 makes
    (about 2e-12 * 1e6 against 4 ulps of 5e11, 4e-4), though the gradient is far from 0."""
    rng = np.random.RandomState(0)
    coefs = [rng.randn(3, 4), rng.randn(4, 1)]
    intercepts = [rng.randn(4), rng.randn(1)]
    X = rng.randn(10, 3)
    y = rng.randn(10) + 1e6
    with pytest.raises(ValueError, match="cannot resolve"):
        check_gradients((coefs, intercepts), X, y, 2e-12, activation="tanh")
    assert check_gradients((coefs, intercepts), X, y, 1e-4, activation="tanh") < 1e-4


@pytest.mark.parametrize("which", ["regressor", "classifier"])
def test_check_gradients_names_a_target_count_that_does_not_match_x(fitted_pair, which):
    est = fitted_pair[which == "classifier"]
    X, y = data(n=50)
    labels = est.predict(X)
    with pytest.raises(ValueError, match=r"y has 10 rows but X has 50"):
        check_gradients(est, X, labels[:10])
    with pytest.raises(ValueError, match="y has 2 rows but X has 3"):
        check_gradients(est, X[:3], labels[:2])


def test_check_gradients_names_targets_of_the_wrong_width_or_class(fitted_pair):
    reg, clf = fitted_pair
    X, y = data(n=50)
    with pytest.raises(ValueError, match="output"):
        check_gradients(reg, X, np.c_[y, y])
    with pytest.raises(ValueError, match="classes_"):
        check_gradients(clf, X, np.full(50, 7))


def test_check_gradients_checks_the_fitted_loss_after_the_parameter_changes(tmp_path):
    """Losses that share an output (identity: squared error, huber, absolute error) cannot be
    told apart from it: the fit records its loss, which set_params and a model file keep."""
    X, y = data(n=60, seed=3)
    y = 4 * y
    est = FNNRegressor(hidden_layer_sizes=(5,), activation="tanh", alpha=0.1, max_iter=5,
                       random_state=0).fit(X, y)
    est.set_params(loss="huber")
    fastfnn.save_model(est, tmp_path / "m.skops")
    for model in (est, fastfnn.load_model(tmp_path / "m.skops")):
        Xc, yc = X[:30], y[:30]
        want_W, want_b = _np_finite_differences(model.coefs_, model.intercepts_, Xc,
                                                yc[:, None], model.alpha, "squared_error",
                                                "tanh", 1e-6)
        net, Xn, Y, sw, settings = model._gradient_problem(Xc, yc)
        analytic, _ = gradients(net, Xn, Y, sw, settings.l2, eps=1e-6)
        for g, w in zip(net.coefs(analytic) + net.intercepts(analytic), want_W + want_b):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
