"""Shared by the commands: the user-error type, option types, output checks, staged writes."""

import argparse
import os


class CLIError(Exception):
    """A user error: its message is printed as one line and the command exits with code 1."""


def hidden_sizes(text):
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 64,64, got {text!r}")
    return sizes


def number(kind, low, low_open=False, high=None):
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


def batch_size(text):
    return "auto" if text == "auto" else number(int, 1)(text)


def check_writable(option, target):
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise CLIError(f"{option} {target}: is a directory")
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {target}: the directory {directory} does not exist")


class Staged:
    """Output files written to temporary names in their target directories, renamed into place
    only by ``commit()`` (os.replace), and removed if the block fails: nothing half-written."""

    def __init__(self):
        self.pending = []

    def path(self, target):
        import tempfile

        directory = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.",
                                   suffix=".part")
        os.close(fd)
        self.pending.append((tmp, target))
        return tmp

    def commit(self):
        umask = os.umask(0)
        os.umask(umask)
        for tmp, target in self.pending:
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        self.pending = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for tmp, _ in self.pending:
            try:
                os.remove(tmp)
            except OSError:
                pass
