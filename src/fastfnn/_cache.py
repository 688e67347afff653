"""fastfnn's cache folder: where measurements are kept, as data (never code), read and written
like a careful Unix tool.

The folder is ``FASTFNN_CACHE_DIR``, else ``fastfnn`` in the user's cache folder
(``XDG_CACHE_HOME``, else ``~/.cache``). It is created (mode 0o700) and checked when a
measurement is first looked up, never at import. It is used only when it can be trusted
(:func:`problem`): a folder, owned by this user (or root), not writable by group or others
unless the sticky bit is set; and each file in it: a regular file (not a symbolic link), owned
by this user (or root), not writable by group or others. Otherwise it is refused for the rest
of the process, with one warning naming the folder and why, and nothing is read from it or
written to it: measurements are then made for the process alone. (Where the system has no
notion of owners and modes, as on Windows, no ``os.geteuid``, only the file types are checked.)

Files are opened with ``O_NOFOLLOW`` (a symbolic link planted at a name is never followed) and,
for reading, ``O_NONBLOCK`` (a FIFO cannot stall a fit). Reads are bounded (``MAX_BYTES``: a
larger file is ignored, not read) and a file that does not parse is ignored: a cache is a hint.
Writes go to a temporary file of a random name created with ``O_EXCL``, are flushed to disk
(``fsync``), then renamed over the target (``os.replace``): a reader sees the old file or the
new one, never half of one, and on any failure (a full disk) the temporary file is removed.

:class:`locked` serialises the processes (``flock`` on a lock file beside the data) and the
threads of one process, re-entrant in the thread that holds it.

This module imports only the standard library and ``_env``: any module may use it.
"""

import errno
import json
import os
import secrets
import stat
import threading
import time
import warnings

from . import _env

MAX_BYTES = 1 << 20  # the most a cache file may hold: a larger one is ignored, not read
LOCK_SECONDS = 60  # the longest a process waits for the lock another one holds (measuring)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation

_refused = {}  # folder -> why: folders this process does not use (warned about once)


def folder():
    """The cache folder's path (neither created nor checked): ``FASTFNN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fastfnn`` (an absolute ``XDG_CACHE_HOME`` only), else
    ``~/.cache/fastfnn``."""
    chosen = _env.value("FASTFNN_CACHE_DIR")
    if chosen is not None:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastfnn")


def usable_folder():
    """The cache folder, created (mode 0o700) where it is missing, when it can be used: None
    where it cannot be created, is not a folder, or is refused (:func:`problem`; warned about
    once per process)."""
    path = folder()
    if path in _refused:
        return None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError:  # cannot be made here (read-only, a file in the way): no cache, silently
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    why = problem(info, folder=True)
    if why is not None:
        refuse(path, why)
        return None
    return path


def problem(info, folder=False):
    """Why a folder (``folder``) or a file with ``os.stat`` result ``info`` cannot be trusted,
    or None: owned by another user than this one (root's are trusted too), or writable by group
    or others (for a folder: without the sticky bit, which keeps others from replacing this
    user's files). Where the system has no owners (no ``os.geteuid``), None."""
    if not hasattr(os, "geteuid"):
        return None
    user = os.geteuid()
    if info.st_uid not in (user, 0):
        return f"owned by uid {info.st_uid}, not by this user (uid {user})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if not folder:
            return "writable by group or others"
        if not info.st_mode & stat.S_ISVTX:
            return "writable by group or others, without the sticky bit"
    return None


def refuse(path, why):
    """Stop using the cache folder in this process: ``path`` is the folder, or a file in it
    (``why`` then says what is wrong with that file), with a one-line warning (once per folder)
    naming the folder and why."""
    where = path if path == folder() else os.path.dirname(path)
    if where in _refused:
        return
    what = "it is" if where == path else f"its {os.path.basename(path)} is"
    _refused[where] = f"{what} {why}"
    warnings.warn(f"fastfnn does not use the cache folder {where}: {what} {why}; measurements "
                  "are made for this process alone (fix the folder, or set FASTFNN_CACHE_DIR "
                  "to a folder of your own)", UserWarning, stacklevel=2)


def refused(path):
    """True where ``path`` (the cache folder, or a file in it) belongs to a refused folder."""
    return path in _refused or os.path.dirname(path) in _refused


def _open(path, flags, mode, check):
    """``os.open`` of ``path`` without following a symbolic link; the descriptor, checked to be
    a regular file and (``check``) trusted, else the cache folder refused and OSError raised."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _BINARY, mode)
    except OSError:
        if check and os.path.islink(path):
            refuse(path, "a symbolic link")
        raise
    try:
        info = os.fstat(fd)
        why = ("not a regular file" if not stat.S_ISREG(info.st_mode)
               else problem(info) if check else None)
        if why is not None:
            if check:
                refuse(path, why)
            raise OSError(errno.EPERM, f"{path} is {why}")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_json(path, check=True):
    """The JSON value in the file ``path``, or None where it is missing, unreadable, larger than
    ``MAX_BYTES``, not JSON, or (``check``: a file of the cache folder) not to be trusted. Never
    follows a symbolic link."""
    if check and refused(path):
        return None
    try:
        fd, info = _open(path, os.O_RDONLY | _NONBLOCK, 0, check)
    except OSError:
        return None
    try:
        if info.st_size > MAX_BYTES:
            return None
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    if size > MAX_BYTES:  # it grew while read
        return None
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        return None


def write_json(path, value):
    """Writes ``value`` as JSON to the file ``path``, replacing it whole: a temporary file of a
    random name beside it (``O_EXCL``, mode 0o644), flushed to disk, renamed over ``path``.
    True where written; False where not (the folder refused, a full disk, no permission):
    then nothing is left behind."""
    if refused(path):
        return False
    data = json.dumps(value, indent=1).encode()
    head, tail = os.path.split(path)
    for _ in range(8):  # a random name taken already (by chance or on purpose): another one
        tmp = os.path.join(head, f".{tail}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
                         | _BINARY, 0o644)
            break
        except FileExistsError:
            continue
        except OSError:
            return False
    else:
        return False
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    _sync_folder(head)
    return True


def _write_all(fd, data):
    """Writes all of ``data`` to ``fd`` (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync_folder(path):
    """Flushes the folder ``path`` to disk (its new entry survives a crash), where the system
    allows it; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_held = threading.RLock()  # this process's hold on the file lock: re-entered by its holder
_depth = 0  # how deep the holding thread is inside `locked`


def _fresh_lock_in_child():
    """A forked child starts unlocked: the thread that held the lock is not in it."""
    global _held, _depth
    _held, _depth = threading.RLock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


class locked:
    """An exclusive lock on the file ``path`` (POSIX ``flock``; across processes only where
    there is one) for this process, re-entrant in the thread that holds it (a measurement may
    need another one): other threads and processes wait. One lock file per process: a nested
    lock on another path takes the outer one's. The lock file is opened like any cache file (no symbolic link followed,
    trusted, created with mode 0o600); entering raises OSError where it cannot be."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        global _depth
        _held.acquire()
        try:
            if _depth == 0:
                if refused(self.path):
                    raise OSError(errno.EPERM, f"the cache folder of {self.path} is refused")
                self.fd, _ = _open(self.path, os.O_RDWR | os.O_CREAT | _NONBLOCK, 0o600, True)
                _flock(self.fd)
        except BaseException:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            _held.release()
            raise
        _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        _depth -= 1
        if self.fd is not None:
            os.close(self.fd)  # releases the file lock
            self.fd = None
        _held.release()


def _flock(fd, seconds=None):
    """Take the exclusive ``flock`` of ``fd``, waiting at most ``seconds`` (default
    ``LOCK_SECONDS``: a measurement takes a few): a holder stopped or hung longer is not waited
    for (OSError ETIMEDOUT; the caller then measures for itself and keeps nothing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    deadline = time.monotonic() + (LOCK_SECONDS if seconds is None else seconds)
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(errno.ETIMEDOUT, "another process has held the cache file's lock "
                              "for too long") from None
            time.sleep(delay)
            delay = min(0.05, 2 * delay)
