"""The fresh-process measurements: the start-up and peak-memory child scripts and their runner,
and the wall time of the ``fastfnn fit`` command."""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

from .cases import Case, Config, estimator_class, estimator_params, make_data, sklearn_draws
from .torch_impl import torch_fit

# Runs in a fresh interpreter; imports nothing of fastfnn before the timed import.
STARTUP_CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
if spec["impl"] == "fastfnn":
    from fastfnn import FNNRegressor as Est
else:
    from sklearn.neural_network import MLPRegressor as Est
t_import = time.perf_counter() - t0
import warnings
import numpy as np
warnings.simplefilter("ignore")
rs = np.random.RandomState(0)
X = rs.standard_normal((spec["n"], spec["f"])).astype(spec["dtype"])
y = np.tanh(X @ rs.standard_normal(spec["f"])).astype(spec["dtype"])
params = dict(hidden_layer_sizes=tuple(spec["hidden"]), solver="sgd", batch_size=spec["batch"],
              learning_rate_init=1e-3, max_iter=1, tol=0.0, n_iter_no_change=2, random_state=0)
times = []
for _ in range(2):
    t = time.perf_counter()
    Est(**params).fit(X, y)
    times.append(time.perf_counter() - t)
print(json.dumps({"import": t_import, "first_fit": times[0], "second_fit": times[1]}))
"""

MEMORY_CHILD = r"""
import json, sys
from fastfnn.bench import memory_child
print(json.dumps(memory_child(json.loads(sys.argv[1]))))
"""


def _rss():
    """(current RSS, peak RSS) of this process in bytes, from /proc (Linux) or getrusage."""
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


def _reset_peak_rss():
    """Reset the peak RSS to the current RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_child(spec):
    """In a fresh process: warm the implementation up on a few rows, then fit one epoch on the
    whole data under tracemalloc, and return the fit's traced peak (NumPy and Python
    allocations) and its RSS peak increase (everything, Numba's and torch's allocations too)."""
    import gc
    import tracemalloc

    from threadpoolctl import threadpool_limits

    cfg = Config(**{**spec["config"], "hidden": tuple(spec["config"]["hidden"])})
    dtype, impl, threads = spec["dtype"], spec["impl"], spec["threads"]
    case = Case(cfg, "sgd", dtype, 1)
    X, y = make_data(cfg, dtype)
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(y.reshape(len(y), -1))
        init, orders = sklearn_draws(cfg, 1)
        init = [(W.astype(dtype), b.astype(dtype)) for W, b in init]
        small = dataclasses.replace(case, config=dataclasses.replace(cfg, n_samples=256))
        torch_fit(small, Xt[:256], Yt[:256], init, [orders[0][orders[0] < 256]])

        def fit():
            torch_fit(case, Xt, Yt, init, orders)
    else:
        Est = estimator_class(impl)
        warnings.simplefilter("ignore")
        Est(**estimator_params(case)).fit(X[:256], y[:256])

        def fit():
            with threadpool_limits(limits=threads, user_api="blas"):
                Est(**estimator_params(case)).fit(X, y)

    gc.collect()
    _malloc_trim()  # freed warm-up memory goes back to the OS, so the fit's pages show in RSS
    exact = _reset_peak_rss()
    rss0, hwm0 = _rss()
    tracemalloc.start()
    fit()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _, hwm = _rss()
    return {"traced_peak": traced_peak, "rss_peak": hwm - (rss0 if exact else hwm0),
            "rss_exact": exact}


def _child(script, spec, env=None):
    out = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def command_seconds(numba_cache, command="fit"):
    """(argv, wall seconds) of ``fastfnn COMMAND`` (default ``fit``: the bundled toy data,
    default parameters) in a fresh process whose Numba cache is the folder ``numba_cache``,
    run from an empty folder.

    The ``fastfnn`` script beside this interpreter, as a user types it; ``python -m fastfnn``
    where there is none (a source checkout without the script installed)."""
    script = os.path.join(os.path.dirname(sys.executable), "fastfnn")
    argv = ([script] if os.path.exists(script) else [sys.executable, "-m", "fastfnn"])
    argv.append(command)
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache)
    with tempfile.TemporaryDirectory(prefix="fastfnn-fit-") as cwd:
        t = time.perf_counter()
        out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed:\n{out.stderr[-2000:]}")
    return argv, seconds


def _best_of(fn, n=2):
    """Element-wise minimum of ``n`` result dicts."""
    results = [fn() for _ in range(n)]
    return {k: min(r[k] for r in results) for k in results[0]}
