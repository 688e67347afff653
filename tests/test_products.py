"""The compiled matrix products of ``_kernels`` against NumPy's ``@``, on every code path.

``matmul_(out, A, B)`` writes ``A @ B``, ``matmul_nt_(out, A, B)`` writes ``A @ B.T`` and
``matmul_tn_(out, A, B)`` writes ``A.T @ B``. Each picks one of two code paths:

* ``thin``: a plain loop, when the dimension the kernel tests is at most ``THIN``;
* ``blas``: the private BLAS's gemm (``_kernels.gemm_``), with the operand transposed as the
  product needs.

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
THIN, BLAS = "thin", "blas"

# Output rows / columns: around THIN and around the SIMD widths.
ROWS_COLS = sorted({1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, K.THIN, K.THIN + 1})
# Contraction lengths: around THIN and longer.
CONTRACTIONS = sorted({1, K.THIN, K.THIN + 1, 15, 16, 17, 35})
# Larger products (BLAS packs and blocks them).
LARGE_SHAPES = [(64, 64, 64), (129, 64, 17), (300, 257, 3), (1, 300, 200), (200, 300, 1)]


def code_path(kernel, m, k, n):
    """The path a product of output (m, n) and contraction k takes, by the kernels' own rule."""
    if kernel == "matmul_nt_":  # thin when the dot products are short
        return THIN if k <= K.THIN else BLAS
    return THIN if n <= K.THIN else BLAS  # matmul_, matmul_tn_: thin when B has few columns


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
    getattr(K, kernel)(out, A, B)
    tol = 4 * k * np.finfo(dtype).eps
    np.testing.assert_allclose(
        out, ref, rtol=tol, atol=tol * scale.max(),
        err_msg=f"{kernel} {np.dtype(dtype).name} out {(m, n)}, contraction {k}, "
                f"path {code_path(kernel, m, k, n)}")


@pytest.mark.parametrize("k", CONTRACTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_grid(kernel, dtype, k):
    """Every (rows, cols) of the grid for one contraction length."""
    for m in ROWS_COLS:
        for n in ROWS_COLS:
            run_kernel(kernel, DTYPES[dtype], m, k, n, seed=m * 1000 + n)


@pytest.mark.parametrize("m,k,n", LARGE_SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_product_large(kernel, dtype, m, k, n):
    run_kernel(kernel, DTYPES[dtype], m, k, n)


@pytest.mark.parametrize("kernel", KERNELS)
def test_shapes_cover_every_path(kernel):
    shapes = [(m, k, n) for k in CONTRACTIONS for m in ROWS_COLS for n in ROWS_COLS]
    assert {code_path(kernel, *s) for s in shapes + LARGE_SHAPES} == {THIN, BLAS}


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_writes_only_its_output(dtype):
    """A product into a view of a larger buffer leaves the buffer's other elements alone."""
    dtype = DTYPES[dtype]
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 9)).astype(dtype)
    buf = np.full(7 * 9 + 6, -7.0, dtype)
    out = buf[3: 3 + 63].reshape(7, 9)
    K.matmul_(out, A, B)
    assert np.all(buf[:3] == -7.0) and np.all(buf[66:] == -7.0)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B, rtol=1e-5, atol=1e-5)
