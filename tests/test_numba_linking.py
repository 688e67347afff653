"""fastfnn's loops link their callees as they are: when the library of a registered caller
(the forward pass) runs its module passes, no other fastfnn function's code is in it (its
callees are linked in after), while a product's library and another package's functions
compile as Numba does (the callee's code is there, to be inlined). So do the pieces of a
``prange`` loop that calls fastfnn (its body and the wrappers that run it on the threads: each
optimised the whole call tree below again), while another package's loop keeps Numba's way.
Every fastfnn library inlines Numba's reference counting once its pruning has run (no call to
``NRT_incref`` / ``NRT_decref`` is left), and still frees what it allocates (Numba's allocation
counts); another package's library, and the benchmark's reference loop, keep the calls. Run in
a fresh process with an empty Numba cache, so that every library is compiled, not loaded; the
forward's result is checked against NumPy."""

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba import njit, prange
    from numba.core import codegen

    passes = []  # per library, as its module passes start: the functions it defines
    refcounts = []  # per library: its calls of Numba's reference counting, before and after
    original = codegen.CPUCodeLibrary._optimize_final_module

    def calls(library):
        text = str(library._final_module)
        return text.count("call void @NRT_incref") + text.count("call void @NRT_decref")

    def recording(library):
        names = [f.name for f in library._final_module.functions if not f.is_declaration]
        passes.append(names)
        before = calls(library)
        original(library)
        refcounts.append([before, calls(library)])

    codegen.CPUCodeLibrary._optimize_final_module = recording
    from fastfnn import _kernels

    @njit
    def callee(x):
        return x * 2.0 + 1.0

    @njit
    def caller(x):
        return callee(x) - 1.0

    @njit
    def tail(x):  # returns a new reference: its increment cannot be pruned
        return x[1:]

    from fastfnn.bench import reference  # the benchmark's plain loop: compiled as Numba does
    view = reference._view(np.arange(6.0), 0, 2, 3)

    rng = np.random.default_rng(0)
    sizes = np.array([5, 4, 3])
    theta = rng.standard_normal(5 * 4 + 4 * 3 + 4 + 3)
    X = rng.standard_normal((7, 5))
    A_buf, Z_buf = np.zeros(7 * 12), np.zeros(7 * 7)
    A_buf[:35] = X.ravel()
    model = _kernels.Model(_kernels.RELU, _kernels.IDENTITY, False, 0, _kernels.IDENTITY, 0.0,
                           1e-15, 0, 0, 0, False, np.zeros(1), np.uint64(0), 0.0)
    _kernels.forward_(A_buf, Z_buf, theta, sizes, 7, model, 0)
    W0, W1 = theta[:20].reshape(5, 4), theta[20:32].reshape(4, 3)
    expected = np.maximum(X @ W0 + theta[32:36], 0) @ W1 + theta[36:]

    @njit(parallel=True)
    def user_parallel(x):
        out = np.zeros(x.shape[0])
        for i in prange(x.shape[0]):
            out[i] = callee(x[i])
        return out

    # the step's sweep on one thread and on Numba's threads (a prange loop): the same bits
    n = 5 * 4 + 4 * 3 + 4 + 3
    steps = []
    for sweep, shares in ((_kernels.step_blocks_, ()),
                          (_kernels.step_blocks_parallel_, (np.int64(2),))):
        theta, grad, s1, s2 = (np.random.default_rng(1).standard_normal((4, n)) ** 2).copy()
        sums, layer_sq = np.zeros((_kernels.n_step_blocks(sizes, n), 2)), np.zeros(2)
        sweep(theta, grad, np.zeros((1, n)), s1, s2, sums, layer_sq, sizes, True, 1e-3, 7.0,
              (0.9, 0.999, 1e-3, 1e-8, 1.0), False, False, np.int64(0), 1e-3, 7.0, *shares)
        steps.append(np.concatenate([theta, grad, s1, s2, layer_sq]).tolist())
    # an array a fastfnn kernel allocates (the packed strips of a product's right side) is
    # freed by the inlined decrement: as many frees as allocations
    from numba.core.runtime import rtsys
    width = _kernels.VECTOR_BYTES // 8
    A, B = rng.standard_normal((5, 3)), rng.standard_normal((3, 4 * width))
    out = np.zeros((5, 4 * width))
    plain = (np.uintp(0), np.int64(0), np.int64(_kernels.PLAIN))
    _kernels.tile_gemm_packed_(out, A, B, plain)
    start = rtsys.get_allocation_stats()
    for _ in range(100):
        _kernels.tile_gemm_packed_(out, A, B, plain)
    end = rtsys.get_allocation_stats()
    json.dump({"passes": passes, "refcounts": refcounts,
               "error": float(np.abs(A_buf[63:] - expected.ravel()).max()),
               "caller": caller(3.0), "user_parallel": user_parallel(np.ones(3)).tolist(),
               "tail": tail(np.arange(3.0)).tolist(), "view": view.tolist(), "steps": steps,
               "packed_error": float(np.abs(out - A @ B).max()),
               "allocations": [end.alloc - start.alloc, end.free - start.free,
                               end.mi_alloc - start.mi_alloc, end.mi_free - start.mi_free]},
              sys.stdout)
""")


def _defines(names, function):
    return any(name.startswith("_ZN") and function in name for name in names)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """What CHILD printed, run once for this module's tests (it compiles every library)."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path_factory.mktemp("numba")), "PATH": "/usr/bin:/bin",
           "NUMBA_NRT_STATS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_each_fastfnn_library_is_optimised_on_its_own_code(result):
    assert result["error"] < 1e-12 and result["caller"] == 6.0
    passes = result["passes"]

    def library_of(function):  # the passes of the libraries whose own code is function's
        prefix = f"_ZN7fastfnn8_kernels{function}"
        return [names for names in passes if names[0].startswith(prefix)]

    forward = library_of("8forward_")
    assert len(forward) == 1  # compiled, not loaded
    assert {name.split("B")[0] for name in forward[0] if name.startswith("_ZN7fastfnn")} == {
        "_ZN7fastfnn8_kernels8forward_"}  # its own code only, not affine_act_'s or matmul_'s
    matmul = library_of("7matmul_")
    assert matmul and all(_defines(names, "10tile_gemm_") for names in matmul)  # as Numba does
    callers = [names for names in passes if _defines(names, "6caller")]
    assert callers and all(_defines(names, "6callee") for names in callers)  # as Numba does


def test_a_fastfnn_prange_loop_links_its_callees_as_they_are(result):
    assert result["user_parallel"] == [3.0] * 3
    serial, parallel = result["steps"]
    assert serial == parallel  # the same bits
    pieces = [names for names in result["passes"]
              if any("__numba_parfor_gufunc" in name for name in names)]
    users = [names for names in pieces if _defines(names, "6callee")]
    ours = [names for names in pieces if not _defines(names, "6callee")]
    assert users and ours  # the user's loop's body and wrappers; the step's
    # the step's pieces hold no copy of the block sweep as they are optimised (linked after)
    assert not any(_defines(names, "11step_range_") for names in ours)
    assert not any(_defines(names, "11step_range_") for names in
                   [n for n in result["passes"] if _defines(n, "21step_blocks_parallel_")])


def test_fastfnn_libraries_inline_reference_counting_and_still_free(result):
    passes, refcounts = result["passes"], result["refcounts"]
    assert len(refcounts) == len(passes)

    def counts_of(function):
        return [counts for names, counts in zip(passes, refcounts) if _defines(names, function)]

    ours = counts_of("7fastfnn8_kernels")
    assert ours and all(after == 0 for _, after in ours)  # every call inlined ...
    assert sum(before for before, _ in ours) > 0  # ... where there were calls to inline
    assert result["tail"] == [1.0, 2.0] and result["view"] == [[0, 1, 2], [3, 4, 5]]
    # another package's function, and the benchmark's reference loop: Numba's calls
    for function in ("8__main__4tail", "5bench9reference5_view"):
        assert counts_of(function) and all(after > 0 for _, after in counts_of(function))
    assert result["packed_error"] < 1e-12
    allocated, freed, meminfos, meminfos_freed = result["allocations"]
    assert allocated == freed >= 100 and meminfos == meminfos_freed >= 100
