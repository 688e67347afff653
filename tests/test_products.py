"""The compiled matrix products of ``_kernels`` against NumPy's ``@``, on every code path.

``matmul_(out, A, B, BT)`` writes ``A @ B``, ``matmul_nt_(out, A, B)`` writes ``A @ B.T`` and
``matmul_tn_(out, A, B)`` writes ``A.T @ B``. Each picks one of three code paths:

* ``thin``: a plain loop, when the dimension the kernel tests is at most ``THIN``;
* ``small``: a 4 x 4 register-blocked kernel, for float64 products with ``m*k*n <= SMALL_GEMM``
  and a contraction of at least ``MIN_CONTRACTION`` terms (``matmul_`` first transposes B into
  the scratch ``BT``; ``matmul_tn_`` has no such path);
* ``blas``: ``np.dot``.

Shapes are taken on both sides of every threshold (read from the module, so the tests follow
them), with row and column counts that are multiples of 4 and not (the 4 x 4 kernel's edges).
Oracle: NumPy's ``@`` in float64 on the same values. Tolerance: the standard bound of a sum of
``k`` products in any order, ``k * eps`` relative to the sum of the magnitudes ``|A| @ |B|``.
"""

import numpy as np
import pytest

from fastfnn import _kernels as K

DTYPES = {"float32": np.float32, "float64": np.float64}
KERNELS = ["matmul_", "matmul_nt_", "matmul_tn_"]
THIN, SMALL, BLAS = "thin", "small", "blas"

# Paths each kernel can take for each dtype (the small kernel is float64 only; A.T @ B has none).
EXPECTED_PATHS = {
    ("matmul_", "float32"): {THIN, BLAS},
    ("matmul_", "float64"): {THIN, SMALL, BLAS},
    ("matmul_nt_", "float32"): {THIN, BLAS},
    ("matmul_nt_", "float64"): {THIN, SMALL, BLAS},
    ("matmul_tn_", "float32"): {THIN, BLAS},
    ("matmul_tn_", "float64"): {THIN, BLAS},
}

# Output rows / columns: around THIN and around multiples of 4.
ROWS_COLS = sorted({1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, K.THIN, K.THIN + 1})
# Contraction lengths: around THIN and around MIN_CONTRACTION.
CONTRACTIONS = sorted(k for k in {1, K.THIN, K.THIN + 1, K.MIN_CONTRACTION - 1,
                                  K.MIN_CONTRACTION, K.MIN_CONTRACTION + 1,
                                  2 * K.MIN_CONTRACTION + 3} if k >= 1)


def _gemm_edge_shapes():
    """(m, k, n) with m*k*n just under (or at) and just over SMALL_GEMM."""
    shapes = []
    for k, n in [(64, 64), (K.MIN_CONTRACTION, 33), (K.MIN_CONTRACTION + 1, 17), (64, 17)]:
        m = K.SMALL_GEMM // (k * n)
        shapes += [(m, k, n), (m + 1, k, n)]
    # The same sizes with the roles of m and n swapped.
    shapes += [(n, k, m) for m, k, n in shapes]
    return shapes


GEMM_EDGE_SHAPES = _gemm_edge_shapes()


def code_path(kernel, dtype, m, k, n):
    """The path a product of output (m, n) and contraction k takes, by the kernels' own rule."""
    small = (np.dtype(dtype).itemsize == 8 and m * k * n <= K.SMALL_GEMM
             and k >= K.MIN_CONTRACTION)
    if kernel == "matmul_":  # thin when B has few columns
        return THIN if n <= K.THIN else SMALL if small else BLAS
    if kernel == "matmul_nt_":  # thin when the dot products are short
        return THIN if k <= K.THIN else SMALL if small else BLAS
    return THIN if n <= K.THIN else BLAS  # matmul_tn_: thin when B has few columns


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


def run_kernel(kernel, dtype, m, k, n, seed=0):
    """Call the kernel into a NaN-filled ``out`` (so an unwritten entry shows) and compare."""
    (A, B), ref, scale = operands(kernel, dtype, m, k, n, seed)
    out = np.full((m, n), np.nan, dtype)
    if kernel == "matmul_":
        BT = np.full(k * n + 3, -7.0, dtype)  # three guard elements past the k*n needed
        K.matmul_(out, A, B, BT)
        assert np.all(BT[k * n:] == -7.0), f"matmul_ wrote past k*n in its scratch, {(m, k, n)}"
    else:
        getattr(K, kernel)(out, A, B)
    tol = 4 * k * np.finfo(dtype).eps
    np.testing.assert_allclose(
        out, ref, rtol=tol, atol=tol * scale.max(),
        err_msg=f"{kernel} {np.dtype(dtype).name} out {(m, n)}, contraction {k}, "
                f"path {code_path(kernel, dtype, m, k, n)}")


@pytest.mark.parametrize("k", CONTRACTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_grid(kernel, dtype, k):
    """Every (rows, cols) of the grid for one contraction length."""
    for m in ROWS_COLS:
        for n in ROWS_COLS:
            run_kernel(kernel, DTYPES[dtype], m, k, n, seed=m * 1000 + n)


@pytest.mark.parametrize("m,k,n", GEMM_EDGE_SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_small_gemm_edge(kernel, dtype, m, k, n):
    """Sizes at and just past SMALL_GEMM, where float64 moves from the 4 x 4 kernel to BLAS."""
    run_kernel(kernel, DTYPES[dtype], m, k, n)


def test_matmul_short_scratch_uses_blas():
    """A scratch shorter than k*n sends a small float64 product to BLAS, scratch untouched."""
    m, k, n = 8, K.MIN_CONTRACTION + 1, 9
    assert code_path("matmul_", np.float64, m, k, n) == SMALL
    (A, B), ref, scale = operands("matmul_", np.float64, m, k, n, seed=3)
    out = np.full((m, n), np.nan)
    BT = np.full(k * n - 1, -7.0)
    K.matmul_(out, A, B, BT)
    assert np.all(BT == -7.0)
    tol = 4 * k * np.finfo(np.float64).eps
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * scale.max())


def test_scratch_size_covers_small_layers():
    """``scratch_size`` leaves room for B.T of every float64 layer the 4 x 4 kernel can take
    (a batch of one row is the smallest product), and is at least 1 element."""
    sizes = [200, 64, 3, 64, 1, 2600]
    need = max(fi * fo for fi, fo in zip(sizes[:-1], sizes[1:])
               if code_path("matmul_", np.float64, 1, fi, fo) == SMALL)
    assert K.scratch_size(sizes, 8) >= need
    assert K.scratch_size(sizes, 4) >= 1
    assert K.scratch_size([3, 1], 8) >= 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_shapes_cover_every_path(kernel, dtype):
    """The shapes above reach each path the kernel has for this dtype, and the 4 x 4 kernel
    both with and without leftover rows and columns (m, n multiples of 4 or not)."""
    shapes = [(m, k, n) for k in CONTRACTIONS for m in ROWS_COLS for n in ROWS_COLS]
    shapes += GEMM_EDGE_SHAPES
    paths = {code_path(kernel, DTYPES[dtype], *s) for s in shapes}
    assert paths == EXPECTED_PATHS[kernel, dtype]
    small = [(m % 4 == 0, n % 4 == 0) for m, k, n in shapes
             if code_path(kernel, DTYPES[dtype], m, k, n) == SMALL]
    if SMALL in paths:
        assert set(small) == {(True, True), (True, False), (False, True), (False, False)}
