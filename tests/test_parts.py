"""Which batches are split into parts (a rule), and from what work a split batch's parts and a
prediction's chunks run on threads of their own (measured once per machine).

Oracles: the rule "the first of two widths in a row where the split gained at least MARGIN"
applied by hand to scripted and to recorded gains; the unsplit fit (a split fit agrees with it
to rounding); the cache file and fresh processes (one that cannot run two threads measures
nothing and splits as every other process does; the next one that can measures and keeps).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor
from fastfnn import _cache, _parts, _tuning


def flops(width):
    return _parts.batch_flops(_parts._ladder_sizes(width), _parts.ROWS)


def chunk_flops(width):
    return _parts.forward_flops(_parts._ladder_sizes(width), _parts.PREDICT_CHUNK)


@pytest.fixture
def fresh(monkeypatch):
    """No threshold set or memoised in this process."""
    monkeypatch.delenv("FASTFNN_SPLIT_FLOPS", raising=False)
    monkeypatch.setattr(_parts, "_chosen", {})
    monkeypatch.setattr(_tuning, "_IN_PROCESS", {})


W = _parts.WIDTHS  # 16, 24, 32, 40, 48, 64, 96, 128, 176, 256


@pytest.mark.parametrize("wins, first", [
    ({48, 64, 96, 128, 176, 256}, 48),  # two wins in a row: the first counts
    ({24, 64, 96}, 64),  # a lone win is not enough
    ({16, 24, 128}, 16),  # a loss further on does not count
    ({256}, 256),  # the widest alone: beyond it, the split is taken
    (set(), "beyond"),  # never in the timed range: from twice the widest width's work
    ({16, 48, 96, 176}, "beyond"),  # never twice in a row, and not the widest
])
def test_the_rule_on_scripted_gains(monkeypatch, wins, first):
    gains = {w: (_parts.MARGIN if w in wins else 0.99 * _parts.MARGIN) for w in W}
    entry, orders = _scripted(monkeypatch, "_pair", _parts.measure, gains)
    assert entry["split_flops"] == (2 * flops(W[-1]) if first == "beyond" else flops(first))
    assert entry["timings"] == [[w, flops(w), gains[w]] for w in W]
    # every round visits every width; every other round times the split first (twice: the
    # measurement, then its confirmation)
    assert orders == [r % 2 == 0 for r in range(_parts.ROUNDS) for _ in W] * 2


def _scripted(monkeypatch, pair_name, measure, gains):
    """``measure("float64")``, then again to confirm it, with the timed pair ``pair_name``
    replaced by one that returns ``gains[width]`` and the guard's probe by a quiet one; returns
    the confirmed entry and the order argument of every timing, in turn."""
    orders = []
    monkeypatch.setattr(_parts._guard, "probe", lambda threads: 0.99)

    def pair(width, dtype, rng):
        def timed(one_first):
            orders.append(one_first)
            return gains[width]

        return timed

    monkeypatch.setattr(_parts, pair_name, pair)
    return measure("float64", measure("float64")), orders


def _by_hand(gains, work):
    """The rule, written out: the work of the first of two widths in a row that gained
    MARGIN (the widest alone counts), else twice the widest work."""
    for i in range(len(gains)):
        if gains[i] >= _parts.MARGIN and (i == len(gains) - 1 or gains[i + 1] >= _parts.MARGIN):
            return work[i]
    return 2 * work[-1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["float64", "float32"])
def test_a_real_measurement_follows_its_own_rule(name):
    if not _parts.can_measure():
        pytest.skip("this process cannot run two threads")
    entry = _parts.measure(name)
    if not entry["timings"]:  # the machine was busy before the rounds: nothing timed
        assert entry["evidence"]["verdict"] == "deferred"
        assert entry["split_flops"] == _parts.DEFAULT_FLOPS["training"]
        return
    assert [row[:2] for row in entry["timings"]] == [[w, flops(w)] for w in W]
    gains = [row[2] for row in entry["timings"]]
    assert all(np.isfinite(g) and g > 0 for g in gains)
    # quiet once (awaiting confirmation) or busy: the default in force, the rule on its gains
    assert entry["split_flops"] == _parts.DEFAULT_FLOPS["training"]
    work = [flops(w) for w in W]
    assert _parts.threshold(gains, work) == _by_hand(gains, work)


def test_a_batch_splits_from_the_threshold_on(monkeypatch):
    sizes = [20, 64, 64, 1]
    work = _parts.batch_flops(sizes, 64)
    assert work == 6 * 64 * (20 * 64 + 64 * 64 + 64)
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", repr(work))
    assert _parts.training_parts(sizes, 64, np.float64) == _parts.PARTS
    assert _parts.training_parts(sizes, 63, np.float64) == 1
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "inf")
    assert _parts.training_parts(sizes, 10**6, np.float32) == 1


def test_each_part_keeps_eight_rows(monkeypatch):
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "0")
    assert _parts.training_parts([4, 4, 1], 15, np.float64) == 1
    assert _parts.training_parts([4, 4, 1], 16, np.float64) == 2


def test_full_batches_get_a_part_per_4096_rows(monkeypatch):
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "0")
    assert _parts.full_batch_parts([4, 4, 1], 10_000, np.float64) == 2
    assert _parts.full_batch_parts([4, 4, 1], 5 * 4096, np.float64) == 5
    assert _parts.full_batch_parts([4, 4, 1], 10**6, np.float64) == _parts.FULL_BATCH_PARTS
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "inf")
    assert _parts.full_batch_parts([4, 4, 1], 10**6, np.float64) == 1


def test_batches_below_the_smallest_timed_work_are_neither_measured_nor_split(monkeypatch,
                                                                              fresh):
    def fail(dtype):
        raise AssertionError("measured")

    monkeypatch.setattr(_parts, "_choose", fail)
    monkeypatch.setattr(_parts._threads, "part_threads", lambda parts: parts)
    sizes = [10, 32, 1]  # 6 * 32 * 352 = 68k flops a batch
    assert _parts.batch_flops(sizes, 32) < _parts.SMALLEST
    assert _parts.training_parts(sizes, 32, np.float64) == 1
    assert _parts.training_threads(sizes, 32, np.float64, 2) == 1
    assert _parts.training_parts([100, 256, 256, 1], 128, np.float64) == 2  # the rule alone
    with pytest.raises(AssertionError, match="measured"):
        _parts.training_threads([100, 256, 256, 1], 128, np.float64, 2)


@pytest.mark.parametrize("text", ["-1", "many", "nan"])
def test_a_bad_threshold_is_a_clear_error_and_the_model_stays(monkeypatch, text):
    X, y = np.random.default_rng(0).standard_normal((50, 3)), np.arange(50.0)
    est = FNNRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    before = [c.copy() for c in est.coefs_]
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", text)
    with pytest.raises(ValueError, match="FASTFNN_SPLIT_FLOPS must be a number >= 0"):
        _parts.training_parts([3, 4, 1], 200, np.float64)
    with pytest.raises(ValueError, match="FASTFNN_SPLIT_FLOPS"):
        est.partial_fit(X, y)
    for a, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_a_split_fit_agrees_with_the_whole_one(monkeypatch, dtype, rtol, solver):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 12)).astype(dtype)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2]).astype(dtype)
    params = dict(hidden_layer_sizes=(32, 16), solver=solver, batch_size=40, max_iter=5,
                  random_state=0)
    fits = {}
    for threshold in ("0", "inf"):
        monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[threshold] = FNNRegressor(**params).fit(X, y)
    split, whole = fits["0"], fits["inf"]
    for a, b in zip(split.coefs_ + split.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_one_cpu_splits_as_any_machine_on_one_thread(monkeypatch, fresh):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert _parts.parallel_flops(np.float64) == np.inf
    assert _parts.training_parts([100, 256, 256, 1], 128, np.float64) == 2
    assert _parts.training_threads([100, 256, 256, 1], 128, np.float64, 2) == 1
    assert "fewer than 2 CPUs" in _parts.describe()[0]


def test_describe_gives_the_threshold_and_the_gains_behind_it(monkeypatch, fresh):
    timings = [[16, flops(16), 0.9], [24, flops(24), 1.25], [32, flops(32), 1.5]]
    monkeypatch.setitem(_parts._chosen, ("training", np.dtype("float64")),
                        (flops(24), "measured", timings))
    monkeypatch.setitem(_parts._chosen, ("training", np.dtype("float32")),
                        (np.inf, "measured", []))
    chunk = [[8, chunk_flops(8), 0.8], [12, chunk_flops(12), 1.3], [16, chunk_flops(16), 1.4]]
    monkeypatch.setitem(_parts._chosen, ("prediction", np.dtype("float64")),
                        (chunk_flops(12), "measured", chunk))
    monkeypatch.setitem(_parts._chosen, ("prediction", np.dtype("float32")),
                        (np.inf, "measured", []))
    lines = _parts.describe()
    assert lines[0] == ("float64 training: batches of >= 2e+06 training flops are split into 2 "
                        f"parts (the rule); the parts run on one thread each from "
                        f"{flops(24):.3g} flops (measured)")
    assert lines[1].endswith("16 (3e+05 flops): 0.90x, 24 (6.7e+05 flops): 1.25x, "
                             "32 (1.2e+06 flops): 1.50x")
    assert lines[2] == ("float32 training: batches of >= 4e+06 training flops are split into 2 "
                        "parts (the rule); the parts run on one thread (measured)")
    assert lines[4] == (f"float64 predict (1024-row chunks): chunks of >= {chunk_flops(12):.3g} "
                        "forward flops run on up to one thread each (measured)")
    assert lines[5].endswith("8 (4.1e+05 flops): 0.80x, 12 (9.1e+05 flops): 1.30x, "
                             "16 (1.6e+06 flops): 1.40x")
    assert lines[6] == "float32 predict (1024-row chunks): every chunk runs on the calling thread " \
                       "(measured)"
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "1e6")
    assert "(FASTFNN_SPLIT_FLOPS)" in _parts.describe()[0]


SPLIT = textwrap.dedent("""
    import json
    import numpy as np
    from fastfnn import _parts, _tuning
    _tuning.SHIPPED = "no-shipped-file.json"  # a wheel's own measurements aside, as in a checkout
    measured = []
    real = _parts.measure
    _parts.measure = lambda name, earlier=None: measured.append(name) or real(name, earlier)
    parts = _parts.training_parts([100, 256, 256, 1], 128, np.float64)
    threads = _parts.training_threads([100, 256, 256, 1], 128, np.float64, parts)
    threshold = _parts._chosen.get(("training", np.dtype("float64")), (None, ""))[0]
    print(json.dumps({"parts": parts, "threads": threads,
                      "threshold": None if threshold == np.inf else threshold,
                      "how": _parts._chosen.get(("training", np.dtype("float64")), (0, ""))[1],
                      "measured": measured}))
""")


def _split_in_new_process(cache, prefix=(), **env):
    env = {**os.environ, "FASTFNN_CACHE_DIR": str(cache), "FASTFNN_TILE": "off", **env}
    env.pop("FASTFNN_SPLIT_FLOPS", None)
    done = subprocess.run([*prefix, sys.executable, "-c", SPLIT], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _kept(cache):
    path = cache / _tuning.FILE
    if not path.exists():
        return {}
    (entries,) = json.loads(path.read_text()).values()  # one machine
    return entries


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["FASTFNN_NUM_THREADS=1", "taskset -c 0",
                                   "NUMBA_NUM_THREADS=1"])
def test_a_process_that_cannot_run_two_threads_splits_alike_and_measures_nothing(tmp_path,
                                                                                 limit):
    """A one-thread budget, a pin to one CPU, one Numba thread as in a loky worker: the batch's
    parts are the rule's, as in every process (the parts decide the bits), run on one thread,
    and nothing is measured or kept; the next process that can run two threads measures, keeps
    its measurement (final, or deferred where the machine was busy: then the default), and
    splits the same batches."""
    if not _parts.can_measure():
        pytest.skip("this process cannot run two threads")
    name, _, value = limit.partition("=")
    if limit.startswith("taskset"):
        if not shutil.which("taskset"):
            pytest.skip("no taskset here")
        limited = _split_in_new_process(tmp_path, prefix=limit.split())
    else:
        limited = _split_in_new_process(tmp_path, **{name: value})
    assert limited["measured"] == [] and limited["threads"] == 1
    assert "training split float64" not in _kept(tmp_path)
    free = _split_in_new_process(tmp_path)
    assert free["measured"] == ["float64"]
    entry = _kept(tmp_path)["training split float64"]
    assert free["how"].startswith("measured now" if _parts._guard.final(entry)
                                  else "the default: measuring was deferred")
    assert free["threshold"] == entry["split_flops"] > 0
    assert free["parts"] == limited["parts"] == _parts.PARTS


def test_an_empty_threshold_is_unset(monkeypatch, fresh):
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", " ")
    assert _parts.split_flops(np.float64) == _parts.SPLIT_FLOPS["float64"]


def test_a_measurement_shipped_with_the_package_is_read_and_kept(monkeypatch, tmp_path):
    entry = {"split_flops": 123.0, "timings": [], "when": "2026-01-01 00:00",
             "evidence": {"verdict": "final", "why": "quiet", "probes": [0.99, 0.99, 0.99],
                          "apart": 1.01, "widest": 1.6, "quiet": 2,
                          "fastfnn": _tuning.__version__,
                          "deferrals": 0, "retry_after": 0.0}}
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({_tuning.machine_key(): {"training split float64": entry}}))
    monkeypatch.setattr(_tuning, "SHIPPED", str(shipped))
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(tmp_path / "cache"))

    def fail(earlier):
        raise AssertionError("measured")

    got, how = _tuning.cached("training split float64", fail)
    assert got == entry and how == f"measured {entry['when']}, read from {shipped}"
    assert _kept(tmp_path / "cache")["training split float64"] == entry  # kept for the others
    got, how = _tuning.cached("training split float64", fail)
    assert got == entry and str(tmp_path / "cache") in how


def test_the_cache_lock_is_reentrant_in_its_thread_and_holds_off_others(tmp_path):
    import threading

    path = str(tmp_path / "lock")
    order = []
    with _cache.locked(path):
        with _cache.locked(path):  # a measurement inside a measurement: no wait
            waiter = threading.Thread(target=_hold_and_log, args=(path, order))
            waiter.start()
            waiter.join(0.3)
            assert waiter.is_alive() and order == []  # held off while this thread holds it
        order.append("outer")
    waiter.join(10)
    assert order == ["outer", "other"]
    assert _cache._depth == 0


def _hold_and_log(path, order):
    with _cache.locked(path):
        order.append("other")


# ---- prediction's threads -------------------------------------------------------------------

P = _parts.PREDICT_WIDTHS  # 4, 6, ..., 128


@pytest.mark.parametrize("wins, first", [
    ({12, 16, 24, 32, 48, 64, 96, 128}, 12),  # two wins in a row: the first counts
    ({6, 32, 48}, 32),  # a lone win is not enough
    ({128}, 128),  # the widest alone
    (set(), "beyond"),  # never in the timed range: from twice the widest width's work
])
def test_the_prediction_rule_on_scripted_gains(monkeypatch, wins, first):
    # a loss elsewhere; at the widest width a gain short of a win (a loss there defers)
    gains = {w: (_parts.MARGIN if w in wins else 1.0 if w == P[-1] else 0.5) for w in P}
    entry, orders = _scripted(monkeypatch, "_forward_pair", _parts.measure_prediction, gains)
    assert entry["chunk_flops"] == (2 * chunk_flops(P[-1]) if first == "beyond"
                                    else chunk_flops(first))
    assert entry["timings"] == [[w, chunk_flops(w), gains[w]] for w in P]
    assert orders == [r % 2 == 0 for r in range(_parts.ROUNDS) for _ in P] * 2


@pytest.mark.slow
def test_a_real_prediction_measurement_follows_its_own_rule():
    if not _parts.can_measure():
        pytest.skip("this process cannot run two threads")
    entry = _parts.measure_prediction("float64")
    if not entry["timings"]:  # the machine was busy before the rounds: nothing timed
        assert entry["evidence"]["verdict"] == "deferred"
        assert entry["chunk_flops"] == _parts.DEFAULT_FLOPS["prediction"]
        return
    assert [row[:2] for row in entry["timings"]] == [[w, chunk_flops(w)] for w in P]
    gains = [row[2] for row in entry["timings"]]
    assert all(np.isfinite(g) and g > 0 for g in gains)
    assert entry["chunk_flops"] == _parts.DEFAULT_FLOPS["prediction"]  # not confirmed yet
    work = [chunk_flops(w) for w in P]
    assert _parts.threshold(gains, work) == _by_hand(gains, work)


def test_chunks_run_on_threads_from_the_measured_work_on(monkeypatch, fresh):
    """Several chunks whose work reaches the threshold get up to one thread each (within the
    budget ``part_threads`` gives); fewer rows than a chunk a thread, an equal share each where
    that share's work reaches it, and at least a chunk of the direct path; less work, one
    thread."""
    from fastfnn import _threads, network

    monkeypatch.setenv("FASTFNN_NUM_THREADS", "2")
    sizes = [20, 64, 64, 1]
    chunk = _parts.forward_flops(sizes, _parts.PREDICT_CHUNK)
    assert chunk == 2 * 1024 * (20 * 64 + 64 * 64 + 64)
    key = ("prediction", np.dtype("float64"))
    monkeypatch.setitem(_parts._chosen, key, (chunk, "measured", []))
    assert _parts.prediction_threads(sizes, 2045, np.float64) == 1  # shares of 1023 rows
    assert _parts.prediction_threads(sizes, 2047, np.float64) == _threads.part_threads(2)
    assert _parts.prediction_threads(sizes, 10**5, np.float64) == _threads.part_threads(98)
    half = _parts.forward_flops(sizes, 500)  # 1,000 rows: two parts of 500 from that work on
    monkeypatch.setitem(_parts._chosen, key, (half, "measured", []))
    assert _parts.prediction_threads(sizes, 1000, np.float64) == _threads.part_threads(2)
    assert _parts.prediction_threads(sizes, 998, np.float64) == 1  # shares of 499 rows
    monkeypatch.setitem(_parts._chosen, key, (0.0, "measured", []))  # any work pays, but
    assert _parts.prediction_threads(sizes, 2 * network.DIRECT_ROWS - 1, np.float64) == 1
    assert _parts.prediction_threads(sizes, 2 * network.DIRECT_ROWS,  # a chunk a thread
                                     np.float64) == _threads.part_threads(2)
    monkeypatch.setitem(_parts._chosen, key, (chunk + 1, "measured", []))
    assert _parts.prediction_threads(sizes, 10**5, np.float64) == 1
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "1")
    monkeypatch.setitem(_parts._chosen, key, (0.0, "measured", []))
    assert _parts.prediction_threads(sizes, 10**5, np.float64) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_forward_pass_gives_its_bits_on_any_number_of_threads(monkeypatch, dtype):
    """Oracle: the same forward on one thread; chunks of 7 rows, so 100 rows make 15."""
    from fastfnn import network

    monkeypatch.setattr(network, "PREDICT_CHUNK", 7)
    rng = np.random.default_rng(4)
    net = network.Network([9, 32, 16, 2], "relu", "identity", "squared_error", dtype)
    net.theta[:] = rng.uniform(-0.5, 0.5, net.theta.size)
    X = rng.standard_normal((100, 9)).astype(dtype)
    one = net.forward(X, 1)
    for threads in (2, 3, 15, 40):
        np.testing.assert_array_equal(net.forward(X, threads), one)


def test_predict_runs_on_the_threads_the_measurement_gives(monkeypatch, fresh):
    """An estimator's predict hands the forward pass the threads of ``prediction_threads``,
    on the direct path (a plain array) and the general one (a DataFrame): several from a
    threshold of 0, one from inf."""
    import pandas as pd

    from fastfnn import _base, network

    seen = []
    general, direct = network.Network.forward, _base.forward_direct
    monkeypatch.setattr(network.Network, "forward", lambda self, X, threads=1: seen.append(
        ("general", threads)) or general(self, X, threads))
    monkeypatch.setattr(_base, "forward_direct", lambda *args: seen.append(
        ("direct", args[-1])) or direct(*args))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2500, 5)), rng.standard_normal(2500)
    est = FNNRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    from fastfnn._threads import part_threads

    for threshold, expected in ((0.0, part_threads(3)), (np.inf, 1)):  # 2500 rows: 3 chunks
        monkeypatch.setitem(_parts._chosen, ("prediction", np.dtype("float64")),
                            (threshold, "measured", []))
        seen.clear()
        est.predict(X)
        est.predict(pd.DataFrame(X))
        assert seen == [("direct", expected), ("general", expected)]
