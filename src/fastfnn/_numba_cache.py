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

And the compiles of a version take turns: every ``Dispatcher.compile`` of a cached function
holds an exclusive ``flock`` on ``name.nbi.<hash of the signature>.compiling`` beside its
index, so two processes never compile one version at the same moment, and the one that waited
loads from the cache what the other just compiled instead of compiling it again. Other
versions and functions compile at once, on as many cores as there are processes (a first fit
and the second process that compiles ahead of it: ``_compile_ahead``). A compile holds its
version's lock while its callees compile and take theirs, so locks are taken along the call
graph, which has no cycles: no two processes can wait for each other. Each lock is taken
inside Numba's own compiler lock, so two threads of one process cannot either.

A version loaded from the cache keeps the functions Numba runs when loading it (for a
``parallel=True`` function: start Numba's threads) in its library, as a compiled version does.
Numba's own loading drops them there, so a caller compiled in a process that loaded its
parallel callee from the cache lacked them: a later process that loaded that caller alone ran
a parallel loop with no threads started, and crashed (a segmentation fault).

An index that cannot be unpickled is a cache miss: Numba's own loading raised, so that every
fit of every later process failed. Two copies of fastfnn imported under two names in one
process (an A/B comparison of two revisions) filed versions keyed by the other copy's types
under each other's index names; where that copy is not importable, the index cannot be read.
"""

import functools
import hashlib
import os
import pickle

from numba.core.compiler_lock import global_compiler_lock
from numba.core.sigutils import normalize_signature

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


# a lock file opened for reading and writing, made where missing, never through a link
_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _locked(save):
    """``save`` (Numba's ``IndexDataCacheFile.save``) under the index's lock file."""

    @functools.wraps(save)
    def locked_save(cache_file, key, data):
        try:
            fd = os.open(cache_file._index_path + ".lock", _FLAGS, 0o600)
        except OSError:
            return save(cache_file, key, data)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            return save(cache_file, key, data)
        finally:
            os.close(fd)

    locked_save.fastfnn_locked = True
    return locked_save


def _in_turn(compile_):
    """``compile_`` (Numba's ``Dispatcher.compile``) under Numba's compiler lock and an
    exclusive ``flock`` on the version's lock file: a process waits while another compiles the
    same version, then loads what that one saved."""

    @functools.wraps(compile_)
    def compile_in_turn(dispatcher, sig):
        index = getattr(getattr(getattr(dispatcher, "_cache", None), "_cache_file", None),
                        "_index_path", None)
        if index is None:  # not cached on disk: nothing to share
            return compile_(dispatcher, sig)
        with global_compiler_lock:
            version = hashlib.sha1(str(normalize_signature(sig)).encode()).hexdigest()[:16]
            try:
                fd = os.open(f"{index}.{version}.compiling", _FLAGS, 0o600)
            except OSError:
                return compile_(dispatcher, sig)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
                return compile_(dispatcher, sig)
            finally:
                os.close(fd)

    compile_in_turn.fastfnn_locked = True
    return compile_in_turn


def _keeping_reload(rebuild):
    """``rebuild`` (Numba's ``CompileResult._rebuild``, which loads a version from the cache)
    that also hands the version's reload functions to its library, as a compiled library
    holds them, so that a caller compiled later in this process inherits them."""

    @functools.wraps(rebuild)
    def rebuild_keeping_reload(cls, *args, **kwargs):
        cres = rebuild(cls, *args, **kwargs)
        cres.library._reload_init.update(cres.reload_init or ())
        return cres

    rebuild_keeping_reload.fastfnn_reload = True
    return rebuild_keeping_reload


def _tolerant(load_index):
    """``load_index`` (Numba's ``IndexDataCacheFile._load_index``) that takes an index it
    cannot unpickle for an empty one: a cache miss, compiled again and saved over it, not an
    exception in the middle of a fit. Such an index names types of a module this process
    cannot import (another copy of the package, under another name, filed its versions there)
    or was cut short."""

    @functools.wraps(load_index)
    def load_index_or_nothing(cache_file):
        try:
            return load_index(cache_file)
        except (ImportError, AttributeError, EOFError, pickle.UnpicklingError):
            return {}

    load_index_or_nothing.fastfnn_tolerant = True
    return load_index_or_nothing


def _random_hash(parfor):
    """A parfor's hash: random, drawn once per parfor (not its address, which another process
    may give another loop)."""
    value = parfor.__dict__.get("_fastfnn_hash")
    if value is None:
        value = parfor.__dict__["_fastfnn_hash"] = int.from_bytes(os.urandom(8), "little") >> 1
    return value


def install():
    """Make this process's Numba cache safe beside other processes' (once): saves and each
    version's compiles take turns, parallel loops get names no other process gives another
    loop, a version loaded from the cache keeps its reload functions, and an index that cannot
    be read is a cache miss."""
    try:
        from numba.core.caching import IndexDataCacheFile
        from numba.core.compiler import CompileResult
        from numba.core.dispatcher import Dispatcher
        from numba.parfors.parfor import Parfor
    except ImportError:  # pragma: no cover - another Numba layout: left as it is
        return
    rebuild = CompileResult.__dict__.get("_rebuild")
    if isinstance(rebuild, classmethod) and not getattr(rebuild.__func__, "fastfnn_reload",
                                                        False):
        CompileResult._rebuild = classmethod(_keeping_reload(rebuild.__func__))
    if Parfor.__hash__ is not _random_hash:
        Parfor.__hash__ = _random_hash
    if not getattr(IndexDataCacheFile._load_index, "fastfnn_tolerant", False):
        IndexDataCacheFile._load_index = _tolerant(IndexDataCacheFile._load_index)
    if fcntl is not None and not getattr(IndexDataCacheFile.save, "fastfnn_locked", False):
        IndexDataCacheFile.save = _locked(IndexDataCacheFile.save)
    if fcntl is not None and not getattr(Dispatcher.compile, "fastfnn_locked", False):
        Dispatcher.compile = _in_turn(Dispatcher.compile)
