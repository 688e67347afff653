"""Numba's on-disk cache, safe when several processes fill it at once.

Numba files each compiled function's versions under one index (``name.nbi``: signature ->
data file) and one data file per version (``name-N.nbc``). Saving a version reads the index,
takes the first free N, writes the index, then the data, with no lock. Two processes that
compile two versions of one function at the same moment (two test workers, a pool of fresh
Dask workers, joblib's processes, all with an empty cache) both take the same N: the index
then sends one version's signature to the other version's machine code, and every later
process that loads it crashes (a segmentation fault, not an exception).

:func:`install` makes each save hold an exclusive ``flock`` on ``name.nbi.lock`` from reading
the index to writing the data, so the processes take their turns. Loading needs no lock:
Numba writes both files whole and renames them into place, and a version whose data is not
there yet is a cache miss (compiled again). Where locks are not available (no ``fcntl``, a
folder the lock file cannot be made in), saves go on as Numba's own.

The machine code of a ``parallel=True`` function calls its loop bodies by name,
``__numba_parfor_gufunc_<hex(hash(parfor))>``, and a parfor's hash is its ``id()``: two
processes that compile two different loops at the same address give them one name. Loaded
together from the cache, one function's call then runs the other's loop body (a crash).
:func:`install` gives each parfor a random 63-bit hash instead (once per parfor, so the
hash stays constant), making the names unique across processes.

And the compiles themselves take turns: each thread's outermost ``Dispatcher.compile`` holds
an exclusive ``flock`` on the cache folder's ``fastfnn-compile.lock``, so processes sharing a
cache never compile at the same moment, and one that waited loads from the cache what the
other just compiled instead of compiling it again.
"""

import functools
import os
import threading

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


def _locked(save):
    """``save`` (Numba's ``IndexDataCacheFile.save``) under the index's lock file."""

    @functools.wraps(save)
    def locked_save(cache_file, key, data):
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(cache_file._index_path + ".lock", flags, 0o600)
        except OSError:
            return save(cache_file, key, data)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            return save(cache_file, key, data)
        finally:
            os.close(fd)

    locked_save.fastfnn_locked = True
    return locked_save


_compiling = threading.local()  # depth of Dispatcher.compile calls on this thread


def _one_at_a_time(compile_):
    """``compile_`` (Numba's ``Dispatcher.compile``) under an exclusive ``flock`` on the
    cache folder's ``fastfnn-compile.lock``, taken by a thread's outermost compile: processes
    sharing a cache compile one after another, and the one that waited loads from the cache
    what the other just compiled."""

    @functools.wraps(compile_)
    def compile_in_turn(dispatcher, sig):
        folder = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
        if getattr(_compiling, "depth", 0) or folder is None:
            return compile_(dispatcher, sig)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(os.path.join(folder, "fastfnn-compile.lock"), flags, 0o600)
        except OSError:
            return compile_(dispatcher, sig)
        _compiling.depth = 1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return compile_(dispatcher, sig)
        finally:
            _compiling.depth = 0
            os.close(fd)

    compile_in_turn.fastfnn_locked = True
    return compile_in_turn


def _random_hash(parfor):
    """A parfor's hash: random, drawn once per parfor (not its address, which another process
    may give another loop)."""
    value = parfor.__dict__.get("_fastfnn_hash")
    if value is None:
        value = parfor.__dict__["_fastfnn_hash"] = int.from_bytes(os.urandom(8), "little") >> 1
    return value


def install():
    """Make this process's Numba cache safe beside other processes' (once): saves take
    turns, and parallel loops get names no other process gives another loop."""
    try:
        from numba.core.caching import IndexDataCacheFile
        from numba.core.dispatcher import Dispatcher
        from numba.parfors.parfor import Parfor
    except ImportError:  # pragma: no cover - another Numba layout: left as it is
        return
    if Parfor.__hash__ is not _random_hash:
        Parfor.__hash__ = _random_hash
    if fcntl is not None and not getattr(IndexDataCacheFile.save, "fastfnn_locked", False):
        IndexDataCacheFile.save = _locked(IndexDataCacheFile.save)
    if fcntl is not None and not getattr(Dispatcher.compile, "fastfnn_locked", False):
        Dispatcher.compile = _one_at_a_time(Dispatcher.compile)
