"""A busy moment cannot poison a measurement: the guard probes whether two threads each get a CPU,
defers a measurement taken while they do not (the safe default in force, nothing kept as final,
a retry time kept with the evidence), retries no sooner than that, and measures again when the
machine is quiet; a quiet measurement is final only once a second one at another moment confirms
it (a shared host's spell passes every other check); ``fastfnn bench --retune`` measures again on
demand.

Oracles: a real process spinning on one of the two CPUs this process's threads may use (the probe
must see it; a fit under it must defer and keep the default); the cache file's content after the
fact; counts of the probe's and the measurement's calls with the clock and the probe injected
(the decisions are then deterministic; nothing here asserts a timing).
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor, _guard, _parts, _threads, _tuning, bench

KEY = "test machine | fastfnn " + _tuning.__version__
QUIET, BUSY = 0.99, 0.5  # probe shares
# per width of _parts.WIDTHS: wins from 48
GAINS = [0.8, 0.9, 1.0, 1.05, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8]


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh cache folder, no shipped file, a fixed machine key, nothing memoised, a clock at
    1e9 s that tests move (``clock.now``), and a process that may measure."""
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTFNN_SPLIT_FLOPS", raising=False)
    monkeypatch.setattr(_tuning, "SHIPPED", str(tmp_path / "no-shipped-file.json"))
    monkeypatch.setattr(_tuning, "machine_key", lambda: KEY)
    monkeypatch.setattr(_parts, "_chosen", {})
    monkeypatch.setattr(_tuning, "_IN_PROCESS", {})
    clock = lambda: clock.now  # noqa: E731
    clock.now, clock.sleeps = 1e9, []
    monkeypatch.setattr(_guard, "clock", clock)
    monkeypatch.setattr(_guard, "sleep", clock.sleeps.append)  # the pauses a confirmation takes
    return tmp_path / "cache"


@pytest.fixture
def machine(monkeypatch, cache):
    """The machine as the tests script it: ``machine.shares`` (the probe's answers in turn, the
    last one repeated) and ``machine.gains`` (every round's gains); counts ``probes`` and the
    rounds timed (``rounds``)."""

    class Machine:
        shares, gains, probes, rounds = [QUIET], GAINS, 0, 0

    monkeypatch.setattr(_parts, "can_measure", lambda: True)
    monkeypatch.setattr(_parts.os, "cpu_count", lambda: 2)

    def probe(threads):
        Machine.probes += 1
        return Machine.shares[min(Machine.probes, len(Machine.shares)) - 1]

    def rounds(make_pair, widths, name, probes):
        Machine.rounds += 1
        probes += [probe(2), probe(2)]  # between the halves, after them
        gains = list(Machine.gains) + [Machine.gains[-1]] * len(widths)  # the last repeated
        return [gains[:len(widths)]] * _parts.ROUNDS

    monkeypatch.setattr(_guard, "probe", probe)
    monkeypatch.setattr(_parts, "_rounds", rounds)
    return Machine


def kept(cache, name="training split float64"):
    return json.loads((cache / _tuning.FILE).read_text())[KEY][name]


def flops(width):
    return _parts.batch_flops(_parts._ladder_sizes(width), _parts.ROWS)


DEFAULT = _parts.DEFAULT_FLOPS["training"]


def confirmed(lookup, *args):
    """``lookup(*args)`` once a confirmation is due: looked up (measured once), then again
    CONFIRM_SECONDS later (measured again, to confirm)."""
    lookup(*args)
    _guard.clock.now += _guard.CONFIRM_SECONDS
    return lookup(*args)


# ---- a real busy core ------------------------------------------------------------------------


@pytest.fixture
def busy_core():
    """A process spinning on the first of two CPUs, and this thread (and the threads it starts)
    pinned to those two: one of the two CPUs the probe's threads may use is taken."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs and CPU affinity")
    before = os.sched_getaffinity(0)
    a, b = sorted(before)[:2]
    spinner = subprocess.Popen(
        [sys.executable, "-c", f"import os, sys\nos.sched_setaffinity(0, {{{a}}})\n"
         "print('spinning', flush=True)\nwhile True:\n    pass\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout.readline().strip() == "spinning"
        os.sched_setaffinity(0, {a, b})
        yield spinner
    finally:
        os.sched_setaffinity(0, before)
        spinner.kill()
        spinner.wait()


def test_a_probe_that_cannot_start_its_threads_says_busy_and_leaves_none_waiting(monkeypatch):
    import threading

    real, started = threading.Thread.start, []

    def start(self):
        if started:
            raise RuntimeError("can't start new thread")
        started.append(self)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    assert _guard.probe(2) == 0.0
    assert not started[0].is_alive()


def test_the_probe_finds_a_core_another_process_keeps_busy(busy_core):
    shares = [_guard.probe(2) for _ in range(3)]
    assert max(shares) < _guard.AVAILABLE, shares
    final, why = _guard.verdict(shares[:1])
    assert not final and why.startswith("busy before measuring")


def test_a_fit_on_a_busy_core_defers_keeps_the_default_and_a_later_call_measures(
        monkeypatch, cache, busy_core):
    """A fit whose batches split, and its prediction in chunks, on a busy core: nothing is timed,
    the file keeps deferred entries holding the defaults (not a poisoned 'one thread'), and the
    next fits use them without probing; once the retry time has come (the clock moved), the
    next lookup probes again and, the core free, times the rounds."""
    if _threads.part_threads(2) < 2 or not _parts.can_measure():
        pytest.skip("this process cannot run two threads")
    timed = []
    real_rounds = _parts._rounds
    monkeypatch.setattr(_parts, "_rounds", lambda *a: timed.append(a[2]) or real_rounds(*a))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2100, 10)), rng.standard_normal(2100)
    est = FNNRegressor(hidden_layer_sizes=(256, 256), batch_size=200, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X[:400], y[:400])  # 82 MFLOP a batch: split, its parts' threads looked up
    predicted = est.predict(X)  # three chunks: prediction's threads looked up
    monkeypatch.setenv("FASTFNN_NUM_THREADS", "1")  # the oracle: one thread, nothing measured
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = FNNRegressor(**est.get_params()).fit(X[:400], y[:400])
    for a, b in zip(est.coefs_ + [predicted], one.coefs_ + [one.predict(X)]):
        assert np.array_equal(a, b)  # the measurement's fate changed no bit
    monkeypatch.delenv("FASTFNN_NUM_THREADS")
    for name, field, what in (("training split float64", "split_flops", "training"),
                              ("prediction threads float64", "chunk_flops", "prediction")):
        entry = kept(cache, name)
        assert entry["evidence"]["verdict"] == "deferred"
        assert min(entry["evidence"]["probes"]) < _guard.AVAILABLE
        if entry["evidence"]["probes"][0] < _guard.AVAILABLE:  # found busy first: not timed
            assert entry["timings"] == []
        assert entry[field] == _parts.DEFAULT_FLOPS[what]
        assert entry["evidence"]["deferrals"] == 1
        assert entry["evidence"]["retry_after"] == 1e9 + _guard.RETRY_SECONDS
    # the next fit splits its batches onto two threads, as on a quiet machine: no poison
    assert _parts.training_threads([10, 256, 256, 1], 200, np.float64, 2) == 2
    assert len(timed) == sum(len(kept(cache, n)["timings"]) > 0 for n in (
        "training split float64", "prediction threads float64"))
    busy_core.kill()
    busy_core.wait()
    del timed[:]
    probes = []
    real_probe = _guard.probe
    monkeypatch.setattr(_guard, "probe", lambda threads: probes.append(1) or real_probe(threads))
    _parts._chosen.clear()  # a new process: reads the file
    assert _parts.parallel_flops(np.float64) == _parts.DEFAULT_FLOPS["training"]
    assert probes == []  # not due: no probe
    _guard.clock.now += _guard.RETRY_SECONDS
    threshold = _parts.parallel_flops(np.float64)  # due: probed, and measured where quiet
    entry = kept(cache)
    evidence = entry["evidence"]
    assert probes and threshold == max(_parts.SMALLEST, entry["split_flops"]) == DEFAULT
    assert evidence["verdict"] == "deferred"
    if evidence["quiet"]:  # quiet once: its gains kept, confirmed a minute later
        assert timed and entry["timings"] and evidence["deferrals"] == 1  # the count anew
        assert evidence["retry_after"] == _guard.clock.now + _guard.CONFIRM_SECONDS
    else:  # another process loaded the machine meanwhile: deferred once more, waits longer
        assert evidence["deferrals"] == 2
        assert evidence["retry_after"] == _guard.clock.now + 2 * _guard.RETRY_SECONDS


# ---- the verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize("shares, gains, verdict", [
    ([QUIET], GAINS, "final"),
    ([BUSY], GAINS, "busy before measuring"),
    ([QUIET, BUSY, QUIET], GAINS, "busy between the halves"),
    ([QUIET, QUIET, BUSY], GAINS, "busy after them"),
])
def test_a_measurement_is_final_only_where_every_probe_found_the_machine_free(
        machine, shares, gains, verdict):
    machine.shares = shares
    entry = _parts.measure("float64")
    if verdict == "final":  # quiet, then confirmed by a second quiet measurement
        assert _guard.unconfirmed(entry) and entry["split_flops"] == DEFAULT
        assert "at another moment" in entry["evidence"]["why"]
        entry = _parts.measure("float64", entry)
        assert _guard.final(entry) and entry["split_flops"] == flops(48)
        assert entry["evidence"]["probes"] == [QUIET] * 3 and entry["evidence"]["apart"] == 1.0
        assert entry["evidence"]["quiet"] == 2
    else:
        assert entry["evidence"]["verdict"] == "deferred" and entry["evidence"]["quiet"] == 0
        assert entry["evidence"]["why"].startswith(verdict)
        assert entry["split_flops"] == DEFAULT
    assert machine.rounds == {"final": 2, "busy before measuring": 0}.get(verdict, 1)
    assert entry["timings"] == ([] if verdict == "busy before measuring"
                                else [[w, flops(w), g] for w, g in zip(_parts.WIDTHS, gains)])


def test_halves_that_disagree_defer_the_measurement(machine, monkeypatch):
    """Load that came and went between the probes: the first half's rounds lost (0.5x), the
    second won; the medians of all rounds would have said something, the guard defers."""
    def rounds(make_pair, widths, name, probes):
        probes += [QUIET, QUIET]
        slow = [g * 0.5 for g in GAINS]
        return [slow] * (_parts.ROUNDS // 2) + [list(GAINS)] * (_parts.ROUNDS // 2)

    monkeypatch.setattr(_parts, "_rounds", rounds)
    entry = _parts.measure("float64")
    # All rounds (0.75x GAINS) split from 96 wide, gaining 1.125x there: the slow half loses
    # 1 / 0.75 there instead.
    assert entry["evidence"]["verdict"] == "deferred"
    assert entry["evidence"]["apart"] == pytest.approx(4 / 3, abs=1e-4)
    assert "disagree on the choice" in entry["evidence"]["why"]
    assert entry["split_flops"] == _parts.DEFAULT_FLOPS["training"]


# Halves of a float32 split measurement on a noisy Ice Lake Xeon VM, every probe at 98-99%: 1.21x
# apart at 32 units wide, where the choice of all the rounds (from 48 wide) runs whole.
NOISY_HALVES = ([0.80, 0.87, 0.85, 1.03, 1.08, 1.18, 1.32, 1.37, 1.48, 1.55],
                [0.81, 0.93, 1.03, 1.13, 1.18, 1.22, 1.33, 1.32, 1.40, 1.54])


def test_halves_apart_in_their_gains_but_agreeing_on_the_choice_are_quiet(machine, monkeypatch):
    def rounds(make_pair, widths, name, probes):
        probes += [QUIET, QUIET]
        return [NOISY_HALVES[0]] * (_parts.ROUNDS // 2) + [NOISY_HALVES[1]] * (_parts.ROUNDS // 2)

    monkeypatch.setattr(_parts, "_rounds", rounds)
    entry = _parts.measure("float32")
    assert _guard.unconfirmed(entry), entry["evidence"]["why"]
    # At 40 wide, run whole, all the rounds gain 1.08x, the second half 1.13x (the worst
    # width: it does not count); at 32, all the rounds 0.94x (no loss run whole), the second
    # half 1.03x.
    assert entry["evidence"]["apart"] == pytest.approx(1.03, abs=1e-4)
    assert entry["evidence"]["why"].startswith("quiet")
    confirmed = _parts.measure("float32", entry)
    assert _guard.final(confirmed) and confirmed["split_flops"] == flops(48)


def test_halves_apart_at_a_single_width_near_the_crossover_are_quiet(machine, monkeypatch):
    """A quiet EPYC VM's noise: at 48 wide, the crossover, one half gains 1.3x where the other
    loses (0.85x), so that all the rounds gain 1.075x there and run it whole: by the first half
    that loses 1.3 / 1.075 = 1.21x, more than AGREE, while every other width agrees. One width
    is not a busy half (deferred while the worst width counted): quiet, then confirmed, its
    threads from the next width."""
    noisy = list(GAINS)
    noisy[4] = 0.85

    def rounds(make_pair, widths, name, probes):
        probes += [QUIET, QUIET]
        return [list(GAINS)] * (_parts.ROUNDS // 2) + [noisy] * (_parts.ROUNDS // 2)

    monkeypatch.setattr(_parts, "_rounds", rounds)
    entry = _parts.measure("float64")
    assert _guard.unconfirmed(entry), entry["evidence"]["why"]
    assert entry["evidence"]["apart"] == 1.0
    confirmed = _parts.measure("float64", entry)
    assert _guard.final(confirmed) and confirmed["split_flops"] == flops(64)


@pytest.mark.parametrize("first, second, splits, cost", [
    ([[1.0]], [[1.1]], [False], 1.1 / 1.05),  # one width: run whole: 1.1x, all 1.05x
    # two widths: 1.1 / 1.05 at the first, its worst, does not count; none at the second
    ([[1.0, 2.0]], [[1.1, 1.9]], [False, True], 1.0),
    # a busy half: all the rounds split from the widest width (1.25x), the busy half loses
    # 1 / 0.7 there; the other gains 1.5x where all gain 1.05x, the width run whole: two
    # widths apart, the second as far as the first
    ([[0.5, 0.6, 0.7]], [[1.0, 1.5, 1.8]], [False, False, True], 1.5 / 1.05),
    # quiet noise near the crossover: at one width, run whole, a half gains 1.6x where all
    # the rounds gain 1.3x (1.23x apart: deferred while the worst width counted); none else
    ([[1.0, 1.0, 1.6, 1.8]], [[1.0, 1.6, 1.6, 1.8]], [False, False, True, True], 1.0),
    # a busy half (0.5x everywhere) where the choice splits the widest width alone: that one
    # width is 1 / 0.75 apart, beyond ONE_WIDTH, and counts
    ([[0.5, 0.525, 0.55, 0.75]] * 2, [[1.0, 1.05, 1.1, 1.5]] * 2,
     [False, False, False, True], 1 / 0.75),
    ([[0.9, 1.5]], [[0.95, 1.6]], [False, True], 1.0),  # neither half sees a loss
    ([[1.5, 1.0]], [[1.5, 1.0]], [False, False], 1.0),  # a lone win the rule runs whole
    ([[2.0, 1.0], [0.5, 1.0], [1.0, 1.0]], [[1.0, 1.0]], [True, True], 1.0),  # medians
])
def test_apart_is_the_loss_a_half_sees_beyond_all_the_rounds(first, second, splits, cost):
    assert _guard.apart(first, second, splits) == pytest.approx(cost)


def test_two_threads_losing_at_every_width_defer_the_measurement(machine):
    """A vCPU taken away for seconds between the probes: every probe found both CPUs, the
    halves agree, but two threads lost at every width, the widest too (gains a VM gave while
    its second vCPU was gone). Kept as final, it would run every batch on one thread."""
    machine.gains = [0.43, 0.56, 0.44, 0.5, 0.58, 0.58, 0.65, 0.78, 0.85, 0.75]
    entry = _parts.measure("float32")
    assert entry["evidence"]["verdict"] == "deferred" and entry["evidence"]["widest"] == 0.75
    assert entry["evidence"]["why"].startswith("two threads lost at the widest width")
    assert entry["split_flops"] == _parts.DEFAULT_FLOPS["training"]
    machine.gains = GAINS  # quiet again: the same measurement is quiet, and then confirmed
    assert not _guard.unconfirmed(entry)  # a deferral for a loss is never confirmed
    first = _parts.measure("float32", entry)
    assert _guard.unconfirmed(first) and first["timings"][-1][2] == GAINS[-1]
    assert _guard.final(_parts.measure("float32", first))


# ---- a shared host's spell: confirmed at another moment -------------------------------------

# Gains a 2-vCPU EPYC (Zen 5) gave in a spell of its host, every probe at 99% and the halves
# agreeing: two threads that share data lose up to 96 units wide (GAINS: the same machine out of
# a spell wins from 48 on).
SPELL = [0.54, 0.62, 0.65, 0.73, 0.69, 0.79, 0.9, 1.14, 1.17, 1.18]


@pytest.mark.parametrize("first, second, wins_from", [
    (SPELL, GAINS, 48), (GAINS, SPELL, 48), (GAINS, GAINS, 48),
    (SPELL, SPELL, 128),  # both in spells: the spell is kept (each alone would have been)
])
def test_a_quiet_measurement_is_final_once_another_moment_confirms_it(
        machine, cache, first, second, wins_from):
    """A measurement that falls whole in a spell passes every check of its own. It is kept
    deferred, the default in force, until a second quiet measurement at least a minute later;
    then each width keeps the larger of the two gains, so one spell alone cannot poison the
    choice."""
    machine.gains = first
    assert _parts.parallel_flops(np.float64) == DEFAULT
    entry = kept(cache)
    assert _guard.unconfirmed(entry) and [t[2] for t in entry["timings"]] == first
    assert entry["evidence"]["retry_after"] == 1e9 + _guard.CONFIRM_SECONDS
    machine.gains = second
    _guard.clock.now += _guard.CONFIRM_SECONDS
    _parts._chosen.clear()  # a new process, a minute later
    assert _parts.parallel_flops(np.float64) == flops(wins_from)
    entry = kept(cache)
    assert _guard.final(entry) and entry["evidence"]["quiet"] == 2
    assert [t[2] for t in entry["timings"]] == list(np.maximum(first, second))
    assert machine.rounds == 2


@pytest.mark.parametrize("lost", ["no folder", "a failed write"])
def test_without_a_cache_file_the_process_confirms_its_own_measurement(
        machine, cache, monkeypatch, lost):
    """Nowhere to keep a measurement (a file in the folder's place; a write that fails, as on
    a full disk): the process keeps its own, so a minute later a second quiet one confirms it,
    and nothing is measured after that (it measured again every minute, never leaving the
    default)."""
    if lost == "no folder":
        cache.parent.mkdir(exist_ok=True)
        cache.write_text("not a folder")
    else:
        monkeypatch.setattr(_tuning._cache, "write_json", lambda path, table: False)
    assert _parts.parallel_flops(np.float64) == DEFAULT
    for _ in range(3):
        _guard.clock.now += _guard.CONFIRM_SECONDS + 1
        assert _parts.parallel_flops(np.float64) == flops(48)  # where GAINS win
    assert machine.rounds == 2
    why = ("no usable cache folder" if lost == "no folder"
           else f"{cache / _tuning.FILE} could not be written")
    assert f"this process ({why})" in _parts.describe()[0]


def test_gains_of_other_widths_or_of_a_busy_moment_confirm_nothing(machine):
    quiet = _parts.measure("float64")
    other = dict(quiet, timings=quiet["timings"][1:])  # another ladder of widths
    assert _parts.measure("float64", other)["evidence"]["quiet"] == 1
    machine.shares = [BUSY]
    busy = _parts.measure("float64", quiet)  # busy now: not timed, nothing of the earlier kept
    assert busy["evidence"]["quiet"] == 0 and busy["timings"] == []


def test_a_busy_confirmation_backs_off_as_a_second_deferral_in_a_row(machine, cache):
    """Busy, then quiet once (the count of busy deferrals starts anew), then busy when due:
    deferred, the quiet gains dropped, the next try 20 minutes on, as after two busy
    deferrals in a row (not three: 40 minutes)."""
    machine.shares = [BUSY, QUIET]
    assert _parts.parallel_flops(np.float64) == DEFAULT
    assert kept(cache)["evidence"]["deferrals"] == 1
    _guard.clock.now += _guard.RETRY_SECONDS
    _parts._chosen.clear()
    assert _parts.parallel_flops(np.float64) == DEFAULT
    assert (kept(cache)["evidence"]["quiet"], kept(cache)["evidence"]["deferrals"]) == (1, 1)
    machine.shares, machine.probes = [BUSY], 0
    _guard.clock.now += _guard.CONFIRM_SECONDS
    _parts._chosen.clear()
    assert _parts.parallel_flops(np.float64) == DEFAULT
    evidence = kept(cache)["evidence"]
    assert (evidence["quiet"], evidence["deferrals"]) == (0, 2)
    assert evidence["retry_after"] == _guard.clock.now + 2 * _guard.RETRY_SECONDS


def test_a_quiet_measurement_shipped_in_the_wheel_is_confirmed_after_the_first_fit(
        machine, cache, tmp_path, monkeypatch):
    """Built on this machine, quiet once: the first fit after the install measures nothing and
    takes the default; a fit a minute later measures, and the build's gains count with its own
    (here it fell in a spell: the build's win)."""
    shipped = tmp_path / "shipped.json"
    build = _guard.postponed(_parts.measure("float64"), 1.0, 1)
    shipped.write_text(json.dumps({KEY: {"training split float64": build}}))
    monkeypatch.setattr(_tuning, "SHIPPED", str(shipped))
    assert _parts.parallel_flops(np.float64) == DEFAULT and machine.rounds == 1
    assert kept(cache)["evidence"]["retry_after"] == 1e9 + _guard.CONFIRM_SECONDS
    machine.gains = SPELL
    _guard.clock.now += _guard.CONFIRM_SECONDS
    _parts._chosen.clear()
    assert _parts.parallel_flops(np.float64) == flops(48) and machine.rounds == 2
    assert _guard.final(kept(cache))


# ---- deferral, retries and their rate ------------------------------------------------------


def test_a_deferred_choice_is_retried_only_when_due_and_backs_off(machine, cache):
    machine.shares = [BUSY]
    assert _parts.parallel_flops(np.float64) == _parts.DEFAULT_FLOPS["training"]
    assert machine.probes == 1 and machine.rounds == 0
    evidence = kept(cache)["evidence"]
    assert (evidence["deferrals"], evidence["retry_after"]) == (1, 1e9 + 600)
    for _ in range(50):  # later fits in this process, and new processes: no probe
        _parts.parallel_flops(np.float64)
        _parts._chosen.clear()
        _parts.parallel_flops(np.float64)
    _guard.clock.now += 599
    _parts.parallel_flops(np.float64)
    assert machine.probes == 1
    _guard.clock.now += 1  # due: one probe, still busy: waits twice as long
    assert _parts.parallel_flops(np.float64) == _parts.DEFAULT_FLOPS["training"]
    assert machine.probes == 2
    evidence = kept(cache)["evidence"]
    assert (evidence["deferrals"], evidence["retry_after"]) == (2, 1e9 + 600 + 1200)
    _parts.parallel_flops(np.float64)
    assert machine.probes == 2
    machine.shares, machine.probes = [QUIET], 0  # quiet when next due: measured once
    _guard.clock.now += 1200
    assert _parts.parallel_flops(np.float64) == DEFAULT  # the default until confirmed
    assert machine.probes == 3 and machine.rounds == 1
    evidence = kept(cache)["evidence"]
    assert (evidence["quiet"], evidence["retry_after"]) == (1, _guard.clock.now + 60)
    assert evidence["deferrals"] == 1  # the machine was quiet: the count of busy ones anew
    _guard.clock.now += 59
    assert _parts.parallel_flops(np.float64) == DEFAULT and machine.rounds == 1
    _guard.clock.now += 1  # a minute later: measured again, confirmed, final
    assert _parts.parallel_flops(np.float64) == flops(48)
    assert machine.probes == 6 and machine.rounds == 2
    entry = kept(cache)
    assert _guard.final(entry) and entry["split_flops"] == flops(48)
    assert (entry["evidence"]["deferrals"], entry["evidence"]["retry_after"]) == (0, 0.0)
    _guard.clock.now += 10**7  # a final choice is never measured again by a lookup
    _parts._chosen.clear()
    assert _parts.parallel_flops(np.float64) == flops(48) and machine.probes == 6


def test_the_backoff_doubles_up_to_a_day_and_a_retry_time_too_far_ahead_is_due():
    assert [_guard.backoff(n) for n in (1, 2, 3)] == [600, 1200, 2400]
    assert _guard.backoff(9) == _guard.backoff(1000) == _guard.MAX_RETRY_SECONDS == 86400
    entry = {"evidence": {"retry_after": 1000.0}}
    assert not _guard.due(entry, 999.0) and _guard.due(entry, 1000.0)
    assert _guard.due({"evidence": {"retry_after": 1000.0 + 86401}}, 999.0)  # clock set back


def test_a_deferred_choice_in_a_long_running_process_is_retried_at_its_fits(machine, cache):
    """The memo holds the default with the retry time: a clock read per lookup, the lookup
    chosen again (the file read, then measured) once it is due."""
    machine.shares = [BUSY, QUIET]
    assert _parts.prediction_flops(np.float64) == _parts.DEFAULT_FLOPS["prediction"]
    choice = _parts._chosen[("prediction", np.dtype("float64"))]
    assert choice.retry_at == 1e9 + 600 and "deferred" in choice.how
    _guard.clock.now += 600
    assert _parts.prediction_flops(np.float64) == _parts.DEFAULT_FLOPS["prediction"]  # once
    assert _parts._chosen[("prediction", np.dtype("float64"))].retry_at == 1e9 + 660
    _guard.clock.now += 60
    chunk = _parts.forward_flops(_parts._ladder_sizes(_parts.PREDICT_WIDTHS[4]),
                                 _parts.PREDICT_CHUNK)
    assert _parts.prediction_flops(np.float64) == chunk  # confirmed: wins from the fifth width
    assert _parts._chosen[("prediction", np.dtype("float64"))].retry_at is None


def test_a_deferral_shipped_in_the_wheel_is_not_retried_by_the_first_fit(machine, cache,
                                                                        tmp_path, monkeypatch):
    """Built on a busy machine: the wheel ships a deferred entry, long due by the build's clock.
    The first lookup after the install takes its default, measures nothing, and keeps it with
    a retry time counted from now."""
    shipped = tmp_path / "shipped.json"
    entry = _guard.postponed({"split_flops": 8e6, "timings": [], "when": "2026-01-01 00:00",
                              "evidence": _guard.evidence([BUSY], None, _tuning.__version__)},
                             1.0, 1)
    shipped.write_text(json.dumps({KEY: {"training split float64": entry}}))
    monkeypatch.setattr(_tuning, "SHIPPED", str(shipped))
    got, how = _tuning.cached("training split float64", lambda e: pytest.fail("measured"))
    assert got["split_flops"] == 8e6 and "deferred" in how and machine.probes == 0
    assert f", kept in {cache / _tuning.FILE};" in how  # where the retry is kept
    assert kept(cache)["evidence"]["retry_after"] == 1e9 + 600
    assert kept(cache)["evidence"]["deferrals"] == 1
    _guard.clock.now += 600  # due here, now: the later fit probes and measures
    got, how = _tuning.cached("training split float64", lambda e: _parts.measure("float64", e))
    assert _guard.unconfirmed(got) and "deferred" in how and machine.probes == 3
    # without a cache folder to keep a retry in, a process waits the longest backoff
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(tmp_path / "a file"))
    (tmp_path / "a file").write_text("")
    _parts._chosen.clear()
    assert _parts.parallel_flops(np.float64) == 8e6 and machine.probes == 3
    choice = _parts._chosen[("training", np.dtype("float64"))]
    assert choice.retry_at == _guard.clock.now + _guard.MAX_RETRY_SECONDS


# ---- versions and schema -----------------------------------------------------------------------


def test_a_write_drops_this_machines_entries_of_other_versions(machine, cache):
    other_version = KEY.rsplit(" | fastfnn ", 1)[0] + " | fastfnn 0.0.1"
    cache.mkdir(mode=0o700)
    old = {"split_flops": 1.0, "timings": [], "when": "2020-01-01 00:00"}
    (cache / _tuning.FILE).write_text(json.dumps({
        other_version: {"training split float64": old},
        "another machine | fastfnn 0.0.1": {"training split float64": old},
        KEY: {"training split float64": old, "float64": {"limits": [0, 0, 0]}}}))
    assert _parts.parallel_flops(np.float64) == DEFAULT  # the old schema: measured again
    table = json.loads((cache / _tuning.FILE).read_text())
    assert sorted(table) == sorted([KEY, "another machine | fastfnn 0.0.1"])
    assert _guard.unconfirmed(table[KEY]["training split float64"]) and machine.rounds == 1


# ---- fastfnn bench --retune ------------------------------------------------------------------


def test_retune_measures_again_and_keeps_a_final_result(machine, cache, capsys):
    assert confirmed(_parts.parallel_flops, np.float64) == flops(48)  # measured twice, final
    machine.gains = [0.8] * 7 + [1.2, 1.3, 1.4]  # the machine has changed: wins from 128
    for _ in range(3):
        assert _parts.parallel_flops(np.float64) == flops(48)  # kept: not measured again
    assert machine.rounds == 2
    assert bench.main(["--retune"]) == 0
    assert machine.rounds == 2 + 2 * 4  # training and prediction, both dtypes, confirmed
    assert _guard.clock.sleeps == [_guard.CONFIRM_PAUSE] * 4  # a pause before each confirmation
    assert kept(cache)["split_flops"] == flops(128)
    assert _parts.parallel_flops(np.float64) == flops(128)  # this process uses it at once
    out = capsys.readouterr()
    assert f"training split float64: threads from {flops(128):.3g} flops (measured now" in out.out
    assert "measuring prediction threads float32 again" in out.err
    assert "measuring prediction threads float32 again in 15 s, to confirm it" in out.err


def test_retune_on_a_busy_machine_leaves_a_final_choice_in_place(machine, cache, capsys):
    assert confirmed(_parts.parallel_flops, np.float64) == flops(48)
    before = kept(cache)
    machine.shares, machine.probes = [BUSY], 0
    assert bench.main(["--retune"]) == 1
    assert machine.rounds == 2 and machine.probes == 4  # one probe each, nothing timed
    assert _guard.clock.sleeps == []  # nothing to confirm
    assert kept(cache) == before  # the final entry stays, untouched
    assert kept(cache, "training split float32")["evidence"]["verdict"] == "deferred"
    out = capsys.readouterr()
    assert "measuring again was deferred: busy before measuring" in out.out
    # float64's training split stays final; the three never measured stay on the defaults
    assert ("the machine was busy: training split float32, prediction threads float64, "
            "prediction threads float32 stay(s) on the safe default") in out.err


def test_retune_on_a_busy_machine_says_the_final_choices_stay_in_force(machine, cache, capsys):
    """Every choice final before, every new measurement busy: nothing is left on a default, and
    the closing line says the earlier choices stay (not that something is wrong with them)."""
    assert bench.main(["--retune"]) == 0
    before = kept(cache)
    machine.shares, machine.probes = [BUSY], 0
    assert bench.main(["--retune"]) == 1
    assert kept(cache) == before
    err = capsys.readouterr().err
    assert "every choice in force was measured earlier on a quiet machine" in err
    assert "safe default" not in err


def test_retune_is_an_option_of_the_bench_command(machine, cache, capsys):
    from fastfnn.cli import main

    assert main(["bench", "--retune"]) == 0
    assert machine.rounds == 8 and _guard.final(kept(cache))


def test_the_benchmark_measures_deferred_choices_before_it_times_anything(machine, cache):
    """A benchmark run right after a first fit taken under load runs with this machine's own
    choices, not the defaults: what was deferred is measured first, retry time or not; what is
    final is left alone."""
    machine.shares = [BUSY]
    assert _parts.parallel_flops(np.float64) == _parts.DEFAULT_FLOPS["training"]
    machine.shares, machine.probes = [QUIET], 0
    bench.measure_deferred(None)  # clock unchanged: long before the retry time
    assert machine.rounds == 2 * 4  # the deferred one and the three never measured, confirmed
    assert _guard.final(kept(cache)) and _parts.parallel_flops(np.float64) == flops(48)
    bench.measure_deferred(None)
    assert machine.rounds == 8  # all final now: nothing measured again


@pytest.mark.parametrize("one_first", [True, False])
def test_a_pair_is_timed_warm_whichever_side_runs_first(monkeypatch, one_first):
    """Threads that sat idle through the other side's timing come back slowly (a VM's halted
    vCPU): each timing of a pair starts warm, so that cost is left out in either order. Oracle:
    a virtual clock, each run one tick, the first run after a switch of side a hundred."""

    class Clock:
        now, last = 0.0, None

    def side(name):
        def run():
            Clock.now += 1.0 if Clock.last == name else 100.0
            Clock.last = name
        return run

    monkeypatch.setattr(_parts, "time", type("T", (), {"perf_counter": lambda: Clock.now}))
    monkeypatch.setattr(_parts, "SECONDS", 64.0)
    pair = _parts._paired(side("one"), side("other"))
    assert pair(one_first) == 1.0


def test_the_benchmark_measures_a_choice_again_while_it_stays_deferred(machine, cache):
    """The other CPU taken away during one measurement (the first probe busy): the benchmark
    measures that choice again before it times anything, and the choice is final after."""
    machine.shares = [BUSY, QUIET]
    bench.measure_deferred(None)
    assert machine.rounds == 8  # the first measurement stopped at its busy probe: not timed
    assert all(_guard.final(kept(cache, name)) for name in
               ("training split float64", "training split float32",
                "prediction threads float64", "prediction threads float32"))
    assert machine.probes == 25  # 1 (busy) + 4 x 2 x 3, nothing measured a third time
