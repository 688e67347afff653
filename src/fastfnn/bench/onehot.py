"""The one-hot table: a sparse CSR input, fastfnn against scikit-learn on the same matrix, and
the case's physical limit.

The case: ``ONEHOT_ROWS`` rows, three text columns of ``CARDINALITIES`` values one-hot encoded
(one 1.0 per column, as scikit-learn's ``OneHotEncoder`` leaves them) and ``NUMERIC`` standard
normal columns, in CSR (3,125 columns, 8 stored entries a row); a regression target from the
categories and numbers. A ``HIDDEN`` relu network trained by adam, scikit-learn's defaults
otherwise (batches of 200, alpha 1e-4), ``EPOCHS`` epochs, no stopping.

The limit: per batch, what no implementation of these rules can skip: Adam's update of every
parameter (its moments decay even where the gradient is 0, and the L2 term makes every
first-layer weight's gradient nonzero), plus the products at the GEMM peak (hidden layers: 6
flops a weight a row; first layer: 4 flops a stored entry a unit, forward and weight
gradient). The update's
bound is the larger of its arithmetic (a square root and a division a parameter, at the CPU's
vectorised throughput) and its memory traffic (:func:`update_seconds`), over the cores.
"""

import time
import warnings

import numpy as np

ONEHOT_ROWS = 100_000
CARDINALITIES = (3000, 100, 20)
NUMERIC = 5
HIDDEN = (64, 64)
EPOCHS = 3
BATCH = 200
SEED = 0


def make_onehot(n=ONEHOT_ROWS, dtype="float64", seed=SEED):
    """X (n, sum(CARDINALITIES) + NUMERIC) CSR of ``dtype``, y (n,): the one-hot table."""
    import scipy.sparse as sp

    rs = np.random.RandomState(seed)
    codes = [rs.randint(0, c, n) for c in CARDINALITIES]
    numeric = rs.standard_normal((n, NUMERIC))
    y = sum(rs.standard_normal(c)[k] for c, k in zip(CARDINALITIES, codes))
    y = y + numeric @ rs.standard_normal(NUMERIC) + 0.1 * rs.standard_normal(n)
    blocks = [sp.csr_matrix((np.ones(n), (np.arange(n), k)), shape=(n, c))
              for c, k in zip(CARDINALITIES, codes)]
    X = sp.hstack(blocks + [sp.csr_matrix(numeric)], format="csr").astype(dtype)
    return X, ((y - y.mean()) / y.std()).astype(dtype)


def estimator(impl, epochs=EPOCHS):
    """The case's regressor: ``impl`` 'fastfnn' or 'sklearn', the same parameters."""
    if impl == "fastfnn":
        from .. import FNNRegressor as cls
    else:
        from sklearn.neural_network import MLPRegressor as cls
    return cls(hidden_layer_sizes=HIDDEN, solver="adam", max_iter=epochs, random_state=SEED,
               tol=0.0, n_iter_no_change=epochs + 1, batch_size=BATCH)


def timed_fit(impl, X, y, epochs=EPOCHS):
    """``(seconds, final loss)`` of one fit (warnings about iterations silenced)."""
    est = estimator(impl, epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t, float(est.loss_)


def _best_seconds(fn, repeats, rounds=15):
    """The least of ``rounds`` mean times of ``repeats`` calls: a bound takes the machine's
    best moment."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - t) / repeats)
    return float(np.min(times))


def update_seconds(n_params, dtype, threads):
    """A lower bound on one Adam update of ``n_params`` parameters on ``threads`` cores: per
    parameter a square root and a division (NumPy's vectorised loops on arrays in L1, the
    CPU's throughput for them) or its state's memory traffic (theta, gradient, two moments
    read and written: 8 accesses, at the bandwidth of an ``a + b -> c`` pass over arrays of
    that size, 4 accesses an element), whichever takes longer, the parameters split over the
    cores."""
    dt = np.dtype(dtype)
    rs = np.random.RandomState(0)
    x, y = rs.uniform(1, 2, 4096).astype(dt), np.empty(4096, dt)
    per_op = (_best_seconds(lambda: np.sqrt(x, out=y), 200)
              + _best_seconds(lambda: np.divide(x, y, out=y), 200)) / x.size
    a, b, c = (rs.standard_normal(n_params).astype(dt) for _ in range(3))
    # a + b -> c moves 4 arrays: c's cache lines are read before they are written
    bandwidth = 4 * a.nbytes / _best_seconds(lambda: np.add(a, b, out=c), 20)  # bytes/s
    return n_params * max(per_op, 8 * dt.itemsize / bandwidth) / threads


def physical_limit(X, dtype, threads, peak_gflops, epochs=EPOCHS):
    """Seconds per fit that no implementation of the rules can go below on this machine
    (see the module's docstring), and its parts ``{update, products}``."""
    n, n_features = X.shape
    sizes = (n_features, *HIDDEN, 1)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    batches = epochs * -(-n // BATCH)
    update = batches * update_seconds(n_params, dtype, threads)
    hidden = 6.0 * n * sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    first = 4.0 * X.nnz * sizes[1]
    products = epochs * (hidden + first) / (peak_gflops * 1e9)
    return update + products, {"update": update, "products": products}


def run_onehot(dtype="float64", rounds=3, log=print, n=ONEHOT_ROWS, epochs=EPOCHS):
    """Times fastfnn and scikit-learn on the one-hot case, interleaved (each round one fit of
    each, the order alternating), and the physical limit. Returns the row (a dict)."""
    import os

    from .._parts import training_parts, training_threads
    from .gemm import gemm_peak

    X, y = make_onehot(n, dtype)
    sizes = np.array((X.shape[1], *HIDDEN, 1), dtype=np.int64)
    threads = training_threads(sizes, BATCH, dtype, training_parts(sizes, BATCH, dtype))
    timed_fit("fastfnn", X[:2000], y[:2000], 1)  # compiles, measures what a first fit does
    times = {"fastfnn": [], "sklearn": []}
    losses = {}
    for r in range(rounds):
        for impl in (("fastfnn", "sklearn") if r % 2 == 0 else ("sklearn", "fastfnn")):
            seconds, losses[impl] = timed_fit(impl, X, y, epochs)
            times[impl].append(seconds)
            log(f"one-hot {dtype} {impl}: {seconds:.3f} s, loss {losses[impl]:.10g} "
                f"(load {os.getloadavg()[0]:.2f})")
    peak = gemm_peak(dtype, threads)
    limit, parts = physical_limit(X, dtype, threads, peak, epochs)
    fast, skl = (float(np.median(times[i])) for i in ("fastfnn", "sklearn"))
    return {
        "case": f"one-hot {X.shape[0]} x {X.shape[1]} CSR ({X.nnz / X.shape[0]:.0f} per row), "
                f"{HIDDEN} adam, {epochs} epochs",
        "dtype": dtype, "threads": threads, "fastfnn s": fast, "sklearn s": skl,
        "vs sklearn": skl / fast, "limit s": limit, "limit update s": parts["update"],
        "limit products s": parts["products"], "fastfnn / limit": fast / limit,
        "loss rel diff": abs(losses["fastfnn"] - losses["sklearn"]) / abs(losses["sklearn"]),
    }
