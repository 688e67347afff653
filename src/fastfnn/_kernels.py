"""All Numba code of fastfnn, in one file.

Numba's on-disk cache only watches the source file of the function it compiled, so every jitted
function that calls another lives here. The file keeps the shape of the Python house:

    run_batches_            the compiled minibatch loop (gather, forward, backward, update)
    run_batches_parallel_   the same with each batch's rows split across threads
      gather_batch_         rows idx[start:stop] of X, Y, sample_weight -> batch buffers
      loss_grad_            backward_sums_ + finish_grad_: loss and the flat gradient
        backward_sums_      forward_, loss sums, and the delta recursion (unscaled sums)
          forward_          A[i+1] = act(A[i] @ W[i] + b[i])          (matmul_, bias_act_)
          output_delta_     D[L-1] = (A[L] - Y) * act_out'(A[L]) (* sample_weight)
          mul_act_deriv_    D[i-1] = (D[i] @ W[i].T) * act'(A[i])     (matmul_nt_)
        finish_grad_        dW = (sums + alpha W) / S, db = sums / S
      step_                 sgd_step_ or adam_step_ on the flat parameter vector

Layouts (row-batch, like scikit-learn; see network.py for the table of the math):

* ``theta`` (n_params,) packs ``[W[0].ravel(), ..., W[L-1].ravel(), b[0], ..., b[L-1]]``, as
  scikit-learn's ``_pack``; ``grad`` has the same layout.
* ``sizes`` (L+1,) int64 holds the layer units ``[n_features, hidden..., n_outputs]``.
* ``A_buf`` holds A[0..L] of the current batch back to back, ``A[i]`` of shape (m, sizes[i]);
  ``D_buf`` holds D[0..L-1], ``D[i]`` of shape (m, sizes[i+1]). Offsets follow the actual batch
  size ``m`` so every view is C-contiguous.

Elementwise kernels keep the dtype of their arrays (float32 stays float32): constants are made
with ``X.dtype.type(...)``. Scalar loss values are accumulated in float64.
"""

import numpy as np
from numba import njit, prange

# Fast-math flags that keep NaN/inf semantics (no "nnan", no "ninf").
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# error_model="numpy": x / 0 is inf or nan as in NumPy (and scikit-learn), never an exception.
jit = njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
# Update rules without "reassoc": with it LLVM may expand b2*v + (1-b2)*g^2 into
# b2*v + g^2 - b2*g^2, which is inf - inf = NaN where g^2 overflows (NumPy gives inf).
# Small helpers that return views are inlined into their callers: numba then prunes the
# reference-count updates (atomic operations) that each returned view would otherwise cost.
jit_inline = njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy", inline="always")
jit_update = njit(cache=True, fastmath=FASTMATH - {"reassoc"}, nogil=True, error_model="numpy")

# Activation codes (activations.py maps names to these).
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
# Loss codes (losses.py maps names to these).
SQUARED_ERROR, POISSON, BINARY_LOG_LOSS, LOG_LOSS = 0, 1, 2, 3
# Solver codes (optimizers.py), and the layout of the ``hyper`` vector the update rules read.
SGD, ADAM = 0, 1
LR, MOMENTUM, NESTEROV, BETA_1, BETA_2, EPSILON = 0, 1, 2, 3, 4, 5


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


@jit
def mul_act_deriv_(D, A, act):
    """In place ``D <- D * act'(z)``, with act' written in terms of the output ``A = act(z)``.

    logistic: a(1-a); tanh: 1-a^2; relu: [a > 0]; exp: a; identity: 1. D and A are (n, k).
    Softmax has no elementwise derivative and is never passed here.
    """
    n, k = D.shape
    one = D.dtype.type(1.0)
    zero = D.dtype.type(0.0)
    if act == RELU:
        for i in range(n):
            for j in range(k):
                if A[i, j] == zero:
                    D[i, j] = zero
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
    with p clipped to [eps, 1 - eps] as scikit-learn.
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
def output_delta_(D, A, Y, sw, use_sw, deriv_act):
    """``D <- (A - Y) * act'(A) [* sw]``: dl/dz at the output, D/A/Y (m, k), sw (m,).

    For the canonical pairs (identity+squared error, exp+poisson, logistic+binary log-loss,
    softmax+log-loss) the caller passes ``deriv_act=IDENTITY`` and the factor cancels.
    """
    m, k = D.shape
    for i in range(m):
        for j in range(k):
            D[i, j] = A[i, j] - Y[i, j]
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


@jit_inline
def w_view(theta, sizes, i):
    """W[i] (sizes[i], sizes[i+1]) inside the flat parameter vector."""
    off = 0
    for l in range(i):
        off += sizes[l] * sizes[l + 1]
    return theta[off : off + sizes[i] * sizes[i + 1]].reshape((sizes[i], sizes[i + 1]))


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
    return buf[off : off + m * units[i]].reshape((m, units[i]))


# ----------------------------------------------------------------------------------------------
# Small matrix products. On narrow float64 layers (e.g. 64 x 64 x 64) OpenBLAS's call and packing
# overhead dominate and a 4 x 4 register-blocked dot-product kernel is 1.6-2x faster (float32 and
# short contractions: no gain, so they stay with BLAS). Measured with benchmarks' A/B script.
# ----------------------------------------------------------------------------------------------

SMALL_GEMM = 128 * 64 * 64  # m*k*n up to which float64 products use the compiled kernel
MIN_CONTRACTION = 16  # shorter dot products do not amortise the kernel's final reductions


@jit
def _use_small_kernel(A, rows, contraction, cols):
    """True where :func:`matmul_nt_`'s compiled kernel beats BLAS: float64, small products,
    dot products of at least MIN_CONTRACTION terms."""
    return (A.itemsize == 8 and rows * contraction * cols <= SMALL_GEMM
            and contraction >= MIN_CONTRACTION)


def scratch_size(sizes, itemsize):
    """Elements of the scratch that :func:`matmul_` needs: room for a transposed W of every
    layer small enough for the compiled kernel (float64 only); at least 1."""
    need = [fi * fo for fi, fo in zip(sizes[:-1], sizes[1:])
            if itemsize == 8 and fi * fo <= SMALL_GEMM]
    return int(max(need, default=1))


THIN = 2  # products with a dimension this small (matrix-vector) are plain loops, not BLAS calls


@jit_inline
def matmul_nt_(A, B, out):
    """``out = A @ B.T``; A (m, n), B (k, n), out (m, k), all C-contiguous.

    4 x 4 blocks of dot products along the contiguous rows; BLAS for large products.
    """
    m, n = A.shape
    k = B.shape[0]
    if n <= THIN:  # outer products (one-output layers): a plain loop beats a BLAS call
        for i in range(m):
            for p in range(k):
                s = A[i, 0] * B[p, 0]
                for j in range(1, n):
                    s += A[i, j] * B[p, j]
                out[i, p] = s
        return
    if not _use_small_kernel(A, m, n, k):
        np.dot(A, B.T, out)
        return
    zero = A.dtype.type(0.0)
    m4 = m - m % 4
    k4 = k - k % 4
    for i in range(0, m4, 4):
        for p in range(0, k4, 4):
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for j in range(n):  # indexed, not row views: views cost atomic refcounts
                x0, x1, x2, x3 = A[i, j], A[i + 1, j], A[i + 2, j], A[i + 3, j]
                y0, y1, y2, y3 = B[p, j], B[p + 1, j], B[p + 2, j], B[p + 3, j]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            out[i, p], out[i, p + 1], out[i, p + 2], out[i, p + 3] = s00, s01, s02, s03
            out[i + 1, p], out[i + 1, p + 1], out[i + 1, p + 2], out[i + 1, p + 3] = s10, s11, s12, s13
            out[i + 2, p], out[i + 2, p + 1], out[i + 2, p + 2], out[i + 2, p + 3] = s20, s21, s22, s23
            out[i + 3, p], out[i + 3, p + 1], out[i + 3, p + 2], out[i + 3, p + 3] = s30, s31, s32, s33
        for p in range(k4, k):
            for r in range(i, i + 4):
                s = zero
                for j in range(n):
                    s += A[r, j] * B[p, j]
                out[r, p] = s
    for r in range(m4, m):
        for p in range(k):
            s = zero
            for j in range(n):
                s += A[r, j] * B[p, j]
            out[r, p] = s


@jit_inline
def matmul_tn_(A, B, out):
    """``out = A.T @ B``; A (m, k), B (m, n), out (k, n): the weight gradient ``A[i].T @ D[i]``.

    For thin B (one-output layers) a plain loop over the rows, else BLAS.
    """
    m, k = A.shape
    n = B.shape[1]
    if n > THIN:
        np.dot(A.T, B, out)
        return
    out[:] = 0
    for i in range(m):
        for j in range(n):
            b = B[i, j]
            for p in range(k):
                out[p, j] += A[i, p] * b


@jit_inline
def matmul_(A, B, out, BT):
    """``out = A @ B``; A (m, k), B (k, n), out (m, n). Small products transpose B into the
    scratch ``BT`` (at least k*n elements) and use :func:`matmul_nt_`."""
    m, k = A.shape
    n = B.shape[1]
    if n <= THIN:  # matrix-vector (one-output layers): dot products along A's rows
        for i in range(m):
            for j in range(n):
                s = A.dtype.type(0.0)
                for p in range(k):
                    s += A[i, p] * B[p, j]
                out[i, j] = s
        return
    if not _use_small_kernel(A, m, k, n) or BT.shape[0] < k * n:
        np.dot(A, B, out)
        return
    Bt = BT[: n * k].reshape((n, k))
    for p in range(k):
        for j in range(n):
            Bt[j, p] = B[p, j]
    matmul_nt_(A, Bt, out)


# ----------------------------------------------------------------------------------------------
# The network: forward, loss + backward (delta recursion).
# ----------------------------------------------------------------------------------------------


@jit_inline
def forward_(theta, sizes, A_buf, m, hidden_act, out_act, scratch):
    """``A[i+1] = act(A[i] @ W[i] + b[i])`` for i = 0..L-1; A[0] (m, n_features) is filled.

    ``scratch`` holds at least max(fan_in * fan_out) elements (for :func:`matmul_`).
    """
    L = len(sizes) - 1
    for i in range(L):
        A_next = layer_view(A_buf, sizes, m, i + 1)  # (m, fan_out)
        matmul_(layer_view(A_buf, sizes, m, i), w_view(theta, sizes, i), A_next, scratch)
        bias_act_(A_next, b_view(theta, sizes, i), out_act if i == L - 1 else hidden_act)


@jit_inline
def backward_sums_(theta, grad, sizes, A_buf, D_buf, Y, sw, use_sw, m,
                   hidden_act, out_act, loss, deriv_act, eps, scratch):
    """Forward, loss and the delta recursion on the batch in A[0], without the 1/S scaling.

    Writes ``grad`` = [A[i].T @ D[i] ..., D[i].sum(0) ...] (the data term's sums) with
    ``D[L-1] = (A[L] - Y) * act_out'(A[L]) [* s]``, ``D[i-1] = (D[i] @ W[i].T) * act'(A[i])``,
    and returns ``(sum_i s_i l_i, S = sum_i s_i)``. Batches split across threads add these up.
    """
    L = len(sizes) - 1
    units = sizes[1:]
    forward_(theta, sizes, A_buf, m, hidden_act, out_act, scratch)
    A_out = layer_view(A_buf, sizes, m, L)
    total, S = loss_sums(A_out, Y, sw, use_sw, loss, eps)
    output_delta_(layer_view(D_buf, units, m, L - 1), A_out, Y, sw, use_sw, deriv_act)
    for i in range(L - 1, -1, -1):
        D = layer_view(D_buf, units, m, i)  # (m, fan_out)
        A = layer_view(A_buf, sizes, m, i)  # (m, fan_in)
        matmul_tn_(A, D, w_view(grad, sizes, i))  # (fan_in, fan_out)
        db = b_view(grad, sizes, i)
        db[:] = 0
        for r in range(m):
            for c in range(D.shape[1]):
                db[c] += D[r, c]
        if i > 0:
            D_prev = layer_view(D_buf, units, m, i - 1)  # (m, fan_in)
            matmul_nt_(D, w_view(theta, sizes, i), D_prev)
            mul_act_deriv_(D_prev, A, hidden_act)
    return total, S


@jit
def finish_grad_(theta, grad, sizes, alpha, S):
    """``dW <- (dW + alpha W) / S``, ``db <- db / S`` over the flat gradient (L2 on W only).

    Returns the batch's L2 term ``alpha/2 sum ||W||^2 / S`` (float64), read in the same pass.
    """
    n_w = n_weights(sizes)
    dt = grad.dtype.type
    a = dt(alpha)
    s = dt(S)
    sq = 0.0
    for p in range(n_w):
        w = theta[p]
        sq += np.float64(w) * np.float64(w)
        grad[p] = (grad[p] + a * w) / s
    for p in range(n_w, grad.shape[0]):
        grad[p] /= s
    return 0.5 * alpha * sq / S


@jit
def loss_grad_(theta, grad, sizes, A_buf, D_buf, Y, sw, use_sw, m,
               hidden_act, out_act, loss, deriv_act, alpha, eps, scratch):
    """Forward, loss and backward on the batch in A[0]; writes dl/dtheta into ``grad``.

    Returns ``(sum_i s_i l_i / S, alpha/2 sum ||W||^2 / S)`` (data term, L2 term; S = sum_i
    s_i, or m) and writes ``grad`` = [dW..., db...] with ``dW[i] = (A[i].T @ D[i] + alpha W[i]) / S``,
    ``db[i] = D[i].sum(0) / S``, ``D[i-1] = (D[i] @ W[i].T) * act'(A[i])``.
    """
    total, S = backward_sums_(theta, grad, sizes, A_buf, D_buf, Y, sw, use_sw, m,
                              hidden_act, out_act, loss, deriv_act, eps, scratch)
    penalty = finish_grad_(theta, grad, sizes, alpha, S)
    return total / S, penalty


# ----------------------------------------------------------------------------------------------
# Batches and updates.
# ----------------------------------------------------------------------------------------------


@jit_inline
def gather_batch_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx, start, stop,
                  A0, Y_b, sw_b):
    """Copy rows ``idx[start:stop]`` of X (dense, or CSR given by data/indices/indptr), Y and
    sw into the batch buffers A0 (m, n_features), Y_b (m, n_outputs), sw_b (m,)."""
    m, nf = A0.shape
    zero = A0.dtype.type(0.0)
    for r in range(m):
        src = idx[start + r]
        if is_sparse:
            for j in range(nf):
                A0[r, j] = zero
            for p in range(X_indptr[src], X_indptr[src + 1]):
                A0[r, X_indices[p]] += X_data[p]  # += : a CSR row may repeat a column
        else:
            for j in range(nf):
                A0[r, j] = X[src, j]
        for j in range(Y.shape[1]):
            Y_b[r, j] = Y[src, j]
        if use_sw:
            sw_b[r] = sw[src]


@jit_inline
def load_batch_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx, start, m, sizes,
                A_buf, Y_buf, sw_buf):
    """Gather rows ``idx[start:start+m]`` into A[0] of ``A_buf`` and into the target and weight
    buffers; returns the batch's views Y_b (m, n_outputs) and sw_b (m,)."""
    n_out = Y.shape[1]
    Y_b = Y_buf[: m * n_out].reshape((m, n_out))
    sw_b = sw_buf[:m]
    gather_batch_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx, start,
                  start + m, layer_view(A_buf, sizes, m, 0), Y_b, sw_b)
    return Y_b, sw_b


@jit_update
def sgd_step_(theta, grad, velocity, lr, momentum, nesterov):
    """``v <- mu v - lr g``; ``theta += mu v - lr g`` (Nesterov) or ``theta += v``."""
    dt = theta.dtype.type
    lr = dt(lr)
    mu = dt(momentum)
    for p in range(theta.shape[0]):
        v = mu * velocity[p] - lr * grad[p]
        velocity[p] = v
        if nesterov:
            theta[p] += mu * v - lr * grad[p]
        else:
            theta[p] += v


@jit_update
def adam_step_(theta, grad, m1, m2, lr_t, beta_1, beta_2, epsilon):
    """``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g^2``; ``theta -= lr_t m / (sqrt(v) + eps)``,
    with ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)`` computed by the caller."""
    dt = theta.dtype.type
    one = dt(1.0)
    b1 = dt(beta_1)
    b2 = dt(beta_2)
    lr = dt(lr_t)
    eps = dt(epsilon)
    for p in range(theta.shape[0]):
        g = grad[p]
        m1[p] = b1 * m1[p] + (one - b1) * g
        m2[p] = b2 * m2[p] + (one - b2) * (g * g)
        theta[p] -= lr * m1[p] / (np.sqrt(m2[p]) + eps)


@jit
def run_batches_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx,
                 first_batch, last_batch, batch_size,
                 theta, grad, sizes, A_buf, D_buf, Y_buf, sw_buf, scratch,
                 hidden_act, out_act, loss, deriv_act, alpha, eps,
                 solver, state_1, state_2, hyper, adam_t):
    """Train on batches ``first_batch..last_batch-1`` of the order ``idx`` without leaving
    compiled code: gather, forward, backward, update, per batch.

    ``hyper`` = [learning_rate, momentum, nesterov, beta_1, beta_2, epsilon]; ``state_1/2`` are
    the SGD velocity (and an unused buffer) or Adam's first and second moments. Returns
    ``(data, penalty, adam_t)``: the sums over batches of the batch's data term and L2 term
    (see :func:`loss_grad_`), each times the batch's rows.
    """
    n = idx.shape[0]
    data = 0.0
    penalty = 0.0
    for k in range(first_batch, last_batch):
        start = k * batch_size
        stop = min(start + batch_size, n)
        m = stop - start
        Y_b, sw_b = load_batch_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx,
                                start, m, sizes, A_buf, Y_buf, sw_buf)
        batch_data, batch_penalty = loss_grad_(theta, grad, sizes, A_buf, D_buf, Y_b, sw_b,
                                               use_sw, m, hidden_act, out_act, loss, deriv_act,
                                               alpha, eps, scratch)
        data += batch_data * m
        penalty += batch_penalty * m
        adam_t = step_(solver, theta, grad, state_1, state_2, hyper, adam_t)
    return data, penalty, adam_t


@jit
def step_(solver, theta, grad, state_1, state_2, hyper, adam_t):
    """One update of theta by SGD or Adam (``hyper`` as in run_batches_); returns adam_t."""
    if solver == SGD:
        sgd_step_(theta, grad, state_1, hyper[LR], hyper[MOMENTUM], hyper[NESTEROV] != 0.0)
    else:
        adam_t += 1
        b1, b2 = hyper[BETA_1], hyper[BETA_2]
        lr_t = hyper[LR] * np.sqrt(1.0 - b2**adam_t) / (1.0 - b1**adam_t)
        adam_step_(theta, grad, state_1, state_2, lr_t, b1, b2, hyper[EPSILON])
    return adam_t


@njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def run_batches_parallel_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw, idx,
                          first_batch, last_batch, batch_size,
                          theta, grad, sizes, A_bufs, D_bufs, Y_bufs, sw_bufs, scratches, grads,
                          hidden_act, out_act, loss, deriv_act, alpha, eps,
                          solver, state_1, state_2, hyper, adam_t):
    """:func:`run_batches_` with each batch's rows split across T threads (data parallel).

    Thread t gathers its share of the rows into its own buffers (``A_bufs[t]`` ..., rows of the
    2-D buffer arrays) and computes the unscaled sums of :func:`backward_sums_` into
    ``grads[t]``, where ``grads[0]`` must be ``grad`` itself; the sums are then added into
    ``grad``, scaled by 1/S with the L2 term, and applied. The result equals the serial loop's up
    to the order of floating-point additions.
    """
    T = A_bufs.shape[0]
    n = idx.shape[0]
    totals = np.zeros(T)
    weights = np.zeros(T)
    data = 0.0
    penalty = 0.0
    for k in range(first_batch, last_batch):
        start = k * batch_size
        stop = min(start + batch_size, n)
        m = stop - start
        for t in prange(T):
            r0 = start + (m * t) // T
            mt = start + (m * (t + 1)) // T - r0
            if mt == 0:
                grads[t][:] = 0
                totals[t] = 0.0
                weights[t] = 0.0
                continue
            Y_b, sw_b = load_batch_(X, X_data, X_indices, X_indptr, is_sparse, Y, sw, use_sw,
                                    idx, r0, mt, sizes, A_bufs[t], Y_bufs[t], sw_bufs[t])
            totals[t], weights[t] = backward_sums_(
                theta, grads[t], sizes, A_bufs[t], D_bufs[t], Y_b, sw_b, use_sw, mt,
                hidden_act, out_act, loss, deriv_act, eps, scratches[t])
        for t in range(1, T):  # thread 0 summed into grad itself (grads[0] is grad)
            grad += grads[t]
        S = weights.sum()
        penalty += finish_grad_(theta, grad, sizes, alpha, S) * m
        data += totals.sum() / S * m
        adam_t = step_(solver, theta, grad, state_1, state_2, hyper, adam_t)
    return data, penalty, adam_t


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
