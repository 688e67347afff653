"""No silent wait: the first compile of a fastfnn kernel in a process is announced once, on the
``fastfnn`` logger (the command line prints it on stderr); other packages' compiles and cache
loads say nothing. Oracle: Numba's own compile events, driven by functions jitted here."""

import logging

import numba
import pytest

from fastfnn import _notice
from fastfnn.cli import _show_notices


def jitted(module):
    """A fresh jitted function that Numba sees as defined in ``module``."""
    def add_one(x):
        return x + 1

    add_one.__module__ = module
    return numba.njit(add_one)


@pytest.fixture
def listener(monkeypatch):
    """The notice's listener as at the start of a process: nothing said yet."""
    import numba.core.event as event

    (first,) = [lst for lst in event._registered["numba:compile"]
                if isinstance(lst, _notice._FirstCompile)]
    monkeypatch.setattr(first, "said", False)
    return first


def test_the_first_compile_of_a_fastfnn_kernel_is_announced_once(listener, caplog):
    caplog.set_level(logging.INFO, logger="fastfnn")
    jitted("somebody_else")(1)  # another package's compile: nothing
    assert not caplog.records
    kernel = jitted("fastfnn._kernels")
    kernel(1.0)  # compiled: one line
    kernel(2.0)  # the same signature again: no compile, nothing
    jitted("fastfnn._kernels")(1)  # a second compile: still one line in all
    assert [r.getMessage() for r in caplog.records] == [_notice.MESSAGE % "float64"]
    assert caplog.records[0].levelno == logging.WARNING


def test_the_command_prints_the_notice_on_stderr(listener, capsys, monkeypatch):
    logger = logging.getLogger("fastfnn")
    monkeypatch.setattr(logger, "handlers", [])
    _show_notices()
    _show_notices()  # twice (main runs again in one process): still one handler
    jitted("fastfnn._kernels")(1.0)
    err = capsys.readouterr().err
    assert err == f"fastfnn: note: {_notice.MESSAGE % 'float64'}\n"
