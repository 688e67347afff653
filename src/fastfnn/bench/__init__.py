"""Benchmark harness: fastfnn against scikit-learn, PyTorch eager and a straightforward compiled
reference on identical training work, with every performance target and whether it was met.

Used by ``fastfnn bench`` (:func:`add_arguments`, :func:`run`) and by the pytest-benchmark suite in
``benchmarks/`` (which drives the same :class:`Bench`). What is measured, all in one process and run:

* training: ``FNNRegressor``, scikit-learn's ``MLPRegressor`` with the same parameters, PyTorch
  eager (``nn.Sequential`` + ``torch.optim.SGD(nesterov=True)`` / ``Adam``, manual batching of a
  pre-permuted tensor) when torch is installed, and for sgd the "reference" (one plain Numba
  function per epoch, ``np.dot`` into flat buffers, fused elementwise loops: ``reference``).
  Seconds per epoch, samples/s, ratios of the best rounds;
* physical limits: GFLOP/s at ``Config.flops_per_sample`` flops per sample against the GEMM
  peak of one core and of all cores (a large ``np.matmul``, same run);
* that they did the same work: every epoch over every sample, and epoch-1 losses from the same
  seed (fastfnn and scikit-learn draw the same random numbers; torch and the reference are given
  scikit-learn's initial weights and batch order, drawn in each timed round);
* the "GEMM floor": the epoch's matrix products alone, at their real shapes;
* predict latency (1, 10, 100 rows) and throughput (1k, 10k and 100k rows) of a (64, 64) regressor;
  start-up (import, first fit with an empty and a warm Numba cache, the first ``fastfnn fit``
  command) and the peak memory of a fit, each in fresh subprocesses;
* the targets (:data:`TARGETS`, one table), each with its value and met / MISSED.

Choices (see benchmarks/README.md): every implementation runs with the same thread count,
fastfnn's own choice for the problem (``_parts.training_threads`` of
``_parts.training_parts``), set by threadpoolctl for scikit-learn and ``torch.set_num_threads``
for torch (the reference: threadpoolctl, its BLAS being its only
threads). torch's L2 term is ``weight_decay = alpha / m`` on the weights
only (``m`` the rows of the batch, reset for the shorter last batch): exactly scikit-learn's
``(A.T @ D + alpha * W) / m`` gradient. torch is imported only when its benchmarks run.

The package, one job a module: ``cases`` (what runs: constants, targets, configs, options, data,
estimator parameters), ``torch_impl`` (the PyTorch eager twin), ``reference`` (the straightforward
compiled twin), ``gemm`` (GEMM peak and floor), ``children`` (start-up, the ``fastfnn fit``
command and memory in fresh processes), ``suite`` (:class:`Bench`: measure and record),
``report`` (the tables, the targets and the machine header); here, the command and the names the
benchmarks import.
"""

import argparse
import json
import os
import stat
import sys

from .._env import usable_cpus
from .._files import write_atomically
from .cases import (
    ADAM_CONFIGS, ALPHA, CONFIGS, DTYPES, FLOOR_CONFIGS, FULL_EPOCHS, IMPLS, LR, MEMORY_CONFIGS,
    MOMENTUM, PREDICT_CALLS, PREDICT_CASE, PREDICT_CONFIG, QUICK_CONFIGS, QUICK_EPOCHS, ROUNDS,
    SECTIONS, SEED, TARGETS, TOLERANCE, TRAIN_COLUMNS, Case, Config, Options, Target,
    estimator_class, estimator_params, make_data, options_from_args, sklearn_draws, thread_count,
    torch_available,
)
from .children import MEMORY_CHILD, STARTUP_CHILD, command_seconds, memory_child
from .gemm import gemm_floor, gemm_peak
from .reference import reference_fit
from .report import machine_choices, machine_header, machine_info, startup_table
from .suite import SETTLE_SECONDS, Bench, settle
from .torch_impl import torch_fit, torch_model

__all__ = [
    "ADAM_CONFIGS", "ALPHA", "CONFIGS", "DTYPES", "FLOOR_CONFIGS", "FULL_EPOCHS", "IMPLS", "LR",
    "MEMORY_CONFIGS", "MOMENTUM", "PREDICT_CALLS", "PREDICT_CASE", "PREDICT_CONFIG",
    "QUICK_CONFIGS", "QUICK_EPOCHS", "ROUNDS", "SECTIONS", "SEED", "TARGETS", "TOLERANCE",
    "TRAIN_COLUMNS", "Case", "Config", "Options", "Target", "estimator_class",
    "estimator_params", "make_data", "options_from_args", "sklearn_draws", "thread_count",
    "torch_available", "usable_cpus", "MEMORY_CHILD", "STARTUP_CHILD", "command_seconds",
    "memory_child",
    "gemm_floor", "gemm_peak", "reference_fit", "machine_choices", "machine_header",
    "machine_info", "startup_table", "SETTLE_SECONDS", "Bench", "settle", "torch_fit",
    "torch_model", "add_arguments", "run", "retune", "main",
]


def add_arguments(parser):
    """Options of ``fastfnn bench`` (the same names as the pytest suite's ``--bench-*``)."""
    parser.add_argument("--full", action="store_true",
                        help="every config, adam, GEMM floor, cold start and memory "
                             "(about 10-15 minutes on 2 cores); default: a quick subset")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated configs from {','.join(CONFIGS)}")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per timed fit")
    parser.add_argument("--rounds", type=int, default=None, help="timed fits per implementation")
    parser.add_argument("--samples", type=int, default=None,
                        help="cap the number of samples of every config (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for scikit-learn's BLAS, PyTorch and the plain loop, "
                             "and at most this many for fastfnn, whose rule still picks how "
                             "many pay (default: fastfnn's choice for every implementation)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated from {','.join(SECTIONS)} (default: all with "
                             "--full, else train,predict,startup)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="side of the square matmul that measures the GEMM peak")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")
    parser.add_argument("--retune", action="store_true",
                        help="measure this machine's thread choices again now, each twice, 15 s "
                             "apart (about a minute), keep them where the machine was quiet, "
                             "print them, and exit without benchmarking (1: the machine was "
                             "busy, nothing new kept)")


def run(args):
    """``fastfnn bench``: run the selected benchmarks, print the tables; 1 if the
    implementations did not do the same work, else 0. With ``--retune``: :func:`retune`."""
    if getattr(args, "retune", False):
        return retune(quiet=getattr(args, "quiet", False))
    try:
        opts = options_from_args(args)
        outputs = _outputs(args)
    except ValueError as exc:
        print(f"fastfnn bench: {exc}", file=sys.stderr)
        return 2
    quiet = getattr(args, "quiet", False)
    log = None if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    measure_deferred(log)
    bench = Bench(opts, log=log)
    bench.run_all()
    text = bench.report()
    print(text)
    contents = {"--markdown": lambda: text,
                "--json": lambda: json.dumps(bench.to_dict(), indent=1, default=float)}
    for option, path in outputs:
        data = contents[option]().encode()
        if _stream(path):  # a FIFO, a terminal, /dev/stdout: written, never replaced
            with open(path, "wb") as f:
                f.write(data)
        else:  # through a symbolic link to its target, replaced whole, its mode kept
            write_atomically(os.path.realpath(path), data, f"{option} file")
    return 0 if bench.all_same_work() else 1


def _stream(path):
    """Whether ``path`` is something other than a regular file or a directory (a FIFO, a
    device): a stream to write to, not a file to replace."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _outputs(args):
    """``[(option, path)]`` of the files ``--json`` and ``--markdown`` ask for, checked before
    anything is timed (a run takes minutes): ValueError naming the option where the path (a
    symbolic link's target) is a directory, a read-only file, or in a folder that does not
    exist or cannot be written, or where both name one file."""
    outputs = [(option, path) for option, path in (("--json", getattr(args, "json", None)),
                                                   ("--markdown", getattr(args, "markdown", None)))
               if path is not None]
    for option, path in outputs:
        real = os.path.realpath(path)
        folder = os.path.dirname(real)
        if os.path.isdir(real):
            raise ValueError(f"{option} {path}: is a directory; give a file name")
        if _stream(real):
            continue
        if not os.path.isdir(folder):
            raise ValueError(f"{option} {path}: the directory {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{option} {path}: cannot write in the directory {folder}")
        if os.path.exists(real) and not os.access(real, os.W_OK):
            raise ValueError(f"{option} {path}: the file is read-only")
    if len(outputs) == 2 and os.path.realpath(outputs[0][1]) == os.path.realpath(outputs[1][1]):
        raise ValueError("--json and --markdown name one file; give two different files")
    return outputs


DEFERRED_ATTEMPTS = 3  # measurements of a deferred choice before a benchmark times anything


def measure_deferred(log):
    """Before anything is timed: the machine's choices that were deferred (measured while the
    machine was busy, or quiet once and awaiting confirmation; the safe default in force) are
    measured now and confirmed after a pause (``_parts.retune``), retry time or not, up to
    DEFERRED_ATTEMPTS times while one is still deferred (a shared VM's other vCPU is taken away
    for seconds at a time), so the benchmark runs with this machine's own (the header says how
    each came)."""
    from .. import _parts

    for _ in range(DEFERRED_ATTEMPTS):
        lines, quiet, _ = _parts.retune(log, deferred_only=True)
        if lines[:1] and lines[0].startswith("nothing measured"):
            return
        for line in lines:
            if log is not None:
                log(line)
        if quiet:
            return


def retune(quiet=False):
    """``fastfnn bench --retune``: measure the machine's choices again (``_parts.retune``), print
    what each is now; 0 where every measurement was final, 1 where the machine was busy (a
    final choice kept before stays; run it again when the machine is quiet). The closing line
    says which choices, if any, are left on their safe defaults."""
    from .. import _parts

    log = None if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    lines, all_final, defaults = _parts.retune(log)
    for line in lines:
        print(line)
    if not all_final:
        print(f"fastfnn bench --retune: {_not_final(lines, defaults)}", file=sys.stderr)
    return 0 if all_final else 1


def _not_final(lines, defaults):
    """The closing line of a retune that kept nothing new: why, and what is in force."""
    if lines[:1] and lines[0].startswith("nothing measured"):
        return f"{lines[0]}; the safe defaults are in force"
    if defaults:
        return (f"the machine was busy: {', '.join(defaults)} stay(s) on the safe default until "
                "a quiet measurement; run it again when the machine is quiet")
    return ("the machine was busy, so nothing measured now was kept; every choice in force was "
            "measured earlier on a quiet machine (above) and stays; run it again when the "
            "machine is quiet to measure them anew")


def main(argv=None):
    """``python -m fastfnn.bench``: the same as ``fastfnn bench``."""
    parser = argparse.ArgumentParser(prog="fastfnn bench", description=run.__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
