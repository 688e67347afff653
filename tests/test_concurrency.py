"""Threads, processes and the host's thread budget.

* Results are a function of the data, the parameters and the seed only: a problem whose batches
  are split into parts trains to the same bits on 1 or 2 threads, pinned to one CPU, in a forked
  child, in a joblib/loky worker and inside ``cross_validate(n_jobs=2)``.
* Fits run from several threads at once, and predictions from one shared model in several
  threads, give the bits of sequential runs and leave the BLAS libraries' thread counts (as
  threadpoolctl sees them) and Numba's as they were.
* The host's limits are respected (threadpoolctl, ``OMP_NUM_THREADS``) and a bad
  ``FASTFNN_NUM_THREADS`` is one clear ValueError on any fit.

Other processes are started with ``sys.executable -c`` and import this module to run the same
fit (``fit_problem``).
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numba
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_validate
from threadpoolctl import threadpool_info, threadpool_limits

import fastfnn._threads as threads
from fastfnn import FNNClassifier, FNNRegressor
from fastfnn._parts import training_parts

# Each batch holds 6 * 128 * (100*256 + 256*256 + 256) = 70 MFLOP of training work, and is split
# into parts whatever this machine measured (SPLIT_FLOPS, set for this module and its children).
N, N_FEATURES, HIDDEN, BATCH = 1000, 100, (256, 256), 128
PARAMS = dict(hidden_layer_sizes=HIDDEN, solver="sgd", batch_size=BATCH, max_iter=2,
              random_state=0)
DTYPES = ("float32", "float64")
SPLIT_FLOPS = "1e7"
THREAD_VARIABLES = ("FASTFNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def problem(dtype, n=N):
    rng = np.random.RandomState(0)
    X = rng.randn(n, N_FEATURES)
    y = np.tanh(X[:, :10].sum(axis=1)) + 0.1 * rng.randn(n)
    return X.astype(dtype), y.astype(dtype)


def fit_problem(dtype):
    """The problem's fitted parameters ``coefs_ + intercepts_``, and the threads the budget of
    this process gives its batches' parts as the fit starts."""
    X, y = problem(dtype)
    used = threads.part_threads(training_parts([N_FEATURES, *HIDDEN, 1], BATCH, dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(**PARAMS).fit(X, y)
    return est.coefs_ + est.intercepts_, used


def save_problem(path):
    """Child processes: save each dtype's parameters to ``path`` (npz), the threads used and
    ``max_threads()``."""
    arrays, used = {}, {"max_threads": threads.max_threads()}
    for dtype in DTYPES:
        params, used[dtype] = fit_problem(dtype)
        arrays.update({f"{dtype}_{i}": p for i, p in enumerate(params)})
    np.savez(path, used=json.dumps(used), **arrays)


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert np.array_equal(p, q), float(np.max(np.abs(p - q)))


def clean_env(**variables):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return {**env, **variables}


def child_code(*lines):
    return "\n".join([f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})",
                      *lines])


@pytest.fixture(scope="module")
def reference():
    """Each dtype's parameters fitted in this process on one thread."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTFNN_NUM_THREADS", "1")
        return {dtype: fit_problem(dtype)[0] for dtype in DTYPES}


@pytest.fixture(scope="module", autouse=True)
def split_batches():
    """The module's fits split their batches, and so do its child processes and loky workers:
    they copy the environment as they start (the reusable loky workers are restarted on the
    way in and out, so that none outlives the setting it started with)."""
    from joblib.externals.loky import get_reusable_executor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTFNN_SPLIT_FLOPS", SPLIT_FLOPS)
        get_reusable_executor().shutdown(wait=True)
        yield
    get_reusable_executor().shutdown(wait=True)


def test_the_problem_splits_batches_into_parts():
    # the premise of the comparisons below: with one part there is nothing to split
    for dtype in DTYPES:
        assert training_parts([N_FEATURES, *HIDDEN, 1], BATCH, dtype) > 1


# child processes: (environment, command prefix, {run: FASTFNN_NUM_THREADS set in the child})
CHILDREN = (
    ({}, [], {"one thread": "1", "default": None}),  # default: two threads on two CPUs or more
    ({"OMP_NUM_THREADS": "1"}, [], {"OMP_NUM_THREADS=1": None}),
    ({}, ["taskset", "-c", "0"], {"taskset -c 0": None}),
)


def child_runs(runs, tmp):
    """Lines of a child process that run ``save_problem`` once per run (FASTFNN_NUM_THREADS
    set as given, or unset), saving to ``tmp``; and the files they write."""
    lines, paths = ["import os, test_concurrency as t"], {}
    for run, value in runs.items():
        paths[run] = tmp / f"{run.replace(' ', '_')}.npz"
        lines.append(f"os.environ['FASTFNN_NUM_THREADS'] = {value!r}" if value else
                     "os.environ.pop('FASTFNN_NUM_THREADS', None)")
        lines.append(f"t.save_problem({str(paths[run])!r})")
    return lines, paths


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """``{run: (params by dtype, threads used)}`` of ``save_problem`` in the CHILDREN, all
    started at once (they must not disturb each other)."""
    tmp = tmp_path_factory.mktemp("children")
    procs = []
    for env, prefix, runs in CHILDREN:
        if prefix and not shutil.which(prefix[0]):
            continue
        lines, paths = child_runs(runs, tmp)
        procs.append((paths, subprocess.Popen(
            [*prefix, sys.executable, "-c", child_code(*lines)], env=clean_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results = {}
    for paths, proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{list(paths)}: {err[-3000:]}"
        for run, path in paths.items():
            saved = np.load(path)
            params = {dtype: [saved[f"{dtype}_{i}"] for i in range(2 * (len(HIDDEN) + 1))]
                      for dtype in DTYPES}
            results[run] = (params, json.loads(str(saved["used"])))
    return results


@pytest.mark.parametrize("name", ["one thread", "OMP_NUM_THREADS=1", "taskset -c 0"])
def test_same_bits_on_one_thread(reference, children, name):
    if name not in children:
        pytest.skip(f"no {name.split()[0]} here")
    params, used = children[name]
    assert used["max_threads"] == 1
    assert used["float32"] == used["float64"] == 1
    for dtype in DTYPES:
        assert_same_bits(params[dtype], reference[dtype])


def test_same_bits_on_the_default_threads(reference, children):
    params, used = children["default"]
    assert used["float32"] == used["float64"] == min(2, used["max_threads"])
    for dtype in DTYPES:
        assert_same_bits(params[dtype], reference[dtype])


def _fit_in_child(queue, dtype):
    queue.put(fit_problem(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_in_a_forked_child(reference, dtype, monkeypatch):
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "2")
    fit_problem(dtype)  # the parent trains on several threads (GNU OpenMP) before forking
    monkeypatch.delenv("FASTFNN_NUM_THREADS")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(queue, dtype))
    child.start()
    try:
        params, used = queue.get(timeout=120)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert_same_bits(params, reference[dtype])
    assert used == 1  # a fork of a process that trained: parts run one after the other


def test_same_bits_in_loky_workers(reference):
    results = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(fit_problem)(dtype) for dtype in DTYPES)
    for dtype, (params, _) in zip(DTYPES, results):
        assert_same_bits(params, reference[dtype])


def test_cross_validate_in_two_jobs_gives_the_bits_of_one(monkeypatch):
    X, y = problem("float32")
    est = FNNRegressor(**PARAMS)

    def run(n_jobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return cross_validate(est, X, y, cv=KFold(3), n_jobs=n_jobs, return_estimator=True)

    two = run(2)  # loky workers: the host's budget split between them
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "1")  # the reference bits (two threads: above)
    one = run(1)
    assert np.array_equal(one["test_score"], two["test_score"])
    for a, b in zip(one["estimator"], two["estimator"]):
        assert_same_bits(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)


# ---- threads in one process -----------------------------------------------------------------


def blas_view():
    """threadpoolctl's view of the BLAS libraries: (path, thread count) of each. (Numba's
    OpenMP runtime is left out: Numba starts it, with its own thread count, on first use.)"""
    return [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()
            if lib["user_api"] == "blas"]


def small_fit(seed):
    rng = np.random.RandomState(seed)
    X, y = rng.randn(200, 8), rng.randint(0, 3, 200)
    est = FNNClassifier(hidden_layer_sizes=(16, 8), max_iter=5, random_state=seed,
                        solver=("sgd", "adam", "lbfgs")[seed % 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est.coefs_ + est.intercepts_


def test_fits_from_a_thread_pool_give_the_bits_of_sequential_fits():
    before, numba_before = blas_view(), numba.get_num_threads()
    sequential = [small_fit(seed) for seed in range(8)]
    with ThreadPoolExecutor(2) as pool:
        concurrent = list(pool.map(small_fit, range(8)))
    for a, b in zip(sequential, concurrent):
        assert_same_bits(a, b)
    assert blas_view() == before
    assert numba.get_num_threads() == numba_before


def test_split_fits_from_two_threads_give_the_bits_of_one(reference, monkeypatch):
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "2")  # each fit's parts on two threads as well
    before = blas_view()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(fit_problem, DTYPES * 3))
    for dtype, (params, _) in zip(DTYPES * 3, results):
        assert_same_bits(params, reference[dtype])
    assert blas_view() == before


def test_the_blas_counts_other_threads_see_never_change_during_fits_and_predictions(
        monkeypatch):
    """Sampled from this thread while another one fits (data-parallel) and predicts: fastfnn's
    products run on a private BLAS, so no count that other code can observe ever moves."""
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "2")
    before = blas_view()
    done = threading.Event()

    def work():
        try:
            for dtype in DTYPES:
                fit_problem(dtype)
            X, y = problem("float64")
            est = FNNRegressor(hidden_layer_sizes=HIDDEN, max_iter=1, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y).predict(np.tile(X, (3, 1)))
        finally:
            done.set()

    seen = []
    with ThreadPoolExecutor(1) as pool:
        working = pool.submit(work)
        while not done.is_set():
            seen.append(blas_view())
        working.result()
    assert len(seen) > 1
    assert all(view == before for view in seen)


def test_predictions_from_a_shared_model_in_several_threads():
    X, y = problem("float64")
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    big = np.random.RandomState(1).randn(5000, N_FEATURES)  # large enough for parallel chunks
    inputs = [big, big[:7], big.astype(np.float32), big[::3]]
    expected = [est.predict(x) for x in inputs]
    before, numba_before = blas_view(), numba.get_num_threads()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(est.predict, inputs * 3))
    for i, g in enumerate(got):
        assert np.array_equal(g, expected[i % len(inputs)])
    assert blas_view() == before
    assert numba.get_num_threads() == numba_before


def test_a_fit_gives_its_bits_while_another_thread_predicts(reference, monkeypatch):
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "1")  # the fit alone: the reference's bits
    X, y = problem("float64", n=100)
    est = FNNRegressor(hidden_layer_sizes=(16,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    stop = threading.Event()

    def predict_until_stopped():
        while not stop.is_set():
            est.predict(X)

    with ThreadPoolExecutor(1) as pool:
        predicting = pool.submit(predict_until_stopped)
        try:
            fitted = {dtype: fit_problem(dtype)[0] for dtype in DTYPES}
        finally:
            stop.set()
        predicting.result()
    for dtype in DTYPES:
        assert_same_bits(fitted[dtype], reference[dtype])


# ---- the host's thread budget ---------------------------------------------------------------


def test_threadpool_limits_are_respected(reference):
    with threadpool_limits(1):
        assert threads.max_threads() == 1
        assert threads.part_threads(2) == 1
        params, used = fit_problem("float64")
    assert used == 1
    assert_same_bits(params, reference["float64"])


def test_a_fit_and_predictions_leave_the_threadpool_limits_in_place():
    X, y = problem("float64", n=300)
    with threadpool_limits(1):
        inside = blas_view()
        est = FNNRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(est.predict, [X] * 4))
        assert blas_view() == inside
        assert threads.max_threads() == 1


@pytest.mark.parametrize("value", ["abc", "0", "-3", "2.5"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_a_bad_fastfnn_num_threads_is_one_clear_error_on_any_fit(monkeypatch, value, solver):
    X, y = np.random.RandomState(0).randn(10, 2), np.arange(10) % 2
    est = FNNClassifier(hidden_layer_sizes=(2,), solver=solver, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    monkeypatch.setenv("FASTFNN_NUM_THREADS", value)
    before = est.coefs_[0].copy()
    calls = [lambda: est.fit(X, y), lambda: FNNRegressor(hidden_layer_sizes=(1,), solver=solver,
                                                          max_iter=1).fit(X, y)]
    if solver != "lbfgs":
        calls.append(lambda: est.partial_fit(X, y))
    for call in calls:
        with pytest.raises(ValueError, match="FASTFNN_NUM_THREADS") as err:
            call()
        assert repr(value) in str(err.value)
        assert err.value.__cause__ is None
    assert np.array_equal(est.coefs_[0], before)
