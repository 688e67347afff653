"""Numba's on-disk cache when processes compile at once: two saves of two versions of one
function, interleaved as two processes would (both read the index before either writes it),
must each keep their own data file, and each version must load its own data."""

import threading
import time

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
