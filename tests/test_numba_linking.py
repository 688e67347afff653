"""fastfnn's kernels are optimised once each, in their own library: when a fastfnn function's
library runs its module passes, no other fastfnn function's code is in it (its callees are
linked in after), while another package's functions compile as Numba does (the callee's code
is there, to be inlined). Run in a fresh process with an empty Numba cache, so that every
library is compiled, not loaded; the results are checked against NumPy."""

import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import njit
    from numba.core import codegen

    passes = []  # (library's own functions, other fastfnn/test functions defined at that moment)
    original = codegen.CPUCodeLibrary._optimize_final_module

    def recording(library):
        names = [f.name for f in library._final_module.functions if not f.is_declaration]
        passes.append(names)
        return original(library)

    codegen.CPUCodeLibrary._optimize_final_module = recording
    from fastfnn import _kernels

    @njit
    def callee(x):
        return x * 2.0 + 1.0

    @njit
    def caller(x):
        return callee(x) - 1.0

    rng = np.random.default_rng(0)
    A, W, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    out = np.empty((7, 3))
    _kernels.affine_act_(out, A, W, b, _kernels.RELU, np.int64(0))
    json.dump({"passes": passes, "error": float(np.abs(out - np.maximum(A @ W + b, 0)).max()),
               "caller": caller(3.0)}, sys.stdout)
""")


def _defines(names, function):
    return any(name.startswith("_ZN") and function in name for name in names)


def test_each_fastfnn_library_is_optimised_on_its_own_code(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout)
    assert result["error"] < 1e-12 and result["caller"] == 6.0
    passes = result["passes"]
    fastfnns = [names for names in passes if _defines(names, "7fastfnn")]
    affine = [names for names in fastfnns if _defines(names, "11affine_act_")]
    assert affine, "affine_act_ was not compiled in the child"
    for names in fastfnns:  # one fastfnn function's code at a time, never its callees'
        defined = {name.split("B")[0] for name in names if name.startswith("_ZN7fastfnn")}
        assert len(defined) == 1, defined
    callers = [names for names in passes if _defines(names, "6caller")]
    assert callers and all(_defines(names, "6callee") for names in callers)  # as Numba does
