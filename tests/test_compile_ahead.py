"""The second process that compiles a first fit's last kernels: it must compile exactly the
versions the fit then loads (else it only burns a core), and its work must land in the cache.

Oracle: the versions Numba itself compiled or loaded for real fits and predictions (each
dispatcher's signatures), and Numba's compile events in a later process."""

import json
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
from numba import types

from fastfnn import _compile_ahead as ahead
from fastfnn import _kernels as K

# a script's prelude: ``compiled`` gets the (module, name) of every function Numba compiles
_COUNT = '''
from numba.core import event
compiled = []
class Count(event.Listener):
    def on_start(self, ev):
        func = ev.data["dispatcher"].py_func
        compiled.append((func.__module__, func.__name__))
    def on_end(self, ev):
        pass
event.register("numba:compile", Count())
'''

_FITS = _COUNT + '''
import json, warnings
import numpy as np, scipy.sparse as sp
from numba import types
from numba.core.registry import CPUDispatcher as Dispatcher
from fastfnn import FNNClassifier, FNNRegressor
from fastfnn import _compile_ahead as ahead, _kernels as K
from fastfnn.network import forward_direct

rng = np.random.default_rng(0)
X = rng.standard_normal((2100, 5)); y = X[:, 0] - X[:, 1]  # predictions: two chunks
onehot = sp.csr_matrix(np.eye(6)[rng.integers(0, 6, 2100)])
fits = [(FNNRegressor(hidden_layer_sizes=(8, 8), early_stopping=True), X, y),
        (FNNClassifier(solver="sgd", hidden_layer_sizes=(8,), early_stopping=True),
         X, y > 0),
        (FNNRegressor(hidden_layer_sizes=(8,), early_stopping=True), onehot, y),
        (FNNRegressor(solver="lbfgs", hidden_layer_sizes=(8,)), X, y)]
for est, data, target in fits:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(max_iter=2, random_state=0).fit(data[:300], target[:300])
    net = est._fitted_network(np.float64)
    for threads in (1, 2):
        net.forward(data, threads)
        if not sp.issparse(data):  # predict's direct path, on one thread and on two
            forward_direct(data, est.coefs_, est.intercepts_, est.activation,
                           est.out_activation_, threads)
    est.predict(data[:1].toarray() if sp.issparse(data) else data[:1])

def versions():  # every kernel's versions in this process, compiled or loaded
    return {(name, sig) for name, kernel in vars(K).items()
            if isinstance(kernel, Dispatcher) for sig in kernel.signatures}

unused, probes = [], 0
for loop in sorted(ahead.LOOPS):
    for sig in getattr(K, loop).signatures:
        for kernel, arg_types in ahead.jobs(loop, sig):
            if kernel in (ahead.STEP, ahead.DELTAS):
                before, known = len(compiled), versions()
                ahead.compile_job(kernel, arg_types)  # compiles the probe, loads its calls
                probes += 1
                if versions() - known or any(module == "fastfnn._kernels"
                                             for module, _ in compiled[before:]):
                    unused.append((kernel, str(arg_types)))
            elif arg_types not in getattr(K, kernel).signatures:
                unused.append((kernel, str(arg_types)))
# the siblings precompile adds: the full batch's loop for the minibatch loop's groups is the
# version the lbfgs fit used (the parallel loops take the same types as the serial ones)
siblings = [(kernel, tuple(arg_types)) for loop in ("run_batches_", "loss_grad_")
            for sig in getattr(K, loop).signatures
            for kernel, arg_types in ahead.jobs(loop, sig, siblings=True)
            if (kernel, arg_types) not in ahead.jobs(loop, sig)]
unused += [(kernel, str(a)) for kernel, a in siblings
           if kernel in ("loss_grad_", "run_batches_") and a not in getattr(K, kernel).signatures]
direct = ("forward_layers_", "forward_layers_parallel_")
used = [(kernel, tuple(s)) for kernel in direct for s in getattr(K, kernel).signatures]
# the direct path reads its read-only input through the product versions fits compiled
read_only = [name for name in ("affine_act_", "matmul_") for sig in getattr(K, name).signatures
             if any(isinstance(t, types.Array) and not t.mutable for t in sig)]
print(json.dumps({"unused": [u for u in unused if u[0] not in direct],
                  "read_only_products": read_only,
                  "siblings": len(siblings),
                  "direct": len(used),
                  "direct_missing": [str(u) for u in used if not any(
                      (kernel, tuple(a)) == u for loop in ahead.LOOPS
                      for sig in getattr(K, loop).signatures
                      for kernel, a in ahead.jobs(loop, sig, siblings=True))],
                  "probes": probes,
                  "loops": sum(len(getattr(K, loop).signatures) for loop in ahead.LOOPS)}))
'''


def test_the_kernels_compiled_ahead_are_the_versions_fits_and_predictions_use(tmp_path):
    """Dense and one-hot CSR input; adam, sgd, lbfgs; regressor and classifier: every version
    the second process would compile for these fits' loops is one the fits then used (the
    rule's step and the delta recursion's kernels: the probes add no version to any kernel,
    whether compiled or found in the disk cache), and every version of predict's direct path
    (one thread and two) is among those precompile sends (with the siblings) and runs the
    product versions the fits compiled (none of its own for the read-only input)."""
    # an empty cache: every version a fit calls is compiled in the process (or loaded from
    # what its own second process just compiled) and held by its kernel, none is stale
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _FITS], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # dense and CSR input share the loop's types: two stochastic loops, one full-batch
    assert result["loops"] >= 3 and result["probes"] >= 5
    assert result["unused"] == [] and result["direct_missing"] == [] and result["direct"] >= 4
    assert result["siblings"] >= 3
    assert result["read_only_products"] == []


def _loss_job(dtype):
    """The job list of ``loss_value`` for ``dtype``'s arrays."""
    matrix, vector = types.Array(dtype, 2, "C"), types.Array(dtype, 1, "C")
    return [("loss_value", (matrix, matrix, vector, types.boolean, types.int64,
                            types.float64))]


_LOAD = _COUNT + '''
import numpy as np
from fastfnn import _kernels as K
A = np.full((3, 2), 0.5); Y = np.zeros((3, 2)); sw = np.ones(3)
value = K.loss_value(A, Y, sw, False, 0, 1e-7)
print(compiled, value)
'''


def test_the_second_process_fills_the_cache_a_later_process_loads(tmp_path):
    """``python -m fastfnn._compile_ahead`` compiles the jobs it is sent into the shared
    cache and exits when the pipe closes; a later process loads the kernel: no compile
    event, and the value of the loss computed by NumPy."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    payload = pickle.dumps(_loss_job(types.float64))
    helper = subprocess.run([sys.executable, "-m", "fastfnn._compile_ahead"], env=env,
                            input=struct.pack("<Q", len(payload)) + payload, timeout=300)
    assert helper.returncode == 0
    done = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    compiled, value = done.stdout.strip().rsplit("] ", 1)
    assert compiled + "]" == "[]"
    assert np.isclose(float(value), 0.5 * (2 * 0.25))  # 1/2 ||a - y||^2 per row


_WAIT = _COUNT + '''
import glob, os
from numba import types
from fastfnn import _compile_ahead as ahead
matrix, vector = types.Array(types.float64, 2, "C"), types.Array(types.float64, 1, "C")
helper = ahead._Helper()
helper._send([("loss_value", (matrix, matrix, vector, types.boolean, types.int64,
                              types.float64))])
helper.wait()
cached = glob.glob(os.path.join(os.environ["NUMBA_CACHE_DIR"], "*", "*loss_value*.nbc"))
helper.close()
print(len(cached), helper.unfinished, compiled)
'''


def test_wait_returns_once_the_second_process_has_done_its_jobs(tmp_path):
    """``_Helper.wait`` (what ``precompile`` calls before the fits that time the machine, and
    before it returns) comes back only after the second process has compiled what it was
    sent: the kernel's machine code is in the cache, and this process compiled nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _WAIT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1 0 []"


class _Event:
    """A ``numba:compile`` event's data, as Numba hands it to listeners."""

    def __init__(self, dispatcher, args):
        self.data = {"dispatcher": dispatcher, "args": args}


def test_a_loop_compile_sends_its_jobs_once(monkeypatch):
    """The event of a loop kernel's compile hands :func:`jobs` of its types to the second
    process, once; another kernel's compile, and a repeat, send nothing; in the child of a
    fork, the parent's second process and jobs do not count."""
    import warnings

    from fastfnn import FNNRegressor

    X = np.random.default_rng(0).standard_normal((50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FNNRegressor(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, X[:, 0])
    sig = K.run_batches_.signatures[0]
    sent = []
    helper = ahead._Helper()
    monkeypatch.setattr(helper, "_send", sent.append)
    monkeypatch.setattr(ahead, "enabled", lambda: True)
    for dispatcher in (K.run_batches_, K.run_batches_, K.loss_value):
        helper.on_start(_Event(dispatcher, sig))
    assert sent == [ahead.jobs("run_batches_", sig)]
    helper.pid = os.getpid() + 1  # as the child of a fork sees its parent's second process
    helper.on_start(_Event(K.run_batches_, sig))
    assert sent == [ahead.jobs("run_batches_", sig)] * 2 and helper.process is None
