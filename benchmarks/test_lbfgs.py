"""Full-batch L-BFGS against scikit-learn's, in the same run: the same network, data and
iteration budget, fits timed in interleaved rounds (fastfnn, scikit-learn, fastfnn, ...) so a
busy moment hits both alike; the ratio of the medians is printed and kept in pytest-benchmark's
``extra_info`` (pytest-benchmark records fastfnn's fit). Same work: both run every iteration
(``n_iter_``), from scikit-learn's initial weights (the same seed), to losses that agree.

    python -m pytest benchmarks/test_lbfgs.py --benchmark-only -s
"""

import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from fastfnn import FNNRegressor
from fastfnn.bench.cases import CONFIGS
from fastfnn.bench.report import _cpu_name as cpu_name

ITERATIONS = 20
ROUNDS = 7


def problem(config):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((config.n_samples, config.n_features))
    return X, np.tanh(X[:, 0]) + X[:, 1] * X[:, 2]


def fit_seconds(cls, config, X, y):
    """Seconds of one fit, and the fitted estimator."""
    est = cls(hidden_layer_sizes=config.hidden, solver="lbfgs", max_iter=ITERATIONS, tol=0.0,
              random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return time.perf_counter() - start, est


@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_lbfgs_against_scikit_learn(benchmark, name):
    config = CONFIGS[name]
    X, y = problem(config)
    fit_seconds(FNNRegressor, config, X[:500], y[:500])  # compiled and warm before timing
    times, fitted = {"fastfnn": [], "sklearn": []}, {}
    for _ in range(ROUNDS):
        for label, cls in (("fastfnn", FNNRegressor), ("sklearn", MLPRegressor)):
            seconds, fitted[label] = fit_seconds(cls, config, X, y)
            times[label].append(seconds)
    ours, theirs = fitted["fastfnn"], fitted["sklearn"]
    assert ours.n_iter_ == theirs.n_iter_ == ITERATIONS
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    medians = {label: float(np.median(t)) for label, t in times.items()}
    ratio = medians["sklearn"] / medians["fastfnn"]
    benchmark.group = f"lbfgs {name}"
    benchmark.extra_info.update(cpu=cpu_name(), iterations=ITERATIONS, rounds=ROUNDS,
                                medians_s=medians, speedup_vs_sklearn=ratio)
    benchmark.pedantic(fit_seconds, args=(FNNRegressor, config, X, y), rounds=1, iterations=1)
    print(f"\nlbfgs {name} ({cpu_name()}), {ITERATIONS} iterations, median of {ROUNDS} "
          f"interleaved fits: fastfnn {medians['fastfnn'] * 1e3:.0f} ms, scikit-learn "
          f"{medians['sklearn'] * 1e3:.0f} ms: {ratio:.2f}x")
