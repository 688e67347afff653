"""The benchmark's "straightforward compiled design" (``fastfnn.bench.reference``) trains exactly
as scikit-learn's MLPRegressor does: same initial weights and batch order (scikit-learn's own
draws), same SGD with Nesterov momentum and L2 step. Oracle: scikit-learn itself."""

import warnings

import numpy as np
import pytest
from sklearn.neural_network import MLPRegressor

from fastfnn.bench.cases import Config, sklearn_draws
from fastfnn.bench.reference import reference_fit

LR, MOMENTUM, ALPHA = 0.01, 0.9, 1e-3


def _problem(n_outputs, dtype, n=203, f=5):
    rs = np.random.RandomState(3)
    X = rs.standard_normal((n, f))
    Y = np.tanh(X @ rs.standard_normal((f, n_outputs))) + 0.1 * rs.standard_normal((n, n_outputs))
    return X.astype(dtype), (Y[:, 0] if n_outputs == 1 else Y).astype(dtype)


def _sklearn(X, y, hidden, batch, epochs):
    est = MLPRegressor(hidden_layer_sizes=hidden, activation="relu", solver="sgd", alpha=ALPHA,
                       batch_size=batch, learning_rate="constant", learning_rate_init=LR,
                       momentum=MOMENTUM, nesterovs_momentum=True, max_iter=epochs, shuffle=True,
                       random_state=0, tol=0.0, n_iter_no_change=epochs + 1,
                       early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached on purpose
        return est.fit(X, y)


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("epochs", [1, 2])
def test_reference_matches_sklearn_float64(n_outputs, epochs):
    hidden, batch = (8, 6), 32  # 203 rows: a shorter last batch of 11
    X, y = _problem(n_outputs, "float64")
    config = Config("t", X.shape[0], X.shape[1], hidden, n_outputs, batch)
    init, orders = sklearn_draws(config, epochs)
    coefs, intercepts, curve = reference_fit(X, y, init, orders, batch, LR, MOMENTUM, ALPHA)
    sk = _sklearn(X, y, hidden, batch, epochs)
    for mine, theirs in zip(coefs + intercepts, sk.coefs_ + sk.intercepts_):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-12)
    losses = [(data / n_outputs + penalty) / X.shape[0] for data, penalty in curve]
    np.testing.assert_allclose(losses, sk.loss_curve_, rtol=1e-9)


def test_reference_matches_sklearn_float32():
    """float32 stays float32 end to end and lands where scikit-learn's float32 fit does."""
    hidden, batch, epochs = (16,), 16, 2
    X, y = _problem(1, "float32")
    config = Config("t", X.shape[0], X.shape[1], hidden, 1, batch)
    init, orders = sklearn_draws(config, epochs)
    coefs, intercepts, curve = reference_fit(X, y, init, orders, batch, LR, MOMENTUM, ALPHA)
    sk = _sklearn(X, y, hidden, batch, epochs)
    for mine, theirs in zip(coefs + intercepts, sk.coefs_ + sk.intercepts_):
        assert mine.dtype == np.float32 and theirs.dtype == np.float32
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([(d + p) / X.shape[0] for d, p in curve], sk.loss_curve_,
                               rtol=1e-4)


def test_reference_differs_from_a_wrong_step():
    """The comparison can fail: without the L2 term the weights drift from scikit-learn's."""
    hidden, batch, epochs = (8,), 32, 2
    X, y = _problem(1, "float64")
    config = Config("t", X.shape[0], X.shape[1], hidden, 1, batch)
    init, orders = sklearn_draws(config, epochs)
    coefs, _, _ = reference_fit(X, y, init, orders, batch, LR, MOMENTUM, 0.0)
    sk = _sklearn(X, y, hidden, batch, epochs)
    assert not np.allclose(coefs[0], sk.coefs_[0], rtol=1e-6, atol=1e-12)
