"""The "straightforward compiled design": a plain Numba twin of the suite's SGD training, the
yardstick that fastfnn's own kernels are measured against.

What a competent first compiled version of scikit-learn's MLP step looks like, and no more: one
``@numba.njit`` function runs one epoch; parameters, gradient and momentum live in flat buffers
(per layer ``W`` (fan_in, fan_out) then ``b`` (fan_out,)) seen through contiguous 2-D views;
every matrix product is ``np.dot(a, b, out)`` (Numba's BLAS); the bias + activation, the
output delta (with the loss and the output bias gradient), the activation-derivative mask (with
the bias gradient's column sums) and the parameter update (with the L2 penalty's sum) are each
one fused loop. No hand-written matrix products, no threads of its own (the BLAS has them).

The arithmetic is scikit-learn's, for relu hidden layers, identity output and squared error,
``solver='sgd'`` with Nesterov momentum: per batch of ``m`` rows

    A[i+1] = relu(A[i] @ W[i] + b[i])            (identity on the last layer)
    D[L-1] = A[L] - Y;  D[i-1] = (D[i] @ W[i].T) * (A[i] > 0)
    gW[i] = (A[i].T @ D[i] + alpha * W[i]) / m;  gb[i] = sum(D[i], axis=0) / m
    v = mu * v - lr * g;  p += mu * v - lr * g

in the input's dtype (float32 stays float32), from given initial weights and per-epoch sample
orders (scikit-learn's draws: :func:`fastfnn.bench.cases.sklearn_draws`).
"""

import numba
import numpy as np

# The same vetted fastmath subset as fastfnn's kernels (keeps NaN/inf semantics): lets the fused
# loops vectorise, so the yardstick is not handicapped by strict IEEE ordering.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_jit = numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")


@_jit
def _view(buf, offset, rows, cols):
    """``buf[offset:offset + rows * cols]`` as a C-contiguous (rows, cols) array."""
    return buf[offset:offset + rows * cols].reshape((rows, cols))


@_jit
def _bias_act_(Z, b, relu):
    """``Z = relu(Z + b)`` (or ``Z + b``) in place; Z (m, fan_out), b (fan_out,)."""
    m, k = Z.shape
    for r in range(m):
        for c in range(k):
            v = Z[r, c] + b[c]
            if v > 0 or not relu:
                Z[r, c] = v
            else:
                Z[r, c] = 0


@_jit
def _output_delta_(D, P, Y, order, start, db):
    """``D = P - Y[order[start:start+m]]`` and ``db = sum(D, axis=0)``; returns
    ``0.5 * sum(D**2)`` (float64). D, P (m, k)."""
    m, k = D.shape
    db[:] = 0
    half_sq = 0.0
    for r in range(m):
        row = order[start + r]
        for c in range(k):
            d = P[r, c] - Y[row, c]
            D[r, c] = d
            db[c] += d
            half_sq += 0.5 * d * d
    return half_sq


@_jit
def _relu_mask_(D, A, db):
    """``D *= (A > 0)`` in place and ``db = sum(D, axis=0)``; D, A (m, fan_out)."""
    m, k = D.shape
    db[:] = 0
    for r in range(m):
        for c in range(k):
            if A[r, c] > 0:
                db[c] += D[r, c]
            else:
                D[r, c] = 0


@_jit
def _update_(theta, grad, vel, w_start, w_end, b_end, hp):
    """Nesterov SGD on one layer's flat slices: weights ``[w_start, w_end)`` with L2, biases
    ``[w_end, b_end)`` without; ``hp = (lr, momentum, alpha, m)`` in the parameters' dtype (so
    that float32 stays float32). Returns ``sum(W**2)`` before the step (float64)."""
    lr, mu, alpha, mf = hp[0], hp[1], hp[2], hp[3]
    sq = 0.0
    for j in range(w_start, w_end):
        w = theta[j]
        sq += w * w
        g = (grad[j] + alpha * w) / mf
        v = mu * vel[j] - lr * g
        vel[j] = v
        theta[j] = w + (mu * v - lr * g)
    for j in range(w_end, b_end):
        g = grad[j] / mf
        v = mu * vel[j] - lr * g
        vel[j] = v
        theta[j] = theta[j] + (mu * v - lr * g)
    return sq


@_jit
def reference_epoch(X, Y, order, sizes, offsets, theta, grad, vel, abuf, aoff, dbuf, doff,
                    batch_size, hp):
    """One epoch of minibatch SGD (Nesterov) over ``X[order]``, updating ``theta`` and ``vel``
    in place. Returns ``(0.5 * sum of squared errors, sum over batches of ||W||^2)`` over the
    epoch (float64, each batch's before its step).

    X (n, sizes[0]), Y (n, sizes[-1]); ``offsets[i]`` where layer i's ``W`` starts in ``theta``
    (its ``b`` follows; ``offsets[L]`` = total); ``abuf``/``dbuf`` flat workspaces holding
    ``A[i]`` (batch, sizes[i]) at ``aoff[i]`` and ``D[i]`` (batch, sizes[i+1]) at ``doff[i]``.
    """
    n = X.shape[0]
    L = sizes.shape[0] - 1
    half_sq = 0.0
    w_sq = 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        A0 = _view(abuf, aoff[0], m, sizes[0])
        for r in range(m):  # gather the batch
            A0[r, :] = X[order[start + r], :]
        for i in range(L):  # forward
            fi, fo = sizes[i], sizes[i + 1]
            W = _view(theta, offsets[i], fi, fo)
            Z = _view(abuf, aoff[i + 1], m, fo)
            np.dot(_view(abuf, aoff[i], m, fi), W, Z)  # (m, fan_out)
            _bias_act_(Z, theta[offsets[i] + fi * fo:offsets[i + 1]], i < L - 1)
        k = sizes[L]
        last_b = offsets[L - 1] + sizes[L - 1] * k
        half_sq += _output_delta_(_view(dbuf, doff[L - 1], m, k), _view(abuf, aoff[L], m, k),
                                  Y, order, start, grad[last_b:offsets[L]])
        for i in range(L - 1, -1, -1):  # backward
            fi, fo = sizes[i], sizes[i + 1]
            D = _view(dbuf, doff[i], m, fo)
            np.dot(_view(abuf, aoff[i], m, fi).T, D, _view(grad, offsets[i], fi, fo))
            if i > 0:
                Dp = _view(dbuf, doff[i - 1], m, fi)
                np.dot(D, _view(theta, offsets[i], fi, fo).T, Dp)  # (m, fan_in)
                b0 = offsets[i - 1] + sizes[i - 1] * fi
                _relu_mask_(Dp, _view(abuf, aoff[i], m, fi), grad[b0:offsets[i]])
        hp[3] = m  # the batch's rows, in the parameters' dtype
        for i in range(L):  # update
            w_end = offsets[i] + sizes[i] * sizes[i + 1]
            w_sq += _update_(theta, grad, vel, offsets[i], w_end, offsets[i + 1], hp)
    return half_sq, w_sq


def _layout(sizes, batch_size):
    sizes = np.asarray(sizes, dtype=np.int64)
    per_layer = sizes[:-1] * sizes[1:] + sizes[1:]
    offsets = np.concatenate(([0], np.cumsum(per_layer))).astype(np.int64)
    aoff = np.concatenate(([0], np.cumsum(sizes * batch_size))).astype(np.int64)
    doff = np.concatenate(([0], np.cumsum(sizes[1:] * batch_size))).astype(np.int64)
    return sizes, offsets, aoff, doff


def reference_fit(X, Y, init, orders, batch_size, lr, momentum, alpha):
    """Train the network from ``init`` for ``len(orders)`` epochs; scikit-learn's SGD step for step.

    Parameters
    ----------
    X : ndarray (n, n_features), float32 or float64
    Y : ndarray (n, n_outputs) or (n,), cast to X's dtype
    init : list of (W (fan_in, fan_out), b (fan_out,)), cast to X's dtype
    orders : list of int64 ndarray (n,), each epoch's sample order
    batch_size, lr, momentum, alpha : scikit-learn's ``batch_size``, ``learning_rate_init``,
        ``momentum`` and ``alpha``

    Returns
    -------
    coefs : list of ndarray (fan_in, fan_out), views of the flat parameters
    intercepts : list of ndarray (fan_out,)
    curve : list of (0.5 * sum of squared errors, sum over batches of 0.5 * alpha * ||W||^2)
        per epoch; scikit-learn's ``loss_curve_`` entry is ``(curve[0] / n_outputs +
        curve[1]) / n``, the loss fastfnn descends ``(curve[0] + curve[1]) / n``.
    """
    X = np.ascontiguousarray(X)
    dtype = X.dtype
    Y = np.ascontiguousarray(Y, dtype=dtype).reshape(X.shape[0], -1)
    batch_size = int(min(batch_size, X.shape[0]))
    sizes = [init[0][0].shape[0]] + [W.shape[1] for W, _ in init]
    sizes, offsets, aoff, doff = _layout(sizes, batch_size)
    theta = np.empty(offsets[-1], dtype)
    for i, (W, b) in enumerate(init):
        fi, fo = W.shape
        theta[offsets[i]:offsets[i] + fi * fo] = np.asarray(W, dtype).ravel()
        theta[offsets[i] + fi * fo:offsets[i + 1]] = b
    grad = np.zeros_like(theta)
    vel = np.zeros_like(theta)
    abuf = np.empty(aoff[-1], dtype)
    dbuf = np.empty(doff[-1], dtype)
    hp = np.array([lr, momentum, alpha, batch_size], dtype)  # [3]: scratch, rows of the batch
    curve = []
    for order in orders:
        half_sq, w_sq = reference_epoch(X, Y, np.asarray(order, np.int64), sizes, offsets, theta,
                                        grad, vel, abuf, aoff, dbuf, doff, batch_size, hp)
        curve.append((half_sq, 0.5 * alpha * w_sq))
    coefs, intercepts = [], []
    for i in range(len(init)):
        fi, fo = sizes[i], sizes[i + 1]
        coefs.append(theta[offsets[i]:offsets[i] + fi * fo].reshape(fi, fo))
        intercepts.append(theta[offsets[i] + fi * fo:offsets[i + 1]])
    return coefs, intercepts, curve
