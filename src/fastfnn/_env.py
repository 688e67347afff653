"""fastfnn's environment variables (``FASTFNN_*``), read one way.

A value is stripped of surrounding white space; an empty value means unset; names of choices are
case-insensitive. A value that does not parse is a ``ValueError`` naming the variable and what it
takes (the command line prints it as one line), raised at a fit or a prediction, never at
import, so a bad value cannot break ``import fastfnn`` or ``fastfnn --version``. Most are read
when they are needed; ``FASTFNN_BLAS`` is read once, when the kernels' BLAS is bound at import
(its error kept until the first fit or prediction), so changing it later has no effect.

=========================  =====================================================================
``FASTFNN_BLAS``           ``private`` (default) or ``shared``: which BLAS the kernels call
``FASTFNN_TILE``           ``auto`` (default), ``on`` or ``off``: the tile kernel for products
``FASTFNN_SPLIT_FLOPS``    a number >= 0 (``inf``: never): the work from which batches split
``FASTFNN_NUM_THREADS``    a positive integer: the most threads fastfnn uses
``FASTFNN_CACHE_DIR``      a folder: where measurements are kept
``FASTFNN_DEBUG``          ``1``/``true``/``yes``/``on``: the command shows tracebacks
``FASTFNN_COMPILE_AHEAD``  ``0``/``false``/``no``/``off``: no second process compiles a first
                           fit's last kernels (``1``/``true``/``yes``/``on``: the default)
``FASTFNN_LANES``          ``1``/``true``/``yes``/``on``: a search's candidates that share their
                           minibatches train as lanes (their solo fits to rounding, not to the
                           bit; off by default)
=========================  =====================================================================

Also the one other fact of the process's surroundings that several modules read:
:func:`usable_cpus`, the CPUs its affinity lets it run on.
"""

import math
import os


def usable_cpus():
    """The CPUs this process may run on: its affinity mask, where the system has one (a
    ``taskset`` or a container's CPU set), else every CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

def value(name):
    """The stripped text of ``name``, or None when it is unset or empty."""
    text = os.environ.get(name)
    if text is None:
        return None
    return text.strip() or None


def choice(name, choices, default):
    """One of ``choices`` (lower-case names) for ``name``, or ``default`` when unset."""
    text = value(name)
    if text is None:
        return default
    if text.lower() not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options} (or unset), got {text!r}.")
    return text.lower()


def flag(name, default):
    """True (``1``, ``true``, ``yes``, ``on``) or False (``0``, ``false``, ``no``, ``off``) for
    ``name``, or ``default`` when unset."""
    text = value(name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1, true, yes or on, or 0, false, no or off (or unset), "
                     f"got {text!r}.")


def positive_int(name, what):
    """A positive integer for ``name`` (``what`` it counts, for the message), or None when
    unset."""
    text = value(name)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name} must be a positive integer ({what}), got {text!r}.")
    return number


def non_negative(name, what):
    """A float >= 0 (``inf`` allowed) for ``name``, or None when unset."""
    text = value(name)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not number >= 0:
        raise ValueError(f"{name} must be a number >= 0 ({what}), got {text!r}.")
    return number
