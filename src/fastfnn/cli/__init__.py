"""The ``fastfnn`` command: ``fit``, ``predict``, ``search``, ``export``, ``info``, ``gradcheck``,
``bench``, ``precompile``.

``python -m fastfnn`` is the same command. Heavy or optional imports (pandas, tqdm, matplotlib,
scikit-learn's pipeline pieces, skl2onnx) happen inside the commands, so ``import fastfnn`` stays
light. A user error (bad file, bad cell, wrong model file...) is one line on stderr and exit code
1; ``FASTFNN_DEBUG=1`` shows the traceback of unexpected errors instead.

This module is the parser, the entry point ``main`` and its error handling; each command lives in
its own module: ``fit``, ``predict``, ``export``, ``info``, ``gradcheck``, ``precompile`` (``bench``
in ``fastfnn.bench``),
with ``options`` (option types, ``CLIError``, output checks, staged writes), ``data`` (reading
CSV and Parquet, the bundled datasets), ``columns`` (feature kinds, checked cells, targets),
``training`` (the pipeline and the training run), ``progress`` (fit's progress, a
scikit-learn callback), ``metrics`` (the network's metrics and the linear and trivial
references), ``crossval`` (``fit --cv``), ``report`` (``fit --report``), ``plot`` (fit's PNG),
``modelfile`` (the model file and its metadata), ``streaming``
(``fit --stream`` and ``predict --stream``) and ``search`` (the ``search`` command), the last
two through the optional ``fastfnn.scaling`` (Dask), imported inside the commands. The package
is a client of fastfnn's public API only.
"""

import argparse
import logging
import os
import sys

from fastfnn import __version__

from . import export, fit, gradcheck, info, precompile, predict, search
from .data import DataError
from .options import CLIError


# ---- entry point ------------------------------------------------------------------------------


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _show_notices()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (CLIError, DataError) as exc:
        _error(args.command, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except ValueError as exc:  # scikit-learn's and the estimators' messages on bad settings
        if _debugging():
            raise
        _error(args.command, " ".join(str(exc).split()))
        return 1
    except BrokenPipeError:  # e.g. `fastfnn predict ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, unless debugging
        if _debugging():
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _error(args.command, f"{type(exc).__name__}: {message} (FASTFNN_DEBUG=1 shows where)")
        return 1


class _StderrHandler(logging.Handler):
    """fastfnn's log lines (a first compile's notice) on the current stderr, one line each."""

    def emit(self, record):
        print(f"fastfnn: note: {record.getMessage()}", file=sys.stderr, flush=True)


def _show_notices():
    """Print the ``fastfnn`` logger's notices on stderr (once per process)."""
    logger = logging.getLogger("fastfnn")
    if not logger.handlers:  # an application that set its own handler keeps it
        logger.addHandler(_StderrHandler(logging.INFO))


def _debugging():
    """``FASTFNN_DEBUG`` set to 1 (true, yes, on): tracebacks instead of one-line errors."""
    return os.environ.get("FASTFNN_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _error(command, message, limit=500):
    message = " ".join(message.split())
    if len(message) > limit:
        message = message[:limit] + "..."
    print(f"fastfnn {command}: error: {message}", file=sys.stderr)


def build_parser(argv=()):
    """The argument parser; ``fastfnn.bench`` is imported only when the command is ``bench``."""
    parser = argparse.ArgumentParser(
        prog="fastfnn",
        description="Train and use fast MLPs (scikit-learn's MLPRegressor/MLPClassifier, "
                    "compiled) from the command line.",
        epilog="Run 'fastfnn COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fastfnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fit.add_parser(sub)
    predict.add_parser(sub)
    search.add_parser(sub)
    export.add_parser(sub)
    info.add_parser(sub)
    gradcheck.add_parser(sub)
    precompile.add_parser(sub)
    bench = sub.add_parser("bench", help="benchmark training throughput against scikit-learn",
                           description="Benchmark training throughput against scikit-learn.")
    if next((a for a in argv if not a.startswith("-")), None) == "bench":
        try:
            import fastfnn.bench as bench_module
        except ImportError as exc:
            bench.error(f"not available in this installation ({exc})")
        bench_module.add_arguments(bench)
        bench.set_defaults(func=bench_module.run)
    return parser
