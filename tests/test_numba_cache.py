"""Numba's on-disk cache when processes compile at once: two saves of two versions of one
function, interleaved as two processes would (both read the index before either writes it),
must each keep their own data file, and each version must load its own data."""

import sys
import threading
import time
import types

import pytest

from numba.core.caching import IndexDataCacheFile

from fastfnn import _numba_cache


def _race(tmp_path, save):
    """Two threads save versions 'a' and 'b' of one function; each reads the index, then
    waits for the other to have read it too (the window two processes can meet in)."""
    read = threading.Barrier(2, timeout=1)
    original = IndexDataCacheFile._load_index

    def slow_load(self):
        overloads = original(self)
        try:
            read.wait()  # the other save read the same index
        except threading.BrokenBarrierError:
            pass  # it could not: it waits for this save's lock
        return overloads

    files = [IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1)) for _ in range(2)]
    IndexDataCacheFile._load_index = slow_load
    try:
        threads = [threading.Thread(target=save, args=(cache_file, key, key.encode() * 100))
                   for cache_file, key in zip(files, ("a", "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        IndexDataCacheFile._load_index = original
    return IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))


def test_saves_made_at_once_keep_each_version_its_own_data(tmp_path):
    _numba_cache.install()
    assert getattr(IndexDataCacheFile.save, "fastfnn_locked", False)
    cache = _race(tmp_path, IndexDataCacheFile.save)
    assert cache.load("a") == b"a" * 100 and cache.load("b") == b"b" * 100


def test_numbas_own_save_loses_a_version_there(tmp_path):
    """The oracle that the race is real: Numba's save, unlocked, gives both versions one data
    file (one version then loads the other's data, or nothing)."""
    own = getattr(IndexDataCacheFile.save, "__wrapped__", IndexDataCacheFile.save)
    cache = _race(tmp_path, own)
    loaded = {cache.load("a"), cache.load("b")}
    assert loaded != {b"a" * 100, b"b" * 100}


def test_parallel_loops_are_named_apart_from_other_processes_loops():
    """A parfor's hash, which names its loop body in the machine code, is not its address
    (which a loop in another process can share) and stays the same for the parfor."""
    from numba.parfors.parfor import Parfor

    _numba_cache.install()
    parfors = [object.__new__(Parfor) for _ in range(3)]
    hashes = [hash(p) for p in parfors]
    assert hashes == [hash(p) for p in parfors]  # constant
    assert all(h != id(p) for h, p in zip(hashes, parfors)) and len(set(hashes)) == 3


_MODULE = '''
import numba

@numba.njit(cache=True)
def f(x):
    return x + 1

@numba.njit(cache=True)
def g(x):
    return x + 2
'''

_CHILD = '''
import sys
sys.path.insert(0, sys.argv[1])
from fastfnn import _numba_cache
_numba_cache.install()
import mod
import hashlib
from numba import types
from numba.core.sigutils import normalize_signature
version = hashlib.sha1(str(normalize_signature((types.int64,))).encode()).hexdigest()[:16]
print(f"{mod.f._cache._cache_file._index_path}.{version}.compiling", flush=True)
sys.stdin.readline()
print("g", mod.g(1), flush=True)
print("f", mod.f(1), flush=True)
'''


def test_a_version_compiles_in_one_process_at_a_time_others_meanwhile(tmp_path):
    """While another process compiles f(int64) (here: holds that version's compile lock), a
    process that needs f(int64) waits for it, and compiles g, another function, meanwhile."""
    import fcntl
    import os
    import subprocess
    import sys

    (tmp_path / "mod.py").write_text(_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with open(child.stdout.readline().strip(), "a") as lock:  # f(int64)'s compile
            fcntl.flock(lock, fcntl.LOCK_EX)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().split() == ["g", "3"]  # not held up by f's lock
            time.sleep(1.0)
            assert child.poll() is None  # still waiting for f
        assert child.stdout.readline().split() == ["f", "2"]
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()


_PARALLEL = '''
import numpy as np
from numba import njit, prange
{patch}

@njit(parallel=True, cache=True)
def inner(x, y):
    for i in prange(x.size):
        y[i] = x[i]

@njit(cache=True)
def outer(x):
    y = np.zeros_like(x)
    inner(x, y)
    return y
'''
_STEPS = (  # three processes: the parallel callee alone; its caller; both loaded, then run
    "from numba import types; mod.inner.compile((types.float64[::1], types.float64[::1]))",
    "print(mod.outer(np.ones(1000)).sum())",
    "print(mod.outer(np.ones(1000)).sum())",
)


def _caller_compiled_apart(tmp_path, patch):
    """Return codes and outputs of :data:`_STEPS` on a module of ``_PARALLEL`` (one cache)."""
    import os
    import subprocess
    import sys

    (tmp_path / "mod.py").write_text(_PARALLEL.format(patch=patch))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    runs = []
    for step in _STEPS:
        code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import numpy as np, mod; {step}"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
        runs.append((done.returncode, done.stdout.strip()))
    return runs


def test_a_caller_compiled_beside_a_cached_parallel_callee_loads_and_runs(tmp_path):
    """A caller compiled in a process that loaded its parallel callee from the cache carries
    the callee's reload functions (which start Numba's threads), so a later process that
    loads only the caller runs it."""
    runs = _caller_compiled_apart(tmp_path, "from fastfnn import _numba_cache; "
                                            "_numba_cache.install()")
    assert runs[1:] == [(0, "1000.0"), (0, "1000.0")]


def test_numbas_own_cache_crashes_there(tmp_path):
    """The oracle that the crash is real: with Numba's own loading, the third process (the
    caller and, inside it, the callee from the cache; Numba's threads never started) dies
    of a segmentation fault."""
    runs = _caller_compiled_apart(tmp_path, "")
    assert runs[1] == (0, "1000.0") and runs[2][0] == -11


def _index_naming_a_vanished_module(tmp_path):
    """An index whose entry's key holds a class of a module that is gone by the time the index
    is read (as a copy of the package imported under another name leaves it)."""
    module = types.ModuleType("vanished_copy_of_the_package")
    exec("class Model:\n    pass\n", module.__dict__)
    module.Model.__module__ = module.__name__
    sys.modules[module.__name__] = module
    try:
        cache_file = IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))
        cache_file._save_index({("sig", module.Model): "f-1.py311.0.nbc"})
    finally:
        del sys.modules[module.__name__]
    return IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))


def test_an_index_that_cannot_be_unpickled_is_a_cache_miss(tmp_path):
    _numba_cache.install()
    cache_file = _index_naming_a_vanished_module(tmp_path)
    assert cache_file._load_index() == {}
    cache_file.save("a", b"a" * 100)  # a miss saves over it, and the index reads again
    assert cache_file.load("a") == b"a" * 100


def test_numbas_own_loading_raises_there(tmp_path):
    """The oracle that the index above is one Numba's own loading cannot read."""
    cache_file = _index_naming_a_vanished_module(tmp_path)
    own = getattr(IndexDataCacheFile._load_index, "__wrapped__", IndexDataCacheFile._load_index)
    with pytest.raises(ImportError):
        own(cache_file)
