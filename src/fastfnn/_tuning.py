"""Which kernel computes a layer's products: a rule by the CPU's vector width, never a timing;
and the file of the measurements that choose threads (:func:`cached`).

A layer's three products (the forward's ``A @ W``, the weight gradient's ``A.T @ D``, the delta
recursion's ``D @ W.T``) run either in the tile kernel (``_kernels.tile_gemm_``: the output
tile in registers, no packing, no call) or in the private BLAS's gemm (packing and cache
blocking, a fixed cost per call). The two round differently, and a fit's bits may depend on
the data, the parameters and the seed only, so the choice is a rule (``RULES``: the largest
layer, in weights, each product gives the tile kernel, by the vector width and dtype), not a
timing of the moment: a busy machine cannot change a result, and every process on a machine
chooses alike. The rule was read off the crossovers :func:`measure` timed on both kinds of
machine this was tuned on: a Zen 3 EPYC (32-byte vectors; OpenBLAS's Haswell kernels), where the
tile kernel beat gemm up to 96 x 96 to 256 x 256 weights, and a Rocket Lake Xeon and a Zen 4
EPYC (64-byte vectors; SkylakeX kernels), where it ties gemm up to 96 x 96 and wins to 256 x 256
in ``A @ W`` and ``A.T @ D``. ``FASTFNN_TILE=off`` keeps every product on gemm, ``on`` takes
the tile kernel wherever the vector width allows (``auto``, the default: the rule); either
changes rounding, as choosing another BLAS would. Prediction takes the tile kernel for every layer
(``_kernels.EVERY_SHAPE``), whatever this says. ``describe()`` gives the rule and this
machine's timings beside it (``fastfnn bench`` prints them).

Measurements that change only the speed (``_parts``: the threads of split batches and of
prediction's chunks) are kept on disk (``kernel-choices.json`` in fastfnn's cache folder,
``_cache``, keyed by the CPU, its features, the CPU count, OpenBLAS's kernels and fastfnn's
version; written under a file lock, so processes that start together measure once:
:func:`cached`). Each entry carries the evidence of its measurement (``_guard``): *final* where the
machine was quiet throughout, else *deferred*, holding the measuring module's safe default and a
retry time, measured again when that time comes (never before, by any process) and then kept in
its place. What is read there (or in the copy the wheel ships, ``SHIPPED``) is a hint: an entry
that does not validate against its schema (:func:`entry_problem`, one for each kind of entry, the
evidence included: an entry of an older schema or another fastfnn version is not read) is
ignored, then measured again and written over. A write drops this machine's entries of other
fastfnn versions.
"""

import math
import os
import time
from typing import NamedTuple

import numpy as np

from . import _blas, _cache, _env, _guard
from . import _kernels as K
from ._version import __version__

ROWS = 64  # rows of the timed products: a batch part's rows in common fits (32-200)
SIDES = (16, 32, 48, 64, 96, 128, 192, 256)  # fan_in = fan_out of the timed layers
ROUNDS = 5  # alternating timings per kernel and side; the medians are compared
SECONDS = 1e-4  # each timing runs the product this long at least (repeated)
PRODUCTS = ("A @ W", "A.T @ D", "D @ W.T")
UNLIMITED = 2**62
FILE = "kernel-choices.json"
# The measurements made where this fastfnn was built (the build's precompile step puts them in
# the package, as it does Numba's cache): read where the cache file has no entry of its own.
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), FILE)


class Limits(NamedTuple):
    """The largest layer (fan_in * fan_out) whose products take the tile kernel, per product;
    ``Model.tile_nn``, ``tile_tn``, ``tile_nt``."""

    nn: int
    tn: int
    nt: int


_limits = {}  # np.dtype -> (Limits, where they came from), this process's memo


# The tile kernel's share of each product (``Limits``) by vector width (bytes) and dtype, from
# the gemm / tile times on 64 rows (``measure``): 32-byte vectors timed on a Zen 3 EPYC; 64 on
# a Rocket Lake Xeon and a Zen 4 EPYC (both with OpenBLAS's SkylakeX kernels). Their tiles of
# 6 x 4 vectors tie gemm up to 96-unit sides and win from 128 to 256 (Xeon 1.25-1.74x to 192,
# 0.98-1.26x at 256; EPYC 1.13-1.29x, and 1.06-1.17x on to 512); D @ W.T loses from 128.
RULES = {
    32: {"float64": Limits(96 * 96, 192 * 192, 96 * 96),
         "float32": Limits(256 * 256, 256 * 256, 96 * 96)},
    64: {"float64": Limits(256 * 256, 256 * 256, 96 * 96),
         "float32": Limits(256 * 256, 256 * 256, 96 * 96)},
}


def tile_limits(dtype):
    """The ``Limits`` for ``dtype`` (float32 or float64) on this machine: FASTFNN_TILE's, else
    the rule for the CPU's vector width (``RULES``; gemm only for widths it does not name)."""
    dtype = np.dtype(dtype)  # the key: a dtype's name costs microseconds, per predict call
    if dtype not in _limits:
        _limits[dtype] = _choose(dtype.name)
    return _limits[dtype][0]


def _choose(name):
    mode = _env.choice("FASTFNN_TILE", ("auto", "on", "off"), "auto")
    if mode == "off":
        return Limits(0, 0, 0), "FASTFNN_TILE=off"
    if mode == "on":
        return Limits(UNLIMITED, UNLIMITED, UNLIMITED), "FASTFNN_TILE=on"
    rule = RULES.get(K.VECTOR_BYTES, {}).get(name, Limits(0, 0, 0))
    return rule, f"the rule for {K.VECTOR_BYTES}-byte vectors"


def cached(name, measure_now, may_measure=True, again=False):
    """``(entry, how)``: this machine's measurement ``name`` (a JSON-able dict that
    :func:`entry_problem` accepts): read from the cache file; else the one made where this fastfnn
    was built on this machine (``SHIPPED``, then kept in the cache file); else made now by
    ``measure_now(earlier)`` and kept (under a file lock, so that processes that start together
    measure once; ``earlier``: the deferred entry it replaces, whose gains a quiet one awaiting
    confirmation adds, else None). Without a usable cache folder (none writable, or one refused as
    untrusted: ``_cache``), what ``SHIPPED`` holds, else made for this process alone. With
    ``may_measure`` false, ``(None, None)`` where nothing is kept.

    A deferred entry (``_guard``: measured while the machine was busy, or quiet once and awaiting
    confirmation; its choice is the safe default) is returned as it is until its retry time, then
    measured again (where ``may_measure``); a deferred result counts one more deferral and waits
    longer. A deferred entry shipped with the package is due a first backoff after its first use
    here, not at once: the first fit after an install measures nothing. ``again=True`` (``fastfnn
    bench --retune``) measures whatever is kept, a deferred result leaving a final entry in place;
    ``again="deferred"`` (``fastfnn bench``, before it times anything) measures a deferred entry
    before its retry time.
    """
    _schema(name)  # a name of no kind of entry: a mistake of the caller, not of the file
    key = machine_key()
    folder = _cache.usable_folder()
    path = None if folder is None else os.path.join(folder, FILE)
    lock = None
    if path is not None:
        try:
            lock = _cache.locked(path + ".lock").__enter__()
        except OSError:  # not writable (or refused): what is kept there is still read
            lock = None
    try:
        return _look_up(name, measure_now, may_measure, again, key, path, lock is not None)
    finally:
        if lock is not None:
            lock.__exit__()


def _look_up(name, measure_now, may_measure, again, key, path, writable):
    """:func:`cached`'s decision, under the lock where ``writable``."""
    kept, source = _kept(path, key, name)
    mine = _IN_PROCESS.get((key, name))  # this process's own, newer (unless the file's is final)
    if mine is not None and not (kept is not None and _guard.final(kept)):
        kept, source = mine, f"this process ({_unkept(path)})"
    now = _guard.clock()
    if kept is not None and again is not True:
        if _guard.final(kept):
            if writable and source != path:
                _keep(path, key, name, kept)
            return kept, f"measured {kept['when']}, read from {source}"
        if source == SHIPPED and again != "deferred":  # deferred at build time: due a first
            kept = _guard.postponed(kept, now, kept["evidence"]["deferrals"])  # backoff from now
            if writable:
                _keep(path, key, name, kept)
            else:  # nowhere to keep a retry: this process waits the longest backoff
                kept = _guard.postponed(kept, now, _guard.MAX_DEFERRALS)
            return kept, _deferred_how(kept, path if writable else source)
        if not may_measure or not (again == "deferred" or _guard.due(kept, now)):
            return kept, _deferred_how(kept, source)
    if not may_measure:
        return None, None
    entry = measure_now(kept if kept is not None and again is not True else None)
    if not _guard.final(entry) and isinstance(entry, dict) and isinstance(
            entry.get("evidence"), dict):  # deferred: the machine was busy
        if kept is not None and _guard.final(kept):  # --retune while busy: the good one stays
            return kept, (f"measured {kept['when']}, read from {source} (measuring again was "
                          f"deferred: {entry['evidence'].get('why')})")
        # deferrals in a row while busy: a quiet measurement awaiting confirmation starts anew
        before = 0 if kept is None or _guard.unconfirmed(entry) else kept["evidence"]["deferrals"]
        entry = _guard.postponed(entry, now, before + 1)
    if entry_problem(name, entry):
        return entry, "measured by this process (not kept: it does not validate)"
    if writable and _keep(path, key, name, entry):
        _IN_PROCESS.pop((key, name), None)
        return entry, (f"measured now, kept in {path}" if _guard.final(entry)
                       else _deferred_how(entry, path))
    _IN_PROCESS[key, name] = entry  # confirmed, or deferred, by this process's next look-up
    return entry, f"measured by this process ({_unkept(path)})" + (
        "" if _guard.final(entry) else f"; {_deferred_how(entry, None)}")


def _deferred_how(entry, source):
    """How a deferred entry came to be in force, for ``describe()``: why, where it is kept and
    when it is measured again."""
    evidence = entry["evidence"]
    retry = time.strftime("%Y-%m-%d %H:%M", time.localtime(evidence["retry_after"]))
    where = f", kept in {source}" if source else ""
    return (f"the default: measuring was deferred {entry['when']} ({evidence['why']}){where}; "
            f"measured again from {retry}")


# Entries this process measured where no cache file keeps them (no usable folder, a failed
# write): the next look-up continues from them (a quiet measurement is confirmed, a deferral
# backs off), as it would from the file, unless the file then holds a final one.
_IN_PROCESS = {}


def _unkept(path):
    """Why this process's measurement is not in a cache file (``path``: None where no cache
    folder is usable)."""
    return "no usable cache folder" if path is None else f"{path} could not be written"


def _kept(path, key, name):
    """``(entry, the file it came from)``: the valid entry of ``path`` (None: no cache file),
    else of ``SHIPPED``; else (None, None)."""
    for source in (path, SHIPPED):
        if source is not None:
            entry = entry_in(_cache.read_json(source, check=source != SHIPPED), key, name)
            if entry is not None:
                return entry, source
    return None, None


def entry_in(table, key, name):
    """The entry ``name`` of machine ``key`` in ``table`` (a cache file's JSON), where there is
    one and it is valid (:func:`entry_problem`); else None."""
    if not isinstance(table, dict):
        return None
    entries = table.get(key)
    if not isinstance(entries, dict):
        return None
    entry = entries.get(name)
    return None if entry is None or entry_problem(name, entry) else entry


def _keep(path, key, name, entry):
    """Adds ``entry`` under ``key``/``name`` to the file, replaced whole (never half written);
    what is there and not a table is written over. False where it cannot be written (the entry
    is still good)."""
    table = _cache.read_json(path)
    if not isinstance(table, dict):
        table = {}
    machine = _machine(key)
    table = {k: v for k, v in table.items() if k == key or _machine(k) != machine}
    if not isinstance(table.get(key), dict):
        table[key] = {}
    table[key][name] = entry
    return _cache.write_json(path, table)


def _machine(key):
    """A key without its fastfnn version: the same machine and BLAS."""
    return key.rsplit(" | fastfnn ", 1)[0]


# ---- what an entry of the file holds ---------------------------------------------------------


def _count(low, high):
    """A test of an int (not a bool) from ``low`` to ``high``."""
    return lambda v: type(v) is int and low <= v <= high


def _number(positive=False, infinite=False):
    """A test of a number (int or float, not a bool, not NaN): >= 0 (``positive``: > 0), finite
    unless ``infinite``."""

    def test(v):
        x = _guard.as_float(v)  # (an integer past float's range: no number)
        return x is not None and (x > 0 if positive else x >= 0) and (infinite or math.isfinite(x))

    return test


def _rows(*columns):
    """A test of a list of rows, each a list of ``len(columns)`` values that pass the tests
    ``columns``."""

    def test(v):
        return isinstance(v, list) and all(
            isinstance(row, list) and len(row) == len(columns)
            and all(column(x) for column, x in zip(columns, row)) for row in v)

    return test


def _when(v):
    """A test of a measurement's time stamp: one short printable line."""
    return isinstance(v, str) and len(v) <= 64 and v.isprintable()


_WIDE = 1 << 20  # the widest timed layer any version of the measurements could record


def _evidence(v):
    """A test of an entry's evidence: an object (its fields: ``_guard.evidence_problem``)."""
    return isinstance(v, dict)


_GAINS = _rows(_count(1, _WIDE), _number(), _number(positive=True))
# Each kind of entry: its fields and each field's test (every field required, no other). (The tile
# kernel's crossover, ``measure``, is a rule's evidence for ``describe``, timed, never kept.)
SCHEMAS = {
    # the training split (_parts.measure): the least batch flops whose parts run on threads
    # (inf: none); the timings (width, batch flops, gain); the measurement's evidence
    "training split ": {"split_flops": _number(infinite=True), "timings": _GAINS,
                        "when": _when, "evidence": _evidence},
    # prediction's threads (_parts.measure_prediction): the least chunk flops run on threads
    # (inf: none); the timings (width, chunk flops, gain); the measurement's evidence
    "prediction threads ": {"chunk_flops": _number(infinite=True), "timings": _GAINS,
                            "when": _when, "evidence": _evidence},
}
DTYPES = ("float64", "float32")


def _schema(name):
    """The fields of entry ``name`` (a kind's prefix, then a dtype: ``float64``, ``training
    split float32``); ValueError for a name of no kind."""
    for prefix, schema in SCHEMAS.items():
        if name[len(prefix):] in DTYPES and name.startswith(prefix):
            return schema
    raise ValueError(f"no kind of measurement is named {name!r}")


def entry_problem(name, entry):
    """What is wrong with ``entry`` as the measurement ``name`` (its kind's fields, each of the
    right type and range, its evidence consistent and of this fastfnn), or None: it is
    valid."""
    schema = _schema(name)
    if not isinstance(entry, dict):
        return f"{name}: not an object"
    if set(entry) != set(schema):
        return f"{name}: fields {sorted(map(str, entry))}, not {sorted(schema)}"
    for field, test in schema.items():
        if not test(entry[field]):
            return f"{name}: {field} {entry[field]!r:.80} is out of its type or range"
    return _guard.evidence_problem(entry["evidence"], __version__)


def machine_key():
    """What the measurements depend on: the CPU, its features (as LLVM compiles for them), the
    machine's CPU count, OpenBLAS's kernels, fastfnn's version."""
    import llvmlite.binding as llvm

    return " | ".join([llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(),
                       f"{os.cpu_count()} CPUs",
                       f"OpenBLAS {_blas.BLAS.core}", f"fastfnn {__version__}"])


def measure(name):
    """Times both kernels on each product and side for dtype ``name``; returns the cache entry:
    ``limits`` (nn, tn, nt), ``timings`` (product, side, tile seconds, gemm seconds), ``when``."""
    dtype = np.dtype(name)
    rng = np.random.default_rng(0)
    limits, timings = [], []
    for product in range(len(PRODUCTS)):
        limit = 0
        for side in SIDES:
            tile, gemm = _time(product, side, dtype, rng)
            timings.append([PRODUCTS[product], side, tile, gemm])
            if tile >= gemm:
                break
            limit = side * side
        limits.append(limit)
    return {"limits": limits, "timings": timings, "when": now()}


def _time(product, side, dtype, rng):
    """Median seconds of one product of a (side, side) layer on ROWS rows: (tile, gemm)."""
    W = rng.standard_normal((side, side)).astype(dtype)
    A = rng.standard_normal((ROWS, side)).astype(dtype)
    out = np.empty((side, side) if product == 1 else (ROWS, side), dtype)
    scratch = np.empty(side * side, dtype)
    B = A if product == 1 else W  # A.T @ D: D (ROWS, side) as the right operand
    repeats = 1
    while True:  # enough repeats for SECONDS (also compiles and warms both paths)
        start = time.perf_counter()
        K.time_products_(out, A, B, scratch, product, UNLIMITED, repeats)
        K.time_products_(out, A, B, scratch, product, 0, repeats)
        if time.perf_counter() - start >= 2 * SECONDS or repeats >= 1 << 16:
            break
        repeats *= 4
    times = {UNLIMITED: [], 0: []}
    for _ in range(ROUNDS):
        for limit in times:
            start = time.perf_counter()
            K.time_products_(out, A, B, scratch, product, limit, repeats)
            times[limit].append((time.perf_counter() - start) / repeats)
    return float(np.median(times[UNLIMITED])), float(np.median(times[0]))


def now():
    """The time a measurement is stamped with."""
    return time.strftime("%Y-%m-%d %H:%M")


def describe():
    """Lines per dtype: the tile kernel's limits, where they came from, and this machine's
    timings beside them (gemm's time over the tile kernel's at each side, timed now)."""
    lines = []
    for name in ("float64", "float32"):
        limits = tile_limits(name)
        _, how = _limits[np.dtype(name)]
        timings = measure(name)["timings"]
        sides = ", ".join(f"{p} up to {_side(v)}" for p, v in zip(PRODUCTS, limits))
        lines.append(f"{name} layer products: the tile kernel ({K.VECTOR_BYTES}-byte vectors) "
                     f"for layers of {sides} weights, gemm above ({how})")
        for product in PRODUCTS:
            speed = [f"{side}: {gemm / tile:.2f}x" for p, side, tile, gemm in timings
                     if p == product]
            if speed:
                lines.append(f"  {name} {product}, gemm time / tile time by side on {ROWS} "
                             f"rows, timed now (up to the first loss): {', '.join(speed)}")
    return lines


def _side(limit):
    if limit >= UNLIMITED:
        return "any size"
    if limit == 0:
        return "none (gemm only)"
    s = int(round(limit ** 0.5))
    return f"{s} x {s}"
