"""The measurement guard: whether this moment can time the machine, and when to try again where it
cannot.

What ``_parts`` measures (from what work a split batch's parts and a prediction's chunks run on
threads of their own) changes the speed only, but it is kept on disk for every later process.
Timed while another process keeps a core busy, two threads lose at every width (0.0-0.6x, against
1.1-1.7x on the same machine when quiet) and the choice would say "one thread" for good. So a
measurement is guarded, and what it leaves carries its evidence:

* **The probe** (:func:`probe`): ``threads`` threads each hash a buffer for a few milliseconds
  (``hashlib`` releases the GIL: purely parallel work, no shared data); the share of their wall
  time they spent on a CPU (CPU time over wall time, summed over the threads) is about 0.99
  where the machine gives them a CPU each, and falls to 0.5-0.75 where another process keeps one
  of those CPUs busy. CPU time, not throughput: the two hardware threads of one core (SMT) do
  not double throughput, yet are not busy. The median of ``WINDOWS`` windows counts; the
  threads run ``WARM_SECONDS`` first, so that the scheduler has spread them over the CPUs,
  after a pause of ``SETTLE_SECONDS`` (the threads of a parallel region that just ended, this
  process's own, spin on for 10-20 ms). Its cost on a quiet machine: about 17 ms of each of the
  two CPUs and 50 ms of wall time (``benchmarks/README.md`` gives the command and timings).
* **The verdict** (:func:`verdict`): the probe runs before a measurement (below ``AVAILABLE``,
  nothing is timed), between its two halves of rounds and after it; and the two halves must
  agree on the choice: by neither half's median gains may the choice made from all the rounds
  lose more than a factor ``AGREE`` beyond what all the rounds say it loses, at any width but
  one (:func:`apart`). On the choice, not on every gain: on an Ice Lake Xeon VM, quiet by every
  probe, 8 of 12 measurements timed halves whose gains differed 1.2-1.7x at some width, where
  neither half said the choice lost more than 1.00-1.06x beyond the whole; a half that lost
  at every width (busy: 0.5x) says 1.3x or more, at every width where the choice would lose
  by it. At every width but one: on a 2-vCPU EPYC (Zen 3) VM, 7 of 32 measurements that every
  probe found quiet had a single width where a half said 1.12-1.26x (near the crossover, where
  a few rounds decide; the next width at most 1.09x), and were deferred for it when the worst
  width counted; two had four and five widths at 1.05-1.32x, and still are. At that one width
  a half may say at most ``ONE_WIDTH``: a busy half says 1.33x or more where the choice splits
  a single width, the widest. And two threads must not lose at the
  widest width (at least ``WIDEST_GAIN``: a VM that loses a vCPU for seconds between the probes
  gives halves that agree on a loss at every width). All passed: *quiet*. Else *deferred*: the
  choice in force is the measuring module's safe default, and the measurement is tried again
  from a retry time: ``RETRY_SECONDS`` after the first deferral, doubling with each further
  one, at most ``MAX_RETRY_SECONDS`` (:func:`postponed`). Until then, no process probes or measures
  (the retry time is kept in the cache file with the entry; a process checks the clock once
  per fit).
* **Confirmed at another moment** (``CONFIRMATIONS``): a shared host has spells of seconds (a
  minute or more at times) in which two threads that share data lose to one, though each still
  gets a CPU and purely parallel work still scales: a 2-vCPU EPYC (Zen 5) split 64-row training
  batches at 0.55x (16 units wide), 0.78x (64) and 1.2x (256) in a spell, 1.0x, 1.45x and 1.75x
  out of it, the probe at 99% and the halves agreeing in both, and two prediction chunks on
  two threads gained 1.7x in both. A measurement that falls whole in such a spell passes every
  check above. So one quiet measurement is not final yet: it is kept as deferred (the default
  in force, its gains kept) and measured again from ``CONFIRM_SECONDS`` later; a second quiet
  one makes it *final*, each width's gain the larger of the two (a spell only makes two threads
  lose). Both must fall in spells to poison the choice.
* **The evidence** (:func:`evidence`, kept in the entry): the verdict and why, the probes' shares,
  how far the halves disagree on the choice, the gain at the widest width, the quiet
  measurements its gains combine, fastfnn's version, the deferrals so far and the retry time.
  :func:`evidence_problem` checks it on every read: a *final* entry whose evidence does not show
  a passing measurement (a file from another version, or edited) is not trusted.

Imports only the standard library: ``_tuning`` (the cache file) and ``_parts`` (the
measurements) use it.
"""

import hashlib
import math
import statistics
import threading
import time

AVAILABLE = 0.9  # the least share of their wall time the probe's threads must get on a CPU
AGREE = 1.1  # the most a half may say the choice loses at a width beyond what all rounds say
ONE_WIDTH = 1.3  # ... at every width but one; at that one, at most this (a busy half: 1.33x+)
# The least median gain of two threads at the widest width: quiet machines measured 1.5-1.9x
# there, and two threads cannot lose on a batch that large unless a CPU was taken from them
# while they were timed (a VM losing a vCPU for seconds, between the probes: 0.43-0.85x at
# every width, the halves agreeing).
WIDEST_GAIN = 0.9
WINDOWS = 3  # timed windows of a probe; their median counts
WINDOW_SECONDS = 0.005  # each window's length
WARM_SECONDS = 0.002  # each thread's work before the first window (the scheduler spreads them)
SETTLE_SECONDS = 0.03  # a pause first: an OpenMP team that just ran spins on for 10-20 ms
RETRY_SECONDS = 600.0  # after the first deferral, the next try; doubled after each further one
MAX_RETRY_SECONDS = 86400.0  # the longest wait; a retry time further away is due (a clock reset)
MAX_DEFERRALS = 1000  # the largest deferral count an entry may record
LATEST_RETRY = 1e11  # seconds since 1970 (the year 5138): a later retry time is none written
CONFIRMATIONS = 2  # quiet measurements, at moments apart, that make a measurement final
CONFIRM_SECONDS = 60.0  # after a first quiet measurement, when the confirming one is due
CONFIRM_PAUSE = 15.0  # the pause before it where it is asked for at once (bench, --retune)
_BUFFER = bytes(64 * 1024)  # hashed by the probe: large enough that hashing releases the GIL

clock = time.time  # the wall clock retry times are read on (kept across processes; tests set it)
sleep = time.sleep  # how a confirmation asked for at once waits (tests set it)


def probe(threads=2, windows=WINDOWS, seconds=WINDOW_SECONDS):
    """The share of their wall time ``threads`` threads, each hashing a buffer, spent on a CPU:
    the median over ``windows`` windows of ``seconds`` of the threads' summed CPU time over their
    summed wall time (about 0.99 on CPUs of their own; module docstring)."""
    time.sleep(SETTLE_SECONDS)
    start = threading.Barrier(threads)
    shares = [[0.0, 0.0] for _ in range(windows)]
    lock = threading.Lock()

    def work():
        try:
            start.wait()
            _hash_for(WARM_SECONDS)
            for window in range(windows):
                start.wait()  # every thread enters each window together
                cpu, wall = time.thread_time(), time.perf_counter()
                _hash_for(seconds)
                cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                with lock:
                    shares[window][0] += cpu
                    shares[window][1] += wall
        except threading.BrokenBarrierError:  # a thread could not start: no probe
            pass

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    try:
        for worker in workers:
            worker.start()
    except RuntimeError:  # no thread to be had (a limit on threads): as busy as can be
        start.abort()
        return 0.0
    finally:
        for worker in workers:
            if worker.ident is not None:
                worker.join()
    return float(statistics.median(cpu / wall if wall > 0 else 0.0 for cpu, wall in shares))


def _hash_for(seconds):
    """Hashes ``_BUFFER`` over and over for ``seconds`` of wall time."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        hashlib.sha256(_BUFFER)


def apart(first, second, splits):
    """How far apart two halves of rounds are on the choice made from all of them, at every width
    but the one where they are furthest apart (a busy half moves every width; the noise of a quiet
    machine, one near the crossover): per width, the larger factor by which a half's median gain
    says that choice loses more there than the median of all the rounds says (1.0: neither half sees
    a loss the whole does not); of these, the second largest (the only one, for a single width), or
    the largest where it is beyond ONE_WIDTH. A choice loses at a width it runs in parts
    (``splits[width]`` True) by 1 / gain where the gain is below 1, at a width it runs whole by the
    gain where it is above 1. ``first``, ``second``: rows of rounds, a gain (one thread's time over
    the split's) per width."""
    def loss(gain, split):
        return max(1.0, 1.0 / max(gain, 1e-9) if split else gain)

    factors = [1.0, 1.0]
    for width, split in enumerate(splits):
        whole = loss(statistics.median(row[width] for row in [*first, *second]), split)
        factors.append(max(loss(statistics.median(row[width] for row in half), split) / whole
                           for half in (first, second)))
    factors.sort()
    return factors[-1] if len(splits) == 1 or factors[-1] > ONE_WIDTH else factors[-2]


def verdict(probes, halves_apart=None, widest=None):
    """``(final, why)``: final where every probe's share is at least AVAILABLE, all three ran
    (before, between the halves, after), the halves agree on the choice within AGREE
    (``halves_apart``, :func:`apart`; None: not timed) and the median gain at the widest width
    (``widest``) is at least WIDEST_GAIN; ``why`` says what decided, in a few words."""
    for share, when in zip(probes, ("before measuring", "between the halves", "after them")):
        if not share >= AVAILABLE:
            return False, (f"busy {when}: the probe's threads got {share:.0%} of their time on a "
                           f"CPU (at least {AVAILABLE:.0%} needed)")
    if len(probes) < 3 or halves_apart is None:
        return False, "not timed through"
    if not halves_apart <= AGREE:
        return False, (f"the two halves of the rounds disagree on the choice (by one, it loses "
                       f"{halves_apart:.2f}x more at a width than by all; at most {AGREE}x)")
    if not (widest is not None and widest >= WIDEST_GAIN):
        return False, (f"two threads lost at the widest width ({widest or 0:.2f}x; at least "
                       f"{WIDEST_GAIN}x): a CPU was taken while timing")
    return True, (f"quiet: the probes got {min(probes):.0%} or more, the halves agree on the "
                  f"choice within {halves_apart:.2f}x")


def evidence(probes, halves_apart, version, widest=None, quiet_before=0):
    """The evidence of a measurement (its verdict, from :func:`verdict`), before any deferral is
    counted: ``deferrals`` 0, ``retry_after`` 0 (:func:`postponed` sets them). ``quiet_before``:
    the earlier quiet measurements its gains combine (``CONFIRMATIONS`` in all make it final)."""
    passed, why = verdict(probes, halves_apart, widest)
    quiet = quiet_before + 1 if passed else 0
    if passed and quiet < CONFIRMATIONS:
        why = (f"{why}; confirmed by {CONFIRMATIONS - quiet} more at another moment first (a "
               "shared host's spells pass this)")
    return {"verdict": "final" if quiet >= CONFIRMATIONS else "deferred", "why": why,
            "probes": [round(float(p), 4) for p in probes],
            "apart": 0.0 if halves_apart is None else round(float(halves_apart), 4),
            "widest": 0.0 if widest is None else round(float(widest), 4),
            "quiet": min(quiet, CONFIRMATIONS), "fastfnn": version, "deferrals": 0,
            "retry_after": 0.0}


def final(entry):
    """True where ``entry`` (a cache entry) says it was measured on a quiet machine."""
    evidence = entry.get("evidence") if isinstance(entry, dict) else None
    return isinstance(evidence, dict) and evidence.get("verdict") == "final"


def unconfirmed(entry):
    """True where ``entry`` is deferred though quiet: its gains await confirmation at another
    moment (:func:`evidence`)."""
    return not final(entry) and isinstance(entry, dict) and isinstance(
        entry.get("evidence"), dict) and entry["evidence"].get("quiet", 0) >= 1


def backoff(deferrals):
    """Seconds until the next try after ``deferrals`` deferrals in a row (at least 1):
    RETRY_SECONDS, doubled for each further one, at most MAX_RETRY_SECONDS."""
    return min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2.0 ** min(max(deferrals, 1) - 1, 32))


def postponed(entry, now, deferrals):
    """A copy of the deferred ``entry`` that counts ``deferrals`` deferrals and is due again
    :func:`backoff` seconds after ``now`` (``CONFIRM_SECONDS`` where it awaits confirmation)."""
    wait = CONFIRM_SECONDS if unconfirmed(entry) else backoff(deferrals)
    return {**entry, "evidence": {**entry["evidence"], "deferrals": min(deferrals, MAX_DEFERRALS),
                                  "retry_after": round(now + wait, 3)}}


def due(entry, now):
    """True where the deferred ``entry`` may be measured again at ``now``: its retry time has
    come, or lies further ahead than any backoff gives (a clock set back, an edited file)."""
    retry = entry["evidence"]["retry_after"]
    return now >= retry or retry - now > MAX_RETRY_SECONDS


def evidence_problem(value, version):
    """What is wrong with ``value`` as an entry's evidence for fastfnn ``version``, or None: every
    field of its type and range, and consistent with its verdict (a final one shows three
    passing probes, halves that agree on the choice within AGREE, no deferral; a deferred one a
    deferral and a retry time; a final one combines CONFIRMATIONS quiet measurements, a
    deferred one fewer, and one that counts a quiet measurement shows it passing)."""
    fields = {"verdict": lambda v: v in ("final", "deferred"),
              "why": lambda v: isinstance(v, str) and len(v) <= 200 and v.isprintable(),
              "probes": lambda v: (isinstance(v, list) and len(v) <= 3
                                   and all(_number(p) and p <= 2 for p in v)),
              "apart": _number, "widest": _number,
              "quiet": lambda v: type(v) is int and 0 <= v <= CONFIRMATIONS,
              "fastfnn": lambda v: v == version,
              "deferrals": lambda v: type(v) is int and 0 <= v <= MAX_DEFERRALS,
              "retry_after": lambda v: _number(v) and v <= LATEST_RETRY}
    if not isinstance(value, dict) or set(value) != set(fields):
        return "evidence: not an object of its fields"
    for field, test in fields.items():
        if not test(value[field]):
            return f"evidence: {field} {value[field]!r:.80} is out of its type or range"
    passed, _ = verdict(value["probes"], value["apart"] or None, value["widest"])
    if value["verdict"] == "final":
        if (not passed or value["quiet"] < CONFIRMATIONS or value["deferrals"]
                or value["retry_after"]):
            return "evidence: a final verdict the evidence does not show"
    elif value["quiet"] >= CONFIRMATIONS:
        return "evidence: a deferral of a confirmed measurement"
    elif value["quiet"] and not passed:  # its gains would count with the next measurement's
        return "evidence: a quiet measurement the evidence does not show"
    elif value["deferrals"] < 1 or not value["retry_after"] > 0:
        return "evidence: a deferral without its count or retry time"
    return None


def as_float(v):
    """A JSON number ``v`` (int or float, not a bool) as a float; None for anything else,
    an integer beyond float's range included."""
    if type(v) not in (int, float):
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def _number(v):
    """A finite number >= 0 (int or float, not a bool)."""
    x = as_float(v)
    return x is not None and math.isfinite(x) and x >= 0
