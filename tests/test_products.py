"""The compiled matrix products of ``_kernels`` against NumPy's ``@``, on every code path.

``matmul_(out, A, B, limit, epi)`` writes ``A @ B``, ``matmul_nt_(out, A, B, limit, scratch,
epi)`` writes ``A @ B.T`` and ``matmul_tn_(out, A, B, limit)`` writes ``A.T @ B`` (``epi``: the
tile kernel's epilogue, none here; the fused layers at the end of this file use it). Each picks
one of three code paths:

* ``thin``: a plain loop, when the dimension the kernel tests is at most ``THIN``;
* ``tile``: the tile kernel (registers, LLVM vectors), when the output's columns are a whole
  number of vectors and the layer's weights are at most ``limit`` (for ``matmul_nt_``: and
  ``scratch`` holds W.T); also a one-output layer's outer product (``matmul_nt_``) and
  gradient (``matmul_tn_``, its (k, 1) output as a row);
* ``blas``: the private BLAS's gemm (``_kernels.gemm_``), with the operand transposed as the
  product needs.

Every shape runs with ``limit`` 0 (never the tile kernel) and unlimited (wherever it can).

Shapes are taken on both sides of the threshold (read from the module, so the tests follow it),
with sizes from 1 row up to products BLAS blocks (several hundred). Oracle: NumPy's ``@`` in
float64 on the same values. Tolerance: the standard bound of a sum of ``k`` products in any
order, ``k * eps`` relative to the sum of the magnitudes ``|A| @ |B|``.
"""

import numpy as np
import pytest

from fastfnn import _kernels as K

DTYPES = {"float32": np.float32, "float64": np.float64}
KERNELS = ["matmul_", "matmul_nt_", "matmul_tn_"]
THIN, TILE, BLAS = "thin", "tile", "blas"
UNLIMITED = 2**62
LIMITS = [0, UNLIMITED]
PLAIN = (np.uintp(0), np.int64(0), np.int64(K.PLAIN))  # no epilogue, typed as compiled callers

# Output rows / columns: around THIN, the tile heights (6, 4, 2, 1) and the vector widths.
WIDTH = K.VECTOR_BYTES // 8  # float64 elements a vector
ROWS_COLS = sorted({1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 24, 32, K.THIN, K.THIN + 1,
                    WIDTH, 2 * WIDTH, 3 * WIDTH, 4 * WIDTH})
# Contraction lengths: around THIN and longer.
CONTRACTIONS = sorted({1, K.THIN, K.THIN + 1, 15, 16, 17, 35})
# Larger products (BLAS packs and blocks them).
LARGE_SHAPES = [(64, 64, 64), (129, 64, 17), (300, 257, 3), (1, 300, 200), (200, 300, 1),
                (67, 96, 160), (200, 256, 64)]


def code_path(kernel, m, k, n, limit, dtype=np.float64):
    """The path a product of output (m, n) and contraction k takes, by the kernels' own rule."""
    width = K.VECTOR_BYTES // np.dtype(dtype).itemsize
    if kernel == "matmul_nt_":  # thin when the dot products are short; W (n, k)
        thin, weights = k <= K.THIN, n * k
        if k == 1:  # an outer product: the tile kernel where it takes the layer
            return TILE if n % width == 0 and weights <= limit else THIN
    elif kernel == "matmul_tn_":  # W (m, n)
        thin, weights = n <= K.THIN, m * n
        if n == 1:  # out (m, 1) as a row: the tile kernel where it takes the layer
            return TILE if m % width == 0 and weights <= limit else THIN
    else:  # thin when B has few columns; W (k, n)
        thin, weights = n <= K.THIN, k * n
    if thin:
        return THIN
    return TILE if n % width == 0 and weights <= limit else BLAS


def operands(kernel, dtype, m, k, n, seed):
    """C-contiguous inputs of ``kernel`` for an (m, n) output with contraction k, and A @ B of
    the same values in float64 with the sums of magnitudes |A| @ |B| (the error scale)."""
    rng = np.random.default_rng(seed)
    left = rng.standard_normal((m, k)).astype(dtype)  # the product is left @ right
    right = rng.standard_normal((k, n)).astype(dtype)
    ref = left.astype(np.float64) @ right.astype(np.float64)
    scale = np.abs(left.astype(np.float64)) @ np.abs(right.astype(np.float64))
    if kernel == "matmul_nt_":
        args = (left, np.ascontiguousarray(right.T))  # B (n, k)
    elif kernel == "matmul_tn_":
        args = (np.ascontiguousarray(left.T), right)  # A (k, m)
    else:
        args = (left, right)
    return args, ref, scale


def call(kernel, out, A, B, limit, dtype):
    """The kernel with its limit (and, for matmul_nt_, a scratch just big enough for W.T)."""
    if kernel == "matmul_nt_":
        K.matmul_nt_(out, A, B, limit, np.full(B.size, np.nan, dtype), PLAIN)
    elif kernel == "matmul_":
        K.matmul_(out, A, B, limit, PLAIN)
    else:
        K.matmul_tn_(out, A, B, limit)


def run_kernel(kernel, dtype, m, k, n, limit, seed=0):
    """Call the kernel into a NaN-filled ``out`` (so an unwritten entry shows) and compare."""
    (A, B), ref, scale = operands(kernel, dtype, m, k, n, seed)
    out = np.full((m, n), np.nan, dtype)
    call(kernel, out, A, B, limit, dtype)
    tol = 4 * max(k, 1) * np.finfo(dtype).eps
    np.testing.assert_allclose(
        out, ref, rtol=tol, atol=tol * scale.max(),
        err_msg=f"{kernel} {np.dtype(dtype).name} out {(m, n)}, contraction {k}, "
                f"path {code_path(kernel, m, k, n, limit, dtype)}")


@pytest.mark.parametrize("limit", LIMITS, ids=["gemm", "tile"])
@pytest.mark.parametrize("k", CONTRACTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_grid(kernel, dtype, k, limit):
    """Every (rows, cols) of the grid for one contraction length."""
    for m in ROWS_COLS:
        for n in ROWS_COLS:
            run_kernel(kernel, DTYPES[dtype], m, k, n, limit, seed=m * 1000 + n)


@pytest.mark.parametrize("limit", LIMITS, ids=["gemm", "tile"])
@pytest.mark.parametrize("m,k,n", LARGE_SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_large(kernel, dtype, m, k, n, limit):
    run_kernel(kernel, DTYPES[dtype], m, k, n, limit)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_shapes_cover_every_path(kernel, dtype):
    shapes = [(m, k, n) for k in CONTRACTIONS for m in ROWS_COLS for n in ROWS_COLS]
    paths = {code_path(kernel, *s, limit, DTYPES[dtype])
             for s in shapes + LARGE_SHAPES for limit in LIMITS}
    assert paths == {THIN, TILE, BLAS}


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_limit_counts_the_layers_weights(kernel):
    """A limit one below a layer's weights gives gemm's bits (limit 0), a limit equal to them
    the tile kernel's (limit unlimited): the path is observed in the result, not read from the
    rule. float32, where the two paths round differently."""
    dtype = np.float32
    m, k, n = 10, 24, 32
    weights = {"matmul_": k * n, "matmul_tn_": m * n, "matmul_nt_": n * k}[kernel]
    (A, B), _, _ = operands(kernel, dtype, m, k, n, seed=7)

    def result(limit):
        out = np.empty((m, n), dtype)
        call(kernel, out, A, B, limit, dtype)
        return out

    gemm, tile = result(0), result(UNLIMITED)
    if np.array_equal(gemm, tile):
        pytest.skip("this BLAS rounds these sums as the tile kernel does: no path to observe")
    np.testing.assert_array_equal(result(weights - 1), gemm)
    np.testing.assert_array_equal(result(weights), tile)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_rows_tile_result_does_not_depend_on_the_rows_beside_it(dtype):
    """The tile kernel sums entry (r, j) over t in order whatever tile holds the row (6, 4, 2
    or 1 rows; 4 vectors (AVX-512), 2 or 1): each row computed alone gives the bits it gets
    among 14 or 17 (every tile shape). Oracle: the same kernel on one row (predictions must
    not depend on their chunk)."""
    dtype = DTYPES[dtype]
    rng = np.random.default_rng(3)
    width = K.VECTOR_BYTES // np.dtype(dtype).itemsize
    k, n = 9, 7 * width  # strips of 4, 2 and 1 vectors (AVX-512), or 2, 2, 2 and 1
    for m in (14, 17):  # tiles of 6, 6, 2 rows; 6, 6, 4, 1 (or 6, 6, 2, 2, 1 four vectors wide)
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        out = np.empty((m, n), dtype)
        K.matmul_(out, A, B, UNLIMITED, PLAIN)
        for r in range(m):
            one = np.empty((1, n), dtype)
            K.matmul_(one, A[r:r + 1], B, UNLIMITED, PLAIN)
            np.testing.assert_array_equal(one[0], out[r])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_writes_only_its_output(dtype):
    """A product into a view of a larger buffer leaves the buffer's other elements alone."""
    dtype = DTYPES[dtype]
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 9)).astype(dtype)
    buf = np.full(7 * 9 + 6, -7.0, dtype)
    out = buf[3: 3 + 63].reshape(7, 9)
    K.matmul_(out, A, B, 0, PLAIN)
    assert np.all(buf[:3] == -7.0) and np.all(buf[66:] == -7.0)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B, rtol=1e-5, atol=1e-5)


WIDTH_CHECK = """
import sys
import numpy as np
from fastfnn import _kernels as K
K.VECTOR_BYTES = int(sys.argv[1])  # before anything compiles: the kernels read it then
rng = np.random.default_rng(0)
PLAIN = (np.uintp(0), np.int64(0), np.int64(K.PLAIN))
for dtype in map(np.dtype, sys.argv[2:]):
    width = K.VECTOR_BYTES // np.dtype(dtype).itemsize
    for m, k, n in [(13, 7, width), (6, 33, 3 * width), (1, 5, 2 * width), (20, 1, width),
                    (8, 5, 7 * width)]:
        A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        ref = A.astype(np.float64) @ B
        out = np.full((m, n), np.nan, dtype)
        K.matmul_(out, A, B, 2**62, PLAIN)
        tn = np.full((m, n), np.nan, dtype)
        K.matmul_tn_(tn, np.ascontiguousarray(A.T), B, 2**62)
        nt = np.full((m, n), np.nan, dtype)
        K.matmul_nt_(nt, A, np.ascontiguousarray(B.T), 2**62, np.empty(B.size, dtype), PLAIN)
        for got in (out, tn, nt):
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        b = rng.standard_normal(n).astype(dtype)
        K.affine_act_(out, A, B, b, K.RELU, 2**62)  # the bias and relu epilogue
        np.testing.assert_allclose(out, np.maximum(ref + b, 0), rtol=1e-4, atol=1e-4)
        H = np.maximum(rng.standard_normal((m, n)), 0).astype(dtype)
        K.delta_back_(nt, A, np.ascontiguousarray(B.T), H, K.RELU, 2**62, np.empty(B.size, dtype))
        np.testing.assert_allclose(nt, ref * (H > 0), rtol=1e-4, atol=1e-4)  # the relu mask
print("ok")
"""


def _lanes_not_native(vector_bytes):
    """The dtypes whose vectors of ``vector_bytes`` hold a number of lanes this CPU's vectors
    hold in neither dtype (the kernels' index arithmetic depends on the lanes, not the dtype),
    and at 64 bytes, whose 4-vector strips no other width has, at least one."""
    native = {K.VECTOR_BYTES // 4, K.VECTOR_BYTES // 8}
    found = [d for d in ("float32", "float64") if vector_bytes // np.dtype(d).itemsize
             not in native]
    return found or (["float32"] if vector_bytes == 64 else [])


@pytest.mark.slow
@pytest.mark.parametrize("vector_bytes", [w for w in (16, 32, 64) if w != K.VECTOR_BYTES])
def test_the_tile_kernel_at_other_vector_widths(tmp_path, vector_bytes):
    """The tile kernel built for the vector widths of machines this one is not (SSE's 16
    bytes, AVX's 32, AVX-512's 64, with its 4-vector strips: LLVM splits or joins the vectors
    on this CPU) gives the product, in the dtypes whose lane counts the rest of the suite does
    not run here (on AVX2: 2 float64 lanes at 16 bytes, 16 float32 lanes at 64).
    In a fresh process with its own Numba cache, so no kernel of another width is stored."""
    import os
    import subprocess
    import sys

    dtypes = _lanes_not_native(vector_bytes)
    assert dtypes  # every other width has lanes of its own
    done = subprocess.run([sys.executable, "-c", WIDTH_CHECK, str(vector_bytes), *dtypes],
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


# ---- layers with the bias and activation (or relu's mask) fused into the tile kernel --------

ACTS = {"identity": K.IDENTITY, "relu": K.RELU, "tanh": K.TANH}
LAYER_SHAPES = [(m, k, n) for m in (1, 5, 6, 13, 32) for k in (1, 3, 10, 17)
                for n in (1, WIDTH, 3 * WIDTH, 8 * WIDTH, 8 * WIDTH + 1)]


def _finite(X):
    """X in float64 with its NaNs and infinities as 0 (for an error scale)."""
    return np.nan_to_num(X.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _layer_operands(dtype, m, k, n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, k)).astype(dtype)
    W = rng.standard_normal((k, n)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    return A, W, b


@pytest.mark.parametrize("limit", LIMITS, ids=["gemm", "tile"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_act_is_the_product_then_the_bias_and_activation(dtype, act, limit):
    """``affine_act_`` writes act(A @ W + b): the same bits as the product followed by the
    separate pass (``matmul_`` then ``bias_act_``), whichever path runs, and within rounding
    of NumPy's act(A @ W + b) in float64. A NaN and an infinity in A reach the output as the
    pass leaves them."""
    dtype, code = DTYPES[dtype], ACTS[act]
    numpy_act = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}
    for seed, (m, k, n) in enumerate(LAYER_SHAPES):
        A, W, b = _layer_operands(dtype, m, k, n, seed)
        if m > 4:
            A[1, 0], A[3, -1] = np.nan, -np.inf
        fused = np.full((m, n), 7.0, dtype)
        K.affine_act_(fused, A, W, b, code, limit)
        apart = np.full((m, n), 7.0, dtype)
        K.matmul_(apart, A, W, limit, PLAIN)
        K.bias_act_(apart, b, code)
        np.testing.assert_array_equal(fused, apart, err_msg=f"{(m, k, n)} {act}")
        ref = numpy_act[act](A.astype(np.float64) @ W + b)
        tol = 4 * (k + 1) * np.finfo(dtype).eps
        scale = np.abs(_finite(A)) @ np.abs(W) + np.abs(b)  # the rounding's scale
        ok = np.isfinite(ref)
        np.testing.assert_allclose(fused[ok], ref[ok], rtol=tol, atol=tol * scale.max())
        assert np.array_equal(np.isnan(fused), np.isnan(ref))


@pytest.mark.parametrize("limit", LIMITS, ids=["gemm", "tile"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_delta_back_is_the_product_then_the_derivative(dtype, act, limit):
    """``delta_back_`` writes (D @ W.T) * act'(A), act' in terms of the layer's output A:
    the same bits as ``matmul_nt_`` then ``mul_act_deriv_``, on every path (the outer product
    of one-output layers included), and within rounding of NumPy's. A's zeros (relu's
    inactive units) zero their deltas, a NaN delta included."""
    dtype, code = DTYPES[dtype], ACTS[act]
    deriv = {"identity": lambda a: np.ones_like(a), "relu": lambda a: (a != 0) * 1.0,
             "tanh": lambda a: 1 - a * a}
    for seed, (m, n, k) in enumerate(LAYER_SHAPES):  # D (m, n), W (k, n), A (m, k)
        rng = np.random.default_rng(seed)
        D = rng.standard_normal((m, n)).astype(dtype)
        W = rng.standard_normal((k, n)).astype(dtype)
        A = rng.standard_normal((m, k)).astype(dtype)
        A = (np.maximum(A, 0) if act == "relu" else np.tanh(A) if act == "tanh" else A)
        if m > 4:
            D[2, 0] = np.nan
        scratch = np.full(W.size, np.nan, dtype)
        fused = np.full((m, k), 7.0, dtype)
        K.delta_back_(fused, D, W, A, code, limit, scratch)
        apart = np.full((m, k), 7.0, dtype)
        K.matmul_nt_(apart, D, W, limit, scratch, PLAIN)
        K.mul_act_deriv_(apart, A, code)
        np.testing.assert_array_equal(fused, apart, err_msg=f"{(m, n, k)} {act}")
        exact = D.astype(np.float64) @ W.T.astype(np.float64)
        ref = exact * deriv[act](A.astype(np.float64))
        if act == "relu":
            ref[A == 0] = 0.0  # a masked NaN is 0, as the separate pass gives
        tol = 4 * (n + 1) * np.finfo(dtype).eps
        scale = np.abs(_finite(D)) @ np.abs(W.T)
        ok = np.isfinite(ref)
        np.testing.assert_allclose(fused[ok], ref[ok], rtol=tol, atol=tol * scale.max())
        assert np.array_equal(np.isnan(fused), np.isnan(ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fused_paths_run_where_the_tile_kernel_takes_the_layer(dtype):
    """The shapes above reach the fused epilogues: ``matmul_`` and ``matmul_nt_`` report the
    tile kernel (which applies the epilogue) for a layer that is a whole number of vectors
    wide under an unlimited limit, and not under limit 0 (gemm or the loops, then the pass)."""
    dtype = DTYPES[dtype]
    width = K.VECTOR_BYTES // np.dtype(dtype).itemsize
    A, W, _ = _layer_operands(dtype, 13, 10, 2 * width, 0)
    out = np.empty((13, 2 * width), dtype)
    assert K.matmul_(out, A, W, UNLIMITED, PLAIN) and not K.matmul_(out, A, W, 0, PLAIN)
    D, W1 = A[:, :1].copy(), np.ones((2 * width, 1), dtype)  # a one-output layer's delta
    back = np.empty((13, 2 * width), dtype)
    scratch = np.empty(W1.size, dtype)
    assert K.matmul_nt_(back, D, W1, UNLIMITED, scratch, PLAIN)
    assert not K.matmul_nt_(back, D, W1, 0, scratch, PLAIN)


def test_a_strided_bias_takes_the_separate_pass():
    """A bias that is not contiguous (every other element of a longer vector) cannot be read
    by the epilogue's vector loads: ``affine_act_`` adds it in the pass, and gets it right."""
    dtype = np.float64
    A, W, _ = _layer_operands(dtype, 7, 5, 2 * WIDTH, 1)
    b = np.arange(4 * WIDTH, dtype=dtype)[::2]
    out = np.empty((7, 2 * WIDTH), dtype)
    K.affine_act_(out, A, W, b, K.RELU, UNLIMITED)
    np.testing.assert_allclose(out, np.maximum(A @ W + b, 0), rtol=1e-12, atol=1e-12)


def test_a_strided_activation_takes_the_separate_mask():
    """Activations A whose rows are not laid out as the output's (a column slice of a wider
    array) cannot be read by the mask epilogue: ``delta_back_`` masks in the pass, and gets it
    right. Oracle: NumPy's (D @ W.T) * (A != 0)."""
    rng = np.random.default_rng(2)
    m, n, k = 7, 3, 2 * WIDTH
    D, W = rng.standard_normal((m, n)), rng.standard_normal((k, n))
    A = np.maximum(rng.standard_normal((m, 2 * k)), 0)[:, :k]
    out = np.empty((m, k))
    K.delta_back_(out, D, W, A, K.RELU, UNLIMITED, np.empty(W.size))
    np.testing.assert_allclose(out, (D @ W.T) * (A != 0), rtol=1e-12, atol=1e-12)
