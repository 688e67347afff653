"""Reliability guarantees on known hard cases: a diverging fit raises and leaves the model as it
was; zero sample weights; an interrupt during the validation pass; check_gradients on arrays that
disagree with the network; hidden layer sizes that are not positive integers; a model too large
for memory; malformed sparse matrices.

Malformed sparse matrices (an index far out of range) are tried in a child process: a wild
write there would crash the test run.

"Left as it was" is checked on the bytes: ``pickle.dumps(est)`` before and after the failed call.
"""

import pickle
import re
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import fastfnn.trainer
from fastfnn import FNNClassifier, FNNRegressor, check_gradients
from fastfnn.network import available_memory


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def regression(n=200, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    return X, X[:, 0] - 2 * X[:, 1] + 0.1 * rng.randn(n)


def fails_unchanged(est, call, error=ValueError, match=None):
    """``call(est)`` raises ``error`` and leaves ``est``'s pickled bytes as they were."""
    before = pickle.dumps(est)
    with pytest.raises(error, match=match) as err:
        quiet(call, est)
    assert pickle.dumps(est) == before
    return err.value


# ---- divergence -----------------------------------------------------------------------------


def test_early_stopping_sgd_with_a_huge_learning_rate_raises_and_keeps_the_model():
    X, y = regression()
    X = StandardScaler().fit_transform(X)
    est = quiet(FNNRegressor(hidden_layer_sizes=(8,), solver="sgd", early_stopping=True,
                             max_iter=20, random_state=0).fit, X, y)
    assert all(np.isfinite(W).all() for W in est.coefs_)
    est.set_params(learning_rate_init=1e3)
    err = fails_unchanged(est, lambda e: e.fit(X, 1e6 * y), match="diverged|non-finite")
    assert "learning_rate_init" in str(err)


def test_early_stopping_divergence_on_an_unfitted_estimator_leaves_it_unfitted():
    X, y = regression()
    X = StandardScaler().fit_transform(X)
    est = FNNRegressor(hidden_layer_sizes=(8,), solver="sgd", early_stopping=True,
                       learning_rate_init=1e3, random_state=0)
    fails_unchanged(est, lambda e: e.fit(X, 1e6 * y))
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_poisson_lbfgs_on_a_huge_input_raises_and_keeps_the_model(seed):
    # seeds 0-2: L-BFGS's first trial step overflows (loss inf) and SciPy stops at the start,
    # calling it converged; seed 3: the trial step's loss is NaN
    rng = np.random.RandomState(0)
    X = rng.rand(50, 1)
    est = quiet(FNNRegressor(loss="poisson", solver="lbfgs", hidden_layer_sizes=(4,),
                             random_state=seed).fit, X, rng.poisson(np.exp(X[:, 0])))
    assert all(np.isfinite(W).all() for W in est.coefs_)
    est.set_params(hidden_layer_sizes=(100,))  # the default: FNNRegressor(loss=..., solver=...)
    fails_unchanged(est, lambda e: e.fit([[1000.0]], [1.0]), match="diverged|non-finite")


# ---- zero sample weights --------------------------------------------------------------------


@pytest.mark.parametrize("solver, params", [
    ("sgd", {}),  # momentum 0.9, Nesterov
    ("sgd", {"momentum": 0.0}),
    ("adam", {}),
])
def test_batches_of_zero_weight_make_no_update(solver, params):
    rng = np.random.RandomState(0)
    X, y = rng.randn(20, 3), rng.randn(20)
    sw = np.r_[np.zeros(10), np.ones(10)]
    kw = dict(hidden_layer_sizes=(4,), solver=solver, batch_size=5, shuffle=False, max_iter=3,
              random_state=0, **params)
    weighted = quiet(FNNRegressor(**kw).fit, X, y, sample_weight=sw)
    last_rows = quiet(FNNRegressor(**kw).fit, X[10:], y[10:])
    assert np.isfinite(weighted.loss_)
    for a, b in zip(weighted.coefs_ + weighted.intercepts_,
                    last_rows.coefs_ + last_rows.intercepts_):
        assert np.isfinite(a).all()
        assert np.array_equal(a, b)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("make", [FNNRegressor, FNNClassifier])
def test_all_zero_sample_weights_raise_and_keep_the_model(solver, make):
    rng = np.random.RandomState(0)
    X, y = rng.randn(20, 3), np.arange(20) % 2
    est = quiet(make(hidden_layer_sizes=(4,), solver=solver, max_iter=3, random_state=0).fit,
                X, y)
    err = fails_unchanged(est, lambda e: e.fit(X, y, sample_weight=np.zeros(20)))
    assert "weight" in str(err)
    if solver != "lbfgs":
        fails_unchanged(est, lambda e: e.partial_fit(X, y, sample_weight=np.zeros(20)))


# ---- an interrupt in the validation pass ----------------------------------------------------


def test_interrupt_in_the_validation_pass_keeps_the_histories_aligned(monkeypatch):
    X, y = regression()
    params = dict(hidden_layer_sizes=(6,), early_stopping=True, max_iter=10, random_state=0,
                  n_iter_no_change=100)
    full = quiet(FNNRegressor(**params).fit, X, y)
    evaluate = fastfnn.trainer._Validation.evaluate
    calls = []

    def interrupted(self, net):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(self, net)

    monkeypatch.setattr(fastfnn.trainer._Validation, "evaluate", interrupted)
    with pytest.warns(UserWarning, match="Training interrupted"):
        est = FNNRegressor(**params).fit(X, y)
    assert len(calls) == 3
    n = len(est.loss_curve_)
    assert n == 2 == est.n_iter_
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == n
    assert np.shape(est.gradient_norms_) == (n, 2)
    # the two epochs recorded are those of the uninterrupted fit
    assert est.loss_curve_ == full.loss_curve_[:n]
    assert est.validation_scores_ == full.validation_scores_[:n]
    assert est.validation_loss_curve_ == full.validation_loss_curve_[:n]
    assert np.array_equal(est.gradient_norms_, np.asarray(full.gradient_norms_)[:n])
    assert all(np.isfinite(W).all() for W in est.coefs_)


# ---- check_gradients on arrays that disagree with the network -------------------------------


@pytest.fixture(scope="module")
def fitted():
    X, y = regression(n=30, n_features=4)
    return quiet(FNNRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit, X, y)


def pair(seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(4, 3), rng.randn(3, 1)], [rng.randn(3), rng.randn(1)]


def test_check_gradients_estimator_with_y_of_eight_columns(fitted):
    rng = np.random.RandomState(1)
    fails_unchanged(fitted, lambda e: check_gradients(e, rng.randn(30, 4), rng.randn(30, 8)),
                    match="column|output|shape")


def test_check_gradients_pair_with_too_few_columns():
    rng = np.random.RandomState(1)
    with pytest.raises(ValueError, match="features"):
        check_gradients(pair(), rng.randn(10, 2), rng.randn(10))


@pytest.mark.parametrize("form", ["pair", "estimator"])
def test_check_gradients_with_y_of_shape_1000_by_500(form, fitted):
    rng = np.random.RandomState(1)
    X, y = rng.randn(1000, 4), rng.randn(1000, 500)
    if form == "pair":
        with pytest.raises(ValueError, match="shape|column"):
            check_gradients(pair(), X, y)
    else:
        fails_unchanged(fitted, lambda e: check_gradients(e, X, y))


@pytest.mark.parametrize("form", ["pair", "estimator"])
def test_check_gradients_with_one_sample_weight_for_1000_rows(form, fitted):
    rng = np.random.RandomState(1)
    X, y = rng.randn(1000, 4), rng.randn(1000)
    if form == "pair":
        with pytest.raises(ValueError, match="sample_weight|shape"):
            check_gradients(pair(), X, y, sample_weight=[1.0])
    else:
        fails_unchanged(fitted, lambda e: check_gradients(e, X, y, sample_weight=[1.0]))


@pytest.mark.parametrize("form", ["pair", "estimator"])
@pytest.mark.parametrize("weights", [np.r_[np.ones(10), -np.ones(10)], -np.ones(20)],
                         ids=["sum 0", "negative"])
def test_check_gradients_refuses_weights_fit_refuses(form, weights, fitted):
    """Weights that sum to 0 or less define no loss: the error fit gives, not a check of
    an undefined loss (or a pass)."""
    rng = np.random.RandomState(1)
    X, y = rng.randn(20, 4), rng.randn(20)
    with pytest.raises(ValueError, match=r"weights \(sample_weight\) sum to"):
        clone(fitted).fit(X, y, sample_weight=weights)
    with pytest.raises(ValueError, match=r"weights \(sample_weight\) sum to"):
        check_gradients(pair() if form == "pair" else fitted, X, y, sample_weight=weights)



def test_class_weights_that_sum_to_zero_are_named():
    """Where class_weight makes the weights sum to 0 the message names it (the
    sample_weight passed alone has a positive sum) and the fitted model stays."""
    rng = np.random.RandomState(1)
    X, y = rng.randn(20, 4), np.arange(20) % 2
    clf = FNNClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    before = clf.coefs_[0].copy()
    with pytest.raises(ValueError, match=r"\(sample_weight times class_weight\) sum to 0\.0"):
        clf.set_params(class_weight={0: 0.0, 1: 0.0}).fit(X, y, sample_weight=np.ones(20))
    with pytest.raises(ValueError, match=r"\(sample_weight\) sum to inf"):  # overflows
        clf.set_params(class_weight=None).fit(X, y, sample_weight=np.full(20, 1e308))
    np.testing.assert_array_equal(clf.coefs_[0], before)

def test_check_gradients_names_an_unknown_loss():
    rng = np.random.RandomState(1)
    with pytest.raises(ValueError, match="Unknown loss 'squared_eror'"):
        check_gradients(pair(), rng.randn(10, 4), rng.randn(10), loss="squared_eror")


def test_check_gradients_on_good_arrays_still_works(fitted):
    # the positive control of the cases above: the same shapes, agreeing
    rng = np.random.RandomState(1)
    assert check_gradients(pair(), rng.randn(20, 4), rng.randn(20)) < 1e-5
    assert check_gradients(fitted, rng.randn(20, 4), rng.randn(20),
                           sample_weight=rng.rand(20)) < 1e-5


# ---- hidden layer sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [FNNRegressor, FNNClassifier])
@pytest.mark.parametrize("sizes", [[0.5], [2.9], True, (5, 0), [np.True_], (4, -1)])
def test_hidden_layer_sizes_that_are_not_positive_integers(make, sizes):
    X, y = np.random.RandomState(0).randn(12, 2), np.arange(12) % 2
    est = make(hidden_layer_sizes=sizes, max_iter=2)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        quiet(est.fit, X, y)
    assert not hasattr(est, "coefs_")


@pytest.mark.parametrize("sizes", [[3], (np.int64(3), 2), np.array([3, 2]), 4, ()])
def test_hidden_layer_sizes_of_integers_are_taken(sizes):
    X, y = np.random.RandomState(0).randn(12, 2), np.arange(12.0)
    est = quiet(FNNRegressor(hidden_layer_sizes=sizes, max_iter=2, random_state=0).fit, X, y)
    expected = [2] + [int(s) for s in np.atleast_1d(sizes)] + [1]
    assert [W.shape[0] for W in est.coefs_] + [est.coefs_[-1].shape[1]] == expected


# ---- a model too large for memory -----------------------------------------------------------

HUGE = (100_000, 100_000)


@pytest.mark.parametrize("solver, dtype", [("adam", np.float64), ("sgd", np.float32),
                                           ("lbfgs", np.float64)])
def test_a_model_too_large_for_memory_raises_before_allocating(solver, dtype):
    X, y = regression(n=50, n_features=2)
    X, y = X.astype(dtype), y.astype(dtype)
    n_params = 2 * HUGE[0] + HUGE[0] * HUGE[1] + HUGE[1] + sum(HUGE) + 1
    parameters_gib = n_params * np.dtype(dtype).itemsize / 2**30  # the weights alone
    have = available_memory()
    if have is None or have > 4 * n_params * np.dtype(dtype).itemsize:
        pytest.skip("this machine has the memory for the model")
    est = quiet(FNNRegressor(hidden_layer_sizes=(3,), solver=solver, random_state=0,
                             max_iter=2).fit, X, y)
    est.set_params(hidden_layer_sizes=HUGE)
    tracemalloc.start()
    try:
        err = fails_unchanged(est, lambda e: e.fit(X, y), error=MemoryError)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the MemoryError"
    needed = re.search(r"([0-9.]+) GiB", str(err))
    assert needed, str(err)
    assert float(needed.group(1)) >= parameters_gib


# ---- malformed sparse matrices --------------------------------------------------------------

MALFORMED = """
import sys, warnings
import numpy as np, scipy.sparse as sp
from fastfnn import FNNRegressor, check_gradients
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X, y = rng.randn(20, 3), rng.randn(20)
est = FNNRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)


def malformed():
    M = getattr(sp, sys.argv[1] + "_matrix")(X)
    M.indices[5] = 10**9  # a column (CSR) or row (CSC) index far out of range
    return M


calls = {
    "fit adam": lambda: FNNRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(malformed(), y),
    "fit sgd": lambda: FNNRegressor(hidden_layer_sizes=(4,), solver="sgd").fit(malformed(), y),
    "fit lbfgs": lambda: FNNRegressor(hidden_layer_sizes=(4,), solver="lbfgs").fit(malformed(), y),
    "partial_fit": lambda: est.partial_fit(malformed(), y),
    "predict": lambda: est.predict(malformed()),
    "score": lambda: est.score(malformed(), y),
    "check_gradients": lambda: check_gradients(est, malformed(), y),
    "check_gradients pair": lambda: check_gradients((est.coefs_, est.intercepts_), malformed(), y),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error", flush=True)
    except Exception as err:
        print(name, type(err).__name__, err, flush=True)
"""


@pytest.mark.parametrize("fmt", [
    "csr",
    "csc",
])
def test_malformed_sparse_matrices_raise_a_clear_error(fmt):
    child = subprocess.run([sys.executable, "-c", MALFORMED, fmt], capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, f"crashed ({child.returncode}) after:\n{child.stdout}"
    lines = child.stdout.splitlines()
    assert len(lines) == 8
    for line in lines:
        assert "ValueError" in line and "indices" in line, line
