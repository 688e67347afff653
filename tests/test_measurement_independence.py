"""What fastfnn measures on a machine changes the speed, never a result: fits and predictions are
the same bits whatever the measurements say (threads from the first batch or never, for
training and for prediction), whatever the cache file holds (any crossover or threshold a
timing could record), on one thread or two; float32 and float64, dense and sparse input.

The oracle is the fit on one thread with nothing measured (every measurement said "never");
each variation must reproduce its bits exactly."""

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor, _parts, _tuning

# 9.3 MFLOP a batch: split into parts by the rule in both dtypes.
PARAMS = dict(hidden_layer_sizes=(128, 64), batch_size=128, max_iter=3, random_state=0)


def problem(dtype, sparse):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 30)).astype(dtype)
    y = (np.tanh(X[:, 0]) + X[:, 1] * X[:, 2]).astype(dtype)
    if sparse:
        X[rng.random(X.shape) < 0.7] = 0
        X = sp.csr_matrix(X)
    return X, y


def fit_and_predict(X, y, solver):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(solver=solver, **PARAMS).fit(X, y)
    return est.coefs_ + est.intercepts_ + [est.predict(X), est.predict(X[:1])]


def measured(monkeypatch, training, prediction):
    """This process's measurements, as a timing could have left them: the flops from which a
    split batch's parts and a prediction's chunks run on threads of their own."""
    for name in ("float64", "float32"):
        monkeypatch.setitem(_parts._chosen, ("training", np.dtype(name)),
                            (training, "forced", []))
        monkeypatch.setitem(_parts._chosen, ("prediction", np.dtype(name)),
                            (prediction, "forced", []))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_measurement_changes_a_fit_or_a_prediction(monkeypatch, tmp_path, dtype, sparse,
                                                      solver):
    X, y = problem(dtype, sparse)
    assert _parts.training_parts([30, 128, 64, 1], 128, dtype) == _parts.PARTS
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTFNN_TILE", raising=False)
    monkeypatch.delenv("FASTFNN_SPLIT_FLOPS", raising=False)
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "1")
    measured(monkeypatch, np.inf, np.inf)
    reference = fit_and_predict(X, y, solver)
    variations = []
    for threads in ("1", "2"):
        for training in (0.0, np.inf):
            for prediction in (0.0, np.inf):
                variations.append((threads, training, prediction))
    for threads, training, prediction in variations:
        monkeypatch.setenv("FASTFNN_NUM_THREADS", threads)
        measured(monkeypatch, training, prediction)
        got = fit_and_predict(X, y, solver)
        for a, b in zip(got, reference):
            assert np.array_equal(a, b), (threads, training, prediction)


@pytest.mark.parametrize("limits", [[0, 0, 0], [_tuning.UNLIMITED] * 3, [256, 0, 9216]])
def test_no_crossover_a_timing_could_record_changes_a_fit(monkeypatch, tmp_path, limits):
    """The cache file holding any tile crossover (none, every layer, a mix) for this machine:
    the tile kernel's share is the rule's, and the fit the same bits."""
    X, y = problem("float64", False)
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTFNN_TILE", raising=False)
    monkeypatch.setattr(_tuning, "_limits", {})
    reference = fit_and_predict(X, y, "adam")
    entry = {"limits": limits, "timings": [], "when": "2026-01-01 00:00"}
    (tmp_path / _tuning.FILE).write_text(json.dumps(
        {_tuning.machine_key(): {"float64": entry, "float32": entry}}))
    monkeypatch.setattr(_tuning, "_limits", {})
    monkeypatch.setattr(_tuning, "measure", lambda name: dict(entry))
    for a, b in zip(fit_and_predict(X, y, "adam"), reference):
        assert np.array_equal(a, b)
