"""What training beyond scikit-learn costs per epoch: dropout, 'adamw' and gradient clipping,
each against plain 'adam' on the same network and data, in the same run.

The variants are timed in interleaved rounds (adam, dropout, adamw, clipping, adam, ...), so a
busy moment hits them alike; each variant's median fit time over the rounds gives its ratio to
adam's (the target: at most 1.10). pytest-benchmark records the plain adam fit; the ratios go in
its ``extra_info`` and are printed.

    python -m pytest benchmarks/test_additions.py --benchmark-only -s
"""

import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor
from fastfnn.bench.cases import CONFIGS
from fastfnn.bench.report import _cpu_name as cpu_name

VARIANTS = {
    "adam": {},
    "dropout 0.2": {"dropout": 0.2},
    "adamw": {"solver": "adamw", "alpha": 1e-2},
    "clip 1.0": {"max_grad_norm": 1.0},
}
EPOCHS = {"small": 10, "medium": 3}  # fits long enough that a busy moment is a small part
ROUNDS = 9
TARGET = 1.10


def problem(config):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((config.n_samples, config.n_features))
    y = np.tanh(X[:, 0]) + X[:, 1] * X[:, 2]
    return X, y


def fit_seconds(config, X, y, extra):
    est = FNNRegressor(hidden_layer_sizes=config.hidden, batch_size=config.batch_size,
                       max_iter=EPOCHS[config.name], tol=0.0, n_iter_no_change=10**6,
                       random_state=0, **extra)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_epoch_cost_of_the_additions(benchmark, name):
    config = CONFIGS[name]
    X, y = problem(config)
    for extra in VARIANTS.values():  # compiled and warm before timing
        fit_seconds(config, X[:2 * config.batch_size], y[:2 * config.batch_size], extra)
    times = {variant: [] for variant in VARIANTS}
    for _ in range(ROUNDS):
        for variant, extra in VARIANTS.items():
            times[variant].append(fit_seconds(config, X, y, extra))
    medians = {variant: float(np.median(t)) for variant, t in times.items()}
    ratios = {variant: medians[variant] / medians["adam"] for variant in VARIANTS}
    benchmark.group = f"additions {name}"
    benchmark.extra_info.update(cpu=cpu_name(), epochs=EPOCHS[name], rounds=ROUNDS,
                                medians_s=medians, ratios_to_adam=ratios)
    benchmark.pedantic(fit_seconds, args=(config, X, y, {}), rounds=1, iterations=1)
    print(f"\n{name} ({cpu_name()}), {EPOCHS[name]} epochs, median of {ROUNDS} interleaved fits:")
    for variant in VARIANTS:
        flag = "" if ratios[variant] <= TARGET else "  (above the 1.10 target)"
        print(f"  {variant:12s} {medians[variant] / EPOCHS[name] * 1e3:8.1f} ms/epoch  "
              f"{ratios[variant]:.3f}x adam{flag}")
