"""A row's prediction does not depend on the rows predicted with it: the same bits whether a row
is predicted alone, in a pair, in any slice or with all the others, for every layer width (the
tile kernel's whole vectors and the columns past them, layers too large for the cache), both
dtypes, dense and sparse input, the direct path of plain arrays and the general one. The oracle
is the prediction of all rows at once; NumPy's forward pass checks that it is right."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNClassifier, FNNRegressor

WIDTHS = st.integers(1, 1024)


def fitted(cls, hidden, dtype, n_features, seed):
    rng = np.random.RandomState(seed)
    X = rng.randn(40, n_features).astype(dtype)
    y = (X[:, 0] > 0).astype(int) + (X[:, -1] > 0) if cls is FNNClassifier else X[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(hidden_layer_sizes=hidden, max_iter=1, random_state=seed).fit(X, y)


def numpy_forward(est, X):
    """The forward pass in NumPy: a^l = act(a^{l-1} W + b), relu hidden layers."""
    a = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W.astype(np.float64) + b
        if i < len(est.coefs_) - 1:
            a = np.maximum(a, 0)
    return a.ravel() if a.shape[1] == 1 else a


def pieces(n, rng):
    """Ways to cut ``range(n)``: single rows, pairs, and contiguous slices of random sizes."""
    rows = rng.choice(n, size=min(n, 6), replace=False)
    yield from ([[r] for r in rows])
    yield from ([[r, (r + 1) % n] for r in rows[:3]])
    cuts = np.unique(np.concatenate([[0, n], rng.integers(0, n, size=4)]))
    yield from ([list(range(a, b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.lists(WIDTHS, min_size=1, max_size=2), n=st.integers(1, 3000),
       n_features=st.integers(1, 40), dtype=st.sampled_from(["float64", "float32"]),
       form=st.sampled_from(["array", "sparse", "frame"]), seed=st.integers(0, 2**16))
def test_a_rows_prediction_does_not_depend_on_its_company(hidden, n, n_features, dtype, form,
                                                          seed):
    """All rows through the general path (a CSR matrix's, or a DataFrame's) or the direct one
    (an array's), their pieces through the same path."""
    est = fitted(FNNRegressor, tuple(hidden), dtype, n_features, seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    if form == "sparse":
        X[rng.random(X.shape) < 0.7] = 0
        X = sp.csr_matrix(X)
    everything = est.predict(pd.DataFrame(X) if form == "frame" else X)
    tol = 1e-9 if dtype == "float64" else 2e-3
    np.testing.assert_allclose(everything, numpy_forward(est, X), rtol=tol, atol=tol)
    for rows in pieces(n, rng):
        part = est.predict(pd.DataFrame(X[rows]) if form == "frame" else X[rows])
        assert np.array_equal(part, everything[rows]), (rows[:3], len(rows))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_probabilities_do_not_depend_on_their_company(dtype):
    """The classifier's probabilities (softmax over 3 classes, 600 x 600 hidden layers: past the
    cache, columns past the last whole vector) row by row, in pairs and all at once."""
    est = fitted(FNNClassifier, (600, 600), dtype, 20, 0)
    X = np.random.default_rng(1).standard_normal((257, 20)).astype(dtype)
    everything = est.predict_proba(X)
    for r in range(0, 257, 16):
        assert np.array_equal(est.predict_proba(X[r:r + 1]), everything[r:r + 1])
        assert np.array_equal(est.predict_proba(X[r:r + 2]), everything[r:r + 2])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("outputs", [2, 3, 19])
def test_outputs_past_the_last_whole_vector_do_not_depend_on_their_company(dtype, outputs):
    """A multi-output regressor whose output layer is narrower than a vector (2, 3) or has
    columns past its last whole one (19): each row's outputs alone, in pairs and in slices are
    those of all rows at once, and right."""
    rng = np.random.RandomState(outputs)
    X = rng.randn(600, 7).astype(dtype)
    Y = X @ rng.randn(7, outputs).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(hidden_layer_sizes=(13,), max_iter=2, random_state=0).fit(X, Y)
    everything = est.predict(X)
    tol = 1e-9 if dtype == "float64" else 2e-3
    np.testing.assert_allclose(everything, numpy_forward(est, X), rtol=tol, atol=tol)
    for rows in pieces(X.shape[0], np.random.default_rng(outputs)):
        assert np.array_equal(est.predict(X[rows]), everything[rows]), (rows[:3], len(rows))
