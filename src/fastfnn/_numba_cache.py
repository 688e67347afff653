"""Numba's on-disk cache, safe when several processes compile at once.

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
"""

import functools
import os

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


def install():
    """Make this process's Numba cache saves take turns with other processes' (once)."""
    if fcntl is None:
        return
    try:
        from numba.core.caching import IndexDataCacheFile
    except ImportError:  # pragma: no cover - another Numba layout: its saves as they are
        return
    if not getattr(IndexDataCacheFile.save, "fastfnn_locked", False):
        IndexDataCacheFile.save = _locked(IndexDataCacheFile.save)
