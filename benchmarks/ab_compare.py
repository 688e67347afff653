"""Same-process A/B of training speed: this checkout's fastfnn against another git revision.

    python benchmarks/ab_compare.py REV [--repeats 7] [--epochs 2]

The other revision's ``src/fastfnn`` is exported (``git archive``) to a temporary folder as the
package ``fastfnn_ab`` and imported beside ``fastfnn``; the benchmark configs (tiny, small, deep,
medium) are then timed alternately, A then B then A..., so that the machine's load falls on both
alike. Prints the median seconds per epoch of each and the ratio B/A, with the CPU. Also times the
cold start (kernel compilation into an empty Numba cache, in a fresh process) of each.

The timing runs twice, in two fresh processes: one imports A first, the other B. In one process
the version imported first ran up to 1.3x faster on tiny (two copies of the same code gave B/A
1.27-1.35 on a Zen 3 VM): where a version's compiled code and data land matters at this scale.
Each process's ratio is printed, and their geometric mean, in which that bias cancels.

The timing processes compile into a Numba cache of their own, thrown away after: with both
copies in one process, Numba filed versions keyed by one copy's types under the other's cache
index names, and the checkout's own cache then held entries naming ``fastfnn_ab``.

Caveat: the two versions share one process, so their parallel kernels share Numba's thread
pool. Where the versions' parallel code differs (the configs split into parts on several
threads: deep, medium, wide), this was seen to favour one side by 1.2-1.9x that runs in
separate processes did not show: compare such changes in fresh processes, alternating.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # name: (n_samples, sizes, batch_size)
    "tiny": (20000, [10, 32, 1], 32),
    "small": (20000, [20, 64, 64, 1], 64),
    "deep": (20000, [32] + [64] * 8 + [1], 64),
    "medium": (20000, [100, 256, 256, 1], 128),
    "wide": (8000, [784, 1024, 1024, 10], 256),
}


def export(rev, folder):
    """``src/fastfnn`` of ``rev`` as the package ``fastfnn_ab`` in ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/fastfnn"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (Path(folder) / "src" / "fastfnn").rename(Path(folder) / "fastfnn_ab")


def problem(config, dtype):
    n, sizes, batch = CONFIGS[config]
    rs = np.random.RandomState(0)
    X = rs.standard_normal((n, sizes[0])).astype(dtype)
    y = np.tanh(X @ rs.standard_normal(sizes[0])).astype(dtype)
    params = dict(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", batch_size=batch,
                  learning_rate_init=1e-3, random_state=0, tol=0.0, n_iter_no_change=10**6)
    return X, y, params


def epoch_seconds(cls, X, y, params, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        cls(max_iter=epochs, **params).fit(X, y)
        return (time.perf_counter() - t0) / epochs


def cold_start(package, folder):
    """Seconds of a first fit in a fresh process with an empty Numba cache."""
    code = (f"import time, numpy as np; t = time.perf_counter(); from {package} import "
            "FNNRegressor; X = np.random.rand(300, 5); FNNRegressor(hidden_layer_sizes=(8,), "
            "max_iter=2).fit(X, X[:, 0]); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=os.pathsep.join(
            [folder, str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout
    return float(out.split()[-1])


def time_both(args, folder):
    """In this process: imports the two versions in the order ``args.first`` names, times every
    config and dtype alternately, and prints one JSON line: ``{case: [A's, B's median]}``."""
    sys.path.insert(0, folder)
    import importlib

    packages = {"A": "fastfnn", "B": "fastfnn_ab"}
    order = "AB" if args.first == "A" else "BA"
    modules = {v: importlib.import_module(packages[v]) for v in order}
    result = {}
    for config in args.configs.split(","):
        for dtype in (np.float64, np.float32):
            X, y, params = problem(config, dtype)
            times = {"A": [], "B": []}
            for _ in range(2):  # warm-up: compilation and caches
                for v in order:
                    epoch_seconds(modules[v].FNNRegressor, X, y, params, 1)
            for _ in range(args.repeats):
                for v in order:
                    times[v].append(epoch_seconds(modules[v].FNNRegressor, X, y, params,
                                                  args.epochs))
            result[f"{config} {np.dtype(dtype).name}"] = [statistics.median(times["A"]),
                                                          statistics.median(times["B"])]
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the other revision (B), e.g. a commit or HEAD~3")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", default="tiny,small,deep")
    parser.add_argument("--first", choices=["A", "B"], help=argparse.SUPPRESS)  # a child
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first:
        time_both(args, args.folder)
        return
    folder = tempfile.mkdtemp(prefix="fastfnn_ab_")
    export(args.rev, folder)
    print(f"CPU: {platform.processor() or platform.machine()} "
          f"({os.cpu_count()} logical); A = this checkout, B = {args.rev}")
    runs = {}
    with tempfile.TemporaryDirectory() as cache:  # not the checkout's cache (docstring)
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for first in ("A", "B"):
            child = [sys.executable, __file__, *sys.argv[1:], "--first", first, "--folder",
                     folder]
            out = subprocess.run(child, check=True, capture_output=True, text=True,
                                 env=env).stdout
            runs[first] = json.loads(out.strip().splitlines()[-1])
    for case in runs["A"]:
        ratios = [runs[first][case][1] / runs[first][case][0] for first in ("A", "B")]
        a = statistics.median(runs[first][case][0] for first in ("A", "B"))
        b = statistics.median(runs[first][case][1] for first in ("A", "B"))
        print(f"{case:15s} A {a * 1e3:8.2f} ms/epoch   B {b * 1e3:8.2f} ms/epoch   B/A "
              f"{math.sqrt(ratios[0] * ratios[1]):5.2f} (A imported first {ratios[0]:.2f}, "
              f"B first {ratios[1]:.2f})")
    print(f"cold first fit (empty Numba cache): A {cold_start('fastfnn', folder):.1f} s, "
          f"B {cold_start('fastfnn_ab', folder):.1f} s")


if __name__ == "__main__":
    main()
