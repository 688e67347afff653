"""All Numba code of fastfnn, in one file.

Numba's on-disk cache only watches the source file of the function it compiled, so every jitted
function that calls another lives here. The file keeps the shape of the Python house:

    run_batches_            the compiled minibatch loop: per batch, load, gradient, update
      prefetch_batch        the next batch's rows of X and Y into the caches (a hint)
    run_batches_parallel_   the same loop with the parts of each batch on several threads
      all_parts_            each part's sums (under prange), one after the other ...
      parts_parallel_       ... or on several threads: the one parallel kernel of training
        part_sums_          one part of a batch: load_part_ then backward_sums_
          load_part_        rows order[start:start+m] of X, Y, sample weights -> batch buffers
                            (load_batch_; load_targets_ where the first layer reads CSR itself)
          backward_sums_    forward_, loss sums and the delta recursion (unscaled sums)
            forward_        A[i+1] = act(A[i] @ W[i] + b[i])          (affine_act_)
            output_delta_   D[L-1] = (A[L] - Y) * act_out'(A[L]) (* sample_weight)
            delta_back_     D[i-1] = (D[i] @ W[i].T) * act'(A[i])     (matmul_nt_)
      batch_step_           the parts' sums added in part order, scaled, and the rule's step,
                            chosen by the rule's type (STEPS): SGD in one pass (sgd_step_);
        finished_gradient_  Adam, AdamW, clipping: the gradient dW = (sums + alpha W) / S,
                            db = sums / S (finish_grad_), clipped (clip_grad_) ...
        adam_step_          ... then the step (AdamW: decay_weights_ first)
    loss_grad_(_parallel_)  the full batch (L-BFGS): all rows as one batch, in parts
    forward_rows_(_parallel_)  predict: forward_ over fixed chunks of rows
    forward_layers_         predict's direct path: the layers as tuples, no flat theta
    forward_layers_parallel_  the same on blocks of rows, on Numba's threads
    matmul_, matmul_nt_, matmul_tn_   the products: thin loops, the tile kernel or gemm_
    csr_matmul_, csr_matmul_tn_       the first layer's products from CSR rows (Model.first_csr):
                            O(stored entries x width), A[0] never filled
      tile_gemm_            small products in registers (LLVM vectors); its share of each
                            product, a rule by the vector width (_tuning.py), passed in Model;
                            the bias and relu, or relu's mask, added as it stores (epilogues);
                            in prediction every product (row blocks, packed strips)
    time_products_          one product, repeated: what _tuning.py times for fastfnn bench
    run_lanes_              many models that share their minibatches, as lanes of one epoch:
      lane_forward_         the first layer of all of them one wide product (affine_act_), the
      lane_backward_        other products laned register tiles (lane_gemm_), the loss, the
      lane_step_            delta recursion and each model's own step (vector code: LLVM)
    rows_view, w_view, layer_view     2-D views of the flat buffers, built without reshape
    borrowed                the loops' groups seen without reference counts (once per call)

The compiled loop takes a few named groups (NamedTuples, built in network.py and
optimizers.py), not a row of positions:

    Data       the rows: X (dense, or CSR data/indices/indptr), Y, sample weights, the order
    Params     theta, its gradient, the layer sizes
    Workspace  per part of a batch: A, D, Y and weight buffers, gradient sums
    Model      activation and loss codes, L2 strength, the log-loss clip, the tile limits,
               dropout (rates, key) and the gradient's clipping norm
    SGDRule / AdamRule / AdamWRule   an update rule: its state and hyper-parameters by name

Layouts (row-batch, like scikit-learn; see network.py for the table of the math):

* ``theta`` (n_params,) packs ``[W[0].ravel(), ..., W[L-1].ravel(), b[0], ..., b[L-1]]``, as
  scikit-learn's ``_pack``; ``grad`` has the same layout.
* ``sizes`` (L+1,) int64 holds the layer units ``[n_features, hidden..., n_outputs]``.
* A workspace row ``A[p]`` holds A[0..L] of part p's rows back to back, ``A[i]`` of shape
  (m, sizes[i]); ``D[p]`` holds D[0..L-1], ``D[i]`` of shape (m, sizes[i+1]). Offsets follow the
  actual row count ``m`` so every view is C-contiguous.

Parts: a batch is split into a fixed number of parts (``Workspace.A.shape[0]``, chosen from the
problem and the machine's measurement, never from the thread count); each part's sums are
computed on their own and added in part order. So the result is the same bits whether one thread
or several run the parts.

Naming: a trailing underscore marks a function that writes into its leading argument(s) (arrays,
or groups of arrays, named in the first line of its docstring); it returns nothing, or scalar
sums. Functions without one write nothing: they return values or views.

Elementwise kernels keep the dtype of their arrays (float32 stays float32): constants are made
with ``X.dtype.type(...)``. Scalar loss values are accumulated in float64.
"""

import math
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array
from numba.typed import List

from . import _blas, _numba_cache, _numba_linking

_numba_cache.install()  # before anything compiles: processes compiling at once take turns
# The loops over batches, parts and rows, and the passes over a part's layers, call their
# callees once per batch, part or layer: those are linked into them as they are (optimised once,
# in their own libraries), not optimised again in every caller. A first fit compiles in 17%
# less time at the same speed; one level lower (the products, which call the tile kernel), tiny
# networks trained 7-9% slower. Every library here inlines Numba's reference counting (a test
# against NULL for the borrowed arrays of a loop), not a call each time.
_numba_linking.install(__name__, ("run_batches_", "run_batches_parallel_", "part_sums_",
                                  "loss_grad_", "loss_grad_parallel_", "forward_rows_",
                                  "forward_rows_parallel_", "run_models_", "_batch_step_by_rule",
                                  "backward_sums_", "forward_", "parts_parallel_",
                                  "step_blocks_parallel_", "run_lanes_", "lane_forward_",
                                  "lane_backward_"))

# Fast-math flags that keep NaN/inf semantics (no "nnan", no "ninf").
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# error_model="numpy": x / 0 is inf or nan as in NumPy (and scikit-learn), never an exception.
jit = njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
# Update rules without "reassoc": with it LLVM may expand b2*v + (1-b2)*g^2 into
# b2*v + g^2 - b2*g^2, which is inf - inf = NaN where g^2 overflows (NumPy gives inf).
# Small helpers that return views are inlined into their callers: numba then prunes the
# reference-count updates (atomic operations) that each returned view would otherwise cost.
# Larger blocks (the products, forward_, backward_sums_) are compiled once and called: inlined
# at every call site they multiplied the compile time (a first fit 38 s -> 25 s without) and
# gained no speed.
jit_inline = njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy", inline="always")
jit_update = njit(cache=True, fastmath=FASTMATH - {"reassoc"}, nogil=True, error_model="numpy")
jit_parallel = njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
jit_update_parallel = njit(parallel=True, cache=True, fastmath=FASTMATH - {"reassoc"}, nogil=True,
                           error_model="numpy")

# ----------------------------------------------------------------------------------------------
# Matrix products: fastfnn's private single-threaded BLAS (see _blas.py), or compiled loops.
# ----------------------------------------------------------------------------------------------

BLAS = _blas.BLAS


@jit_inline
def gemm_(out, A, B, trans_a, trans_b):
    """Writes ``out = op(A) @ op(B)`` (op(X) = X.T where ``trans_x``), all C-contiguous, with the
    private BLAS's gemm (one thread, whatever the host's BLAS settings)."""
    M, N = out.shape
    K = A.shape[0] if trans_a else A.shape[1]
    if M == 0 or N == 0:
        return
    ta = _blas.TRANS if trans_a else _blas.NO_TRANS
    tb = _blas.TRANS if trans_b else _blas.NO_TRANS
    lda, ldb = max(1, A.shape[1]), max(1, B.shape[1])
    if A.itemsize == 8:
        _blas.dgemm(_blas.ROW_MAJOR, ta, tb, M, N, K, 1.0, A.ctypes.data, lda, B.ctypes.data,
                    ldb, 0.0, out.ctypes.data, N)
    else:
        _blas.sgemm(_blas.ROW_MAJOR, ta, tb, M, N, K, np.float32(1.0), A.ctypes.data, lda,
                    B.ctypes.data, ldb, np.float32(0.0), out.ctypes.data, N)


# ----------------------------------------------------------------------------------------------
# The tile kernel: small products in registers (LLVM vector types), for the layers of small
# networks, where a gemm call's fixed costs (checks, packing) outweigh its arithmetic.
# ----------------------------------------------------------------------------------------------


def _vector_bytes():
    """The width of the host CPU's SIMD registers in bytes (64 with AVX-512, 32 with AVX, else
    16), as LLVM sees it. Numba compiles for the host and keys its cache by the CPU and its
    features, so code built with this width runs only where it was built."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    if features.get("avx512f", False):
        return 64
    return 32 if features.get("avx", False) else 16


VECTOR_BYTES = _vector_bytes()
# Rows of a tile, and its vectors across (:func:`strip_vectors`, :func:`tile_rows`): with 16
# vector registers (AVX, SSE) 6 x 2 vectors, 12 accumulators; with AVX-512's 32, 6 x 4, 24
# accumulators (and B's 4 vectors and A's broadcast: 29 registers), which loads B once for
# twice the multiply-adds: 1.1-1.3x the 6 x 2 tile on 64 rows, 32 to 256 units wide.
TILE_ROWS = (6, 4, 2, 1)
TILE_BLOCK_BYTES = 1 << 17  # the part of Â one block of rows reads: within a core's L2 cache
PACK_BYTES, PACK_ROWS = 1 << 16, 32  # prediction packs larger layers' strips, for 32+ rows


# What a tile does with its sums as it stores them (``epilogue``): nothing; add the bias; add the
# bias and take relu; or zero the entries where E (a layer's activations, laid out as C) is 0
# (the delta recursion's relu derivative). Each is what the separate elementwise pass would do to
# the stored sums (the same bits), without a second pass over C.
PLAIN, BIAS, BIAS_RELU, RELU_MASK = 0, 1, 2, 3


def _tile_kernel(rows, vectors):
    """An intrinsic ``tile(C, c_off, ldc, A, a_off, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr,
    e_off, lde, epilogue)`` that writes one (rows, vectors * W) tile of C (W = VECTOR_BYTES /
    itemsize elements a vector):

        S[r, j] = sum_{t < n_t} A[a_off + r*sa_r + t*sa_t] * B[b_off + t*ldb + j]
        C[c_off + r*ldc + j] = S[r, j]                                  (PLAIN)
                             = S[r, j] + E[e_off + r*lde + j]           (BIAS; lde = 0: a row)
                             = max(S[r, j] + E[e_off + r*lde + j], 0)   (BIAS_RELU)
                             = 0 if E[e_off + r*lde + j] == 0 else S[r, j]   (RELU_MASK)

    for r < rows, j < vectors * W, the arrays read through their data pointers as flat
    (elements; A's strides are free, B's and C's rows contiguous; E, of C's dtype, at the
    address ``e_ptr``, read only by the epilogues that name it). Unchecked: the caller
    guarantees every index is inside its array."""

    @intrinsic
    def tile(typingctx, C, c_off, ldc, A, a_off, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e_off,
             lde, epilogue):
        arrays = (C, A, B)
        ints = (c_off, ldc, a_off, sa_r, sa_t, b_off, ldb, n_t, e_ptr, e_off, lde, epilogue)
        if not (all(isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)
                    and a.dtype == C.dtype for a in arrays)
                and all(isinstance(i, types.Integer) for i in ints)):
            return None

        def codegen(context, builder, sig, args):
            _emit_tile(context, builder, sig, args, rows, vectors)
            return context.get_dummy_value()

        return types.void(C, c_off, ldc, A, a_off, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr,
                          e_off, lde, epilogue), codegen

    return tile


def _emit_tile(context, builder, sig, args, rows, vectors):
    """The LLVM code of one tile (see :func:`_tile_kernel`). The tile's sums stay in registers
    across the t loop (allocas that LLVM promotes): per t, one vector load of B per vector,
    one broadcast of A[r, t] per row, and a fused multiply-add per accumulator; then one store
    per accumulator, through the epilogue (a branch per tile, not per entry)."""
    fty = context.get_value_type(sig.args[0].dtype)
    size = context.get_abi_sizeof(fty)
    width = VECTOR_BYTES // size
    vty = ir.VectorType(fty, width)
    i64 = ir.IntType(64)
    c_ptr, a_ptr, b_ptr = (context.make_array(sig.args[k])(context, builder, args[k]).data
                           for k in (0, 3, 7))
    c_off, ldc, a_off, sa_r, sa_t, b_off, ldb, n_t, e_addr, e_off, lde, epilogue = (
        context.cast(builder, args[k], sig.args[k], types.int64)
        for k in (1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14))
    e_ptr = builder.inttoptr(e_addr, fty.as_pointer())
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]), f"llvm.fma.v{width}f{8 * size}")

    def vector_at(row_ptr, v):  # the v-th vector of a row, unaligned
        return builder.bitcast(builder.gep(row_ptr, [i64(v * width)]), vty.as_pointer())

    acc = [[cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * width))
            for _ in range(vectors)] for _ in range(rows)]
    undef = ir.Constant(vty, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)
    with cgutils.for_range(builder, n_t) as loop:
        t = loop.index
        b_row = builder.gep(b_ptr, [builder.add(b_off, builder.mul(t, ldb))])
        b = [builder.load(vector_at(b_row, v), align=size) for v in range(vectors)]
        a_t = builder.add(a_off, builder.mul(t, sa_t))
        for r in range(rows):
            a_rt = builder.gep(a_ptr, [builder.add(a_t, builder.mul(i64(r), sa_r))])
            a = builder.insert_element(undef, builder.load(a_rt), ir.IntType(32)(0))
            a = builder.shuffle_vector(a, undef, splat)
            for v in range(vectors):
                builder.store(builder.call(fma, [a, b[v], builder.load(acc[r][v])]), acc[r][v])

    def at(ptr, off, ld, r, v):  # the v-th vector of row r of a tile at ptr[off], rows ld apart
        return vector_at(builder.gep(ptr, [builder.add(off, builder.mul(i64(r), ld))]), v)

    _emit_epilogue(builder, [[builder.load(a) for a in row] for row in acc],
                   lambda r, v: at(c_ptr, c_off, ldc, r, v),
                   lambda r, v: at(e_ptr, e_off, lde, r, v), epilogue, size)


def _emit_epilogue(builder, sums, c_at, e_at, epilogue, align):
    """The LLVM code that stores a tile's sums (rows x vectors LLVM vectors) at the addresses
    ``c_at(r, v)`` through the epilogue, one branch per tile (see :func:`_tile_kernel`): PLAIN
    as they are; BIAS plus the vector at ``e_at(r, v)``; BIAS_RELU then ``0 > z ? 0 : z``, as
    bias_act_'s relu; RELU_MASK ``e == 0 ? 0 : s``, as mul_act_deriv_'s relu."""
    vty = sums[0][0].type
    zero = ir.Constant(vty, [0.0] * vty.count)

    def is_code(code):
        return builder.icmp_signed("==", epilogue, ir.IntType(64)(code))

    def e_vector(r, v):
        return builder.load(e_at(r, v), align=align)

    def store_all(finish):  # C's tile <- finish(sum, r, v)
        for r, row in enumerate(sums):
            for v, s in enumerate(row):
                builder.store(finish(s, r, v), c_at(r, v), align=align)

    def biased(s, r, v):
        z = builder.fadd(s, e_vector(r, v))
        relu = builder.select(builder.fcmp_ordered(">", zero, z), zero, z)
        return builder.select(is_code(BIAS_RELU), relu, z)

    def masked(s, r, v):
        return builder.select(builder.fcmp_ordered("==", e_vector(r, v), zero), zero, s)

    with builder.if_else(is_code(PLAIN)) as (plain, other):
        with plain:
            store_all(lambda s, r, v: s)
        with other:
            with builder.if_else(is_code(RELU_MASK)) as (mask, bias):
                with mask:
                    store_all(masked)
                with bias:
                    store_all(biased)


_TILE_6x4, _TILE_2x4, _TILE_1x4 = (_tile_kernel(r, 4) for r in (6, 2, 1))
_TILE_6x2, _TILE_4x2, _TILE_2x2, _TILE_1x2 = (_tile_kernel(r, 2) for r in TILE_ROWS)
_TILE_6x1, _TILE_4x1, _TILE_2x1, _TILE_1x1 = (_tile_kernel(r, 1) for r in TILE_ROWS)


@jit_inline
def tile_block_(out, i, j, rows, vectors, A, sa_r, sa_t, B, b_off, ldb, n_t, epi):
    """Writes ``out[i:i+rows, j:j+vectors*width]`` (:func:`tile_rows`, :func:`strip_vectors`)
    of ``out = Â @ B̂``, Â(r, t) = A.flat[r * sa_r + t * sa_t], B̂(t, c) = B.flat[b_off + t *
    ldb + c], through the epilogue ``epi`` (see :func:`tile_loop_`); out's rows may be longer
    than its view (a column slice: its leading dimension comes from its strides)."""
    ldc = out.strides[0] // out.itemsize
    c, a = i * ldc + j, i * sa_r
    e_ptr, e_ld, epilogue = epi
    e = i * e_ld + j
    if VECTOR_BYTES == 64 and vectors == 4:  # a constant: no 4-vector tiles for other widths
        if rows == 6:
            _TILE_6x4(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
        elif rows == 2:
            _TILE_2x4(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
        else:
            _TILE_1x4(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
    elif vectors == 2:
        if rows == 6:
            _TILE_6x2(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
        elif rows == 4:
            _TILE_4x2(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
        elif rows == 2:
            _TILE_2x2(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
        else:
            _TILE_1x2(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
    elif rows == 6:
        _TILE_6x1(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
    elif rows == 4:
        _TILE_4x1(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
    elif rows == 2:
        _TILE_2x1(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)
    else:
        _TILE_1x1(out, c, ldc, A, a, sa_r, sa_t, B, b_off, ldb, n_t, e_ptr, e, e_ld, epilogue)


@jit_inline
def no_epilogue():
    """The tile kernel's ``epi`` for a plain product: ``(e_ptr, e_ld, PLAIN)``."""
    return np.uintp(0), np.int64(0), np.int64(PLAIN)


@jit_inline
def bias_epilogue(b, relu):
    """``epi`` that adds b (n,), contiguous, to every row (and takes relu where ``relu``)."""
    return np.uintp(b.ctypes.data), np.int64(0), np.int64(BIAS_RELU if relu else BIAS)


@jit_inline
def relu_mask_epilogue(A):
    """``epi`` that zeroes the entries where A, laid out as the output (C-contiguous), is 0."""
    return np.uintp(A.ctypes.data), np.int64(A.shape[1]), np.int64(RELU_MASK)


# Callers pass the tile kernel's unit strides as literals: Numba compiles a version per literal
# pattern (about 0.7 s each in a first fit), in which the constant strides fold into the loads
# (as int64 arguments, one-output layers made the tiny network train 4% slower).
@jit
def tile_gemm_(out, A, sa_r, sa_t, B, epi):
    """Writes ``out`` (M, N) = Â @ B with the tile kernel: Â (M, n_t) read from A with element
    strides ``(sa_r, sa_t)`` (A @ W: (k, 1); A.T @ D: (1, A's row length)), B (n_t, N) with
    contiguous rows (a column slice allowed), out likewise, N a multiple of the vector width
    (:func:`tiles`). See :func:`tile_loop_`."""
    tile_loop_(out, A, sa_r, sa_t, B, B.shape[0], B.strides[0] // B.itemsize, False, epi)


@jit
def tile_gemm_packed_(out, A, B, epi):
    """Writes ``out`` (M, N) = A @ B for A (M, k) C-contiguous and B (k, N) (a column slice
    allowed), out's rows contiguous, N a multiple of the vector width, as :func:`tile_gemm_`
    with B's column strips first copied next to each other (:func:`pack_strips`): for layers
    too large for the cache, where B's rows, a page apart, would each cost a cache and a TLB
    miss per strip. The same bits as unpacked."""
    k = B.shape[0]
    tile_loop_(out, A, k, 1, pack_strips(B), k, 0, True, epi)


@jit_inline
def strip_vectors(j, N, width):
    """The vectors across of the strip that starts at column j of N (``width`` elements a
    vector): as many of 4 (where the CPU has AVX-512's 32 vector registers: ``TILE_ROWS``), 2
    and 1 as fit."""
    if VECTOR_BYTES == 64 and j + 4 * width <= N:
        return 4
    return 2 if j + 2 * width <= N else 1


@jit_inline
def tile_rows(left, vectors):
    """The rows of the next tile of a strip of ``vectors`` vectors, ``left`` rows to go: 6, 4,
    2 or 1 (4-vector strips: 6, 2 or 1, so that AVX-512 compiles three wide tiles, not four)."""
    if left >= 6:
        return 6
    if left >= 4 and vectors < 4:
        return 4
    return 2 if left >= 2 else 1


@jit_inline
def pack_strips(B):
    """B (k, N), N a multiple of the vector width, as its column strips (:func:`strip_vectors`)
    one after the other: the strip at column j is the (k, its width) block at ``j * k``."""
    k, N = B.shape
    width = VECTOR_BYTES // B.itemsize
    packed = np.empty(k * N, B.dtype)
    j = 0
    while j < N:
        w = strip_vectors(j, N, width) * width
        for t in range(k):
            for c in range(w):
                packed[j * k + t * w + c] = B[t, j + c]
        j += w
    return packed


@jit_inline
def tile_loop_(out, A, sa_r, sa_t, B, n_t, ldb, packed, epi):
    """Writes ``out`` (M, N) = Â @ B̂: tiles of 6, 4, 2 or 1 rows by 4 (AVX-512) or 2
    vectors, fewer for the last columns (:func:`strip_vectors`), in blocks of rows whose part
    of Â fits ``TILE_BLOCK_BYTES`` (each block's rows are read from the cache once per column
    strip, not from memory); B̂ (n_t, N) is B's rows ``ldb`` apart, or with ``packed`` its
    strips one after the other (:func:`pack_strips`). Each tile sums its n_t products in
    order and stores them through the epilogue ``epi = (e_ptr, e_ld, code)``
    (:func:`no_epilogue`, :func:`bias_epilogue`, :func:`relu_mask_epilogue`; see
    :func:`_tile_kernel`). An entry's sum is the same sequence of fused multiply-adds whatever
    the tile, block or row count: a row's result does not depend on the rows computed with
    it."""
    M, N = out.shape
    width = VECTOR_BYTES // out.itemsize
    block = max(6, TILE_BLOCK_BYTES // max(1, n_t * out.itemsize) // 6 * 6)
    for i0 in range(0, M, block):
        i1 = min(M, i0 + block)
        j = 0
        while j < N:
            vectors = strip_vectors(j, N, width)
            w = vectors * width
            b_off, ld = (j * n_t, w) if packed else (j, ldb)
            i = i0
            while i < i1:
                rows = tile_rows(i1 - i, vectors)
                tile_block_(out, i, j, rows, vectors, A, sa_r, sa_t, B, b_off, ld, n_t, epi)
                i += rows
            j += w


@jit_inline
def tiles(out, weights, limit):
    """Whether a layer's product into ``out`` (., n) takes the tile kernel: n a whole number
    of vectors and the layer's ``weights = fan_in * fan_out <= limit`` (the rule for this
    machine's vector width, dtype and product, ``Model.tile_*``; 0: never). The row count
    plays no part, so a row's result never depends on the rows computed with it."""
    return out.shape[1] % (VECTOR_BYTES // out.itemsize) == 0 and weights <= limit


@jit
def transpose_(out, B):
    """Writes ``out`` (n, k) = B.T for B (k, n), both C-contiguous (row by row of out: a
    64 x 64 layer in about 2 us; blocked loops with bounds ran 2-4x slower)."""
    k, n = B.shape
    for t in range(n):
        for j in range(k):
            out[t, j] = B[j, t]


@jit
def time_products_(out, A, B, scratch, product, limit, repeats):
    """Runs one layer product ``repeats`` times, as training runs it: ``product`` 0: out = A @ B
    (:func:`matmul_`), 1: out = A.T @ B (:func:`matmul_tn_`), 2: out = A @ B.T
    (:func:`matmul_nt_`), with the tile limit ``limit`` (0: gemm). For timing the kernels."""
    for _ in range(repeats):
        if product == 0:
            matmul_(out, A, B, limit, no_epilogue())
        elif product == 1:
            matmul_tn_(out, A, B, limit)
        else:
            matmul_nt_(out, A, B, limit, scratch, no_epilogue())


# Activation codes (activations.py maps names to these).
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
LEAKY_RELU, ELU, SOFTPLUS, GELU, SILU = 6, 7, 8, 9, 10
LEAKY_SLOPE = 0.01  # leaky_relu's slope for z < 0
KEEPS_Z = (GELU, SILU)  # derivatives that are not functions of the output: the forward keeps z
# Loss codes (losses.py maps names to these).
SQUARED_ERROR, POISSON, BINARY_LOG_LOSS, LOG_LOSS, HUBER, ABSOLUTE_ERROR = 0, 1, 2, 3, 4, 5


# ----------------------------------------------------------------------------------------------
# The groups the compiled loop takes (NamedTuples: Numba passes them as typed tuples).
# ----------------------------------------------------------------------------------------------


class Data(NamedTuple):
    """The rows a loop reads, in the network's dtype.

    X (n, n_features) C-ordered, or (0, 0) when the rows are CSR (X_data, X_indices, X_indptr:
    the matrix's arrays, indices int64, each < n_features); Y (n, n_outputs), or (n, 0) for a
    forward pass only;
    sw (n,) sample weights, read when ``use_sw``; order (n,) int64: batch k is the rows
    ``order[k * batch_size : (k + 1) * batch_size]``.
    """

    X: np.ndarray
    X_data: np.ndarray
    X_indices: np.ndarray
    X_indptr: np.ndarray
    is_sparse: bool
    n_features: int
    Y: np.ndarray
    sw: np.ndarray
    use_sw: bool
    order: np.ndarray


class Params(NamedTuple):
    """theta (n_params,) and grad (n_params,) packed as scikit-learn's ``_pack``; sizes (L+1,)."""

    theta: np.ndarray
    grad: np.ndarray
    sizes: np.ndarray


class Workspace(NamedTuple):
    """Buffers for P parts of a batch of up to P * rows rows; row p of each array is part p's.

    A (P, rows * sum(sizes)): A[0..L]; D (P, rows * sum(sizes[1:])): D[0..L-1]; Z: the
    hidden layers' z laid out as D where the activation needs it (Model.keeps_z), else (P, 0);
    WT (P, size): room for the largest W[i].T the tile kernel's delta products take (size 0
    where none does); Y (P, rows * n_outputs) and sw (P, rows): the part's targets and
    weights; part_grads (P - 1, n_params): gradient sums of parts 1..P-1
    (part 0 sums into Params.grad); part_loss, part_weight (P,) float64: each part's loss and
    weight sums; layer_sq (L,) float64 and n_updates (1,) int64: the sums of each layer's
    squared gradient norm over the updates made, and their number (gradient norms per epoch);
    step_sums (n_step_blocks(sizes, n_params), 2) float64: each step block's sums of squares
    of W and of its finished gradient (:func:`step_blocks_`), added up in block order;
    batch (3,) int64: the batch in hand's first position in the order, its rows, and a count
    of the batches whose input columns were listed; seen (2, n_features) int64: per input
    column the count at which a batch last stored an entry in it, and the list of the
    columns the batch in hand does (:func:`touched_columns`).
    """

    A: np.ndarray
    D: np.ndarray
    Z: np.ndarray
    WT: np.ndarray
    Y: np.ndarray
    sw: np.ndarray
    part_grads: np.ndarray
    part_loss: np.ndarray
    part_weight: np.ndarray
    layer_sq: np.ndarray
    n_updates: np.ndarray
    step_sums: np.ndarray
    batch: np.ndarray
    seen: np.ndarray


class Model(NamedTuple):
    """What the network computes: activation codes (hidden, output), whether the hidden
    activation's derivative needs z (``keeps_z``), the loss code, the code of the output delta's
    factor act_out' (IDENTITY for canonical pairs), the L2 strength ``alpha``, the
    probability clip ``eps`` of the log-losses, and the products' choice of kernel: the
    largest layer (fan_in * fan_out weights) the tile kernel takes, per product (A @ W,
    A.T @ D, D @ W.T; the rule for this machine's vector width, see :func:`tiles`; for A @ W
    ``EVERY_SHAPE`` in prediction). Training only: inverted dropout on the hidden layers'
    outputs where ``dropping`` (``drop_rate`` (L,) float64: layer i's outputs dropped with
    that probability, the output layer's entry 0; ``drop_key``: the seed and epoch, see
    :func:`dropout_`), and the gradient's largest global norm ``max_grad_norm`` (0: not
    clipped). ``parallel_step``: the step's elementwise passes run in blocks on Numba's
    threads (:func:`step_blocks_parallel_`; the same bits as on one). ``sparse_update``
    (SGD without momentum or L2 on CSR rows): the step skips the first layer's weights of the
    input columns the batch stores no entry in, which it would leave as they are
    (:func:`sparse_sgd_step_`). Where ``first_csr``,
    the first layer reads its rows from the CSR matrix
    of the ``Data`` the pass runs on (the addresses of its ``X_data``, ``X_indices`` (int64),
    ``X_indptr`` (int64, ``csr_rows + 1``) and ``order`` (int64, ``csr_positions``): scalars, not
    arrays, so that no reference count is taken on each call that passes the model, about
    150 ns an array per batch on the tiny network; :func:`csr_arrays`, which
    ``network.check`` guards); the rows of a pass at ``row0`` are ``order[row0:row0+m]``):
    its products take O(stored entries x width) (:func:`csr_matmul_`, :func:`csr_matmul_tn_`)
    and A[0] is never filled."""

    hidden_act: int
    out_act: int
    keeps_z: bool
    loss: int
    deriv_act: int
    alpha: float
    eps: float
    tile_nn: int
    tile_tn: int
    tile_nt: int
    dropping: bool
    drop_rate: np.ndarray
    drop_key: np.uint64
    max_grad_norm: float
    parallel_step: bool = False
    sparse_update: bool = False
    first_csr: bool = False
    csr_data: int = 0
    csr_indices: int = 0
    csr_indptr: int = 0
    csr_order: int = 0
    csr_rows: int = 0
    csr_nnz: int = 0
    csr_positions: int = 0


class SGDRule(NamedTuple):
    """SGD with momentum: its state (velocity (n_params,)) and hyper-parameters."""

    velocity: np.ndarray
    learning_rate: float
    momentum: float
    nesterov: bool


class AdamRule(NamedTuple):
    """Adam: its state (first and second moments m, v (n_params,), the number of steps taken
    (1,) int64) and hyper-parameters."""

    m: np.ndarray
    v: np.ndarray
    steps: np.ndarray
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float


class AdamWRule(NamedTuple):
    """AdamW: Adam's state and hyper-parameters, and the decoupled weight decay (``alpha``)."""

    m: np.ndarray
    v: np.ndarray
    steps: np.ndarray
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon: float
    weight_decay: float


# ----------------------------------------------------------------------------------------------
# Activations: a = act(z + b), in place, and the derivative written in terms of the output a.
# ----------------------------------------------------------------------------------------------


@jit
def bias_act_(Z, b, act):
    """In place ``Z <- act(Z + b)``; Z (n, k), b (k,). Softmax is taken row by row."""
    n, k = Z.shape
    one = Z.dtype.type(1.0)
    zero = Z.dtype.type(0.0)
    if act == IDENTITY:
        for i in range(n):
            for j in range(k):
                Z[i, j] += b[j]
    elif act == RELU:
        for i in range(n):
            for j in range(k):
                Z[i, j] = max(Z[i, j] + b[j], zero)
    elif act == TANH:
        for i in range(n):
            for j in range(k):
                Z[i, j] = np.tanh(Z[i, j] + b[j])
    elif act == LOGISTIC:
        for i in range(n):
            for j in range(k):
                # exp of a non-positive number only: no overflow for any |z|
                z = Z[i, j] + b[j]
                e = np.exp(-abs(z))
                Z[i, j] = one / (one + e) if z >= zero else e / (one + e)
    elif act == EXP:
        for i in range(n):
            for j in range(k):
                Z[i, j] = np.exp(Z[i, j] + b[j])
    elif act == LEAKY_RELU:
        slope = Z.dtype.type(LEAKY_SLOPE)
        for i in range(n):
            for j in range(k):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > zero else slope * z
    elif act == ELU:
        for i in range(n):
            for j in range(k):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > zero else np.expm1(z)
    elif act == SOFTPLUS:
        for i in range(n):
            for j in range(k):
                # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for any z
                z = Z[i, j] + b[j]
                Z[i, j] = max(z, zero) + np.log1p(np.exp(-abs(z)))
    elif act == GELU or act == SILU:
        for i in range(n):
            for j in range(k):
                Z[i, j] = act_of_z(Z[i, j] + b[j], act)
    elif act == SOFTMAX:
        for i in range(n):
            zmax = Z[i, 0] + b[0]
            for j in range(k):
                Z[i, j] += b[j]
                zmax = max(zmax, Z[i, j])
            s = zero
            for j in range(k):
                e = np.exp(Z[i, j] - zmax)
                Z[i, j] = e
                s += e
            for j in range(k):
                Z[i, j] /= s


@jit_inline
def _logistic(z):
    """1 / (1 + e^-z) without overflow (exp of -|z| only), in float64."""
    e = math.exp(-abs(z))
    return 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)


@jit_inline
def act_of_z(z, act):
    """gelu ``z Phi(z)`` (exact, with erf) or silu ``z logistic(z)``, of a scalar z."""
    if act == GELU:
        return z * (0.5 + 0.5 * math.erf(z * 0.7071067811865476))
    return z * _logistic(z)


@jit_inline
def deriv_of_z(z, act):
    """gelu' = Phi(z) + z phi(z); silu' = s (1 + z (1 - s)), s = logistic(z)."""
    if act == GELU:
        return (0.5 + 0.5 * math.erf(z * 0.7071067811865476)
                + z * 0.3989422804014327 * math.exp(-0.5 * z * z))
    sig = _logistic(z)
    return sig * (1.0 + z * (1.0 - sig))


@jit
def bias_act_keep_z_(A, Z, b, act):
    """In place ``Z <- A + b``, ``A <- act(Z)`` for gelu and silu (whose derivative needs z);
    A, Z (n, k), b (k,)."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            z = A[i, j] + b[j]
            Z[i, j] = z
            A[i, j] = act_of_z(z, act)


@jit
def mul_act_deriv_z_(D, Z, act):
    """In place ``D <- D * act'(Z)`` for the activations whose derivative needs z (gelu,
    silu); D and Z (n, k)."""
    n, k = D.shape
    for i in range(n):
        for j in range(k):
            D[i, j] *= deriv_of_z(Z[i, j], act)


@jit
def mul_act_deriv_(D, A, act):
    """In place ``D <- D * act'(z)``, with act' written in terms of the output ``A = act(z)``.

    logistic: a(1-a); tanh: 1-a^2; relu: [a > 0]; exp: a; identity: 1; leaky_relu: 1 or
    0.01 (a > 0 or not); elu (alpha 1): 1 or a + 1; softplus: logistic(z) = 1 - e^-a. D and A
    are (n, k). Softmax (no elementwise derivative), gelu and silu (mul_act_deriv_z_) are
    never passed here.
    """
    n, k = D.shape
    one = D.dtype.type(1.0)
    zero = D.dtype.type(0.0)
    if act == RELU:  # selects, not branches: the loops vectorise
        for i in range(n):
            for j in range(k):
                D[i, j] = zero if A[i, j] == zero else D[i, j]
    elif act == TANH:
        for i in range(n):
            for j in range(k):
                D[i, j] *= one - A[i, j] * A[i, j]
    elif act == LOGISTIC:
        for i in range(n):
            for j in range(k):
                D[i, j] *= A[i, j] * (one - A[i, j])
    elif act == EXP:
        for i in range(n):
            for j in range(k):
                D[i, j] *= A[i, j]
    elif act == LEAKY_RELU:
        slope = D.dtype.type(LEAKY_SLOPE)
        for i in range(n):
            for j in range(k):
                D[i, j] *= one if A[i, j] > zero else slope
    elif act == ELU:
        for i in range(n):
            for j in range(k):
                D[i, j] *= one if A[i, j] > zero else A[i, j] + one
    elif act == SOFTPLUS:
        for i in range(n):
            for j in range(k):
                D[i, j] *= -np.expm1(-A[i, j])


# ----------------------------------------------------------------------------------------------
# Losses: value (weighted mean over samples, summed over outputs) and output delta.
# ----------------------------------------------------------------------------------------------


@jit
def loss_value(A, Y, sw, use_sw, loss, eps):
    """Mean per-sample loss ``sum_i s_i l_i / sum_i s_i`` (float64); A, Y (m, k), sw (m,)."""
    total, wsum = loss_sums(A, Y, sw, use_sw, loss, eps)
    return total / wsum


@jit
def loss_sums(A, Y, sw, use_sw, loss, eps):
    """``(sum_i s_i l_i, sum_i s_i)`` in float64 (s_i = 1 without sample weights).

    squared_error: l = 1/2 ||a - y||^2; poisson: l = sum y log(y/a) - y + a;
    binary log-loss: l = -sum [y log p + (1-y) log(1-p)]; log-loss: l = -sum y log p,
    with p clipped to [eps, 1 - eps] as scikit-learn; huber (delta 1): l = sum r^2/2 where
    |r| <= 1, else |r| - 1/2; absolute error: l = sum |r|; r = a - y.
    """
    m, k = A.shape
    total = 0.0
    wsum = 0.0
    for i in range(m):
        li = 0.0
        for j in range(k):
            a = np.float64(A[i, j])
            y = np.float64(Y[i, j])
            if loss == SQUARED_ERROR:
                li += 0.5 * (a - y) * (a - y)
            elif loss == HUBER:
                r = abs(a - y)
                li += 0.5 * r * r if r <= 1.0 else r - 0.5
            elif loss == ABSOLUTE_ERROR:
                li += abs(a - y)
            elif loss == POISSON:
                if y != 0.0:
                    li += y * np.log(y / a)
                li += a - y
            elif loss == BINARY_LOG_LOSS:
                p = min(max(a, eps), 1.0 - eps)
                if y != 0.0:
                    li -= y * np.log(p)
                if y != 1.0:
                    li -= (1.0 - y) * np.log(1.0 - p)
            else:
                if y != 0.0:
                    li -= y * np.log(min(max(a, eps), 1.0 - eps))
        w = np.float64(sw[i]) if use_sw else 1.0
        total += w * li
        wsum += w
    return total, wsum


@jit
def output_delta_(D, A, Y, sw, use_sw, loss, deriv_act):
    """``D <- dl/da * act'(A) [* sw]``: dl/dz at the output, D/A/Y (m, k), sw (m,).

    dl/da = r = A - Y for squared error and the canonical pairs of the other losses (identity
    + squared error, exp + poisson, logistic + binary log-loss, softmax + log-loss, where the
    caller passes ``deriv_act=IDENTITY`` and the factor cancels); clip(r, -1, 1) for huber;
    sign(r) (0 at 0) for absolute error.
    """
    m, k = D.shape
    one = D.dtype.type(1.0)
    zero = D.dtype.type(0.0)
    for i in range(m):
        for j in range(k):
            r = A[i, j] - Y[i, j]
            if loss == HUBER:
                r = min(max(r, -one), one)
            elif loss == ABSOLUTE_ERROR:
                r = one if r > zero else (-one if r < zero else zero)
            D[i, j] = r
    mul_act_deriv_(D, A, deriv_act)
    if use_sw:
        for i in range(m):
            for j in range(k):
                D[i, j] *= sw[i]


# ----------------------------------------------------------------------------------------------
# Views into the flat buffers.
# ----------------------------------------------------------------------------------------------


@jit_inline
def n_weights(sizes):
    """Number of weights ``sum_i fan_in_i * fan_out_i`` (the W part of theta)."""
    n = 0
    for l in range(len(sizes) - 1):
        n += sizes[l] * sizes[l + 1]
    return n


@intrinsic
def _rows_view(typingctx, buf, offset, rows, cols):
    """The (rows, cols) C-contiguous view of a C-contiguous ``buf`` (any number of dimensions,
    its elements in order) that starts at element ``offset``, unchecked (:func:`rows_view`
    checks). Built directly: ``reshape`` searches strides in a C helper, about 30 ns a view, a
    dozen views a batch."""
    if not (isinstance(buf, types.Array) and buf.layout == "C"):
        return None
    view_type = buf.copy(ndim=2, layout="C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        off, m, k = (context.cast(builder, value, ty, types.intp)
                     for value, ty in zip(args[1:], sig.args[1:]))
        view = context.make_array(view_type)(context, builder)
        populate_array(view, data=builder.gep(src.data, [off]), shape=[m, k],
                       strides=[builder.mul(k, src.itemsize), src.itemsize],
                       itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, view_type, view._getvalue())

    return view_type(buf, offset, rows, cols), codegen


def _unowned(context, builder, ty, value):
    """``value`` of type ``ty`` with the meminfo of every array in it (nested in tuples too)
    set to NULL: the same arrays, seen without a reference count."""
    if isinstance(ty, types.Array):
        array = context.make_array(ty)(context, builder, value)
        array.meminfo = cgutils.get_null_value(array.meminfo.type)
        return array._getvalue()
    if isinstance(ty, types.BaseTuple):
        for i, item_type in enumerate(ty.types):
            item = _unowned(context, builder, item_type, builder.extract_value(value, i))
            value = builder.insert_value(value, item, i)
    return value


@intrinsic
def borrowed(typingctx, group):
    """``group`` (an array, or a group of arrays and scalars) whose arrays carry no reference
    count: every function it is passed to then skips the atomic increments and decrements of
    each array's count on entry and exit (NRT_incref/NRT_decref are no-ops on a NULL meminfo).
    A compiled loop that passes its groups down five levels per batch spent about a third of a
    tiny network's batch on them. The caller keeps the owning group alive for as long as the
    borrowed one is used (a loop's arguments are, for the whole call)."""
    def codegen(context, builder, sig, args):
        return _unowned(context, builder, sig.args[0], args[0])

    return group(group), codegen


@intrinsic
def read_as_writable(typingctx, array):
    """``array`` typed as writable (the same value: Numba's read-only flag is a typing fact,
    not a field), for a kernel that only reads it. Predict's direct path reads its input X
    read-only (one version for any input); passed on as writable, X's first layer runs the
    product and activation versions fits compile, instead of read-only versions of its own
    (about 8 s of a first prediction's compile)."""
    if not isinstance(array, types.Array):
        return None
    writable = array.copy(readonly=False)

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, writable, args[0])

    return writable(array), codegen


@jit
def check_view(size, offset, rows, cols):
    """IndexError unless ``[offset, offset + rows * cols)`` lies inside ``[0, size)``. Called,
    not inlined: a raise written inside a ``prange`` body stops Numba running it in parallel."""
    if offset < 0 or rows < 0 or cols < 0 or offset + rows * cols > size:
        raise IndexError("view outside its buffer")


@jit_inline
def rows_view(buf, offset, rows, cols):
    """``buf.ravel()[offset : offset + rows * cols].reshape((rows, cols))`` for a C-contiguous
    buf; IndexError where that range is not inside buf."""
    # int64s, not literals: one compiled check for every caller
    check_view(np.int64(buf.size), np.int64(offset), np.int64(rows), np.int64(cols))
    return _rows_view(buf, offset, rows, cols)


@jit_inline
def w_view(theta, sizes, i):
    """W[i] (sizes[i], sizes[i+1]) inside the flat parameter vector."""
    off = 0
    for l in range(i):
        off += sizes[l] * sizes[l + 1]
    return rows_view(theta, off, sizes[i], sizes[i + 1])


@jit_inline
def b_view(theta, sizes, i):
    """b[i] (sizes[i+1],) inside the flat parameter vector (after all the W)."""
    off = n_weights(sizes)
    for l in range(i):
        off += sizes[l + 1]
    return theta[off : off + sizes[i + 1]]


@jit_inline
def layer_view(buf, units, m, i):
    """Layer i's (m, units[i]) block of a buffer that holds layers back to back."""
    off = 0
    for l in range(i):
        off += m * units[l]
    return rows_view(buf, off, m, units[i])


@jit_inline
def zero_(x):
    """Writes x (n,): all zeros. A loop, not ``x[:] = 0``: inside a parallel loop an array
    expression becomes a nested parallel loop of its own, which Numba does not run as written."""
    for j in range(x.shape[0]):
        x[j] = 0


# ----------------------------------------------------------------------------------------------
# Matrix products of the layers: plain loops where one dimension is at most THIN (matrix-vector:
# one-output layers, where a gemm call costs 2-6x the loop); else the tile kernel for layers up
# to the rule's size for this vector width (Model.tile_*, _tuning.RULES; on a Zen 3 EPYC it
# ran 1.1-3.9x OpenBLAS's speed up to 96 x 96 to 256 x 256 weights); else the private BLAS,
# whose cache blocking wins on larger layers. Prediction takes the tile kernel for every layer
# (EVERY_SHAPE). `fastfnn bench` prints the choice.
# ----------------------------------------------------------------------------------------------

THIN = 2  # products with a dimension this small (matrix-vector) are plain loops, not BLAS calls
# The forward's tile limit for prediction: the tile kernel for every layer (the columns past the
# last whole vector on a zero-padded copy), never gemm, whose sums for a row depend on how many
# rows it is given (OpenBLAS's kernels for row tails, small inputs and one row differ): so a
# row's prediction is the same bits whatever rows are predicted with it.
EVERY_SHAPE = -1


@jit
def matmul_nt_(out, A, B, limit, scratch, epi):
    """Writes ``out = A @ B.T``; A (m, n), B (k, n), out (m, k), all C-contiguous: the delta
    recursion's ``D[i] @ W[i].T``. Short rows (n <= THIN: one-output layers) as a plain loop,
    or for n = 1 (an outer product; B (k, 1) is the row B.T) in the tile kernel where it takes
    the layer (:func:`tiles`); where it takes a wider product and ``scratch`` (1-D) holds B.T,
    B is transposed into it and the tile kernel runs; else BLAS.

    Returns whether the tile kernel ran, applying the epilogue ``epi`` (:func:`tile_gemm_`)
    as it stored out; elsewhere the caller applies it."""
    m, n = A.shape
    k = B.shape[0]
    if n == 1 and tiles(out, k, limit):
        tile_gemm_(out, A, 1, 1, rows_view(B, 0, 1, k), epi)
        return True
    if n > THIN and tiles(out, n * k, limit) and scratch.shape[0] >= n * k:
        BT = rows_view(scratch, 0, n, k)
        transpose_(BT, B)
        tile_gemm_(out, A, n, 1, BT, epi)
        return True
    if n > THIN:
        gemm_(out, A, B, False, True)
        return False
    for i in range(m):
        for p in range(k):
            s = A[i, 0] * B[p, 0]
            for j in range(1, n):
                s += A[i, j] * B[p, j]
            out[i, p] = s
    return False


@jit
def matmul_tn_(out, A, B, limit):
    """Writes ``out = A.T @ B``; A (m, k), B (m, n), out (k, n): the weight gradient
    ``A[i].T @ D[i]``. For thin B (one-output layers) a plain loop over the rows, or for n = 1
    (out (k, 1) is the row (B.T @ A)) the tile kernel where it takes the layer; the tile
    kernel where it takes the product (:func:`tiles`, ``limit``); else BLAS."""
    m, k = A.shape
    n = B.shape[1]
    if n == 1:
        row = rows_view(out, 0, 1, k)  # out (k, 1) as the row out.T
        if tiles(row, k, limit):
            tile_gemm_(row, B, 1, 1, A, no_epilogue())
            return
    if n > THIN and tiles(out, k * n, limit):
        tile_gemm_(out, A, 1, k, B, no_epilogue())
        return
    if n > THIN:
        gemm_(out, A, B, True, False)
        return
    for p in range(k):
        for j in range(n):
            out[p, j] = 0
    for i in range(m):
        for j in range(n):
            b = B[i, j]
            for p in range(k):
                out[p, j] += A[i, p] * b


@jit
def matmul_(out, A, B, limit, epi):
    """Writes ``out = A @ B``; A (m, k), B (k, n), out (m, n): the forward's ``A[i] @ W[i]``.
    For thin B (one-output layers) dot products along A's rows; the tile kernel where it takes
    the product (:func:`tiles`, ``limit``), or for every shape of more than one column where
    ``limit`` is ``EVERY_SHAPE`` (prediction: :func:`matmul_every_shape_`, the epilogue then
    left to the caller where columns fall past the last whole vector); else BLAS.

    Returns whether the tile kernel ran, applying the epilogue ``epi`` (:func:`tile_gemm_`)
    as it stored out; elsewhere the caller applies it."""
    m, k = A.shape
    n = B.shape[1]
    if n > 1 and limit == EVERY_SHAPE:
        return matmul_every_shape_(out, A, B, epi)
    if n > THIN and tiles(out, k * n, limit):
        tile_gemm_(out, A, k, 1, B, epi)
        return True
    if n > THIN:
        gemm_(out, A, B, False, False)
        return False
    dot_rows_(out, A, B)
    return False


@jit_inline
def matmul_every_shape_(out, A, B, epi):
    """Writes ``out = A @ B`` as :func:`matmul_` with ``EVERY_SHAPE`` (prediction): the tile
    kernel on the columns up to the last whole vector, their strips packed for layers of more
    than PACK_BYTES of weights and at least PACK_ROWS rows (the same bits either way), the rest
    by :func:`tail_columns_`. Returns whether the epilogue ``epi`` was applied (every column
    in whole vectors); elsewhere the caller applies it."""
    m, k = A.shape
    n = B.shape[1]
    whole = n - n % (VECTOR_BYTES // out.itemsize)
    fused = whole == n
    head, W = (out, B) if fused else (out[:, :whole], B[:, :whole])
    if whole > 0 and m >= PACK_ROWS and k * whole * out.itemsize > PACK_BYTES:
        tile_gemm_packed_(head, A, W, epi if fused else no_epilogue())
    elif whole > 0:
        tile_gemm_(head, A, k, 1, W, epi if fused else no_epilogue())
    if not fused:
        tail_columns_(out, A, B, whole)
    return fused


@jit_inline
def dot_rows_(out, A, B):
    """Writes ``out = A @ B``; A (m, k), B (k, n), out (m, n): each entry a dot product along
    A's row (thin B: one-output layers), the same code for every row."""
    m, k = A.shape
    for i in range(m):
        for j in range(B.shape[1]):
            s = A.dtype.type(0.0)
            for p in range(k):
                s += A[i, p] * B[p, j]
            out[i, j] = s


@jit_inline
def tail_columns_(out, A, B, j0):
    """Writes ``out[:, j0:] = A @ B[:, j0:]``; A (m, k), B (k, n), out (m, n), the t = n - j0
    columns past the tile kernel's last whole vector (fewer than a vector's width): the tile
    kernel on B's tail padded with zeros to one vector, into a scratch of one vector a row,
    then copied out; each entry summed over k in order as every other column's, the same code
    for every row. (Summed in place, or as strided dot products, these columns cost more than
    all the whole ones: 2.5x the time of a (64, 64) network's 1,000 rows where three outputs
    are all tail.)"""
    m, k = A.shape
    width = VECTOR_BYTES // out.itemsize
    padded = np.zeros((k, width), B.dtype)
    for p in range(k):
        for j in range(j0, B.shape[1]):
            padded[p, j - j0] = B[p, j]
    scratch = np.empty((m, width), out.dtype)
    tile_gemm_(scratch, A, k, 1, padded, no_epilogue())
    for i in range(m):
        for j in range(j0, B.shape[1]):
            out[i, j] = scratch[i, j - j0]


@jit
def affine_act_(out, A, W, b, act, limit):
    """Writes ``out = act(A @ W + b)``; A (m, k), W (k, n), b (n,), out (m, n): one layer of
    the forward pass. Where the tile kernel takes the product, the bias (and relu) are added
    as it stores the sums (:func:`bias_epilogue`); else :func:`bias_act_` runs after it. The
    same bits either way."""
    fused = (act == IDENTITY or act == RELU) and b.strides[0] == b.itemsize
    epi = bias_epilogue(b, act == RELU) if fused else no_epilogue()
    if not (matmul_(out, A, W, limit, epi) and fused):
        bias_act_(out, b, act)


@jit
def delta_back_(D_prev, D, W, A, act, limit, scratch):
    """Writes ``D_prev = (D @ W.T) * act'(A)``; D (m, n), W (k, n), A and D_prev (m, k): one
    step of the delta recursion, act' written in terms of the layer's output A (not for gelu
    and silu, whose derivative needs z). For relu, where the tile kernel takes the product,
    the mask is applied as it stores the sums (:func:`relu_mask_epilogue`); else
    :func:`mul_act_deriv_` runs after it. The same bits either way."""
    fused = act == RELU and A.strides[0] == A.shape[1] * A.itemsize  # rows laid out as D_prev's
    epi = relu_mask_epilogue(A) if fused else no_epilogue()
    if not (matmul_nt_(D_prev, D, W, limit, scratch, epi) and fused):
        mul_act_deriv_(D_prev, A, act)


# ----------------------------------------------------------------------------------------------
# The first layer at the input's sparsity: products that read the batch's rows from CSR.
# ----------------------------------------------------------------------------------------------


@intrinsic
def _address_view(typingctx, address, n, zero):
    """The 1-D C-contiguous array of ``n`` elements of ``zero``'s type at ``address`` (an
    integer), owning nothing (no reference count): the caller guarantees the memory is an
    array of that many elements that outlives the view."""
    if not (isinstance(address, types.Integer) and isinstance(n, types.Integer)
            and isinstance(zero, (types.Integer, types.Float))):
        return None
    view_type = types.Array(zero, 1, "C")

    def codegen(context, builder, sig, args):
        item = context.get_data_type(zero)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(item))
        view = context.make_array(view_type)(context, builder)
        count = context.cast(builder, args[1], sig.args[1], types.intp)
        populate_array(view, data=builder.inttoptr(args[0], item.as_pointer()), shape=[count],
                       strides=[itemsize], itemsize=itemsize, meminfo=None)
        return view._getvalue()

    return view_type(address, n, zero), codegen


@jit_inline
def csr_arrays(model, zero):
    """``(data, indices, indptr, order)``: the CSR rows a ``first_csr`` model reads (data of
    ``zero``'s dtype), as views of the addresses in ``model`` (checked against the Data by
    ``network.check``)."""
    i64 = np.int64(0)
    return (_address_view(model.csr_data, model.csr_nnz, zero),
            _address_view(model.csr_indices, model.csr_nnz, i64),
            _address_view(model.csr_indptr, model.csr_rows + 1, i64),
            _address_view(model.csr_order, model.csr_positions, i64))


@jit
def csr_matmul_(out, W, model, row0):
    """Writes ``out`` (m, n) = X̂ @ W; X̂ (m, n_features) the rows ``order[row0:row0+m]`` of
    the CSR matrix ``model`` reads (:class:`Model`, :func:`csr_arrays`), W (n_features, n):
    ``out[r] = sum_p x_p W[c_p]`` over row r's stored entries (value x_p, column c_p) in their
    CSR order, a fused multiply-add each; O(stored entries x n), the same code for every row
    (a row's result does not depend on the rows computed with it). Against the dense product
    (A[0] @ W in gemm or the tile kernel) only the order in which the nonzero terms are added
    differs: those sum every column, the zeros included (which leave a sum unchanged), in
    blocks of their own; a column a row repeats is added once per entry here, once as the
    summed value there."""
    m, n = out.shape
    zero = out.dtype.type(0.0)
    data, indices, indptr, order = csr_arrays(model, zero)
    for r in range(m):
        o = out[r]
        for j in range(n):
            o[j] = zero
        src = order[row0 + r]
        for p in range(indptr[src], indptr[src + 1]):
            x = data[p]
            w = W[indices[p]]
            for j in range(n):
                o[j] += x * w[j]


@jit
def csr_matmul_tn_(out, D, model, row0):
    """Writes ``out`` (n_features, n) = X̂.T @ D; X̂ as in :func:`csr_matmul_`, D (m, n): the
    first layer's weight gradient, ``out[c] = sum_r sum_{p in row r, c_p = c} x_p D[r]``,
    rows in order, each row's entries in CSR order. Zeroes out, then adds O(stored entries x
    n) terms: the columns no row of the batch stores stay 0."""
    m, n = D.shape
    zero = out.dtype.type(0.0)
    flat = out.ravel()
    for j in range(flat.shape[0]):
        flat[j] = zero
    data, indices, indptr, order = csr_arrays(model, zero)
    for r in range(m):
        d = D[r]
        src = order[row0 + r]
        for p in range(indptr[src], indptr[src + 1]):
            x = data[p]
            g = out[indices[p]]
            for j in range(n):
                g[j] += x * d[j]


# ----------------------------------------------------------------------------------------------
# Dropout: masks from a counter-based generator, never stored.
# ----------------------------------------------------------------------------------------------

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / the golden ratio: spreads consecutive counters
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_S32 = np.uint64(32)
UNIT_INTERVAL = 9007199254740992.0  # 2^53: a hash's top 53 bits as a number in [0, 1)


@jit_inline
def mix64(x):
    """SplitMix64's finalizer of the uint64 ``x``: a bijection whose output bits each depend
    on every input bit (the counter-based generator of the dropout masks)."""
    x = (x ^ (x >> _S30)) * _MIX_1
    x = (x ^ (x >> _S27)) * _MIX_2
    return x ^ (x >> _S31)


@jit
def dropout_(X, key, layer, row0, rate):
    """Writes X (m, k): ``X[r, j] <- X[r, j] / (1 - rate)`` where unit j of row ``row0 + r``
    of hidden layer ``layer`` is kept, else 0 (inverted dropout).

    Unit j of row r is dropped where ``u < rate``, ``u`` the top 53 bits of ``(x ^ (x >> 32))
    M1`` as a fraction of 2^53, ``x = mix64(mix64(key + (layer + 1) G) ^ r) + j G`` (G:
    GOLDEN, M1: SplitMix64's first multiplier): the row's fully mixed key starts a Weyl sequence
    over the units, and one xorshift-multiply round per unit (half of mix64, whose second round
    would not change the top bits' independence measurably and costs as much again) gives its
    draw. ``key`` mixes the seed and the epoch (``dropout.epoch_key``), ``r`` is the row's
    position in the epoch's order (its batch and place in it): a mask depends on nothing else,
    so the same call in the backward pass finds the same mask, and parts and threads do not
    change it."""
    m, k = X.shape
    scale = X.dtype.type(1.0 / (1.0 - rate))
    zero = X.dtype.type(0.0)
    threshold = np.uint64(rate * UNIT_INTERVAL)
    base = mix64(key + np.uint64(layer + 1) * GOLDEN)
    for r in range(m):
        row_key = mix64(base ^ np.uint64(row0 + r))
        for j in range(k):
            x = row_key + np.uint64(j) * GOLDEN
            kept = (((x ^ (x >> _S32)) * _MIX_1) >> _S11) >= threshold
            X[r, j] = X[r, j] * scale if kept else zero


@jit_inline
def drops(model, i):
    """Whether hidden layer i's outputs are dropped in this pass."""
    return model.dropping and model.drop_rate[i] > 0.0


@jit_inline
def scale_(X, factor):
    """Writes X (m, k) ``*= factor`` (a float64, rounded to X's dtype once, as :func:`dropout_`
    rounds its scale)."""
    c = X.dtype.type(factor)
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            X[r, j] *= c


@jit
def copy_(dst, src):
    """Writes dst (m, k) = src (m, k)."""
    for r in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[r, j] = src[r, j]


# ----------------------------------------------------------------------------------------------
# The network: forward, loss + backward (delta recursion).
# ----------------------------------------------------------------------------------------------


@jit
def forward_(A_buf, Z_buf, theta, sizes, m, model, row0):
    """Writes ``A_buf`` (and ``Z_buf``): ``A[i+1] = act(A[i] @ W[i] + b[i])`` for i = 0..L-1,
    A[0] (m, n_features) filled. Where the hidden activation's derivative needs z
    (``model.keeps_z``), hidden layer i's ``z = A[i] @ W[i] + b[i]`` is kept as Z[i] in
    ``Z_buf`` (laid out as D). A hidden layer whose outputs are dropped (:func:`drops`) keeps
    its outputs before the mask there instead (where z is not kept, and the activation is not
    relu, whose derivative the masked outputs give), for act', and passes ``dropout_(a)`` on;
    its rows are ``row0..row0+m-1`` of the epoch's order. Where
    ``model.first_csr``, the first layer's product reads those rows from the CSR matrix
    (:func:`csr_matmul_`), not A[0]."""
    L = len(sizes) - 1
    units = sizes[1:]
    for i in range(L):
        A_next = layer_view(A_buf, sizes, m, i + 1)  # (m, fan_out)
        A, W, b = layer_view(A_buf, sizes, m, i), w_view(theta, sizes, i), b_view(theta, sizes, i)
        act = model.out_act if i == L - 1 else model.hidden_act
        sparse = i == 0 and model.first_csr
        if sparse:
            csr_matmul_(A_next, W, model, row0)  # the rows' stored entries only
        if i < L - 1 and model.keeps_z:
            if not sparse:
                matmul_(A_next, A, W, model.tile_nn, no_epilogue())
            bias_act_keep_z_(A_next, layer_view(Z_buf, units, m, i), b, model.hidden_act)
        elif sparse:
            bias_act_(A_next, b, act)
        else:
            affine_act_(A_next, A, W, b, act, model.tile_nn)
        if i < L - 1 and drops(model, i):
            if not (model.keeps_z or model.hidden_act == RELU):
                copy_(layer_view(Z_buf, units, m, i), A_next)  # a before the mask, for act'
            dropout_(A_next, model.drop_key, i, row0, model.drop_rate[i])


@jit
def backward_sums_(grad, A_buf, D_buf, Z_buf, WT_buf, theta, sizes, model, Y, sw, use_sw, m,
                   row0):
    """Writes ``grad``, ``A_buf``, ``D_buf`` (and ``Z_buf``, ``WT_buf``: W[i].T for the tile
    kernel): forward, loss and the delta recursion on the rows in A[0] (rows ``row0..`` of the
    epoch's order, for the dropout masks), without the 1/S scaling.

    ``grad`` = [A[i].T @ D[i] ..., D[i].sum(0) ...] (the data term's sums) with
    ``D[L-1] = dl/dA[L] * act_out'(A[L]) [* s]``, ``D[i-1] = (D[i] @ W[i].T) * act'(z[i-1])``
    (``* mask / (1 - p)`` where layer i-1's outputs are dropped: for relu, ``[A[i] > 0] / (1 -
    p)``, A[i] being the masked outputs, the same bits).
    Returns ``(sum_i s_i l_i, S = sum_i s_i)``: parts of a batch add these up.
    """
    L = len(sizes) - 1
    units = sizes[1:]
    forward_(A_buf, Z_buf, theta, sizes, m, model, row0)
    A_out = layer_view(A_buf, sizes, m, L)
    total, S = loss_sums(A_out, Y, sw, use_sw, model.loss, model.eps)
    output_delta_(layer_view(D_buf, units, m, L - 1), A_out, Y, sw, use_sw, model.loss,
                  model.deriv_act)
    for i in range(L - 1, -1, -1):
        D = layer_view(D_buf, units, m, i)  # (m, fan_out)
        A = layer_view(A_buf, sizes, m, i)  # (m, fan_in)
        if i == 0 and model.first_csr:
            csr_matmul_tn_(w_view(grad, sizes, 0), D, model, row0)  # (n_features, fan_out)
        else:
            matmul_tn_(w_view(grad, sizes, i), A, D, model.tile_tn)  # (fan_in, fan_out)
        db = b_view(grad, sizes, i)
        zero_(db)
        for r in range(m):
            for c in range(D.shape[1]):
                db[c] += D[r, c]
        if i > 0:
            D_prev = layer_view(D_buf, units, m, i - 1)  # (m, fan_in)
            W = w_view(theta, sizes, i)
            dropped = drops(model, i - 1)
            if dropped and model.hidden_act == RELU and not model.keeps_z:
                # relu'(a) [kept] = [a * scale > 0] = [A > 0], A the masked outputs: no mask
                # to draw again, the product's relu epilogue, then the kept units' scale (the
                # model's code, not the literal RELU: one compiled delta_back_ for both paths)
                delta_back_(D_prev, D, W, A, model.hidden_act, model.tile_nt, WT_buf)
                scale_(D_prev, 1.0 / (1.0 - model.drop_rate[i - 1]))
            elif model.keeps_z or dropped:
                matmul_nt_(D_prev, D, W, model.tile_nt, WT_buf, no_epilogue())
                kept = layer_view(Z_buf, units, m, i - 1)  # z, or a before the mask
                if model.keeps_z:
                    mul_act_deriv_z_(D_prev, kept, model.hidden_act)
                else:
                    mul_act_deriv_(D_prev, kept, model.hidden_act)
                if dropped:
                    dropout_(D_prev, model.drop_key, i - 1, row0, model.drop_rate[i - 1])
            else:
                delta_back_(D_prev, D, W, A, model.hidden_act, model.tile_nt, WT_buf)
    return total, S


@jit
def finish_grad_(grad, layer_sq, theta, sizes, alpha, S):
    """Writes ``grad``: ``dW <- (dW + alpha W) / S``, ``db <- db / S`` (L2 on W only); adds
    each layer's ``||dW[i]||_F^2`` (the finished gradient) to ``layer_sq`` (L,) float64.

    Returns the batch's L2 term ``alpha/2 sum ||W||^2 / S`` (float64), read in the same pass.
    """
    dt = grad.dtype.type
    a = dt(alpha)
    s = dt(S)
    sq = 0.0
    lo = 0
    for i in range(len(sizes) - 1):
        end = lo + sizes[i] * sizes[i + 1]
        W, dW = theta[lo:end], grad[lo:end]  # loops from 0 over slices: vectorised
        layer = 0.0
        for j in range(W.shape[0]):
            w = W[j]
            sq += np.float64(w) * np.float64(w)
            g = (dW[j] + a * w) / s
            dW[j] = g
            layer += np.float64(g) * np.float64(g)
        layer_sq[i] += layer
        lo = end
    db = grad[lo:]
    for j in range(db.shape[0]):
        db[j] /= s
    return 0.5 * alpha * sq / S


# ----------------------------------------------------------------------------------------------
# Batches: gather the rows, split them into parts, add the parts' sums in order.
# ----------------------------------------------------------------------------------------------


@jit_inline
def gather_rows_(A0, Y_b, sw_b, data, start):
    """Writes A0 (m, n_features), Y_b (m, n_outputs), sw_b (m,): rows ``order[start:start+m]``
    of X (dense or CSR), Y and the sample weights."""
    m, nf = A0.shape
    zero = A0.dtype.type(0.0)
    X, Y, sw, order = data.X, data.Y, data.sw, data.order
    for r in range(m):
        src = order[start + r]
        if data.is_sparse:
            for j in range(nf):
                A0[r, j] = zero
            for p in range(data.X_indptr[src], data.X_indptr[src + 1]):
                A0[r, data.X_indices[p]] += data.X_data[p]  # += : a CSR row may repeat a column
        else:
            for j in range(nf):
                A0[r, j] = X[src, j]
        for j in range(Y.shape[1]):
            Y_b[r, j] = Y[src, j]
        if data.use_sw:
            sw_b[r] = sw[src]


@intrinsic
def _prefetch(typingctx, address):
    """Asks the CPU to start loading the cache line at ``address`` (an integer) into its caches
    (LLVM's prefetch: for reading, kept in every level). A hint: it never faults and changes no
    result."""

    def codegen(context, builder, sig, args):
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [builder.inttoptr(args[0], byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(types.uintp), codegen


@jit_inline
def prefetch_rows(data, start, m):
    """Starts loading rows ``order[start:start+m]`` of X and Y (dense X) into the caches, a batch
    ahead of the gather that reads them: a shuffled epoch's rows are scattered through memory,
    and without this each row's loads wait for it (about a fifth of the tiny network's time)."""
    if data.is_sparse:
        return
    X, Y = data.X, data.Y
    x_row, y_row = X.strides[0], Y.strides[0]
    for r in range(m):
        src = data.order[start + r]
        first = X.ctypes.data + src * x_row
        _prefetch(first)
        _prefetch(first + x_row - 1)  # the row's last line (rows straddle lines)
        _prefetch(Y.ctypes.data + src * y_row)


@jit_inline
def prefetch_batch(data, k, batch_size):
    """:func:`prefetch_rows` for batch k's rows (nothing past the last batch)."""
    start, m = batch_rows(k, batch_size, data.order.shape[0])
    prefetch_rows(data, start, m)


@jit
def load_batch_(A_buf, Y_buf, sw_buf, data, sizes, start, m):
    """Writes A[0] of ``A_buf`` and the target and weight buffers with rows
    ``order[start:start+m]``; returns the batch's views Y_b (m, n_outputs) and sw_b (m,)."""
    n_out = data.Y.shape[1]
    Y_b = rows_view(Y_buf, 0, m, n_out)
    sw_b = sw_buf[:m]
    gather_rows_(layer_view(A_buf, sizes, m, 0), Y_b, sw_b, data, start)
    return Y_b, sw_b


@jit
def load_targets_(Y_buf, sw_buf, data, start, m):
    """:func:`load_batch_` without A[0]: for a first layer that reads the CSR rows itself
    (``Model.first_csr``). Returns the views Y_b (m, n_outputs) and sw_b (m,)."""
    Y, sw, order = data.Y, data.sw, data.order
    Y_b = rows_view(Y_buf, 0, m, Y.shape[1])
    sw_b = sw_buf[:m]
    for r in range(m):
        src = order[start + r]
        for j in range(Y.shape[1]):
            Y_b[r, j] = Y[src, j]
        if data.use_sw:
            sw_b[r] = sw[src]
    return Y_b, sw_b


@jit_inline
def load_part_(A_buf, Y_buf, sw_buf, data, sizes, start, m, model):
    """:func:`load_batch_`, or where ``model.first_csr`` :func:`load_targets_` (no dense
    copy of the rows)."""
    if model.first_csr:
        return load_targets_(Y_buf, sw_buf, data, start, m)
    return load_batch_(A_buf, Y_buf, sw_buf, data, sizes, start, m)


@jit
def part_sums_(params, work, data, model, p, start, m):
    """Writes part p's gradient sums (Params.grad for p = 0, else part_grads[p-1]) for part p
    of the batch of m rows at ``start`` (rows split evenly, in order); returns the part's loss
    and weight sums ``(sum_i s_i l_i, sum_i s_i)``."""
    P = work.A.shape[0]
    r0 = start + (m * p) // P
    mp = start + (m * (p + 1)) // P - r0
    g = params.grad if p == 0 else work.part_grads[p - 1]
    if mp == 0:
        zero_(g)
        return 0.0, 0.0
    Y_b, sw_b = load_part_(work.A[p], work.Y[p], work.sw[p], data, params.sizes, r0, mp,
                           model)
    return backward_sums_(g, work.A[p], work.D[p], work.Z[p], work.WT[p], params.theta,
                          params.sizes, model, Y_b, sw_b, data.use_sw, mp, r0)


@jit_inline
def batch_loss_(work):
    """``(sum_i s_i l_i, S)`` of the batch: the parts' loss and weight sums, added in order."""
    total = 0.0
    S = 0.0
    for p in range(work.part_loss.shape[0]):
        total += work.part_loss[p]
        S += work.part_weight[p]
    return total, S


@jit_inline
def batch_gradient_(params, work, model):
    """Writes Params.grad: the parts' sums added in part order, then scaled (finish_grad_).

    Returns ``(data term, L2 term, S)`` of the batch loss, S the batch's rows or weight sum;
    with S = 0 (every weight zero) the gradient is left unscaled and both terms are 0.
    """
    grad = params.grad
    for q in range(work.part_grads.shape[0]):  # fixed order: the same bits on any thread count
        g = work.part_grads[q]
        for j in range(grad.shape[0]):
            grad[j] += g[j]
    total, S = batch_loss_(work)
    if S == 0.0:
        return 0.0, 0.0, S
    penalty = finish_grad_(grad, work.layer_sq, params.theta, params.sizes, model.alpha, S)
    work.n_updates[0] += 1
    return total / S, penalty, S


@jit_inline
def all_parts_(params, work, data, model, start, m):
    """Writes every part's gradient sums, loss and weight sums for the batch of m rows at
    ``start`` (:func:`part_sums_`), the parts under ``prange``: on several threads in a
    parallel caller, one after the other otherwise."""
    part_loss, part_weight = work.part_loss, work.part_weight  # outside prange: written inside
    work.batch[0] = start
    work.batch[1] = m
    for p in prange(work.A.shape[0]):
        part = np.int64(p)  # one compiled part_sums_ for every caller, not prange's uint64 too
        part_loss[p], part_weight[p] = part_sums_(params, work, data, model, part, start, m)


@jit_parallel
def parts_parallel_(params, work, data, model, start, m):
    """:func:`all_parts_` with the parts on Numba's threads (OpenMP/TBB): the same bits as one
    after the other, since each part is summed on its own. The one parallel kernel of
    training: the minibatch loop and the full batch both call it, so Numba's parallel
    compilation (several times a plain function's) runs once, on this small function."""
    all_parts_(params, work, data, model, start, m)


@jit
def loss_grad_(params, work, data, model):
    """Writes Params.grad (and the workspace): forward, loss and backward on all rows of
    ``data`` as one batch, its parts one after the other.

    Returns ``(sum_i s_i l_i / S, alpha/2 sum ||W||^2 / S)`` (data term, L2 term; S = sum_i
    s_i, or the row count) with ``grad`` = [dW..., db...], ``dW[i] = (A[i].T @ D[i] + alpha
    W[i]) / S``, ``db[i] = D[i].sum(0) / S``, ``D[i-1] = (D[i] @ W[i].T) * act'(A[i])``.
    """
    params, work, data, model = borrowed((params, work, data, model))
    all_parts_(params, work, data, model, np.int64(0), data.order.shape[0])
    value, penalty, _ = batch_gradient_(params, work, model)
    return value, penalty


@jit
def loss_grad_parallel_(params, work, data, model):
    """:func:`loss_grad_` with the parts on Numba's threads: the same bits."""
    params, work, data, model = borrowed((params, work, data, model))
    parts_parallel_(params, work, data, model, np.int64(0), data.order.shape[0])
    value, penalty, _ = batch_gradient_(params, work, model)
    return value, penalty


# ----------------------------------------------------------------------------------------------
# Update rules, and the compiled minibatch loop.
# ----------------------------------------------------------------------------------------------


@jit_update
def adam_rate(learning_rate, beta_1, beta_2, t):
    """Adam's rate of step t: ``lr sqrt(1 - b2^t) / (1 - b1^t)`` (float64), evaluated as
    written (no "reassoc")."""
    return learning_rate * np.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)


@jit_update
def adam_step_(rule, theta, grad):
    """Writes the moments, the step count and theta: ``t += 1``; ``m <- b1 m + (1-b1) g``;
    ``v <- b2 v + (1-b2) g^2``; ``theta -= lr_t m / (sqrt(v) + eps)``, with
    ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``."""
    rule.steps[0] += 1
    b1f, b2f = rule.beta_1, rule.beta_2
    lr_t = adam_rate(rule.learning_rate, b1f, b2f, rule.steps[0])
    dt = theta.dtype.type
    one = dt(1.0)
    b1 = dt(b1f)
    b2 = dt(b2f)
    lr = dt(lr_t)
    eps = dt(rule.epsilon)
    m1, m2 = rule.m, rule.v
    for p in range(theta.shape[0]):
        g = grad[p]
        m1[p] = b1 * m1[p] + (one - b1) * g
        m2[p] = b2 * m2[p] + (one - b2) * (g * g)
        theta[p] -= lr * m1[p] / (np.sqrt(m2[p]) + eps)


# Parameters per block of the step's sweep: its loops over a block run from L1/L2, and a
# parallel sweep hands out whole blocks (256: each loop's setup cost ~1/3 of Adam's sweep).
STEP_BLOCK = 2048


@jit_inline
def sum_squares(x):
    """``sum_j x[j]^2`` in float64, in four interleaved partial sums (a fixed order that the
    compiler can vectorise without reassociating)."""
    s0 = s1 = s2 = s3 = 0.0
    n4 = x.shape[0] - x.shape[0] % 4
    for j in range(0, n4, 4):
        a0, a1 = np.float64(x[j]), np.float64(x[j + 1])
        a2, a3 = np.float64(x[j + 2]), np.float64(x[j + 3])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
    for j in range(n4, x.shape[0]):
        a0 = np.float64(x[j])
        s0 += a0 * a0
    return (s0 + s1) + (s2 + s3)


@jit
def block_sum_squares_at(address, n, zero):
    """``sum_j x[j]^2`` in float64 of the n elements of ``zero``'s dtype at ``address`` (one
    step block), in the compiler's vectorised order ("reassoc": many partial sums). Called,
    never inlined, so every caller runs this one compiled loop: the same order, the same bits
    on any thread count; scalars in, so no reference count per call (the tiny network makes
    a few calls a batch)."""
    x = _address_view(address, n, zero)
    s = 0.0
    for j in range(n):
        a = np.float64(x[j])
        s += a * a
    return s


@jit_inline
def block_sum_squares(x):
    """:func:`block_sum_squares_at` of the 1-D contiguous x."""
    return block_sum_squares_at(x.ctypes.data, x.shape[0], x.dtype.type(0.0))


@jit_inline
def sgd_block_(theta, grad, parts, velocity, lo, hi, decay, a, s, rate, m, nesterov):
    """Writes theta, grad and the velocity on ``[lo, hi)`` (parts (P-1, n_params)): ``g =
    (grad + parts[0] + ... [+ a w]) / s`` (``+ a w`` where ``decay``), ``v <- m v - rate g``,
    ``theta += m v - rate g`` (Nesterov) or ``theta += v``; grad ends as g.

    The loops run over slices from index 0 and hold no reductions, so the compiler vectorises
    them (indices from ``range(lo, hi)`` may be negative as far as it knows, and stop it)."""
    theta, grad, velocity = theta[lo:hi], grad[lo:hi], velocity[lo:hi]
    for q in range(parts.shape[0]):  # in part order: the same bits on any thread count
        part = parts[q][lo:hi]
        for j in range(grad.shape[0]):
            grad[j] += part[j]
    for j in range(theta.shape[0]):
        w = theta[j]
        g = (grad[j] + a * w) / s if decay else grad[j] / s
        grad[j] = g
        v = m * velocity[j] - rate * g
        velocity[j] = v
        theta[j] = w + (m * v - rate * g if nesterov else v)


@jit_inline
def n_step_blocks(sizes, n_params):
    """The step's blocks: each layer's W in blocks of STEP_BLOCK from the layer's start, then
    the intercepts in blocks of STEP_BLOCK."""
    blocks = 0
    lo = 0
    for i in range(len(sizes) - 1):
        n = sizes[i] * sizes[i + 1]
        blocks += (n + STEP_BLOCK - 1) // STEP_BLOCK
        lo += n
    return blocks + (n_params - lo + STEP_BLOCK - 1) // STEP_BLOCK


@jit_inline
def share_start(sizes, n_params, first, t, T):
    """The first step block (:func:`n_step_blocks`' numbering) of share t of T: the blocks
    from ``first`` on, cut where the parameters before a block reach t / T of theirs (each
    share a run of whole blocks, about as many parameters as the others; t = T: the end)."""
    layers = len(sizes) - 1
    k = 0
    lo = 0
    target = -1.0
    for i in range(layers + 1):
        n = sizes[i] * sizes[i + 1] if i < layers else n_params - lo
        blocks = (n + STEP_BLOCK - 1) // STEP_BLOCK
        for j in range(blocks):
            b0 = lo + j * STEP_BLOCK
            if k == first:
                target = b0 + (n_params - b0) * (t / T)
            if k >= first and b0 >= target:
                return k
            k += 1
        lo += n
    return k


@jit_inline
def adam_block_(theta, grad, parts, m1, m2, lo, hi, decay, a, s, b1, b2, lr, eps, shrink,
                factor):
    """Writes theta, grad and the moments on ``[lo, hi)``: ``g = (grad + parts[0] + ... [+ a
    w]) / s`` (``+ a w`` where ``decay``), grad ends as g; ``w <- factor w`` where ``shrink``
    (AdamW's decay); ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``, ``w -= lr m /
    (sqrt(v) + eps)``: per parameter the operations of batch_gradient_, finish_grad_,
    decay_weights_ and adam_step_, in their order (the same bits)."""
    theta, grad, m1, m2 = theta[lo:hi], grad[lo:hi], m1[lo:hi], m2[lo:hi]
    one = theta.dtype.type(1.0)
    for q in range(parts.shape[0]):  # in part order: the same bits on any thread count
        part = parts[q][lo:hi]
        for j in range(grad.shape[0]):
            grad[j] += part[j]
    for j in range(grad.shape[0]):
        grad[j] = (grad[j] + a * theta[j]) / s if decay else grad[j] / s
    if shrink:
        for j in range(theta.shape[0]):
            theta[j] *= factor
    # adam_step_'s loop as written there: the compiler then contracts its multiply-adds into
    # the same fused operations (written per parameter above, it chose others: 1 ulp apart).
    for p in range(theta.shape[0]):
        g = grad[p]
        m1[p] = b1 * m1[p] + (one - b1) * g
        m2[p] = b2 * m2[p] + (one - b2) * (g * g)
        theta[p] -= lr * m1[p] / (np.sqrt(m2[p]) + eps)


@jit_inline
def step_block_(theta, grad, parts, s1, s2, sums, k, lo, hi, decay, adam, a, s, h, nesterov,
                shrink):
    """Writes theta, grad, the rule's state (SGD: the velocity s1; Adam: the moments s1, s2)
    on step block k, ``[lo, hi)``, and ``sums[k]``: the block summed from the parts and
    stepped (:func:`sgd_block_` with ``h = (rate, momentum, ...)``, or :func:`adam_block_`
    with ``h = (b1, b2, lr_t, eps, factor)``); for a block of weights (``decay``) the sums of
    squares of W before the step and of its finished gradient (:func:`block_sum_squares`)."""
    if decay:
        sums[k, 0] = block_sum_squares(theta[lo:hi])
    if adam:
        adam_block_(theta, grad, parts, s1, s2, lo, hi, decay, a, s, h[0], h[1], h[2], h[3],
                    shrink and decay, h[4])
    else:
        sgd_block_(theta, grad, parts, s1, lo, hi, decay, a, s, h[0], h[1], nesterov)
    if decay:
        sums[k, 1] = block_sum_squares(grad[lo:hi])


@jit_update
def step_range_(theta, grad, parts, s1, s2, sums, sizes, k0, k1, adam, a, s, h, nesterov,
                shrink):
    """Writes theta, grad, the rule's state and ``sums[k0:k1]``: step blocks ``k0..k1-1``
    (:func:`n_step_blocks`' numbering: each layer's W from its start, then the intercepts,
    ``i == layers``), one after the other (:func:`step_block_`).

    The one compiled sweep of :func:`step_blocks_` (every block) and
    :func:`step_blocks_parallel_` (a block per call): the same bits by construction, and the
    step's loops compile once per rule, not once per sweep (a cold first fit waited 2 s
    longer)."""
    layers = len(sizes) - 1
    k = 0
    lo = 0
    for i in range(layers + 1):
        n = sizes[i] * sizes[i + 1] if i < layers else theta.shape[0] - lo
        blocks = (n + STEP_BLOCK - 1) // STEP_BLOCK
        for j in range(max(k0 - k, 0), min(k1 - k, blocks)):
            b0 = lo + j * STEP_BLOCK
            hi = min(b0 + STEP_BLOCK, lo + n)
            if i < layers:  # decay a literal: its branches fold (a run-time bool: 3% slower)
                step_block_(theta, grad, parts, s1, s2, sums, k + j, b0, hi, True, adam, a, s, h,
                            nesterov, shrink)
            else:
                step_block_(theta, grad, parts, s1, s2, sums, k + j, b0, hi, False, adam, a, s, h,
                            nesterov, shrink)
        k += blocks
        lo += n


@jit_update
def step_blocks_(theta, grad, parts, s1, s2, sums, layer_sq, sizes, adam, a, s, h, nesterov,
                 shrink, first, alpha, S):
    """Writes theta, grad, the rule's state, ``sums`` (n_blocks, 2) and ``layer_sq``: every
    step block from ``first`` on, one after the other (:func:`step_range_`), then their sums
    (:func:`add_block_sums_`). Returns the L2 term ``alpha/2 sum ||W||^2 / S`` of those
    blocks' weights (before the step), in float64."""
    step_range_(theta, grad, parts, s1, s2, sums, sizes, first, sums.shape[0], adam, a, s, h,
                nesterov, shrink)
    return 0.5 * alpha * add_block_sums_(layer_sq, sums, sizes, first) / S


@jit_update_parallel
def step_blocks_parallel_(theta, grad, parts, s1, s2, sums, layer_sq, sizes, adam, a, s, h,
                          nesterov, shrink, first, alpha, S, shares):
    """:func:`step_blocks_` with the blocks in ``shares`` shares (:func:`share_start`: runs
    of whole blocks, alike in parameters) under ``prange``, a share a thread: each block is
    computed on its own, by the same compiled code, and the sums added after them in block
    order: the same bits on any thread count."""
    T = max(min(shares, sums.shape[0] - first), 1)
    n_params = theta.shape[0]
    for t in prange(T):
        k0 = share_start(sizes, n_params, first, t, T)
        k1 = share_start(sizes, n_params, first, t + 1, T)
        step_range_(theta, grad, parts, s1, s2, sums, sizes, np.int64(k0), np.int64(k1), adam,
                    a, s, h, nesterov, shrink)
    return 0.5 * alpha * add_block_sums_(layer_sq, sums, sizes, first) / S


@jit_inline
def add_block_sums_(layer_sq, sums, sizes, first):
    """Adds each layer's blocks' ``sums[k, 1]`` (its finished gradient's squares) to
    ``layer_sq`` in block order, from block ``first`` on; returns the sum of their ``sums[k,
    0]`` (W's squares), in block order. Inlined only into callers without "reassoc": the
    order as written."""
    sq = 0.0
    k = 0
    for i in range(len(sizes) - 1):
        layer = 0.0
        blocks = (sizes[i] * sizes[i + 1] + STEP_BLOCK - 1) // STEP_BLOCK
        if k + blocks <= first:
            k += blocks
            continue
        for _ in range(blocks):
            sq += sums[k, 0]
            layer += sums[k, 1]
            k += 1
        layer_sq[i] += layer
    return sq


@jit_inline
def blocked_step_(params, work, model, s1, s2, adam, S, h, nesterov, shrink, first):
    """Writes theta, grad, the rule's state and ``work.layer_sq``: the step's blocks from
    ``first`` on (:func:`step_blocks_`; where ``model.parallel_step``, on Numba's threads
    in a share of the blocks per part of the batch, as its parts ran),
    each layer's ``||dW[i]||^2`` added to layer_sq. Returns the L2 term ``alpha/2 sum
    ||W||^2 / S`` (W before the step; blocks before ``first`` left out). The groups'
    arrays are passed on one by one: a called function that takes a whole group pays a
    reference count for each of its arrays; ``first`` as an int64, never a literal: one
    compiled sweep for every caller."""
    dt = params.theta.dtype.type
    first = np.int64(first)
    if model.parallel_step:
        return step_blocks_parallel_(params.theta, params.grad, work.part_grads, s1, s2,
                                     work.step_sums, work.layer_sq, params.sizes, adam,
                                     dt(model.alpha), dt(S), h, nesterov, shrink, first,
                                     model.alpha, S, np.int64(work.A.shape[0]))
    return step_blocks_(params.theta, params.grad, work.part_grads, s1, s2, work.step_sums,
                        work.layer_sq, params.sizes, adam, dt(model.alpha), dt(S), h, nesterov,
                        shrink, first, model.alpha, S)


@jit_update
def clip_grad_(grad, max_norm):
    """Writes grad (n_params,): ``grad *= min(1, max_norm / (||grad|| + 1e-6))``, ``||.||``
    the global L2 norm over every parameter (as ``torch.nn.utils.clip_grad_norm_``)."""
    coef = max_norm / (math.sqrt(sum_squares(grad)) + 1e-6)
    if coef < 1.0:
        c = grad.dtype.type(coef)
        for j in range(grad.shape[0]):
            grad[j] *= c


@jit_inline
def finished_gradient_(params, work, model):
    """:func:`batch_gradient_`, then the gradient clipped where ``model.max_grad_norm`` > 0
    (``layer_sq`` keeps the norms before clipping). Returns ``(data term, L2 term, S)``."""
    value, penalty, S = batch_gradient_(params, work, model)
    if S != 0.0 and model.max_grad_norm > 0.0:
        clip_grad_(params.grad, model.max_grad_norm)
    return value, penalty, S


@jit_inline
def sgd_step_(params, rule, work, model):
    """:func:`batch_step_` for SGD: the gradient finished and the step taken in one sweep, in
    blocks (:func:`blocked_step_`: per parameter ``g = (grad + parts... + alpha w) / S``, ``v
    <- mu v - lr g``, ``theta += mu v - lr g`` (Nesterov) or ``theta += v``); with clipping,
    which needs the finished gradient's norm first, :func:`finished_gradient_` and then the
    step on it."""
    if model.max_grad_norm > 0.0:
        value, penalty, S = finished_gradient_(params, work, model)
        if S != 0.0:
            dt = params.theta.dtype.type
            sgd_sweep_(params.theta, params.grad, work.part_grads[:0], rule.velocity,
                       dt(rule.learning_rate), dt(rule.momentum), rule.nesterov)
        return value, penalty, S
    total, S = batch_loss_(work)
    if S == 0.0:
        return 0.0, 0.0, S
    if model.sparse_update:
        penalty = sparse_sgd_step_(params, rule, work, model, S)
    else:
        dt = params.theta.dtype.type
        h = (dt(rule.learning_rate), dt(rule.momentum), dt(0.0), dt(0.0), dt(1.0))
        penalty = blocked_step_(params, work, model, rule.velocity, rule.velocity, False, S,
                                h, rule.nesterov, False, 0)
    work.n_updates[0] += 1
    return total / S, penalty, S


@jit_update
def sgd_sweep_(theta, grad, no_parts, velocity, rate, mu, nesterov):
    """Writes theta and the velocity: the SGD step on the finished gradient grad (n_params,)
    (:func:`sgd_block_` with S = 1, no decay, ``no_parts`` (0, n_params)), compiled without
    "reassoc" as the blocked step is (inlined into the loop, which has it, the compiler
    reassociated ``w + (mu v - lr g)``): the same operations per parameter, the same bits."""
    dt = theta.dtype.type
    sgd_block_(theta, grad, no_parts, velocity, 0, theta.shape[0], False, dt(0.0), dt(1.0),
               rate, mu, nesterov)


@jit_inline
def touched_columns(work, model, zero):
    """The input columns that the batch in hand (``work.batch``: its first position in
    the order and its rows) stores an entry in, each once, in the order first met
    (a view of ``work.seen[1]``). O(the batch's stored entries). ``zero``: of the CSR data's
    dtype (the network's)."""
    start, m = work.batch[0], work.batch[1]
    work.batch[2] += 1
    stamp = work.batch[2]
    seen, cols = work.seen[0], work.seen[1]
    _, indices, indptr, order = csr_arrays(model, zero)
    k = 0
    for r in range(m):
        src = order[start + r]
        for p in range(indptr[src], indptr[src + 1]):
            c = indices[p]
            if seen[c] != stamp:
                seen[c] = stamp
                cols[k] = c
                k += 1
    return cols[:k]


@jit_update
def sparse_sgd_step_(params, rule, work, model, S):
    """Writes theta, grad, the velocity and ``layer_sq``: the SGD step of
    :func:`blocked_step_` where momentum and L2 are 0 and the first layer reads CSR rows,
    on the first layer's weights of the columns the batch stores an entry in
    (:func:`touched_columns`, their rows of W[0] each :func:`sgd_block_`) and on every other
    parameter (the blocks after W[0]'s). Exact: the other rows of W[0] have a zero gradient
    sum in every part, so the full step would leave them as they are (``g = 0``, ``theta +=
    -lr 0``). Their ``||dW[0]||^2`` is summed row by row (in another order than the blocks':
    the norm to rounding). Returns the L2 term, 0."""
    theta, grad, sizes = params.theta, params.grad, params.sizes
    dt = theta.dtype.type
    a, s, rate, mu = dt(model.alpha), dt(S), dt(rule.learning_rate), dt(rule.momentum)
    fan_out = sizes[1]
    layer = 0.0
    for c in touched_columns(work, model, dt(0.0)):
        lo = c * fan_out
        sgd_block_(theta, grad, work.part_grads, rule.velocity, lo, lo + fan_out, True, a, s,
                   rate, mu, rule.nesterov)
        layer += block_sum_squares(grad[lo:lo + fan_out])
    work.layer_sq[0] += layer
    h = (rate, mu, dt(0.0), dt(0.0), dt(1.0))
    first = (sizes[0] * sizes[1] + STEP_BLOCK - 1) // STEP_BLOCK
    blocked_step_(params, work, model, rule.velocity, rule.velocity, False, S, h,
                  rule.nesterov, False, first)
    return 0.0


@jit_inline
def adam_rule_step_(params, rule, work, model):
    """:func:`batch_step_` for Adam: :func:`finished_gradient_`, then :func:`adam_step_`;
    without clipping both in one sweep (:func:`adam_batch_step_`, the same bits)."""
    if model.max_grad_norm == 0.0:
        return adam_batch_step_(params, rule, work, model, 1.0)
    value, penalty, S = finished_gradient_(params, work, model)
    if S != 0.0:
        adam_step_(rule, params.theta, params.grad)
    return value, penalty, S


@jit_inline
def adam_batch_step_(params, rule, work, model, factor):
    """Writes theta, grad, the moments, the step count and the workspace's sums: the batch's
    gradient finished, the weights times ``factor`` (AdamW's decay; 1: none) and Adam's step
    (``lr_t`` as :func:`adam_step_`), per parameter in one sweep over blocks
    (:func:`blocked_step_`, :func:`adam_block_`). Returns ``(data term, L2 term, S)``."""
    total, S = batch_loss_(work)
    if S == 0.0:
        return 0.0, 0.0, S
    rule.steps[0] += 1
    dt = params.theta.dtype.type
    lr_t = adam_rate(rule.learning_rate, rule.beta_1, rule.beta_2, rule.steps[0])
    h = (dt(rule.beta_1), dt(rule.beta_2), dt(lr_t), dt(rule.epsilon), dt(factor))
    penalty = blocked_step_(params, work, model, rule.m, rule.v, True, S, h, False,
                            factor != 1.0, 0)
    work.n_updates[0] += 1
    return total / S, penalty, S


@jit_update
def decay_weights_(theta, sizes, factor):
    """Writes theta: every weight (not the intercepts) times ``factor``."""
    W = theta[:n_weights(sizes)]
    f = theta.dtype.type(factor)
    for j in range(W.shape[0]):
        W[j] *= f


@jit_inline
def adamw_rule_step_(params, rule, work, model):
    """:func:`batch_step_` for AdamW: :func:`finished_gradient_` (of the data term alone: no
    L2 in ``model``), the decoupled decay ``W <- W (1 - lr alpha)`` (lr: this epoch's rate,
    not bias-corrected), then :func:`adam_step_`. With alpha = 0 Adam's bits. Without
    clipping all three in one sweep (:func:`adam_batch_step_`, the same bits)."""
    if model.max_grad_norm == 0.0:
        return adam_batch_step_(params, rule, work, model,
                                1.0 - rule.learning_rate * rule.weight_decay)
    value, penalty, S = finished_gradient_(params, work, model)
    if S != 0.0:
        decay_weights_(params.theta, params.sizes, 1.0 - rule.learning_rate * rule.weight_decay)
        adam_step_(rule, params.theta, params.grad)
    return value, penalty, S


# The update rules: each rule's group (its state and hyper-parameters) and its batch step.
STEPS = {SGDRule: sgd_step_, AdamRule: adam_rule_step_, AdamWRule: adamw_rule_step_}


def batch_step_(params, rule, work, model):
    """Writes theta, grad, the rule's state and the workspace: the batch's gradient from the
    parts' sums, and one step of the rule (a group of :data:`STEPS`). Returns ``(data term,
    L2 term, S)`` of the batch loss; S = 0 (every weight zero) changes nothing.

    Compiled code picks the step by the rule's type (an overload); from Python, the same.
    """
    return STEPS[type(rule)](params, rule, work, model)


@overload(batch_step_, jit_options={"cache": True})
def _batch_step_by_rule(params, rule, work, model):
    """The compiled :func:`batch_step_`: the step of the rule's type, resolved at compile time."""
    if rule.instance_class is SGDRule:
        return lambda params, rule, work, model: sgd_step_(params, rule, work, model)
    if rule.instance_class is AdamRule:
        return lambda params, rule, work, model: adam_rule_step_(params, rule, work, model)
    if rule.instance_class is AdamWRule:
        return lambda params, rule, work, model: adamw_rule_step_(params, rule, work, model)
    return None


@jit_inline
def batch_rows(k, batch_size, n):
    """``(start, m)``: batch k's first position in the order of n rows, and its rows."""
    start = k * batch_size
    return start, min(start + batch_size, n) - start


@jit_inline
def apply_batch_(params, rule, work, model, m):
    """Writes Params, the rule's state and the workspace: the batch's gradient from its parts'
    sums and the rule's step (:func:`batch_step_`). Returns the batch's data term and L2 term,
    each times its m rows (0, 0 for a batch whose weights sum to 0, which changes nothing)."""
    value, penalty, S = batch_step_(params, rule, work, model)
    if S == 0.0:
        return 0.0, 0.0
    return value * m, penalty * m


@jit
def run_batches_(params, rule, work, data, model, first_batch, last_batch, batch_size):
    """Writes Params (theta, grad), the rule's state and the workspace: batches
    ``first_batch..last_batch-1`` of ``data.order``, each loaded, differentiated in parts (one
    after the other: :func:`all_parts_`) and applied (:func:`apply_batch_`).

    Returns ``(data, penalty)``: the sums over batches of the batch's data term and L2 term,
    each times the batch's rows.
    """
    params, rule, work, data, model = borrowed((params, rule, work, data, model))
    data_sum = penalty_sum = 0.0
    for k in range(first_batch, last_batch):
        start, m = batch_rows(k, batch_size, data.order.shape[0])
        prefetch_batch(data, k + 1, batch_size)
        all_parts_(params, work, data, model, start, m)
        value, penalty = apply_batch_(params, rule, work, model, m)
        data_sum += value
        penalty_sum += penalty
    return data_sum, penalty_sum


@jit
def run_batches_parallel_(params, rule, work, data, model, first_batch, last_batch,
                          batch_size):
    """:func:`run_batches_` with the parts of each batch on Numba's threads
    (:func:`parts_parallel_`): the same bits, since each part is summed on its own and the
    parts are added in order."""
    params, rule, work, data, model = borrowed((params, rule, work, data, model))
    data_sum = penalty_sum = 0.0
    for k in range(first_batch, last_batch):
        start, m = batch_rows(k, batch_size, data.order.shape[0])
        prefetch_batch(data, k + 1, batch_size)
        parts_parallel_(params, work, data, model, start, m)
        value, penalty = apply_batch_(params, rule, work, model, m)
        data_sum += value
        penalty_sum += penalty
    return data_sum, penalty_sum


@jit_inline
def forward_chunks_(out, work, data, params, model):
    """Writes ``out`` (n, n_outputs): the output activations of all rows of ``data``, in chunks
    of the workspace's rows per part; part p (under ``prange``) takes chunks p, p + P, ...
    Every row's result is the same whichever part computes it."""
    n = data.order.shape[0]
    sizes = params.sizes
    L = len(sizes) - 1
    P = work.A.shape[0]
    chunk = work.sw.shape[1]
    n_chunks = -(-n // chunk)
    for p in prange(P):
        for c in range(p, n_chunks, P):
            start = c * chunk
            m = min(start + chunk, n) - start
            load_part_(work.A[p], work.Y[p], work.sw[p], data, sizes, start, m, model)
            forward_(work.A[p], work.Z[p], params.theta, sizes, m, model, start)
            A_out = layer_view(work.A[p], sizes, m, L)
            for r in range(m):
                for j in range(A_out.shape[1]):
                    out[start + r, j] = A_out[r, j]


@jit
def forward_rows_(out, work, data, params, model):
    """:func:`forward_chunks_` on the calling thread."""
    forward_chunks_(out, work, data, params, model)


@jit_parallel
def forward_rows_parallel_(out, work, data, params, model):
    """:func:`forward_chunks_` with the parts on Numba's threads: the same bits."""
    forward_chunks_(out, work, data, params, model)


@jit_inline
def all_finite(X):
    """Whether the matrix X holds no NaN and no infinity."""
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            if not np.isfinite(X[r, j]):
                return False
    return True


@jit
def forward_layers_(out, X, Ws, bs, hidden_act, out_act, buf, tile_limit):
    """Writes ``out`` (m, n_outputs) = A[L] for the rows X (m, n_features), and ``buf``: the
    forward pass with the layers given as tuples ``Ws`` (W[i] (fan_in, fan_out)) and ``bs``
    (b[i] (fan_out,)), products as :func:`matmul_` with ``tile_limit``: predict's direct path,
    no flat theta. The rows go through in chunks of as many rows as half of ``buf`` holds of
    the widest hidden layer (``buf`` at least 2 * max(hidden units) elements), hidden
    activations alternating between its two halves: any number of rows in a chunk's memory.

    Returns False, writing nothing, where X holds a NaN or an infinity (the caller then
    reports it), else True."""
    out, X, Ws, bs, buf = borrowed((out, X, Ws, bs, buf))
    if not all_finite(X):
        return False
    rows_in = read_as_writable(X)  # only read: the product versions fits compile
    m, n_features = X.shape
    L = len(Ws)
    half = buf.shape[0] // 2
    widest = 1
    for i in range(L - 1):
        widest = max(widest, Ws[i].shape[1])
    chunk = max(1, half // widest)
    n_outputs = out.shape[1]
    for start in range(0, m, chunk):
        rows = min(chunk, m - start)
        A_prev = rows_view(rows_in, start * n_features, rows, n_features)
        for i in range(L):
            if i == L - 1:
                A_next = rows_view(out, start * n_outputs, rows, n_outputs)
            else:
                A_next = rows_view(buf, (i % 2) * half, rows, Ws[i].shape[1])
            affine_act_(A_next, A_prev, Ws[i], bs[i], out_act if i == L - 1 else hidden_act,
                        tile_limit)
            A_prev = A_next
    return True


@jit_parallel
def forward_layers_parallel_(out, X, Ws, bs, hidden_act, out_act, buf, tile_limit, parts):
    """:func:`forward_layers_` on ``parts`` blocks of consecutive rows, on Numba's threads, each
    in its share of ``buf``: the same bits (a row's result does not depend on its chunk)."""
    out, X, Ws, bs, buf = borrowed((out, X, Ws, bs, buf))
    if not all_finite(X):
        return False
    m, n_features = X.shape
    n_outputs = out.shape[1]
    size = buf.shape[0] // parts
    for p in prange(parts):
        start = p * m // parts
        rows = (p + 1) * m // parts - start
        if rows > 0:
            forward_layers_(rows_view(out, start * n_outputs, rows, n_outputs),
                            rows_view(X, start * n_features, rows, n_features), Ws, bs,
                            hidden_act, out_act, buf[p * size:(p + 1) * size], tile_limit)
    return True


# ----------------------------------------------------------------------------------------------
# Many networks at once: one compiled call runs an epoch of every model of a group.
# ----------------------------------------------------------------------------------------------


@jit_parallel
def run_models_(params, rules, works, datas, models, active, batch_sizes, sums):
    """Writes each active model's Params, rule state and workspace, and ``sums`` (M, 2): for
    every k of ``active`` (int64), one epoch of model k (all the batches of
    ``datas[k].order``, batches of ``batch_sizes[k]`` rows, its parts one after the other:
    :func:`run_batches_`), the models under ``prange`` (on Numba's threads). ``params``,
    ``rules``, ``works``, ``datas``, ``models``: typed lists of model k's groups. Each model
    is computed alone, as a fit of its own computes it: the same bits on any thread count.
    ``sums[k]`` = (data, penalty), the epoch's sums of the batch loss's terms times rows."""
    for i in prange(active.shape[0]):
        k = active[i]
        n = datas[k].order.shape[0]
        batch_size = batch_sizes[k]
        sums[k, 0], sums[k, 1] = run_batches_(params[k], rules[k], works[k], datas[k],
                                              models[k], np.int64(0), -(-n // batch_size),
                                              batch_size)


# Typed lists of ``run_models_``'s groups, made and changed in compiled code: made in Python,
# a typed list compiles Numba's own helpers for its item type in every process, uncached
# (about 1.5 s for the five lists of a first ensemble); these are cached like any kernel.


@njit(cache=True)
def list_of_(first):
    """A typed list holding ``first``."""
    items = List()
    items.append(first)
    return items


@njit(cache=True)
def append_(items, item):
    """``items.append(item)``."""
    items.append(item)


@njit(cache=True)
def set_item_(items, k, item):
    """``items[k] = item``."""
    items[k] = item


def _load_numba_registries():
    """Load Numba's lowering registries now, once per process (about 0.15 s), instead of in
    the middle of the first fit, where loading the first cached kernel would do it: so a first
    fit costs what later ones do. Best effort: a Numba without this hook loads them lazily."""
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    except (ImportError, AttributeError):  # pragma: no cover - other Numba versions
        pass


_load_numba_registries()


# ----------------------------------------------------------------------------------------------
# Many networks as one ("lanes"): G models of one shape that share their minibatches (the same
# rows in the same order: a search's candidates on one fold and seed), their arrays side by side
# in a last axis of G. A model's parameter p is TH[p * G + g]; a laned layer's activations are
# (m, units * G), entry (r, j * G + g). The first layer of every model is one product,
# A[0] (m, n_features) @ W[0] (n_features, units * G); every other pass is a loop whose innermost
# index is the model: one vector operation across the models, not G calls of G small ones.
# ----------------------------------------------------------------------------------------------


LANE_CHUNK = 8  # models per vector of the laned code (LLVM vectors: float64 zmm, float32 ymm)


def _float_arrays(first, *others):
    """Whether the Numba types are C-contiguous arrays of one dtype, float32 or float64 (the
    laned code reads them through their data pointers)."""
    return (getattr(first, "dtype", None) in (types.float32, types.float64)
            and all(isinstance(a, types.Array) and a.dtype == first.dtype and a.layout == "C"
                    for a in (first, *others)))


def _lane_tile_kernel(rows, cols):
    """An intrinsic ``lane_tile(C, cl, A, al, B, bl, n_t, el)`` that writes a (rows, cols)
    tile of LANE_CHUNK-model vectors of C, every model its own product:

        S[i, j] = sum_{t < n_t} A[a + i*sa_i + t*sa_t + g] * B[b + t*sb_t + j*sb_j + g]
        C[c + i*sc_i + j*sc_j + g] = epilogue(S[i, j], E[e + i*se_i + j*se_j + g])

    for i < rows, j < cols, g < LANE_CHUNK (the models: one vector each), the layouts given
    as element offsets and strides ``cl = (c, sc_i, sc_j)``, ``al = (a, sa_i, sa_t)``, ``bl =
    (b, sb_t, sb_j)``, ``el = (e_ptr, e, se_i, se_j, epilogue)`` (the tile kernel's
    epilogues: PLAIN, BIAS, BIAS_RELU, RELU_MASK). The sums stay in registers across t.
    Unchecked: the caller guarantees every index is inside its array."""

    @intrinsic
    def tile(typingctx, C, cl, A, al, B, bl, n_t, el):
        if not _float_arrays(C, A, B):
            return None

        def codegen(context, builder, sig, args):
            _emit_lane_tile(context, builder, sig, args, rows, cols)
            return context.get_dummy_value()

        return types.void(C, cl, A, al, B, bl, n_t, el), codegen

    return tile


def _ints(context, builder, value, ty):
    """The items of a tuple of integers, as LLVM int64 values."""
    return [context.cast(builder, builder.extract_value(value, k), ty[k], types.int64)
            for k in range(len(ty))]


def _emit_lane_tile(context, builder, sig, args, rows, cols):
    """The LLVM code of one laned tile (see :func:`_lane_tile_kernel`)."""
    fty = context.get_value_type(sig.args[0].dtype)
    size = context.get_abi_sizeof(fty)
    vty = ir.VectorType(fty, LANE_CHUNK)
    i64 = ir.IntType(64)
    c_ptr, a_ptr, b_ptr = (context.make_array(sig.args[k])(context, builder, args[k]).data
                           for k in (0, 2, 4))
    c, sc_i, sc_j = _ints(context, builder, args[1], sig.args[1])
    a, sa_i, sa_t = _ints(context, builder, args[3], sig.args[3])
    b, sb_t, sb_j = _ints(context, builder, args[5], sig.args[5])
    n_t = context.cast(builder, args[6], sig.args[6], types.int64)
    e_addr, e, se_i, se_j, epilogue = _ints(context, builder, args[7], sig.args[7])
    e_ptr = builder.inttoptr(e_addr, fty.as_pointer())
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]),
        f"llvm.fma.v{LANE_CHUNK}f{8 * size}")

    def vector_at(ptr, off, i, si, j, sj):  # the vector at ptr[off + i*si + j*sj], unaligned
        at = builder.add(off, builder.add(builder.mul(i64(i), si), builder.mul(j, sj)))
        return builder.bitcast(builder.gep(ptr, [at]), vty.as_pointer())

    acc = [[cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * LANE_CHUNK))
            for _ in range(cols)] for _ in range(rows)]
    with cgutils.for_range(builder, n_t) as loop:
        t = loop.index
        a_row = [builder.load(vector_at(a_ptr, a, i, sa_i, t, sa_t), align=size)
                 for i in range(rows)]
        b_col = [builder.load(vector_at(b_ptr, b, j, sb_j, t, sb_t), align=size)
                 for j in range(cols)]
        for i in range(rows):
            for j in range(cols):
                builder.store(builder.call(fma, [a_row[i], b_col[j], builder.load(acc[i][j])]),
                              acc[i][j])
    _emit_epilogue(builder, [[builder.load(x) for x in row] for row in acc],
                   lambda i, j: vector_at(c_ptr, c, i, sc_i, i64(j), sc_j),
                   lambda i, j: vector_at(e_ptr, e, i, se_i, i64(j), se_j), epilogue, size)


_LANE_4x2, _LANE_2x2, _LANE_1x2 = (_lane_tile_kernel(r, 2) for r in (4, 2, 1))
_LANE_4x1, _LANE_2x1, _LANE_1x1 = (_lane_tile_kernel(r, 1) for r in (4, 2, 1))


@jit
def lane_gemm_(C, cl, A, al, B, bl, shape, G, el):
    """Writes the (M, N) blocks of LANE_CHUNK-model vectors of C, ``shape = (M, N, n_t)``,
    every model's own product (see :func:`_lane_tile_kernel` for the layouts), for each
    chunk of the G models: tiles of 4, 2 or 1 rows by 2 or 1 columns."""
    M, N, n_t = shape
    for g in range(0, G, LANE_CHUNK):
        i = 0
        while i < M:
            rows = 4 if M - i >= 4 else (2 if M - i >= 2 else 1)
            j = 0
            while j < N:
                c = (cl[0] + g + i * cl[1] + j * cl[2], cl[1], cl[2])
                a = (al[0] + g + i * al[1], al[1], al[2])
                b = (bl[0] + g + j * bl[2], bl[1], bl[2])
                e = (el[0], el[1] + g + i * el[2] + j * el[3], el[2], el[3], el[4])
                if N - j >= 2:
                    if rows == 4:
                        _LANE_4x2(C, c, A, a, B, b, n_t, e)
                    elif rows == 2:
                        _LANE_2x2(C, c, A, a, B, b, n_t, e)
                    else:
                        _LANE_1x2(C, c, A, a, B, b, n_t, e)
                    j += 2
                else:
                    if rows == 4:
                        _LANE_4x1(C, c, A, a, B, b, n_t, e)
                    elif rows == 2:
                        _LANE_2x1(C, c, A, a, B, b, n_t, e)
                    else:
                        _LANE_1x1(C, c, A, a, B, b, n_t, e)
                    j += 1
            i += rows


def _lane_rule_kernel(adam, decay):
    """An intrinsic ``rule(TH, GR, S1, S2, q, G, n_p, H, acc, g, s, nesterov)`` that steps
    parameters ``q, q + G, ..., q + (n_p - 1) G`` of the flat laned arrays for the LANE_CHUNK
    models from model g on (one vector each), per parameter as :func:`adam_block_` (``adam``)
    or :func:`sgd_block_`: ``grad <- (grad [+ a w]) / s`` (``+ a w`` for weights,
    ``decay``), then the rule's state and w. The models' hyper-parameters are ``H[k,
    g:g+LANE_CHUNK]`` (float64 (6, G): alpha, -, beta_1 or momentum, beta_2, epsilon, AdamW's
    factor) and the step's rate ``acc[4, g:]``; for weights the squares of w and of the
    finished gradient are added to ``acc[2, g:]``, ``acc[3, g:]`` (float64). Unchecked, as the
    tile kernel."""

    @intrinsic
    def rule(typingctx, TH, GR, S1, S2, q, G, n_p, H, acc, g, s, nesterov):
        if not (_float_arrays(TH, GR, S1, S2) and _float_arrays(H, acc)
                and H.dtype == types.float64):
            return None

        def codegen(context, builder, sig, args):
            _emit_lane_rule(context, builder, sig, args, adam, decay)
            return context.get_dummy_value()

        return types.void(TH, GR, S1, S2, q, G, n_p, H, acc, g, s, nesterov), codegen

    return rule


def _emit_lane_rule(context, builder, sig, args, adam, decay):
    """The LLVM code of a laned step (see :func:`_lane_rule_kernel`)."""
    fty = context.get_value_type(sig.args[0].dtype)
    size = context.get_abi_sizeof(fty)
    vty = ir.VectorType(fty, LANE_CHUNK)
    dvty = ir.VectorType(ir.DoubleType(), LANE_CHUNK)
    TH, GR, S1, S2 = (context.make_array(sig.args[k])(context, builder, args[k]).data
                      for k in range(4))
    H, acc = (context.make_array(sig.args[k])(context, builder, args[k]).data for k in (7, 8))
    q, G, n_p, g = (context.cast(builder, args[k], sig.args[k], types.int64)
                    for k in (4, 5, 6, 9))
    s_scalar = context.cast(builder, args[10], sig.args[10], sig.args[0].dtype)
    nesterov = builder.icmp_signed("!=", context.cast(builder, args[11], sig.args[11],
                                                      types.int64), ir.IntType(64)(0))

    def at(ptr, off, ty):
        return builder.bitcast(builder.gep(ptr, [off]), ty.as_pointer())

    def splat(x):
        v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.IntType(32)(0))
        return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), LANE_CHUNK),
                                                  [0] * LANE_CHUNK))

    def h(row, ptr=H):  # row `row` of a (., G) float64 array at models g.., in the dtype
        off = builder.add(builder.mul(ir.IntType(64)(row), G), g)
        v = builder.load(at(ptr, off, dvty), align=8)
        return v if fty == ir.DoubleType() else builder.fptrunc(v, vty)

    def wide(v):  # float64
        return v if fty == ir.DoubleType() else builder.fpext(v, dvty)

    s = splat(s_scalar)
    a, rate, b1, b2, eps, factor = h(0), h(4, acc), h(2), h(3), h(4), h(5)
    zero = ir.Constant(dvty, [0.0] * LANE_CHUNK)
    sq, layer = (cgutils.alloca_once_value(builder, zero) for _ in range(2))
    with cgutils.for_range(builder, n_p) as loop:
        p = builder.add(q, builder.mul(loop.index, G))
        w = builder.load(at(TH, p, vty), align=size)
        grad = builder.load(at(GR, p, vty), align=size)
        if decay:
            builder.store(builder.fadd(builder.load(sq), builder.fmul(wide(w), wide(w))), sq)
            grad = builder.fdiv(builder.fadd(grad, builder.fmul(a, w)), s)
            builder.store(builder.fadd(builder.load(layer),
                                       builder.fmul(wide(grad), wide(grad))), layer)
            if adam:
                w = builder.fmul(w, factor)
        else:
            grad = builder.fdiv(grad, s)
        builder.store(grad, at(GR, p, vty), align=size)
        w = _emit_rule_update(builder, (at(S1, p, vty), at(S2, p, vty)), w, grad,
                              (rate, b1, b2, eps), adam, nesterov, size)
        builder.store(w, at(TH, p, vty), align=size)
    if decay:
        for row, total in ((2, sq), (3, layer)):
            ptr = at(acc, builder.add(builder.mul(ir.IntType(64)(row), G), g), dvty)
            builder.store(builder.fadd(builder.load(ptr, align=8), builder.load(total)), ptr,
                          align=8)


def _emit_rule_update(builder, state, w, grad, hyper, adam, nesterov, size):
    """The LLVM code of the rule's step on one vector of parameters ``w`` with the finished
    gradient ``grad``: Adam's moments (``state``: pointers to the vectors of m and v) and
    ``w - lr m / (sqrt(v) + eps)``, or SGD's velocity (``state[0]``) and ``w + mu v - lr g``
    (Nesterov) or ``w + v``; ``hyper = (lr, beta_1 or mu, beta_2, eps)`` vectors. Returns the
    new w (the state is stored)."""
    vty = w.type
    rate, b1, b2, eps = hyper
    one = ir.Constant(vty, [1.0] * vty.count)
    s1 = builder.load(state[0], align=size)
    if not adam:
        v = builder.fsub(builder.fmul(b1, s1), builder.fmul(rate, grad))
        builder.store(v, state[0], align=size)
        ahead = builder.fsub(builder.fmul(b1, v), builder.fmul(rate, grad))
        return builder.fadd(w, builder.select(nesterov, ahead, v))
    sqrt = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]),
                                          f"llvm.sqrt.v{vty.count}f{8 * size}")
    m1 = builder.fadd(builder.fmul(b1, s1), builder.fmul(builder.fsub(one, b1), grad))
    m2 = builder.fadd(builder.fmul(b2, builder.load(state[1], align=size)),
                      builder.fmul(builder.fsub(one, b2), builder.fmul(grad, grad)))
    builder.store(m1, state[0], align=size)
    builder.store(m2, state[1], align=size)
    step = builder.fdiv(builder.fmul(rate, m1), builder.fadd(builder.call(sqrt, [m2]), eps))
    return builder.fsub(w, step)


_LANE_ADAM_W, _LANE_ADAM_B, _LANE_SGD_W, _LANE_SGD_B = (
    _lane_rule_kernel(adam, decay) for adam in (True, False) for decay in (True, False))


class Lanes(NamedTuple):
    """G models side by side (each array's last axis, or its flat index ``p * G + g``).

    TH, GR (n_params * G,): the parameters and gradients, each model's packed as ``theta``;
    S1, S2 (n_params * G,): the rule's state (SGD: the velocity in S1; Adam: the moments);
    H (6, G) float64: per model the L2 strength ``alpha``, the epoch's rate, then SGD's
    momentum or Adam's beta_1, beta_2, epsilon, and AdamW's factor ``1 - lr weight_decay``
    (1: none); steps (G,) int64: Adam's step counts; sums (G, 2) float64: the epoch's data and
    L2 terms times rows, summed over batches; layer_sq (L, G) float64 and n_updates (G,)
    int64: as the Workspace's, per model."""

    TH: np.ndarray
    GR: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    H: np.ndarray
    steps: np.ndarray
    sums: np.ndarray
    layer_sq: np.ndarray
    n_updates: np.ndarray


class LaneWork(NamedTuple):
    """Buffers of a lanes epoch, for batches of up to ``rows`` rows: A0 (rows * n_features,)
    and Y (rows * n_outputs,) the batch's shared rows; A (rows * sum(sizes[1:]) * G,) the laned
    A[1..L], D (same size) D[0..L-1]; sw (rows,) unused weights; acc (5, G) float64 per model:
    the batch's loss sum, a row's loss, the squares of W, of a layer's gradient, the rate."""

    A0: np.ndarray
    Y: np.ndarray
    A: np.ndarray
    D: np.ndarray
    sw: np.ndarray
    acc: np.ndarray


class LaneModel(NamedTuple):
    """What G laned models compute: G, the hidden and output activation codes (hidden:
    identity, logistic, tanh or relu; output canonical to the loss, so ``D[L-1] = A[L] -
    Y``), the loss code, the log-losses' clip ``eps``, ``adam`` (else SGD), ``nesterov``, and
    the tile limit of the first layer's products (their shapes are the one wide product's)."""

    G: int
    hidden_act: int
    out_act: int
    loss: int
    eps: float
    adam: bool
    nesterov: bool
    tile_limit: int


@jit_inline
def lane_view(buf, sizes, m, G, i):
    """Laned layer i's (m, sizes[i] * G) block (i >= 1) of a buffer that holds A[1..L]
    (or D[0..L-1] as ``lane_view(.., i + 1)``) back to back."""
    off = 0
    for l in range(1, i):
        off += m * sizes[l] * G
    return rows_view(buf, off, m, sizes[i] * G)


@jit_inline
def lane_w(TH, sizes, G, i):
    """W[i] of every model, (sizes[i], sizes[i+1] * G): entry (k, j * G + g) is model g's."""
    off = 0
    for l in range(i):
        off += sizes[l] * sizes[l + 1]
    return rows_view(TH, off * G, sizes[i], sizes[i + 1] * G)


@jit_inline
def lane_b(TH, sizes, G, i):
    """b[i] of every model, (sizes[i+1] * G,): entry j * G + g is model g's."""
    off = n_weights(sizes)
    for l in range(i):
        off += sizes[l + 1]
    return TH[off * G:(off + sizes[i + 1]) * G]


@jit_inline
def _layout(a, b, c):
    """Three int64s: an offset and two strides, or a shape (one compiled lane_gemm_)."""
    return np.int64(a), np.int64(b), np.int64(c)


@jit_inline
def lane_epilogue(address, se_i, se_j, code):
    """``el`` of :func:`lane_gemm_`: the epilogue ``code`` reading E at ``address`` (0 for
    none) with strides ``(se_i, se_j)``, as five int64s."""
    return (np.int64(address), np.int64(0), np.int64(se_i), np.int64(se_j), np.int64(code))


@jit_inline
def lane_product_(Z, A, W, G, el):
    """Writes ``Z[:, j*G+g] = sum_t A[:, t*G+g] W[t, j*G+g]`` through the epilogue ``el``
    (:func:`lane_gemm_`): every model's own ``A @ W``; Z (m, n*G), A (m, k*G), W (k, n*G)."""
    k = W.shape[0]
    n = W.shape[1] // G
    lane_gemm_(Z, _layout(0, n * G, G), A, _layout(0, k * G, G), W, _layout(0, n * G, G),
               _layout(Z.shape[0], n, k), G, el)


@jit_inline
def lane_product_tn_(dW, A, D, G):
    """Writes ``dW[t, j*G+g] = sum_r A[r, t*G+g] D[r, j*G+g]``: every model's ``A.T @ D``;
    dW (k, n*G), A (m, k*G), D (m, n*G)."""
    k, nG = dW.shape
    lane_gemm_(dW, _layout(0, nG, G), A, _layout(0, G, k * G), D, _layout(0, nG, G),
               _layout(k, nG // G, A.shape[0]), G, lane_epilogue(0, 0, 0, PLAIN))


@jit_inline
def lane_product_nt_(P, D, W, G, el):
    """Writes ``P[r, t*G+g] = sum_j D[r, j*G+g] W[t, j*G+g]`` through the epilogue ``el``:
    every model's ``D @ W.T``; P (m, k*G), D (m, n*G), W (k, n*G)."""
    k, nG = W.shape
    lane_gemm_(P, _layout(0, k * G, G), D, _layout(0, nG, G), W, _layout(0, G, nG),
               _layout(P.shape[0], k, nG // G), G, el)


@intrinsic
def _lane_thin_relu_back(typingctx, A, D, W, dW, db):
    """An intrinsic ``(A, D, W, dW, db)``: one pass of the delta recursion through a relu
    layer whose next layer has one unit, every model its own (see :func:`lane_thin_back_`,
    which checks the shapes: A (m, k*G), D (m, G), W and dW (k, G), db (k*G,), G = D's
    columns, a multiple of LANE_CHUNK)."""
    if not _float_arrays(A, D, W, dW, db):
        return None

    def codegen(context, builder, sig, args):
        fty = context.get_value_type(sig.args[0].dtype)
        size = context.get_abi_sizeof(fty)
        vty = ir.VectorType(fty, LANE_CHUNK)
        arrays = [context.make_array(t)(context, builder, a) for t, a in zip(sig.args, args)]
        a_ptr, d_ptr, w_ptr, dw_ptr, db_ptr = (x.data for x in arrays)
        m, G = cgutils.unpack_tuple(builder, arrays[1].shape, 2)
        k = cgutils.unpack_tuple(builder, arrays[2].shape, 2)[0]
        zero = ir.Constant(vty, [0.0] * LANE_CHUNK)
        chunks = builder.udiv(G, ir.IntType(64)(LANE_CHUNK))

        def at(ptr, off):
            return builder.bitcast(builder.gep(ptr, [off]), vty.as_pointer())

        with cgutils.for_range(builder, m) as rows:  # row by row: each entry of A once
            r = rows.index
            with cgutils.for_range(builder, k) as cols:
                t = cols.index
                a_row = builder.mul(builder.add(builder.mul(r, k), t), G)  # A[r, t*G]
                with cgutils.for_range(builder, chunks) as lanes:
                    c = builder.mul(lanes.index, ir.IntType(64)(LANE_CHUNK))
                    a_at, w_at = at(a_ptr, builder.add(a_row, c)), builder.add(
                        builder.mul(t, G), c)
                    a = builder.load(a_at, align=size)
                    d = builder.load(at(d_ptr, builder.add(builder.mul(r, G), c)), align=size)
                    dw = at(dw_ptr, w_at)
                    builder.store(builder.fadd(builder.load(dw, align=size),
                                               builder.fmul(a, d)), dw, align=size)
                    x = builder.fmul(d, builder.load(at(w_ptr, w_at), align=size))
                    x = builder.select(builder.fcmp_ordered("==", a, zero), zero, x)
                    builder.store(x, a_at, align=size)
                    b = at(db_ptr, w_at)
                    builder.store(builder.fadd(builder.load(b, align=size), x), b, align=size)
        return context.get_dummy_value()

    return types.void(A, D, W, dW, db), codegen


@jit
def lane_thin_back_(A, D, W, dW, db):
    """Writes ``dW[t, g] = sum_r A[r, t*G+g] D[r, g]`` (the weight gradient of a layer with
    one unit, from relu outputs A), ``A[r, t*G+g] <- D[r, g] W[t, g]`` where A is not 0, else
    0 (the next delta, over A), and ``db[t*G+g] = sum_r`` of those (its layer's intercept
    gradient): what :func:`lane_product_tn_`, :func:`lane_product_nt_` with relu's mask and
    the intercepts' sums compute, in one pass over A. A (m, k*G), D (m, G), W, dW (k, G),
    db (k*G,); IndexError where they disagree."""
    m, G = D.shape
    k = W.shape[0]
    if (G % LANE_CHUNK != 0 or A.shape[0] != m or A.shape[1] != k * G or W.shape[1] != G
            or dW.shape[0] != k or dW.shape[1] != G or db.shape[0] != k * G):
        raise IndexError("a thin layer's lanes do not match")
    for t in range(k):
        for c in range(G):
            dW[t, c] = 0
    zero_(db)
    _lane_thin_relu_back(A, D, W, dW, db)


@jit
def lane_softmax_(Z, b, G):
    """In place ``Z <- softmax(Z + b)`` of each model's row; Z (m, n*G), b (n*G,)."""
    n = Z.shape[1] // G
    for r in range(Z.shape[0]):
        z = Z[r]
        for c in range(z.shape[0]):
            z[c] += b[c]
        for g in range(G):
            zmax = z[g]
            for j in range(n):
                zmax = max(zmax, z[j * G + g])
            s = z.dtype.type(0.0)
            for j in range(n):
                e = np.exp(z[j * G + g] - zmax)
                z[j * G + g] = e
                s += e
            for j in range(n):
                z[j * G + g] /= s


@jit
def lane_loss_(acc, A, Y, G, loss, eps):
    """Adds each model's ``sum_i l_i`` (float64; :func:`loss_sums` without weights) to
    ``acc[0]`` and writes ``A <- A - Y`` (the output delta of the canonical pairs); A (m,
    k*G), Y (m, k) the batch's targets, shared; ``acc[1]`` scratch."""
    total, row = acc[0], acc[1]
    k = Y.shape[1]
    for r in range(A.shape[0]):
        a = A[r]
        for g in range(G):
            row[g] = 0.0
        for j in range(k):
            y = np.float64(Y[r, j])
            for g in range(G):
                v = np.float64(a[j * G + g])
                if loss == SQUARED_ERROR:
                    row[g] += 0.5 * (v - y) * (v - y)
                elif loss == BINARY_LOG_LOSS:
                    p = min(max(v, eps), 1.0 - eps)
                    if y != 0.0:
                        row[g] -= y * np.log(p)
                    if y != 1.0:
                        row[g] -= (1.0 - y) * np.log(1.0 - p)
                elif y != 0.0:
                    row[g] -= y * np.log(min(max(v, eps), 1.0 - eps))
            yd = Y[r, j]
            for g in range(G):
                a[j * G + g] -= yd
        for g in range(G):
            total[g] += row[g]


@jit
def lane_forward_(work, TH, sizes, model, m):
    """Writes the laned A[1..L] of ``work``: ``A[i+1] = act(A[i] @ W[i] + b[i])`` for every
    model, A[0] (the batch's rows, shared) times the models' W[0] as one product (the tile
    kernel's), the bias and relu added as the products store their sums."""
    L = len(sizes) - 1
    G = model.G
    A0 = rows_view(work.A0, 0, m, sizes[0])
    for i in range(L):
        Z = lane_view(work.A, sizes, m, G, i + 1)
        W = lane_w(TH, sizes, G, i)
        b = lane_b(TH, sizes, G, i)
        act = model.out_act if i == L - 1 else model.hidden_act
        if i == 0 and act != SOFTMAX:
            affine_act_(Z, A0, W, b, act, model.tile_limit)
            continue
        if i == 0:
            matmul_(Z, A0, W, model.tile_limit, no_epilogue())
        else:
            code = BIAS_RELU if act == RELU else (BIAS if act == IDENTITY else PLAIN)
            lane_product_(Z, lane_view(work.A, sizes, m, G, i), W, G,
                          lane_epilogue(b.ctypes.data, 0, G, code))
            if code != PLAIN:
                continue
        if act == SOFTMAX:
            lane_softmax_(Z, b, G)
        else:
            bias_act_(Z, b, act)


@jit
def lane_backward_(work, TH, GR, sizes, model, m):
    """Writes GR (every model's unscaled gradient sums) and the laned D[0..L-1]: the delta
    recursion from ``D[L-1] = A[L] - Y`` (A[L] turned into it by :func:`lane_loss_`), relu's
    mask applied as the products store their sums (and D[i-1] then over A[i], which nothing
    reads after it; other activations' D in ``work.D``)."""
    L = len(sizes) - 1
    G = model.G
    relu = model.hidden_act == RELU
    summed = False  # whether this layer's intercept gradient was summed with its delta
    for i in range(L - 1, -1, -1):
        # D[i] where it was written: over A[i+1] (the output delta, and relu's in place)
        D = lane_view(work.A if i == L - 1 or relu else work.D, sizes, m, G, i + 1)
        dW = lane_w(GR, sizes, G, i)
        db = lane_b(GR, sizes, G, i)
        if not summed:
            zero_(db)
            for r in range(m):
                d = D[r]
                for c in range(db.shape[0]):
                    db[c] += d[c]
        summed = False
        if i > 0 and relu and sizes[i + 1] == 1:  # one pass over A[i] (a one-unit layer)
            lane_thin_back_(lane_view(work.A, sizes, m, G, i), D, lane_w(TH, sizes, G, i),
                            dW, lane_b(GR, sizes, G, i - 1))
            summed = True
            continue
        if i == 0:
            matmul_tn_(dW, rows_view(work.A0, 0, m, sizes[0]), D, model.tile_limit)
        else:
            lane_product_tn_(dW, lane_view(work.A, sizes, m, G, i), D, G)
        if i > 0:
            # relu's mask is read, entry by entry, just before its entry is stored: D[i-1]
            # takes A[i]'s place (one laned layer less to stream through the caches)
            A = lane_view(work.A, sizes, m, G, i)
            D_prev = A if relu else lane_view(work.D, sizes, m, G, i)
            lane_product_nt_(D_prev, D, lane_w(TH, sizes, G, i), G,
                             lane_epilogue(A.ctypes.data, A.shape[1], G,
                                           RELU_MASK if relu else PLAIN))
            if not relu:
                mul_act_deriv_(D_prev, A, model.hidden_act)


@jit_update
def lane_step_(lanes, acc, sizes, model, S):
    """Writes every model's parameters, gradient, rule state, ``layer_sq`` and ``acc[2]``
    (its ``sum ||W||^2`` before the step, float64): Adam's or SGD's step per parameter with
    each model's own hyper-parameters, a chunk of models a vector (:func:`_lane_rule_kernel`).
    """
    G = model.G
    TH, GR, S1, S2, H = lanes.TH, lanes.GR, lanes.S1, lanes.S2, lanes.H
    s = TH.dtype.type(S)
    for g in range(G):
        acc[2, g] = 0.0
        if model.adam:
            lanes.steps[g] += 1
            acc[4, g] = adam_rate(H[1, g], H[2, g], H[3, g], lanes.steps[g])
        else:
            acc[4, g] = H[1, g]
    nesterov = np.int64(model.nesterov)
    lo = 0
    layers = len(sizes) - 1
    for i in range(layers):
        n = sizes[i] * sizes[i + 1]
        for g in range(G):
            acc[3, g] = 0.0
        for g in range(0, G, LANE_CHUNK):
            if model.adam:
                _LANE_ADAM_W(TH, GR, S1, S2, lo * G + g, G, n, H, acc, g, s, nesterov)
            else:
                _LANE_SGD_W(TH, GR, S1, S2, lo * G + g, G, n, H, acc, g, s, nesterov)
        for g in range(G):
            lanes.layer_sq[i, g] += acc[3, g]
        lo += n
    n = TH.shape[0] // G - lo
    for g in range(0, G, LANE_CHUNK):
        if model.adam:
            _LANE_ADAM_B(TH, GR, S1, S2, lo * G + g, G, n, H, acc, g, s, nesterov)
        else:
            _LANE_SGD_B(TH, GR, S1, S2, lo * G + g, G, n, H, acc, g, s, nesterov)


@jit
def check_lanes(lanes, work, data, sizes, G, batch_size):
    """IndexError unless the groups of :func:`run_lanes_` agree with the layer sizes, G models
    (a positive multiple of LANE_CHUNK) and batches of ``batch_size`` rows: the step's
    vector code reads and writes them unchecked (the views of the layers check themselves)."""
    L = len(sizes) - 1
    n_params = n_weights(sizes)
    for i in range(1, L + 1):
        n_params += sizes[i]
    rows = min(batch_size, data.order.shape[0])
    if (G <= 0 or G % LANE_CHUNK != 0 or lanes.TH.size != n_params * G
            or lanes.GR.size != lanes.TH.size or lanes.S1.size != lanes.TH.size
            or lanes.S2.size != lanes.TH.size or lanes.H.shape != (6, G)
            or lanes.steps.shape[0] != G or lanes.sums.shape != (G, 2)
            or lanes.layer_sq.shape != (L, G) or lanes.n_updates.shape[0] != G
            or work.acc.shape != (5, G) or data.X.shape[1] != sizes[0]
            or data.Y.shape[1] != sizes[L] or work.sw.shape[0] < rows
            or work.Y.size < rows * sizes[L] or work.A0.size < rows * sizes[0]):
        raise IndexError("lanes' arrays do not match their layers and models")


@jit
def run_lanes_(lanes, work, data, sizes, model, batch_size):
    """Writes every laned model's parameters, gradient and rule state, and ``lanes.sums``,
    ``layer_sq``, ``n_updates``: one epoch, all the batches of ``data.order`` (dense rows, no
    sample weights; the models' shared rows and targets), for each batch the forward pass,
    loss, delta recursion and step of every model (:func:`lane_forward_`,
    :func:`lane_loss_`, :func:`lane_backward_`, :func:`lane_step_`). Each model computes what
    its own fit computes, in another order of summation (the same values to rounding)."""
    check_lanes(lanes, work, data, sizes, model.G, batch_size)
    lanes, work, data = borrowed((lanes, work, data))
    G = model.G
    n = data.order.shape[0]
    acc = work.acc
    for k in range(-(-n // batch_size)):
        start, m = batch_rows(k, batch_size, n)
        Y_b = rows_view(work.Y, 0, m, data.Y.shape[1])
        gather_rows_(rows_view(work.A0, 0, m, sizes[0]), Y_b, work.sw, data, start)
        lane_forward_(work, lanes.TH, sizes, model, m)
        for g in range(G):
            acc[0, g] = 0.0
        lane_loss_(acc, lane_view(work.A, sizes, m, G, len(sizes) - 1), Y_b, G, model.loss,
                   model.eps)
        lane_backward_(work, lanes.TH, lanes.GR, sizes, model, m)
        S = np.float64(m)
        lane_step_(lanes, acc, sizes, model, S)
        for g in range(G):
            lanes.sums[g, 0] += acc[0, g] / S * m
            lanes.sums[g, 1] += 0.5 * lanes.H[0, g] * acc[2, g] / S * m
            lanes.n_updates[g] += 1
