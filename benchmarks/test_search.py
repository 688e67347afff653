"""Many networks in one call: searches and ensembles against scikit-learn's loop, same run.

* search: 16 candidates (4 alpha x 4 learning_rate_init, one seed), 5 folds, adam, 50 epochs,
  no early stopping, on the suite's tiny and small shapes with 5,000 rows: FNNGridSearchCV
  (n_jobs 1 and 2; and with FASTFNN_LANES=on, its candidates as lanes) against
  GridSearchCV(FNNRegressor) (n_jobs 1 and 2) and GridSearchCV(MLPRegressor, n_jobs=2);
* ensemble: 8 (64, 64) members against 8 fits one after another;
* candidates trained per second against the number of candidates (1 to 256), one fold.

Medians of interleaved rounds; the ratios are printed with the CPU and kept in pytest-benchmark's
``extra_info``. With ``SEARCH_PLOT=FILE`` in the environment, the candidates-per-second curve
is drawn to FILE.

    SEARCH_PLOT=benchmarks/search_candidates.png \
        python -m pytest benchmarks/test_search.py --benchmark-only -s
"""

import os
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPRegressor

from fastfnn import FNNEnsembleRegressor, FNNGridSearchCV, FNNRegressor
from fastfnn._fitmany import fit_together
from fastfnn.bench.cases import CONFIGS
from fastfnn.bench.report import _cpu_name as cpu_name

ROWS, EPOCHS, FOLDS = 5000, 50, 5
GRID = {"alpha": [1e-5, 1e-4, 1e-3, 1e-2], "learning_rate_init": [3e-4, 1e-3, 3e-3, 1e-2]}
COUNTS = (1, 4, 16, 64, 256)


def problem(config, rows=ROWS):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, config.n_features))
    return X, np.tanh(X[:, 0]) + X[:, 1] * X[:, 2]


def params(config, epochs=EPOCHS):
    return dict(hidden_layer_sizes=config.hidden, batch_size=config.batch_size, max_iter=epochs,
                n_iter_no_change=epochs, random_state=0)


def seconds(fn):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fn()
    return time.perf_counter() - start


def medians(runs, rounds):
    """Median seconds of each named run over ``rounds`` interleaved rounds."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            times[name].append(seconds(fn))
    return {name: float(np.median(t)) for name, t in times.items()}


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_grid_search(benchmark, monkeypatch, name):
    config = CONFIGS[name]
    monkeypatch.delenv("FASTFNN_LANES", raising=False)  # the default: to the bit
    X, y = problem(config)
    cv = KFold(FOLDS)
    net = FNNRegressor(**params(config))

    def laned(n_jobs):  # FASTFNN_LANES=on: a seed's candidates on a fold as lanes
        monkeypatch.setenv("FASTFNN_LANES", "on")
        try:
            FNNGridSearchCV(net, GRID, cv=cv, n_jobs=n_jobs).fit(X, y)
        finally:
            monkeypatch.delenv("FASTFNN_LANES")

    searches = {
        "FNNGridSearchCV n_jobs=2": lambda: FNNGridSearchCV(net, GRID, cv=cv, n_jobs=2).fit(X, y),
        "FNNGridSearchCV n_jobs=1": lambda: FNNGridSearchCV(net, GRID, cv=cv, n_jobs=1).fit(X, y),
        "lanes n_jobs=2": lambda: laned(2),
        "lanes n_jobs=1": lambda: laned(1),
        "GridSearchCV(FNN) n_jobs=1": lambda: GridSearchCV(net, GRID, cv=cv, n_jobs=1).fit(X, y),
        "GridSearchCV(FNN) n_jobs=2": lambda: GridSearchCV(net, GRID, cv=cv, n_jobs=2).fit(X, y),
    }
    FNNGridSearchCV(clone(net).set_params(max_iter=1), GRID, cv=2, n_jobs=2).fit(X[:500], y[:500])
    t = medians(searches, rounds=3)
    mlp = MLPRegressor(**params(config))
    t["GridSearchCV(MLP) n_jobs=2"] = seconds(
        lambda: GridSearchCV(mlp, GRID, cv=cv, n_jobs=2).fit(X, y))
    best_fnn = min(t["GridSearchCV(FNN) n_jobs=1"], t["GridSearchCV(FNN) n_jobs=2"])
    ours = t["FNNGridSearchCV n_jobs=2"]
    ratios = {"vs GridSearchCV(FNN), best n_jobs": best_fnn / ours,
              "vs GridSearchCV(MLP) n_jobs=2": t["GridSearchCV(MLP) n_jobs=2"] / ours,
              "2 threads vs 1": t["FNNGridSearchCV n_jobs=1"] / ours,
              "lanes (best n_jobs) vs GridSearchCV(FNN)":
                  best_fnn / min(t["lanes n_jobs=1"], t["lanes n_jobs=2"])}
    benchmark.group = f"search {name}"
    benchmark.extra_info.update(cpu=cpu_name(), seconds=t, ratios=ratios)
    benchmark.pedantic(searches["FNNGridSearchCV n_jobs=2"], rounds=1, iterations=1)
    print(f"\nsearch {name}: 16 candidates x {FOLDS} folds, {EPOCHS} epochs, {ROWS} rows "
          f"({cpu_name()}, load {os.getloadavg()[0]:.2f})")
    for run, s in t.items():
        print(f"  {run:28s} {s:8.2f} s")
    for what, r in ratios.items():
        print(f"  {what:36s} {r:6.2f}x")


def test_ensemble(benchmark):
    config = CONFIGS["small"]
    X, y = problem(config)
    net = FNNRegressor(**params(config, epochs=20))
    seeds = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=8)
    runs = {
        "FNNEnsembleRegressor(8)": lambda: FNNEnsembleRegressor(net, 8, random_state=0,
                                                                n_jobs=-1).fit(X, y),
        "8 fits one after another": lambda: [clone(net).set_params(random_state=int(s)).fit(X, y)
                                             for s in seeds],
    }
    runs["FNNEnsembleRegressor(8)"]()
    t = medians(runs, rounds=3)
    ratio = t["8 fits one after another"] / t["FNNEnsembleRegressor(8)"]
    benchmark.group = "ensemble"
    benchmark.extra_info.update(cpu=cpu_name(), seconds=t, ratio=ratio)
    benchmark.pedantic(runs["FNNEnsembleRegressor(8)"], rounds=1, iterations=1)
    print(f"\nensemble of 8 (64, 64), 20 epochs ({cpu_name()}, load {os.getloadavg()[0]:.2f}): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()) + f"; {ratio:.2f}x")


def test_candidates_per_second(benchmark):
    """Models trained per second (tiny shape, 2,000 rows, 20 epochs, one fold, one seed: as a
    search's candidates, lanes) for 1 to 256 candidates, on 1 and 2 threads, against one fit
    after another."""
    config = CONFIGS["tiny"]
    X, y = problem(config, rows=2000)
    net = FNNRegressor(**params(config, epochs=20))
    alphas = np.logspace(-6, 0, max(COUNTS))
    rows = []
    for count in COUNTS:
        def together(n_jobs, count=count):
            jobs = [(clone(net).set_params(alpha=a), X, y, None) for a in alphas[:count]]
            fit_together(jobs, n_jobs=n_jobs, lanes=True)  # as the searches train them

        def solo(count=count):
            for a in alphas[:count]:
                clone(net).set_params(alpha=a).fit(X, y)

        t = medians({"2 threads": lambda: together(2), "1 thread": lambda: together(1),
                     "one after another": solo}, rounds=3 if count <= 16 else 1)
        rows.append((count, *(count / t[k] for k in ("2 threads", "1 thread",
                                                     "one after another"))))
    benchmark.group = "candidates per second"
    benchmark.extra_info.update(cpu=cpu_name(), rows=rows)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\ncandidates per second, tiny shape, 2,000 rows, 20 epochs ({cpu_name()}):")
    print("| candidates | together, 2 threads | together, 1 thread | one after another |")
    print("|---:|---:|---:|---:|")
    for count, two, one, solo_rate in rows:
        print(f"| {count} | {two:.1f} | {one:.1f} | {solo_rate:.1f} |")
    plot = os.environ.get("SEARCH_PLOT")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        counts = [r[0] for r in rows]
        for column, label in ((1, "together, 2 threads"), (2, "together, 1 thread"),
                              (3, "one after another")):
            ax.plot(counts, [r[column] for r in rows], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("candidates in the call")
        ax.set_ylabel("candidates trained per second")
        ax.set_title(f"tiny (10-32-1), 2,000 rows, 20 epochs\n{cpu_name()}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
