"""The tile kernel's place in training and prediction: a rule by the vector width, never a timing;
the crossover timed on the machine, for the benchmark's report.

Oracles: central finite differences of the loss (gradients through the tile kernel's three
products), the gemm path on the same weights (fits and predictions agree to rounding), the
rule "largest side where the tile kernel won at it and every smaller side" applied by hand to
the recorded timings.
"""

import numpy as np
import pytest

from fastfnn import FNNRegressor
from fastfnn import _kernels as K
from fastfnn import _tuning
from fastfnn.gradcheck import gradients
from fastfnn.network import Network

ON = _tuning.Limits(_tuning.UNLIMITED, _tuning.UNLIMITED, _tuning.UNLIMITED)
OFF = _tuning.Limits(0, 0, 0)
# Hidden widths that are whole vectors in both dtypes on any SIMD width up to AVX-512.
HIDDEN = (16, 32)


@pytest.fixture
def kernel(monkeypatch):
    """Sets this process's choice for both dtypes: ``kernel(ON)`` or ``kernel(OFF)``."""

    def choose(limits):
        for name in ("float64", "float32"):
            monkeypatch.setitem(_tuning._limits, np.dtype(name), (limits, "test"))

    return choose


@pytest.mark.parametrize("n_outputs", [16, 1])
@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic"])
@pytest.mark.parametrize("limits", [ON, OFF], ids=["tile", "gemm"])
def test_gradients_through_either_kernel_match_finite_differences(kernel, limits, activation,
                                                                  n_outputs):
    """16 outputs: every product of every layer is tile-able; 1 output: the last layer's
    gradient and outer product take the tile kernel's one-row form."""
    kernel(limits)
    rng = np.random.default_rng(0)
    sizes = [16, *HIDDEN, n_outputs]
    net = Network(sizes, activation, "identity", "squared_error", np.float64)
    for W in net.coefs():
        W[...] = rng.standard_normal(W.shape) / np.sqrt(W.shape[0])
    for b in net.intercepts():
        b[...] = 0.1 * rng.standard_normal(b.shape)
    X, Y = rng.standard_normal((23, sizes[0])), rng.standard_normal((23, sizes[-1]))
    analytic, numeric = gradients(net, X, Y, alpha=0.01, eps=1e-5)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_fits_with_the_tile_kernel_and_with_gemm_agree(kernel, dtype, solver):
    rng = np.random.RandomState(0)
    X = rng.randn(300, 16).astype(dtype)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2]).astype(dtype)
    params = dict(hidden_layer_sizes=HIDDEN, solver=solver, max_iter=5, random_state=0,
                  batch_size=40)
    fits = {}
    for name, limits in (("tile", ON), ("gemm", OFF)):
        kernel(limits)
        with pytest.warns(Warning):  # not converged in 5 iterations
            fits[name] = FNNRegressor(**params).fit(X, y)
    tol = 1e-9 if dtype == np.float64 else 2e-3
    for a, b in zip(fits["tile"].coefs_, fits["gemm"].coefs_):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    Xq = rng.randn(5, 16).astype(dtype)
    np.testing.assert_allclose(fits["tile"].predict(Xq), fits["gemm"].predict(Xq), rtol=tol,
                               atol=tol)


def test_the_limit_is_the_largest_side_won_with_every_smaller_one(monkeypatch):
    """measure() against its own timings: the rule applied by hand."""
    plan = {0: [1, 1, 0, 1], 1: [1, 1, 1, 1, 1, 1, 1, 1], 2: [0]}  # 1: the tile kernel wins

    def fake_time(product, side, dtype, rng):
        wins = plan[product][_tuning.SIDES.index(side)]
        return (1.0, 2.0) if wins else (2.0, 1.0)

    monkeypatch.setattr(_tuning, "_time", fake_time)
    entry = _tuning.measure("float64")
    assert entry["limits"] == [32 * 32, 256 * 256, 0]
    assert [t[:2] for t in entry["timings"] if t[0] == "A @ W"] == [
        ["A @ W", 16], ["A @ W", 32], ["A @ W", 48]]  # stops at the first loss


def test_measure_times_real_kernels():
    entry = _tuning.measure("float32")
    assert len(entry["limits"]) == 3
    for product, side, tile, gemm in entry["timings"]:
        assert product in _tuning.PRODUCTS and side in _tuning.SIDES
        assert 0 < tile < 1 and 0 < gemm < 1
    by_product = {}
    for product, side, tile, gemm in entry["timings"]:
        by_product.setdefault(product, []).append((side, tile < gemm))
    for product, limit in zip(_tuning.PRODUCTS, entry["limits"]):
        won = 0
        for side, tile_won in by_product[product]:
            if not tile_won:
                break
            won = side * side
        assert limit == won


@pytest.mark.parametrize("text, limits", [("", None), ("auto", None), ("off", OFF),
                                          ("on", ON)])
def test_the_tile_choice_is_the_rule_never_a_timing(monkeypatch, text, limits):
    """Every process chooses alike, whatever this moment's timings would say: the rule for the
    CPU's vector width (or FASTFNN_TILE's override), and nothing is measured."""
    def fail(name):
        raise AssertionError("measured")

    monkeypatch.setattr(_tuning, "measure", fail)
    monkeypatch.setattr(_tuning, "_limits", {})
    monkeypatch.setenv("FASTFNN_TILE", text)
    for name in ("float64", "float32"):
        rule = _tuning.RULES.get(K.VECTOR_BYTES, {}).get(name, OFF)
        assert _tuning.tile_limits(name) == (rule if limits is None else limits)


def test_describe_names_each_dtype_and_product(kernel, monkeypatch):
    kernel(OFF)
    monkeypatch.setattr(_tuning, "measure", lambda name: {"timings": []})
    lines = _tuning.describe()
    assert len(lines) == 2 and lines[0].startswith("float64") and lines[1].startswith("float32")
    for line in lines:
        assert all(p in line for p in _tuning.PRODUCTS) and "none (gemm only)" in line
    assert f"{K.VECTOR_BYTES}-byte vectors" in lines[0]


def test_describe_gives_this_machines_timings_beside_the_rule(monkeypatch):
    timings = [["A @ W", 16, 1.0, 2.0], ["A @ W", 32, 2.0, 1.0], ["A.T @ D", 16, 2.0, 1.0]]
    monkeypatch.setattr(_tuning, "measure", lambda name: {"timings": timings})
    for name in ("float64", "float32"):
        monkeypatch.setitem(_tuning._limits, np.dtype(name),
                            (_tuning.Limits(256, 0, 0), "the rule"))
    lines = _tuning.describe()
    assert "A @ W up to 16 x 16" in lines[0] and "A.T @ D up to none (gemm only)" in lines[0]
    assert lines[1].endswith("A @ W, gemm time / tile time by side on 64 rows, timed now (up to "
                             "the first loss): 16: 2.00x, 32: 0.50x")
    assert lines[2].endswith("A.T @ D, gemm time / tile time by side on 64 rows, timed now (up "
                             "to the first loss): 16: 0.50x")
