"""Prediction's direct path (plain float ndarrays of the model's dtype, any number of rows, in
chunks of DIRECT_ROWS, on one thread or several) against the general path and scikit-learn:
the same results, the same errors and warnings, and no buffers shared between threads."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastfnn import FNNClassifier, FNNRegressor
from fastfnn.network import DIRECT_ROWS, forward_direct

PARAMS = dict(hidden_layer_sizes=(16, 8), max_iter=3, random_state=0)


def fitted(cls, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**{**PARAMS, **params}).fit(X, y)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 6)
    return X, np.tanh(X[:, 0] - X[:, 1]), (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("rows", [1, 7, DIRECT_ROWS, DIRECT_ROWS + 1, 9 * DIRECT_ROWS + 5])
def test_regressor_predictions_equal_scikit_learns(data, activation, rows):
    X, y, _ = data
    ours = fitted(FNNRegressor, X, y, activation=activation)
    theirs = fitted(MLPRegressor, X, y, activation=activation)
    Xq = np.random.RandomState(rows).randn(rows, X.shape[1])
    np.testing.assert_allclose(ours.predict(Xq), theirs.predict(Xq), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 5, 100])
def test_classifier_predictions_equal_scikit_learns(data, rows):
    X, _, labels = data
    ours, theirs = fitted(FNNClassifier, X, labels), fitted(MLPClassifier, X, labels)
    Xq = X[:rows]
    np.testing.assert_allclose(ours.predict_proba(Xq), theirs.predict_proba(Xq), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_array_equal(ours.predict(Xq), theirs.predict(Xq))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [50, 3 * DIRECT_ROWS + 7])
def test_the_direct_path_gives_the_bits_of_the_general_path(data, dtype, rows):
    X, y, _ = data
    est = fitted(FNNRegressor, X.astype(dtype), y.astype(dtype), hidden_layer_sizes=(40, 9))
    Xq = np.random.RandomState(rows).randn(rows, X.shape[1]).astype(dtype)
    direct = est.predict(Xq)
    general = est.predict(Xq.tolist() if dtype == np.float64 else pd.DataFrame(Xq))
    assert direct.dtype == general.dtype
    np.testing.assert_array_equal(direct, general)
    # its chunks on any number of threads: the same bits
    for threads in (2, 3):
        on_threads = forward_direct(Xq, est.coefs_, est.intercepts_, "relu", "identity", threads)
        np.testing.assert_array_equal(on_threads.ravel(), direct)


def test_mixed_dtypes_take_the_general_path(data):
    X, y, _ = data
    est = fitted(FNNRegressor, X.astype(np.float32), y.astype(np.float32))
    float64 = est.predict(X[:3])  # computed in float64, as NumPy promotes X @ coefs_
    assert float64.dtype == np.float64
    expected = fitted(FNNRegressor, X, y).predict(X[:3])
    np.testing.assert_allclose(float64, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rows", [2, 2 * DIRECT_ROWS + 1])
def test_non_finite_inputs_raise_scikit_learns_error(data, bad, rows):
    X, y, _ = data
    ours, theirs = fitted(FNNRegressor, X, y), fitted(MLPRegressor, X, y)
    Xq = np.resize(X, (rows, X.shape[1]))
    Xq[-1, 3] = bad  # in the last chunk
    with pytest.raises(ValueError) as expected:
        theirs.predict(Xq)
    with pytest.raises(ValueError) as got:
        ours.predict(Xq)
    # scikit-learn's message, which fastfnn extends with what to do
    assert str(got.value).replace("FNNRegressor", "MLPRegressor").startswith(str(expected.value))


def test_wrong_feature_counts_and_unfitted_models_raise(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="features"):
        fitted(FNNRegressor, X, y).predict(X[:2, :5])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FNNRegressor().predict(X[:2])


def test_a_model_fitted_with_feature_names_still_warns_on_an_array(data):
    X, y, _ = data
    est = fitted(FNNRegressor, pd.DataFrame(X, columns=list("abcdef")), y)
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X[:2])


def test_replaced_coefficients_are_used(data):
    X, y, _ = data
    est = fitted(FNNRegressor, X, y)
    before = est.predict(X[:4])
    est.coefs_[-1] = est.coefs_[-1] * 2.0  # a new array
    est.intercepts_[-1][:] = 0.0  # in place
    hidden = np.maximum(np.maximum(X[:4] @ est.coefs_[0] + est.intercepts_[0], 0)
                        @ est.coefs_[1] + est.intercepts_[1], 0)
    np.testing.assert_allclose(est.predict(X[:4]), (hidden @ est.coefs_[2]).ravel(), rtol=1e-12)
    assert not np.allclose(est.predict(X[:4]), before)


def test_threads_predicting_inputs_of_different_sizes_at_once(data):
    X, y, _ = data
    est = fitted(FNNRegressor, X, y)
    X = np.tile(X, (4, 1))  # up to 1,200 rows: chunks, each thread's buffer grown in turn
    inputs = [X[: 1 + (i * 277) % X.shape[0]] for i in range(16)]
    expected = [est.predict(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(est.predict, inputs * 4))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, expected[i % len(inputs)])


def test_a_non_finite_value_stops_the_threads_and_writes_nothing(data):
    """On the direct path's threads: a NaN or an infinity in any block gives None (the caller
    then takes the general path, which reports it), for every thread count."""
    X, y, _ = data
    est = fitted(FNNRegressor, X, y)
    Xq = np.resize(X, (4 * DIRECT_ROWS, X.shape[1]))
    for threads in (1, 2, 3):
        for at in (0, Xq.shape[0] // 2, Xq.shape[0] - 1):
            bad = Xq.copy()
            bad[at, 2] = np.inf
            assert forward_direct(bad, est.coefs_, est.intercepts_, "relu", "identity",
                                  threads) is None


def test_a_threads_kept_buffer_stays_bounded():
    """A wide network's many rows use a buffer of the call's own beyond KEPT_BUFFER_BYTES: the
    calling thread keeps no more than that, and the result is NumPy's."""
    from fastfnn import network

    rng = np.random.default_rng(0)
    width = network.KEPT_BUFFER_BYTES // (4 * DIRECT_ROWS * 8) + 1  # two threads' halves: over
    coefs = [rng.standard_normal((5, width)) / 3, rng.standard_normal((width, 1)) / width]
    intercepts = [rng.standard_normal(width), rng.standard_normal(1)]
    X = rng.standard_normal((3 * DIRECT_ROWS, 5))
    for threads in (1, 2):
        out = forward_direct(X, coefs, intercepts, "relu", "identity", threads)
        expected = np.maximum(X @ coefs[0] + intercepts[0], 0) @ coefs[1] + intercepts[1]
        np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
        kept = getattr(network._thread_buffers, "arrays", {}).get(np.dtype(np.float64))
        assert kept is None or kept.nbytes <= network.KEPT_BUFFER_BYTES
