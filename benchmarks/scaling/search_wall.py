"""Wall time of a grid search on a 2-worker local Dask cluster against the same search on
joblib's default backend (one process) and on joblib's process pool (loky, 2 jobs).

    python benchmarks/scaling/search_wall.py [--rows 4000] [--epochs 100] [--repeat 2]

The search: FNNRegressor(hidden (64, 64), adam, ``--epochs`` epochs, random_state=0) over 12
candidates (alpha x learning_rate_init x width of the second layer) with 3-fold cross-validation
(36 fits) on Friedman #1. Times are the best of ``--repeat`` runs; the cluster's start is timed
apart (a cluster started once serves many searches). Every mode must find the same best
parameters and scores (fastfnn's results do not depend on the thread count or the process).
Not a pytest file: run it by hand on an idle machine.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np


def setup(rows, epochs):
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import KFold

    from fastfnn import FNNRegressor

    X, y = make_friedman1(n_samples=rows, noise=1.0, random_state=0)
    est = FNNRegressor(hidden_layer_sizes=(64, 64), solver="adam", max_iter=epochs,
                       random_state=0)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 3e-3, 1e-2],
            "hidden_layer_sizes": [(64, 32), (64, 64)]}
    return est, grid, X, y, KFold(3, shuffle=True, random_state=0)


def timed(fn, repeat):
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    from fastfnn.scaling import cluster_client, search

    warnings.simplefilter("ignore", ConvergenceWarning)
    est, grid, X, y, cv = setup(args.rows, args.epochs)
    load_before = os.getloadavg()
    GridSearchCV(est.set_params(max_iter=2), grid, cv=cv).fit(X, y)  # load Numba's kernels
    est.set_params(max_iter=args.epochs)
    rows = []
    t, ref = timed(lambda: GridSearchCV(est, grid, cv=cv).fit(X, y), args.repeat)
    rows.append(("joblib default backend (1 process)", t, ref))
    t, res = timed(lambda: GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y), args.repeat)
    rows.append(("joblib loky, n_jobs=2", t, res))
    start = time.perf_counter()
    with cluster_client("local", n_workers=2, threads_per_worker=1) as client:
        startup = time.perf_counter() - start
        search(est.set_params(max_iter=2), grid, X, y, scheduler=client, cv=cv)  # warm workers
        est.set_params(max_iter=args.epochs)
        t, res = timed(lambda: search(est, grid, X, y, scheduler=client, cv=cv), args.repeat)
        rows.append(("Dask LocalCluster, 2 workers x 1 thread", t, res))
    print(f"| backend | wall (s) | speed-up | best params | best score |\n|---|---|---|---|---|")
    for name, t, res in rows:
        same = np.allclose(res.cv_results_["mean_test_score"],
                           ref.cv_results_["mean_test_score"], rtol=1e-12, atol=0)
        print(f"| {name} | {t:.2f} | {rows[0][1] / t:.2f}x | {res.best_params_} | "
              f"{res.best_score_:.4f}{'' if same else ' (scores differ!)'} |")
    print(f"\nDask cluster start (2 worker processes): {startup:.1f} s, not in the times above")
    print(f"36 fits: {args.rows * 2 // 3} training rows x {args.epochs} epochs each")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print("command: python benchmarks/scaling/search_wall.py "
          f"--rows {args.rows} --epochs {args.epochs} --repeat {args.repeat}")


if __name__ == "__main__":
    main()
