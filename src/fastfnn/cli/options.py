"""Shared by the commands: the user-error type, option types, output checks, staged writes.

Outputs are checked before any work (:func:`check_outputs`) and written through :class:`Staged`:

* a regular file (new or existing) is written to a temporary file in its directory and renamed
  into place only when the command has succeeded, so a failed command leaves the old file as it
  was and never leaves a half-written one;
* a symbolic link is written through: its target is replaced, the link stays;
* ``-`` (where a command allows it), character devices (``/dev/stdout``, ``/dev/null``) and
  FIFOs are streams: opened and written once the command has succeeded, never replaced;
* an output that is the same file as an input or as another output (``os.path.samefile``:
  hard links and symbolic links included) is refused.
"""

import argparse
import os
import stat
import sys


class CLIError(Exception):
    """A user error: its message is printed as one line and the command exits with code 1."""


# ---- option types -------------------------------------------------------------------------------


def hidden_sizes(text):
    """``64,64`` -> (64, 64): comma-separated positive layer widths."""
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 64,64, got {text!r}")
    return sizes


def number(kind, low, low_open=False, high=None):
    """An option type: ``kind`` (int or float) >= ``low`` (> with ``low_open``), < ``high``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        bad = value < low or (low_open and value == low) or (high is not None and value >= high)
        if bad or value != value:
            bounds = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}")
        return value
    return parse


def dropout(text):
    """``0.1`` -> 0.1; ``0.1,0.2`` -> (0.1, 0.2): one rate in [0, 1), or one per hidden
    layer."""
    try:
        rates = tuple(float(s) for s in text.replace(" ", "").split(","))
    except ValueError:
        rates = ()
    if not rates or any(not 0 <= r < 1 for r in rates):
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), or comma-separated rates "
                                         f"(one per hidden layer), got {text!r}")
    return rates[0] if len(rates) == 1 else rates


def scoring(text):
    """'loss' or one of scikit-learn's scorer names."""
    from sklearn.metrics import get_scorer_names

    if text != "loss" and text not in get_scorer_names():
        import difflib

        close = difflib.get_close_matches(text, ["loss", *get_scorer_names()], n=3)
        raise argparse.ArgumentTypeError(
            f"expected 'loss' or a scikit-learn scorer name, got {text!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return text


def scorer_task(name):
    """'classification' or 'regression' for a scikit-learn scorer name whose metric is for
    that task alone (by the module that defines it), else None ('loss', clustering...)."""
    from sklearn.metrics import get_scorer

    if name == "loss":
        return None
    module = getattr(getattr(get_scorer(name), "_score_func", None), "__module__", "") or ""
    if module.endswith("._regression"):
        return "regression"
    if module.endswith(("._classification", "._ranking")):
        return "classification"
    return None


def batch_size(text):
    """``auto`` or a positive integer."""
    return "auto" if text == "auto" else number(int, 1)(text)


def column_names(text):
    """``a,b,c`` -> ['a', 'b', 'c'] (surrounding spaces dropped; at least one name)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"names {', '.join(twice)} twice")
    return names


# ---- outputs ------------------------------------------------------------------------------------


def is_stream(target):
    """True for ``-``, for paths under /dev and /proc (``/dev/stdout`` is a link to whatever
    stdout is, a regular file included) and for existing character devices, FIFOs and sockets:
    outputs that are opened and written, never replaced by a regular file."""
    if target == "-":
        return True
    if os.path.abspath(target).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def check_outputs(outputs, inputs=(), allow_dash=()):
    """Refuse, before any work, outputs that cannot be written or would overwrite an input.

    Parameters
    ----------
    outputs : list of (option, path or None)
        The command's outputs, e.g. ``[("--save", "m.model"), ("--plot", None)]``.
    inputs : list of (what, path)
        The files the command reads, e.g. ``[("DATA", "d.csv")]``.
    allow_dash : collection of str
        The options for which ``-`` means stdout.
    """
    given = [(option, target) for option, target in outputs if target is not None]
    for option, target in given:
        if target == "-":
            if option not in allow_dash:
                raise CLIError(f"{option} -: stdout is not available for this output; give a "
                               "file name")
            continue
        if is_stream(target):
            _check_stream_output(option, target)
        else:
            _check_file_output(option, target)
        for what, source in inputs:
            if source is not None and _same_file(target, source):
                raise CLIError(f"{option} {target}: is the input {what} {source}; refusing to "
                               "overwrite an input: give another output file")
    for i, (option, target) in enumerate(given):
        for other, other_target in given[i + 1:]:
            if target == "-" and other_target == "-" or (
                    target != "-" and other_target != "-" and _same_file(target, other_target)):
                raise CLIError(f"{option} {target} and {other} {other_target} are the same "
                               "file; give two different outputs")


def _check_file_output(option, target):
    real = os.path.realpath(target)  # a symbolic link is written through to its target
    if os.path.isdir(real):
        raise CLIError(f"{option} {target}: is a directory; give a file name")
    shown_dir = os.path.dirname(target) or "."
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {target}: the directory {shown_dir} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {target}: cannot write in the directory {shown_dir} "
                       "(permission denied)")
    if os.path.exists(real) and not os.access(real, os.W_OK):
        raise CLIError(f"{option} {target}: the file is read-only (permission denied)")
    _probe_directory(option, target, directory, shown_dir)


def _probe_directory(option, target, directory, shown_dir):
    """Create and remove a file of a random name in ``directory`` (O_EXCL, O_NOFOLLOW): what
    the staged write will do, tried before any work (a read-only file system, a full quota,
    a directory of /proc or /sys fail here, not after training)."""
    import secrets

    probe = os.path.join(directory, f".fastfnn-probe-{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(probe, flags, 0o600)
    except OSError as exc:
        raise CLIError(f"{option} {target}: cannot create a file in the directory {shown_dir} "
                       f"({exc.strerror or exc})") from None
    os.close(fd)
    try:
        os.remove(probe)
    except OSError:  # pragma: no cover - created a moment ago
        pass


def _check_stream_output(option, target):
    """A stream output (a device, a FIFO, a path under /dev or /proc) must exist and open for
    writing; a FIFO or socket is not opened here (closing it would end its reader's input)."""
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        raise CLIError(f"{option} {target}: cannot write ({exc.strerror or exc}; a path under "
                       "/dev or /proc is written as a stream, never created: give a file in "
                       "a writable directory)") from None
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise CLIError(f"{option} {target}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)


def _same_file(a, b):
    """True when paths ``a`` and ``b`` are one file (hard links, symbolic links included)."""
    if is_stream(a) or is_stream(b):
        return False  # a terminal or pipe as input and output is not an overwrite
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: compare where they would be
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


class Staged:
    """Outputs written to temporary files and put in place only by :meth:`commit`.

    ``path(target)`` gives the temporary file to write for ``target``: in the directory of the
    (link-resolved) target for files, so that ``commit`` renames it into place atomically; in
    the system's temporary directory for streams, copied to the stream by ``commit``. Leaving
    the block removes what was not committed.
    """

    def __init__(self):
        self.pending = []

    def path(self, target, option="output"):
        """A temporary file name to write ``target``'s content to."""
        import tempfile

        target = os.fspath(target)
        stream = is_stream(target)
        real = None if stream else os.path.realpath(target)
        directory = None if stream else os.path.dirname(real)
        name = "stdout" if target == "-" else os.path.basename(target)
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
        except OSError as exc:
            raise CLIError(f"{option} {target}: cannot write ({exc.strerror or exc})") from None
        os.close(fd)
        self.pending.append((tmp, target, real, option))
        return tmp

    def commit(self):
        """Put every staged output in place (files renamed, streams written)."""
        while self.pending:
            tmp, target, real, option = self.pending[0]
            try:
                if real is None:
                    _copy_to_stream(tmp, target)
                    os.remove(tmp)
                else:
                    _set_mode(tmp, real)
                    os.replace(tmp, real)
            except OSError as exc:
                raise CLIError(f"{option} {target}: cannot write "
                               f"({exc.strerror or exc})") from None
            self.pending.pop(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for tmp, *_ in self.pending:
            try:
                os.remove(tmp)
            except OSError:
                pass
        self.pending = []


def _set_mode(tmp, real):
    """An existing file keeps its permissions; a new one gets the usual 0o666 less umask."""
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _copy_to_stream(tmp, target):
    import shutil

    with open(tmp, "rb") as source:
        if target == "-":
            sys.stdout.flush()
            shutil.copyfileobj(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
