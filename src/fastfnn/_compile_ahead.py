"""The kernels a fit reaches last, compiled by a second process while this one compiles the rest.

Numba compiles on one thread. A cold first fit compiles its training loop depth-first: the
batch's forward pass, the delta recursion after it, then the update rule's step; after the
loop, the validation loss and forward pass; its first predictions, prediction's passes. All of
these kernels take the loop's own groups (or arrays of its dtype), so their argument types are
known the moment the loop starts compiling.

At that moment (Numba's ``numba:compile`` event for a loop kernel: it fires on compiles, never
on cache loads) this process hands the loop's argument types to a second one (:func:`main`;
``python -m fastfnn._compile_ahead`` runs it too), which compiles, into the same on-disk
cache, the kernels :func:`jobs` names: the delta recursion's kernels, which the loop reaches
after the forward pass, the rule's step, the forward passes of validation and prediction (one
chunk, chunks on threads, and the direct path of plain arrays for one to three hidden layers)
and the loss of validation (in ``precompile``, the direct path on threads and the loop's sibling
loops too). This process loads each from the cache when it gets there; arriving while the
other still compiles one, it waits for it (processes compile a version in turn:
``_numba_cache``, which also makes a loop compiled around kernels loaded from the cache start
Numba's threads when it is loaded in turn) rather than compile it twice. The same code compiled
by the same Numba for the same CPU: nothing but the wait changes.

One second process per process (importing the kernels, not the estimators:
:data:`KERNELS_ONLY`), fed by a pipe (pickled Numba types, written by its parent only; it
answers a byte per message done, which :meth:`_Helper.wait` counts), ended when its parent
exits; started as fastfnn is imported where no version of the training loop is cached yet (its
own imports then overlap this process's), else at the first loop compile. Only where it can
help: at least two CPUs in this process's affinity, kernels cached on disk, not inside the
second process itself, and ``FASTFNN_COMPILE_AHEAD`` not ``0``.
"""

import atexit
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
from numba import types
from numba.core import compiler, event, typed_passes
from numba.core.compiler_lock import global_compiler_lock
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.cpu import CPUTargetOptions
from numba.core.registry import cpu_target

from . import _env
from . import _kernels as K

LOOPS = {"run_batches_", "run_batches_parallel_", "run_models_", "loss_grad_",
         "loss_grad_parallel_"}
STEP = "rule step"  # the update rule's step (an overload): compiled through a probe
DELTAS = "delta recursion"  # the backward pass's kernels after the forward pass: a probe
DEPTHS = (2, 3, 4)  # layers of predict's direct path prepared (1-3 hidden layers)
# The loops that take the groups of a loop (the minibatch loop's, with the rule; the full
# batch's, without), compiled ahead where everything is to be compiled (``precompile``).
SIBLINGS = {"run_batches_": ("run_batches_parallel_", "loss_grad_", "loss_grad_parallel_"),
            "run_batches_parallel_": ("run_batches_", "loss_grad_", "loss_grad_parallel_"),
            "loss_grad_": ("loss_grad_parallel_",),
            "loss_grad_parallel_": ("loss_grad_",)}


def jobs(loop, args, siblings=False):
    """``[(kernel, argument types)]`` to compile ahead of the loop kernel ``loop`` compiling
    for ``args`` (its Numba argument types): first the kernels of the delta recursion
    (:data:`DELTAS`), which the loop reaches after the forward pass, then the rule's step
    (:data:`STEP`), after the batch's gradient; then, in the order a fit and its predictions
    reach them, ``forward_rows_``, ``loss_value``, ``forward_rows_parallel_`` and
    ``forward_layers_`` for :data:`DEPTHS` layers. With ``siblings`` (``precompile``), then
    ``forward_layers_parallel_`` for those depths (a large prediction's threads: some 4 s of
    compiling each, which a first fit's second process leaves to the prediction that needs
    it) and, last, the other loops of the same groups (:data:`SIBLINGS`): the minibatch loop
    and the full batch, with the parts one after the other and on threads, which a fit of
    another size or solver takes."""
    if loop == "run_models_":  # typed lists of the groups of run_batches_
        args = [arg.item_type for arg in args[:5]]
    if loop in ("loss_grad_", "loss_grad_parallel_"):
        params, work, data, model = args[:4]
        late = [(DELTAS, (params, work, data, model))]
    else:
        params, rule, work, data, model = args[:5]
        late = [(DELTAS, (params, work, data, model)), (STEP, (params, rule, work, model))]
    if siblings and loop in SIBLINGS:
        late_loops = [(other, tuple(args) if other.startswith("run_batches") else
                       (params, work, data, model)) for other in SIBLINGS[loop]]
    else:
        late_loops = []
    dtype = params.types[0].dtype
    matrix, vector = types.Array(dtype, 2, "C"), types.Array(dtype, 1, "C")
    forward = (matrix, work, data, params, model)
    rows = types.Array(dtype, 2, "C", readonly=True)  # the direct path's X: read-only always
    layers = [(matrix, rows, types.UniTuple(matrix, n), types.UniTuple(vector, n),
               types.int64, types.int64, vector, types.int64) for n in DEPTHS]
    direct = [("forward_layers_", a) for a in layers]
    if siblings:
        direct += [("forward_layers_parallel_", a + (types.int64,)) for a in layers]
    return late + [("forward_rows_", forward),
                   ("loss_value", (matrix, matrix, vector, types.boolean, types.int64,
                                   types.float64)),
                   ("forward_rows_parallel_", forward)] + direct + late_loops


def compile_job(kernel, arg_types):
    """Compile (or load from the cache) ``kernel`` of ``_kernels`` for ``arg_types``."""
    if kernel in PROBES:  # typing its calls compiles (and caches) their kernels
        type_only(PROBES[kernel], arg_types)
    else:
        getattr(K, kernel).compile(arg_types)


@register_pass(mutates_CFG=False, analysis_only=True)
class _Typed(FunctionPass):
    """Ends a probe's pipeline once it is typed."""

    _name = "fastfnn_probe_typed"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        raise compiler._EarlyPipelineCompletion(state.typemap)


class _TypeOnly(compiler.CompilerBase):
    """Numba's pipeline up to type inference (inlining included), and no further."""

    def define_pipelines(self):
        pm = compiler.DefaultPassBuilder.define_untyped_pipeline(self.state, "probe")
        pm.add_pass(typed_passes.NopythonTypeInference, "type the probe: compiles its calls")
        pm.add_pass(_Typed, "the probe itself is never run: not lowered")
        pm.finalize()
        return [pm]


def type_only(func, arg_types):
    """Type the Python function ``func`` for ``arg_types`` as ``njit`` would, which compiles
    (or loads) every kernel its calls reach, without lowering ``func`` itself: a probe is
    never run, and lowering one took about a quarter of the second process's work."""
    with global_compiler_lock:
        typing, target = cpu_target.typing_context, cpu_target.target_context
        typing.refresh()
        target.refresh()
        flags = CPUTargetOptions.parse_as_flags(compiler.Flags(), {"nopython": True})
        compiler.compile_extra(typing, target, func, tuple(arg_types), None, flags, {},
                               pipeline_class=_TypeOnly)


def _rule_step(params, rule, work, model):
    """Never run, only typed: the loop's call of the rule's step (``_kernels.batch_step_``, an
    overload resolved by the rule's type)."""
    return K.batch_step_(params, rule, work, model)


def _delta_recursion(params, work, data, model):
    """Never run, only typed: the calls ``_kernels.backward_sums_`` makes after its forward
    pass (the loss, the output layer's delta, each layer's weight gradient and the delta of
    the layer below), with the argument types they have there, as ``part_sums_`` hands
    them on (a test compares them with the versions real fits compile)."""
    p = start = m = i = np.int64(1)  # int64s, as the loop's counters
    sizes, theta, grad = params.sizes, params.theta, params.grad
    units = sizes[1:]
    A_buf, D_buf, Z_buf, WT_buf = work.A[p], work.D[p], work.Z[p], work.WT[p]
    Y, sw = K.load_part_(A_buf, work.Y[p], work.sw[p], data, sizes, start, m, model)
    A_out = K.layer_view(A_buf, sizes, m, i)
    K.loss_sums(A_out, Y, sw, data.use_sw, model.loss, model.eps)
    D = K.layer_view(D_buf, units, m, i)
    K.output_delta_(D, A_out, Y, sw, data.use_sw, model.loss, model.deriv_act)
    A = K.layer_view(A_buf, sizes, m, i)
    K.csr_matmul_tn_(K.w_view(grad, sizes, i), D, model, start)
    K.matmul_tn_(K.w_view(grad, sizes, i), A, D, model.tile_tn)
    D_prev, W = K.layer_view(D_buf, units, m, i), K.w_view(theta, sizes, i)
    K.delta_back_(D_prev, D, W, A, model.hidden_act, model.tile_nt, WT_buf)
    K.matmul_nt_(D_prev, D, W, model.tile_nt, WT_buf, K.no_epilogue())
    K.mul_act_deriv_z_(D_prev, K.layer_view(Z_buf, units, m, i), model.hidden_act)
    K.mul_act_deriv_(D_prev, K.layer_view(Z_buf, units, m, i), model.hidden_act)


PROBES = {STEP: _rule_step, DELTAS: _delta_recursion}


def enabled():
    """Whether a second process may compile ahead here (see the module's notes)."""
    try:
        if not _env.flag("FASTFNN_COMPILE_AHEAD", True) or not sys.executable:
            return False
    except ValueError:  # off; a fit raises it (never the import)
        return False
    return _env.usable_cpus() >= 2


# The second process's start: this module and the kernels, without the package's public API
# (``fastfnn/__init__``: the estimators, scikit-learn), which cost it half of its 1.3 s of
# imports before its first compile; jobs name only the kernels' types.
KERNELS_ONLY = """
import importlib.util, sys, types
spec = importlib.util.find_spec("fastfnn")
package = types.ModuleType("fastfnn")
package.__spec__, package.__file__ = spec, spec.origin
package.__path__ = list(spec.submodule_search_locations)
sys.modules["fastfnn"] = package
from fastfnn import _compile_ahead
_compile_ahead.main()
"""


class _Helper(event.Listener):
    """Starts the second process at the first loop compile and feeds it the jobs of every
    loop compile after it; at exit, ends it."""

    def __init__(self):
        self.process = None  # the second process, started by the process of pid self.pid
        self.pid = None
        self.sent = {}  # the jobs sent, in order (a dict of None)
        self.unfinished = 0  # messages sent whose jobs the second process has not finished
        self.siblings = False  # also each loop's siblings (jobs(siblings=True))

    def on_start(self, ev):
        dispatcher = ev.data.get("dispatcher")
        func = getattr(dispatcher, "py_func", None)
        if getattr(func, "__name__", None) not in LOOPS or (
                getattr(func, "__module__", None) != __package__ + "._kernels"):
            return
        if getattr(getattr(dispatcher, "_cache", None), "_cache_path", None) is None:
            return  # no on-disk cache to share
        self._forget_parents()
        try:
            todo = [job for job in jobs(func.__name__, ev.data["args"], self.siblings)
                    if job not in self.sent]
            if todo and enabled():
                self._send(todo)
                self.sent.update(dict.fromkeys(todo))
        except Exception:  # noqa: BLE001 - a head start only: never a reason for a fit to fail
            pass

    def on_end(self, ev):
        pass

    def _forget_parents(self):
        """In the child of a fork: the parent's second process and jobs are not this one's."""
        if self.pid is not None and self.pid != os.getpid():
            self.process, self.pid, self.sent, self.unfinished = None, None, {}, 0

    def start(self):
        """Start the second process (it waits for jobs), unless it runs."""
        self._forget_parents()
        if self.process is None or self.process.poll() is not None:
            package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
            env = dict(os.environ, FASTFNN_COMPILE_AHEAD="0", PYTHONPATH=path)
            self.process = subprocess.Popen(
                [sys.executable, "-c", KERNELS_ONLY], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            self.pid, self.unfinished = os.getpid(), 0

    def _send(self, todo):
        payload = pickle.dumps(todo)
        self.start()
        self.process.stdin.write(struct.pack("<Q", len(payload)) + payload)
        self.process.stdin.flush()
        self.unfinished += 1

    def wait(self):
        """Until the second process has finished every job sent to it (each message answered
        by one byte), or has ended: it then leaves this process's core to itself (a timing
        taken beside its compiling would be deferred as busy)."""
        self._forget_parents()
        while self.process is not None and self.unfinished > 0:
            if not self.process.stdout.read(1):
                break  # ended
            self.unfinished -= 1

    def share_loops(self):
        """Compile here the loops sent to the second process (the siblings of ``precompile``),
        in the reverse of its order: each version is compiled by whichever process starts it
        first, the other loads it, so the two split them rather than this one wait."""
        self._forget_parents()
        for kernel, arg_types in reversed([job for job in self.sent if job[0] in LOOPS]):
            compile_job(kernel, arg_types)

    def close(self):
        """End the second process (its compile in progress is lost; saved ones stay)."""
        process, self.process = self.process, None
        if process is not None and self.pid == os.getpid() and process.poll() is None:
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
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (header := stdin.read(8)) and len(header) == 8:
        for kernel, arg_types in pickle.loads(stdin.read(struct.unpack("<Q", header)[0])):
            try:
                compile_job(kernel, arg_types)
            except Exception:  # noqa: BLE001 - the parent compiles whatever is missing
                pass
        stdout.write(b".")  # this message's jobs are done (Helper.wait)
        stdout.flush()


if __name__ == "__main__":
    main()
