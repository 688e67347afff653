"""Files written whole or not at all: a new file of a random name beside the target (``O_EXCL``),
flushed to disk, renamed over the target, with the mode of the file it replaces. A reader sees
the old file or the new one, never part of either, and a failed write leaves nothing behind.

Imports nothing of the package: model files (``model_io``) and the benchmark's reports
(``bench``) use it."""

import contextlib
import errno
import os
import secrets
import stat


def write_atomically(path, data, what="file"):
    """Write the bytes ``data`` to a new file beside ``path``, flush it to disk, give it the mode
    of the file at ``path`` if there is one, rename it over ``path``. ``IsADirectoryError``
    where ``path`` is a directory, ``FileNotFoundError`` where its folder is missing (``what``
    names the file in the messages); any ``OSError`` of the write is raised with the temporary
    file removed."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"Is a directory; give the {what}'s path", path)
    head, tail = os.path.split(os.path.abspath(path))
    if not os.path.isdir(head):
        raise FileNotFoundError(errno.ENOENT, f"No such folder for the {what}: {head}", path)
    tmp = os.path.join(head, f".{tail}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
