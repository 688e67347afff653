"""The kernels a first fit's validation and its first predictions need, compiled by a second
process while this one compiles the training loop.

Numba compiles on one thread. A cold first fit compiles its training loop, then, after it, the
validation loss and the forward pass of early stopping, and its first predictions compile the
forward passes of prediction (chunks on threads, and the small-input path). All of these take
the loop's own groups (or arrays of its dtype), so their argument types are known the moment
the loop starts compiling.

At that moment (Numba's ``numba:compile`` event for a loop kernel: it fires on compiles, never
on cache loads) this process hands the loop's argument types to a second one
(``python -m fastfnn._compile_ahead``), which compiles, into the same on-disk cache, the kernels
:func:`jobs` names. This process loads each from the cache when it gets there; arriving while
the other still compiles one, it waits for it (processes compile a version in turn:
``_numba_cache``) rather than compile it twice. Only kernels called from Python are compiled
there, never a kernel that this process's own loop links into its code: the same code, compiled
by the same Numba for the same CPU, and nothing but the wait changes.

One second process per process, fed by a pipe (pickled Numba types, written by its parent
only), ended when its parent exits; started as fastfnn is imported where no version of the
training loop is cached yet (its own imports then overlap this process's), else at the first
loop compile. Only where it can help: at least two CPUs in this process's affinity, kernels
cached on disk, not inside the second process itself, and ``FASTFNN_COMPILE_AHEAD`` not ``0``.
"""

import atexit
import os
import pickle
import struct
import subprocess
import sys

from numba import types
from numba.core import event

from . import _env
from . import _kernels as K

LOOPS = {"run_batches_", "run_batches_parallel_", "run_models_", "loss_grad_",
         "loss_grad_parallel_"}
DEPTHS = (2, 3, 4)  # layers of the small-input prediction path prepared (1-3 hidden layers)


def jobs(loop, args):
    """``[(kernel, argument types)]`` to compile ahead of the loop kernel ``loop`` compiling
    for ``args`` (its Numba argument types), in the order a fit and its predictions reach
    them: ``forward_rows_``, ``loss_value``, ``forward_rows_parallel_`` and
    ``forward_layers_`` for :data:`DEPTHS` layers."""
    if loop == "run_models_":  # typed lists of the groups of run_batches_
        args = [arg.item_type for arg in args[:5]]
    if loop in ("loss_grad_", "loss_grad_parallel_"):
        params, work, data, model = args[:4]
    else:
        params, _, work, data, model = args[:5]
    dtype = params.types[0].dtype
    matrix, vector = types.Array(dtype, 2, "C"), types.Array(dtype, 1, "C")
    forward = (matrix, work, data, params, model)
    small = [("forward_layers_", (matrix, matrix, types.UniTuple(matrix, n),
                                  types.UniTuple(vector, n), types.int64, types.int64, vector,
                                  types.int64)) for n in DEPTHS]
    return [("forward_rows_", forward),
            ("loss_value", (matrix, matrix, vector, types.boolean, types.int64, types.float64)),
            ("forward_rows_parallel_", forward)] + small


def compile_job(kernel, arg_types):
    """Compile (or load from the cache) ``kernel`` of ``_kernels`` for ``arg_types``."""
    getattr(K, kernel).compile(arg_types)


def enabled():
    """Whether a second process may compile ahead here (see the module's notes)."""
    if _env.value("FASTFNN_COMPILE_AHEAD") == "0" or not sys.executable:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except AttributeError:  # pragma: no cover - no affinity on this OS
        return (os.cpu_count() or 1) >= 2


class _Helper(event.Listener):
    """Starts the second process at the first loop compile and feeds it the jobs of every
    loop compile after it; at exit, ends it."""

    def __init__(self):
        self.process = None
        self.sent = set()

    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher")
        func = getattr(dispatcher, "py_func", None)
        if getattr(func, "__name__", None) not in LOOPS or (
                getattr(func, "__module__", None) != __package__ + "._kernels"):
            return
        if getattr(getattr(dispatcher, "_cache", None), "_cache_path", None) is None:
            return  # no on-disk cache to share
        try:
            todo = [job for job in jobs(func.__name__, ev.data["args"]) if job not in self.sent]
            if todo and enabled():
                self._send(todo)
                self.sent.update(todo)
        except Exception:  # noqa: BLE001 - a head start only: never a reason for a fit to fail
            pass

    def on_end(self, ev):
        pass

    def start(self):
        """Start the second process (it waits for jobs), unless it runs."""
        if self.process is None or self.process.poll() is not None:
            package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
            env = dict(os.environ, FASTFNN_COMPILE_AHEAD="0", PYTHONPATH=path)
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def _send(self, todo):
        payload = pickle.dumps(todo)
        self.start()
        self.process.stdin.write(struct.pack("<Q", len(payload)) + payload)
        self.process.stdin.flush()

    def close(self):
        """End the second process (its compile in progress is lost; saved ones stay)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait()


def _cold():
    """Whether no version of the training loop is cached yet (a first fit will compile)."""
    try:
        return not os.path.exists(K.run_batches_._cache._cache_file._index_path)
    except AttributeError:  # no on-disk cache
        return False


HELPER = _Helper()
event.register("numba:compile", HELPER)
atexit.register(HELPER.close)
if __name__ != "__main__" and _cold() and enabled():
    try:
        HELPER.start()  # its imports then overlap this process's, not its first compile
    except OSError:
        pass


def main():
    """The second process: compile the jobs its parent sends (length-prefixed pickles on
    stdin) until the pipe closes."""
    stdin = sys.stdin.buffer
    while (header := stdin.read(8)) and len(header) == 8:
        for kernel, arg_types in pickle.loads(stdin.read(struct.unpack("<Q", header)[0])):
            try:
                compile_job(kernel, arg_types)
            except Exception:  # noqa: BLE001 - the parent compiles whatever is missing
                pass


if __name__ == "__main__":
    main()
