"""Which kernel computes a layer's products, measured on the machine that runs them, once.

A layer's three products (the forward's ``A @ W``, the weight gradient's ``A.T @ D``, the delta
recursion's ``D @ W.T``) run either in the tile kernel (``_kernels.tile_gemm_``: the output
tile in registers, no packing, no call) or in the private BLAS's gemm (packing and cache
blocking, a fixed cost per call). Which is faster depends on the CPU and on OpenBLAS's kernels
for it, so the crossover is timed here, not assumed: for each dtype and product, both kernels
run layers of ``side x side`` weights on ``ROWS`` rows, sides growing (``SIDES``), alternating,
medians of ``ROUNDS``; the tile kernel takes every layer up to the largest side where it won at
that side and every smaller one (``Limits``: a weight count per product; 0: never).

The result is kept on disk (``kernel-choices.json`` in fastfnn's cache folder, keyed by the
CPU, its features, the CPU count, OpenBLAS's kernels and fastfnn's version; written under a
file lock, so processes that start together measure once: :func:`cached`, which also keeps
``_parts``' measurement of the training split), and every later process on the machine reads it:
the same choices, hence the same bits, run after run. ``FASTFNN_TILE=off`` keeps every product
on gemm, ``on`` takes the tile kernel wherever the vector width allows; either skips the
measurement. ``describe()`` says what was chosen and why (``fastfnn bench`` prints it).
"""

import json
import os
import threading
import time
from typing import NamedTuple

import numpy as np

from . import _blas
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


_limits = {}  # np.dtype -> (Limits, where they came from, timings), this process's memo


def tile_limits(dtype):
    """The ``Limits`` for ``dtype`` (float32 or float64) on this machine: FASTFNN_TILE's, else
    the cached measurement, else measured now (about 0.1 s) and cached."""
    dtype = np.dtype(dtype)  # the key: a dtype's name costs microseconds, per predict call
    if dtype not in _limits:
        _limits[dtype] = _choose(dtype.name)
    return _limits[dtype][0]


def _choose(name):
    mode = os.environ.get("FASTFNN_TILE", "").strip().lower()
    if mode == "off":
        return Limits(0, 0, 0), "FASTFNN_TILE=off", []
    if mode == "on":
        return Limits(UNLIMITED, UNLIMITED, UNLIMITED), "FASTFNN_TILE=on", []
    entry, how = cached(name, lambda: measure(name))
    return Limits(*entry["limits"]), how, entry["timings"]


def cached(name, measure_now, may_measure=True):
    """``(entry, how)``: this machine's measurement ``name`` (a JSON-able dict): read from the
    cache file; else the one made where this fastfnn was built on this machine (``SHIPPED``,
    then kept in the cache file); else made now by ``measure_now()`` and kept (under a file
    lock, so that processes that start together measure once). Without a writable cache folder,
    what the file or ``SHIPPED`` holds, else made for this process alone. With ``may_measure``
    false, ``(None, None)`` where nothing is kept."""
    path = os.path.join(_blas._cache_dir(), FILE)
    key = machine_key()
    lock = _locked(path + ".lock")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock.__enter__()
    except OSError:  # no writable cache folder: what is kept, else this process measures
        lock = None
    try:
        entry, source = _kept(path, key, name)
        if entry is not None:
            if lock is not None and source != path:
                _keep(path, key, name, entry)
            return entry, f"measured {entry['when']}, read from {source}"
        if not may_measure:
            return None, None
        entry = measure_now()
        if lock is None or not _keep(path, key, name, entry):
            return entry, "measured by this process (no writable cache folder)"
        return entry, f"measured now, kept in {path}"
    finally:
        if lock is not None:
            lock.__exit__()


def _kept(path, key, name):
    """``(entry, the file it came from)``: from ``path``, else ``SHIPPED``; else (None, None)."""
    for source in (path, SHIPPED):
        entry = _read(source).get(key, {}).get(name)
        if entry is not None:
            return entry, source
    return None, None


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


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _keep(path, key, name, entry):
    """Adds ``entry`` under ``key``/``name`` to the file, replaced whole (never half written);
    False where it cannot be written (the entry is still good)."""
    table = _read(path)
    table.setdefault(key, {})[name] = entry
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(table, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        return False
    return True


_held = threading.RLock()  # this process's hold on the file lock: re-entered by its holder
_depth = 0  # how deep the holding thread is inside _locked


def _fresh_lock_in_child():
    """A forked child starts unlocked: the thread that held the lock is not in it."""
    global _held, _depth
    _held, _depth = threading.RLock(), 0


os.register_at_fork(after_in_child=_fresh_lock_in_child)


class _locked:
    """An exclusive lock on the file ``path`` (POSIX ``flock``; a no-op elsewhere) for this
    process, re-entrant in the thread that holds it (a measurement may need another one, e.g.
    the training split's timing needs the tile kernel's choice): other threads and processes
    wait. One lock file per process: a nested lock on another path takes the outer one's."""

    def __init__(self, path):
        self.path = path
        self.file = None

    def __enter__(self):
        global _depth
        _held.acquire()
        try:
            if _depth == 0:
                self.file = open(self.path, "a")
                _flock(self.file)
        except BaseException:
            if self.file is not None:
                self.file.close()
            _held.release()
            raise
        _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        _depth -= 1
        if self.file is not None:
            self.file.close()  # releases the file lock
        _held.release()


def _flock(file):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    fcntl.flock(file, fcntl.LOCK_EX)


def describe():
    """Lines per dtype: the tile kernel's limits, where they came from, and why (gemm's time
    over the tile kernel's at each side timed)."""
    lines = []
    for name in ("float64", "float32"):
        limits = tile_limits(name)
        _, how, timings = _limits[np.dtype(name)]
        sides = ", ".join(f"{p} up to {_side(v)}" for p, v in zip(PRODUCTS, limits))
        lines.append(f"{name} layer products: the tile kernel ({K.VECTOR_BYTES}-byte vectors) "
                     f"for layers of {sides} weights, gemm above ({how})")
        for product in PRODUCTS:
            speed = [f"{side}: {gemm / tile:.2f}x" for p, side, tile, gemm in timings
                     if p == product]
            if speed:
                lines.append(f"  {name} {product}, gemm time / tile time by side on {ROWS} "
                             f"rows: {', '.join(speed)}")
    return lines


def _side(limit):
    if limit >= UNLIMITED:
        return "any size"
    if limit == 0:
        return "none (gemm only)"
    s = int(round(limit ** 0.5))
    return f"{s} x {s}"
