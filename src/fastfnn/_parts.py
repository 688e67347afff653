"""How many parts a batch's rows are split into (a rule), and how many threads run the parts of
a batch or a prediction's chunks (measured on the machine, once).

Training splits each minibatch of at least ``SPLIT_FLOPS`` training flops into ``PARTS`` parts
whose gradient sums are computed on their own and added in part order
(``_kernels.run_batches_parallel_``). The parts decide the bits, so they follow from the problem
alone (:func:`training_parts`: the same on every machine, thread count and measurement;
``FASTFNN_SPLIT_FLOPS`` sets the rule's threshold instead, ``inf`` never splits). Whether the
parts run on threads of their own is the speed only, and depends on the CPU, its cores and its
BLAS, so it is timed, not assumed (:func:`training_threads`):

* for each dtype, the compiled training loop (with Adam, the default solver, so that a first
  fit that splits reuses what the timing compiled) runs batches of ``ROWS`` rows through
  networks of ``LAYERS`` square relu layers, ``width`` wide (``WIDTHS``, the work about
  doubling from one to the next), whole on one thread and in ``PARTS`` parts on ``PARTS``
  threads, back to back (each first in every other round); a round times such a pair at every
  width, and the median over ``ROUNDS`` rounds of a width's time ratios is the gain there.
  Each pair sees the same state of a busy machine, and each width's rounds are spread over the
  whole measurement, so a shared host's slow spells and the order of the two weigh little;
* two threads win at a width when the gain is at least ``MARGIN``;
* split batches of at least the training work (:func:`batch_flops`) of the first of two widths
  in a row that won run their parts on threads of their own (a win at the widest width alone
  counts), else from twice the widest width's work.

The result is kept with the other measurements (``_tuning.cached``: one file, keyed by the CPU,
its CPU count, OpenBLAS's kernels and fastfnn's version, each entry validated on reading against
its schema, ``_tuning.SCHEMAS``; the build's precompile step ships its own in the wheel). The
measurement (1.5-2.5 s per dtype, once per machine) runs where the process can run ``PARTS``
threads; one that cannot runs its parts on one thread and measures nothing.

A busy moment cannot poison it (``_guard``): a probe of whether ``PARTS`` threads each get a CPU
runs before the rounds (busy: nothing is timed, about 50 ms spent), between their halves and after
them, the halves must agree on the choice, two threads must not lose at the widest width, and a
second such measurement at another moment must confirm it (a shared host's spells of seconds make
two threads that share data lose while every check passes; each width keeps the larger gain).
Otherwise the measurement is *deferred*: the choice in force is the safe default
(``DEFAULT_FLOPS``, between what quiet machines measured), kept with the evidence and a retry time
(10 minutes, doubling with each further deferral, at most a day; a minute for a confirmation); no
process probes or measures before it, and a process that holds a deferred choice tries again at its
first fit after it (a clock read per fit). ``fastfnn bench`` measures deferred choices before it
times anything, and :func:`retune` (``fastfnn bench --retune``) measures every choice again on
demand, each confirming a quiet measurement after a pause (``_guard.CONFIRM_PAUSE``).
``describe()`` says what was chosen and why.

Prediction (:func:`prediction_threads`) runs the forward pass in chunks of rows; a row's result
never depends on its chunk, so the threads change only the speed. Chunks run on threads of their own
where each thread's part (``PREDICT_CHUNK`` rows, or an equal share of fewer) holds at least the
forward work from which twice ``PREDICT_CHUNK`` rows on two threads beat them on one here: predict's
direct path (that of plain arrays) timed as the split is (pairs back to back, the order alternating,
rounds over every width, the median gain per width, :func:`threshold`), through networks of
``LAYERS`` square relu layers ``PREDICT_WIDTHS`` wide. Kept in the same file; a process that cannot
run two threads predicts on one and measures nothing.
"""

import os
import threading
import time
from typing import NamedTuple

import numpy as np

from . import _blas, _env, _guard, _threads, _tuning
from .network import DIRECT_ROWS, PREDICT_CHUNK, DataSource, Network, forward_direct
from .optimizers import Adam
from ._version import __version__

PARTS = 2  # parts of a split batch: each beyond the first holds a gradient-sized buffer
# The training flops of a batch from which it is split into parts, on every machine (where the
# split on two threads gained 1.1-1.4x on a Zen 3 EPYC: 1.2 MFLOP float64, 2.7-4.7 float32; in
# parts on one thread it costs 1-15% more than whole, so not much lower).
SPLIT_FLOPS = {"float64": 2e6, "float32": 4e6}
FULL_BATCH_ROWS = 4096  # full-batch (L-BFGS) parts: one per FULL_BATCH_ROWS rows ...
FULL_BATCH_PARTS = 8  # ... up to this many
ROWS = 64  # rows of a timed batch (32 a part): common batch sizes are 32-256
LAYERS = 3  # square hidden-to-hidden layers of the timed networks (then one output)
# The work about doubling a step, and 40 between 32 and 48, where the gain crossed MARGIN on
# the machines measured (and where the step starts to be shared: network.PARALLEL_STEP_PARAMS).
WIDTHS = (16, 24, 32, 40, 48, 64, 96, 128, 176, 256)
MARGIN = 1.1  # the least gain (one thread's median time over the split's) that wins
ROUNDS = 10  # rounds of timed pairs at every width; the median ratio per width counts
SECONDS = 0.005  # each timing runs at least about this long
BATCHES = 16  # distinct batches of the timed data (cycled through)
WARM_SHARE = 0.25  # untimed runs before each timing, a share of its runs

PREDICT_WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)  # chunk work about doubling
# The choices in force while a measurement is deferred (the machine was busy): from what work
# (flops) training's parts and prediction's chunks run on threads of their own. Between what quiet
# machines measured: training 1.2-4.7 MFLOP on a Zen 3 EPYC, 19 MFLOP on a Rocket Lake Xeon;
# prediction's direct path 1.6-3.6 MFLOP a chunk on an Ice Lake Xeon (gains of 0.88-0.97 below,
# 1.3-1.8 from there; the general path, a workspace built per call, had crossed at 0.1-0.9).
# Wrong by a factor of a few, they cost a few percent on the batches between, not a thread lost
# on every batch.
DEFAULT_FLOPS = {"training": 8e6, "prediction": 2e6}


class Choice(NamedTuple):
    """A memoised choice: the threshold (flops), how it was chosen, the timings behind it, and
    when a deferred one is tried again (``_guard.clock`` time; None: never)."""

    threshold: float
    how: str
    timings: list
    retry_at: float = None


_chosen = {}  # (what, np.dtype) -> Choice (or a (threshold, how, timings) tuple): the memo
_choosing = threading.Lock()


def _fresh_lock_in_child():
    """A forked child starts unlocked: the thread that was measuring is not in it."""
    global _choosing
    _choosing = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def batch_flops(sizes, rows, first_per_row=None):
    """Training flops of a batch of ``rows`` rows: 6 * rows * sum(fan_in * fan_out). Where
    the input is CSR, ``first_per_row`` (its mean stored entries a row) counts the first layer
    at its sparsity: 4 * rows * first_per_row * fan_out (the forward and the weight gradient
    over the stored entries; no input delta)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    products = sizes[:-1] * sizes[1:]
    if first_per_row is not None:
        return rows * (4.0 * first_per_row * sizes[1] + 6.0 * float(np.sum(products[1:])))
    return 6.0 * rows * float(np.sum(products))


def _ladder_sizes(width):
    """A timed network's sizes: ``width`` inputs, LAYERS layers of ``width`` units, 1 output."""
    return [width] * (LAYERS + 1) + [1]


SMALLEST = batch_flops(_ladder_sizes(WIDTHS[0]), ROWS)  # below it, nothing is measured or split


def training_parts(sizes, batch_size, dtype):
    """Parts each minibatch's rows are split into: ``PARTS`` (each part keeping at least 8
    rows) for batches of at least :func:`split_flops` training flops, else 1. A function of
    the problem only: the parts decide the bits, so neither the thread count nor a
    measurement may."""
    if batch_flops(sizes, batch_size) < split_flops(dtype):
        return 1
    return max(1, min(PARTS, batch_size // 8))


def training_threads(sizes, batch_size, dtype, parts):
    """Threads that run a batch's ``parts``: up to one per part (``_threads.part_threads``)
    where the batch's work is at least :func:`parallel_flops`, the measured point from which a
    split batch on two threads beat the whole batch on one here, else 1. The speed only: the
    parts are added in the same order on any number of threads."""
    threads = _threads.part_threads(parts)  # read (and checked) on every fit
    flops = batch_flops(sizes, batch_size)
    if threads < 2 or flops < parallel_flops(dtype, batch=flops):
        return 1
    return threads


def full_batch_parts(sizes, rows, dtype):
    """Parts of a full batch (L-BFGS): 1 where :func:`training_parts` gives 1, else one per
    FULL_BATCH_ROWS rows, at least training_parts' and at most FULL_BATCH_PARTS."""
    parts = training_parts(sizes, rows, dtype)
    if parts == 1:
        return 1
    return max(parts, min(FULL_BATCH_PARTS, rows // FULL_BATCH_ROWS))


# The least training flops of an L-BFGS evaluation (all rows) whose parts run on threads beside
# a host BLAS that has threads of its own (lbfgs_threads).
LBFGS_THREAD_FLOPS = 4e9


def lbfgs_threads(sizes, rows, parts):
    """Threads for the ``parts`` of an L-BFGS evaluation of ``rows`` rows: those of
    :func:`_threads.part_threads`, but one where the host's BLAS (NumPy's, SciPy's) is one
    threadpoolctl knows and the evaluation is under LBFGS_THREAD_FLOPS. SciPy's L-BFGS-B calls
    that BLAS between evaluations, on its own threads (one only under a host limit, which holds
    fastfnn to one too), and its threads and the parts' workers, each spinning after its work,
    take the cores from each other. On a 2-vCPU EPYC, 20 iterations, two threads' time over
    one's (medians of 5 interleaved fits): 4,000 rows of a (32,) network 5.9 (157 against
    26 ms), 20,000 rows of (64, 64) 1.08 (0.65 GFLOP an evaluation), in float32 1.23; 8,192
    rows of (256, 256) 0.95 (4.5 GFLOP), 20,000 rows 0.76 (11 GFLOP). (Holding the host's BLAS
    at one thread meanwhile would let two threads win everywhere, but would change a thread
    count that other code sees.) The parts, and so the bits, are the same on any thread count."""
    threads = _threads.part_threads(parts)  # (the limits read and checked at every fit)
    if (threads > 1 and _blas.BLAS.host_threads() is not None
            and batch_flops(sizes, rows) < LBFGS_THREAD_FLOPS):
        return 1
    return threads


def split_flops(dtype):
    """The training flops from which a ``dtype`` batch is split into parts: ``SPLIT_FLOPS``
    (a rule, the same on every machine), or ``FASTFNN_SPLIT_FLOPS`` (``inf``: never)."""
    env = _env_flops()
    return SPLIT_FLOPS[np.dtype(dtype).name] if env is None else env


def parallel_flops(dtype, batch=np.inf):
    """The training flops from which a split ``dtype`` batch runs its parts on threads of their
    own on this machine (``inf``: never): the cached measurement, else measured now where
    this process can run ``PARTS`` threads. A caller whose ``batch`` has less work than any
    timed one (SMALLEST) gets ``inf`` without a measurement."""
    key = ("training", np.dtype(dtype))
    if key not in _chosen and batch < SMALLEST:
        return np.inf
    return _chosen_once(key, _choose)


def _chosen_once(key, choose):
    """The threshold of ``key = (what, dtype)``: this process's memo, else ``choose(dtype)`` (a
    :class:`Choice`), memoised under a lock: one choice per process, even when two threads fit
    or predict at once. A deferred choice is chosen again once its retry time has come (a clock
    read per call until then; nothing else)."""
    choice = _chosen.get(key)
    if choice is None or _due(choice):
        with _choosing:
            choice = _chosen.get(key)
            if choice is None or _due(choice):
                _chosen[key] = choice = choose(key[1])
    return choice[0]


def _due(choice):
    """True where ``choice`` is deferred and its retry time has come."""
    retry = getattr(choice, "retry_at", None)
    return retry is not None and _guard.clock() >= retry


def _from_entry(entry, how, field, floor=0.0):
    """The :class:`Choice` an entry gives: its threshold (at least ``floor``), how, its
    timings, and its retry time where it is deferred."""
    retry = None if _guard.final(entry) else entry["evidence"]["retry_after"]
    return Choice(max(floor, float(entry[field])), how, entry["timings"], retry)


def _env_flops():
    """``FASTFNN_SPLIT_FLOPS`` (``_env``: a number >= 0, ``inf`` never splits), or None where it
    is unset or empty."""
    return _env.non_negative("FASTFNN_SPLIT_FLOPS", "the training flops from which batches are "
                             "split; inf: never")


def _choose(dtype):
    """The :class:`Choice` of training's threads for ``dtype`` (module docstring). A process
    that cannot run PARTS threads runs parts on one and measures nothing."""
    if (os.cpu_count() or 1) < PARTS:
        return Choice(np.inf, f"fewer than {PARTS} CPUs", [])
    name = f"training split {dtype.name}"
    entry, how = _tuning.cached(name, lambda earlier: measure(dtype.name, earlier),
                                may_measure=can_measure())
    if entry is None:
        return Choice(np.inf, f"not measured: this process cannot run {PARTS} threads", [])
    return _from_entry(entry, how, "split_flops", SMALLEST)


def can_measure():
    """True where this process can run ``PARTS`` Numba threads on ``PARTS`` CPUs."""
    from numba import config

    return (_env.usable_cpus() >= PARTS and config.NUMBA_NUM_THREADS >= PARTS
            and _threads._can_run_parallel())


def measure(name, earlier=None):
    """Times batches whole on one thread and in parts on ``PARTS`` threads at every width, in
    rounds that visit every width, guarded (module docstring); returns the cache entry:
    ``split_flops`` (:func:`threshold` of the gains; deferred: ``DEFAULT_FLOPS``), ``timings``
    (width, batch flops, gain: the median over rounds of one thread's time over the split's;
    none where the probe found the machine busy first), ``when``, ``evidence``. ``earlier``:
    the kept entry, whose gains a quiet measurement awaiting confirmation adds
    (:func:`_measured`)."""
    work = [batch_flops(_ladder_sizes(width), ROWS) for width in WIDTHS]
    return _measured("split_flops", _pair, WIDTHS, work, name, DEFAULT_FLOPS["training"],
                     earlier)


def _measured(field, make_pair, widths, work, name, default, earlier=None):
    """The cache entry of a guarded measurement (``_guard``): probed; where the machine is
    free, timed in rounds (:func:`_rounds`, probed between its halves and after); ``field`` the
    :func:`threshold` of the median gains where the verdict is final, else ``default``.

    Where this one is quiet and ``earlier`` is a quiet one of the same widths awaiting
    confirmation (``_guard.unconfirmed``), the gain at each width is the larger of the two (a
    shared host's spell only makes two threads lose) and the evidence counts both. The halves
    are judged on this measurement's own choice, not on the combined one: that one overrides
    what a spell made either measurement say."""
    probes = [_guard.probe(PARTS)]
    rounds = _rounds(make_pair, widths, name, probes) if probes[0] >= _guard.AVAILABLE else []
    half = len(rounds) // 2
    gains = np.median(rounds, axis=0) if rounds else []
    apart = (_guard.apart(rounds[:half], rounds[half:], _splits(gains, work)) if rounds
             else None)
    before = 0
    if rounds and _guard.verdict(probes, apart, gains[-1])[0] and _awaits(earlier, widths, work):
        gains = np.maximum(gains, [t[2] for t in earlier["timings"]])
        before = earlier["evidence"]["quiet"]
    evidence = _guard.evidence(probes, apart, __version__, gains[-1] if rounds else None, before)
    return {field: threshold(gains, work) if _guard.final({"evidence": evidence}) else default,
            "timings": [[w, f, float(g)] for w, f, g in zip(widths, work, gains)],
            "when": _tuning.now(), "evidence": evidence}


def _awaits(earlier, widths, work):
    """True where ``earlier`` is a quiet measurement awaiting confirmation
    (``_guard.unconfirmed``) timed at these ``widths`` and their ``work``."""
    return _guard.unconfirmed(earlier) and (
        [t[:2] for t in earlier["timings"]] == [[w, f] for w, f in zip(widths, work)])


def _rounds(make_pair, widths, name, probes):
    """ROUNDS rounds of ``pair(first)`` at every width, ``pair = make_pair(width, dtype, rng)``
    (one thread's time over PARTS threads', :func:`_paired`): a round visits every width, and
    every other round times the one-thread side second. The probe runs between the two halves
    and after them (appended to ``probes``)."""
    rng = np.random.default_rng(0)
    rounds = []
    with _threads.numba_threads(PARTS):
        pairs = [make_pair(width, np.dtype(name), rng) for width in widths]
        for r in range(ROUNDS):
            if r == ROUNDS // 2:
                probes.append(_guard.probe(PARTS))
            rounds.append([pair(r % 2 == 0) for pair in pairs])
    probes.append(_guard.probe(PARTS))
    return rounds


def threshold(gains, work):
    """The ``work`` of the first of two widths in a row whose gains are at least MARGIN; past
    the widest width a win is assumed (so its win alone counts), else twice its work."""
    wins = [gain >= MARGIN for gain in gains] + [True, True]
    work = [*work, 2 * work[-1]]
    for i, w in enumerate(work):
        if wins[i] and wins[i + 1]:
            return w


def _splits(gains, work):
    """Per width, whether the :func:`threshold` of ``gains`` runs its ``work`` in parts."""
    start = threshold(gains, work)
    return [w >= start for w in work]


def _pair(width, dtype, rng):
    """A function of ``whole_first`` that times a batch whole on one thread and in PARTS parts
    on PARTS threads (on Numba's threads as set), back to back, in that order or the other, and
    returns one thread's time over the split's (:func:`_paired`)."""
    net = Network(_ladder_sizes(width), "relu", "identity", "squared_error", dtype)
    net.theta[:] = rng.uniform(-0.1, 0.1, net.theta.size)
    X = rng.standard_normal((BATCHES * ROWS, width))
    data = DataSource(X, dtype).data(rng.standard_normal((BATCHES * ROWS, 1)))
    rule = Adam(net.theta.size, dtype, learning_rate_init=1e-6).rule()  # the default solver's

    def batches(parts):
        work = net.workspace(ROWS, parts)
        return lambda: net.run_batches(data, work, rule, 0, BATCHES, ROWS, 0.0, parts)

    return _paired(batches(1), batches(PARTS))


def _paired(one, other):
    """A function of ``one_first`` that runs ``one()`` and ``other()`` the same number of times
    each, back to back, in that order or the other, and returns one's time over the other's.
    The number is doubled first until ``one`` takes SECONDS (which also compiles and warms up
    both). Each timing is preceded by WARM_SHARE of its runs, untimed: on a VM, threads that
    were idle for a one-thread timing come back slowly (a 2-vCPU EPYC timed the two threads
    0.5-0.6x slower right after one thread's timing than right after their own), and training
    keeps them busy."""

    def timed(run, repeats):
        for _ in range(max(1, int(repeats * WARM_SHARE))):
            run()
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        return time.perf_counter() - start

    repeats = 1
    while timed(one, repeats) < SECONDS:
        repeats *= 2
    timed(other, repeats)

    def pair(one_first):
        if one_first:
            first = timed(one, repeats)
            return first / timed(other, repeats)
        second = timed(other, repeats)
        return timed(one, repeats) / second

    return pair


def describe():
    """Lines per dtype: the batches split into parts, where the choice came from, and the
    timings behind it."""
    lines = []
    for name in ("float64", "float32"):
        flops, threads = split_flops(name), parallel_flops(name)
        how, timings, note = _memo("training", name)
        rule = ("every batch is computed whole" if flops == np.inf
                else f"batches of >= {flops:.3g} training flops are split into {PARTS} parts "
                f"({'FASTFNN_SPLIT_FLOPS' if _env_flops() is not None else 'the rule'})")
        run = ("the parts run on one thread" if threads == np.inf
               else f"the parts run on one thread each from {threads:.3g} flops")
        lines.append(f"{name} training: {rule}; {run} ({how})")
        lines += _gains_line(f"{name} one thread's time / the split's by width, {ROWS}-row "
                             f"batches{note}", timings)
    lines.append(f"L-BFGS: split batches of all rows get one part per {FULL_BATCH_ROWS} rows, "
                 f"{FULL_BATCH_PARTS} at most, run on threads "
                 + (f"from {LBFGS_THREAD_FLOPS:.3g} flops an evaluation (below, one: the host's "
                    "BLAS, which SciPy's L-BFGS-B calls between evaluations, has threads of its "
                    "own)" if _blas.BLAS.host_threads() is not None else "(the rule)"))
    for name in ("float64", "float32"):
        flops = prediction_flops(name)
        how, timings, note = _memo("prediction", name)
        rule = ("every chunk runs on the calling thread" if flops == np.inf
                else f"chunks of >= {flops:.3g} forward flops run on up to one thread each")
        lines.append(f"{name} predict ({PREDICT_CHUNK}-row chunks): {rule} ({how})")
        lines += _gains_line(f"{name} one thread's time / two threads' for two chunks, by "
                             f"width{note}", timings)
    return lines


def _gains_line(what, timings):
    """``[line]``: ``what`` then each timed width's work and gain; ``[]`` where none was timed."""
    speed = [f"{w} ({flops:.2g} flops): {gain:.2f}x" for w, flops, gain in timings]
    return [f"  {what} (a win from {MARGIN}x): {', '.join(speed)}"] if speed else []


def _memo(what, name):
    """``(how, timings, note)`` of the memoised choice: the note marks a deferred choice's
    timings (taken while the machine was busy, or awaiting confirmation): not used yet."""
    choice = _chosen[(what, np.dtype(name))]
    deferred = getattr(choice, "retry_at", None) is not None
    return choice[1], choice[2], ", deferred, not used yet" if deferred else ""


def retune(log=None, deferred_only=False):
    """Measures this machine's choices again now (``fastfnn bench --retune``): training's and
    prediction's threads for both dtypes, guarded as any measurement, a quiet one confirmed
    by another after ``_guard.CONFIRM_PAUSE``; a final result is kept in place of what was
    there, a deferred one leaves a final entry in place. With
    ``deferred_only`` (``fastfnn bench``, before it times anything), only choices that are
    deferred (or not measured yet), before their retry time. Returns ``(lines, quiet,
    defaults)``: what each choice measured now is and how it came, whether every such
    measurement was final, and the choices measured now whose safe default stays in force (none
    where a busy measurement left a final one in place). ``log(message)`` is told before each
    measurement (a few seconds each)."""
    if (os.cpu_count() or 1) < PARTS or not can_measure():
        return [f"nothing measured: this process cannot run {PARTS} threads"], False, []
    lines, quiet, defaults = [], True, []
    kinds = (("training", "training split", measure, "split_flops", SMALLEST),
             ("prediction", "prediction threads", measure_prediction, "chunk_flops", 0.0))
    for what, kind, measure_now, field, floor in kinds:
        for name in _tuning.DTYPES:
            measured = []

            def measure_logged(earlier, measure_now=measure_now, name=name, kind=kind):
                measured.append(name)
                if log is not None:
                    log(f"measuring {kind} {name} again")
                entry = measure_now(name, earlier)
                if _guard.unconfirmed(entry):  # asked for now: confirmed after a pause
                    if log is not None:
                        log(f"measuring {kind} {name} again in {_guard.CONFIRM_PAUSE:g} s, "
                            "to confirm it at another moment")
                    _guard.sleep(_guard.CONFIRM_PAUSE)
                    entry = measure_now(name, entry)
                return entry

            with _choosing:
                entry, how = _tuning.cached(f"{kind} {name}", measure_logged,
                                            again="deferred" if deferred_only else True)
                choice = _from_entry(entry, how, field, floor)
                _chosen[(what, np.dtype(name))] = choice
            if measured:
                quiet = quiet and _guard.final(entry) and "measuring again was deferred" not in how
                if not _guard.final(entry):
                    defaults.append(f"{kind} {name}")
                lines.append(f"{kind} {name}: threads from {choice.threshold:.3g} flops ({how})")
    return lines, quiet, defaults


# ---- prediction -----------------------------------------------------------------------------


def forward_flops(sizes, rows):
    """Forward flops of ``rows`` rows: 2 * rows * sum(fan_in * fan_out)."""
    sizes = np.asarray(sizes)
    return 2.0 * rows * float(np.sum(sizes[:-1] * sizes[1:]))


def prediction_threads(sizes, rows, dtype):
    """Threads for a forward pass over ``rows`` rows: up to one per part (``_threads.
    part_threads``) of PREDICT_CHUNK rows, or of an equal share of the rows where there are
    fewer than that a thread, where a part's forward work is at least :func:`prediction_flops`
    (what a thread must get for its own to pay), else 1; 1 for fewer rows than two chunks of
    predict's direct path (DIRECT_ROWS each: a thread would get a short chunk at best, and on
    an EPYC VM 300 rows of a (64, 64) network lost 2-16% on two threads where 700 gained 1.5x).
    The speed only: the result is the same bits."""
    if rows < 2 * DIRECT_ROWS:
        return 1
    part = max(1, min(PREDICT_CHUNK, -(-rows // _threads.max_threads())))
    threads = _threads.part_threads(-(-rows // part))
    if threads < 2 or forward_flops(sizes, part) < prediction_flops(dtype):
        return 1
    return threads


def prediction_flops(dtype):
    """The forward flops of a chunk from which a ``dtype`` prediction's chunks run on threads of
    their own (``inf``: never): the cached measurement, else measured now where this process
    can run two threads."""
    return _chosen_once(("prediction", np.dtype(dtype)), _choose_prediction)


def _choose_prediction(dtype):
    """The :class:`Choice` of prediction's threads for ``dtype`` (module docstring)."""
    if (os.cpu_count() or 1) < PARTS:
        return Choice(np.inf, f"fewer than {PARTS} CPUs", [])
    entry, how = _tuning.cached(f"prediction threads {dtype.name}",
                                lambda earlier: measure_prediction(dtype.name, earlier),
                                may_measure=can_measure())
    if entry is None:
        return Choice(np.inf, f"not measured: this process cannot run {PARTS} threads", [])
    return _from_entry(entry, how, "chunk_flops")


def measure_prediction(name, earlier=None):
    """Times a forward pass over two chunks of rows on one thread and on two, in rounds over
    every width of PREDICT_WIDTHS, guarded (as :func:`measure`); returns the cache entry:
    ``chunk_flops`` (:func:`threshold` of the gains over a chunk's forward flops; deferred:
    ``DEFAULT_FLOPS``), ``timings`` (width, a chunk's flops, gain), ``when``, ``evidence``."""
    work = [forward_flops(_ladder_sizes(width), PREDICT_CHUNK) for width in PREDICT_WIDTHS]
    return _measured("chunk_flops", _forward_pair, PREDICT_WIDTHS, work, name,
                     DEFAULT_FLOPS["prediction"], earlier)


def _forward_pair(width, dtype, rng):
    """A function of ``one_first`` that times predict's direct path (``forward_direct``) over
    2 * PREDICT_CHUNK rows on one thread and on PARTS threads, back to back, in that order or
    the other, and returns one thread's time over the other's (:func:`_paired`)."""
    net = Network(_ladder_sizes(width), "relu", "identity", "squared_error", dtype)
    net.theta[:] = rng.uniform(-0.1, 0.1, net.theta.size)
    X = rng.standard_normal((2 * PREDICT_CHUNK, width)).astype(dtype)
    layers = (X, net.coefs(), net.intercepts(), "relu", "identity")
    return _paired(lambda: forward_direct(*layers, 1), lambda: forward_direct(*layers, PARTS))
