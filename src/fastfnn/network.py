"""The network core: parameters, a workspace preallocated once, forward and backward.

The derivation (column vectors, ``z^l = W^l a^{l-1} + b^l``) in the code's row-batch layout, for a
batch of ``m`` rows (``i`` counts weight layers from 0; ``L`` is their number):

===================================  =========  =====================  ==========================================
symbol (derivation)                  buffer     shape                  formula in code
===================================  =========  =====================  ==========================================
a^1 = x                              ``A[0]``   (m, n_features)        the minibatch
z^l, a^l                             ``A[i+1]`` (m, fan_out_i)         ``A[i+1] = act(A[i] @ W[i] + b[i])``
delta^L = dl/dz^L                    ``D[L-1]`` (m, n_outputs)         ``(A[L] - Y) * act_out'(A[L])``; ``A[L] - Y``
                                                                       for the canonical pairs
delta^l = (W^{l+1})^T delta^{l+1}    ``D[i-1]`` (m, fan_out_{i-1})     ``(D[i] @ W[i].T) * act'(A[i])``
  * sigma'(z^l)
dl/dW^l = delta^l (a^{l-1})^T        ``dW[i]``  (fan_in, fan_out)      ``(A[i].T @ D[i] + alpha * W[i]) / S``
dl/db^l = delta^l                    ``db[i]``  (fan_out,)             ``D[i].sum(axis=0) / S``
===================================  =========  =====================  ==========================================

``S`` is the batch size (or the sum of the batch's sample weights). ``W[i]`` has shape
``(fan_in, fan_out)``: the transpose of the derivation's ``W^l``, and exactly scikit-learn's
``coefs_[i]``; so the recursion multiplies by ``W[i].T`` on the right.

The loss of a batch is ``sum_i s_i l_i / S + alpha/2 * sum_i ||W[i]||^2 / S`` (losses.py).

All parameters live in one flat vector ``theta = [W[0].ravel(), ..., b[0], ...]`` (scikit-learn's
packing); ``coefs``/``intercepts`` are views into it. The compiled work is in ``_kernels.py``.
"""

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._threads import blas_threads, limit_blas
from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .activations import code as act_code
from .losses import LOSS_CODES, check_pair, clip_eps, delta_derivative_code

PREDICT_CHUNK = 4096  # rows per compiled forward call in predict (bounds the workspace)


def init_params(sizes, activation, random_state, dtype):
    """Glorot-uniform weights, drawn exactly as scikit-learn's ``_init_coef``.

    For each layer in order: ``W = U(-r, r, (fan_in, fan_out))`` then ``b = U(-r, r, fan_out)``,
    ``r = sqrt(f / (fan_in + fan_out))``, ``f = 2`` for logistic hidden units, else 6.
    Drawn in float64, then cast to ``dtype``. Returns (coefs, intercepts) lists.
    """
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = random_state.uniform(-bound, bound, (fan_in, fan_out))
        coefs.append(W.astype(dtype, copy=False))
        intercepts.append(random_state.uniform(-bound, bound, fan_out).astype(dtype, copy=False))
    return coefs, intercepts


def layer_sizes(coefs):
    """``[n_features, hidden..., n_outputs]`` of a list of W (fan_in, fan_out)."""
    return [np.shape(c)[0] for c in coefs] + [np.shape(coefs[-1])[1]]


class DataSource:
    """Rows of X in the form the compiled gather reads: dense C-ordered, or CSR.

    ``X`` (n, n_features) dense or sparse; converted once (no copy when already right).
    """

    def __init__(self, X, dtype):
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=dtype)
            self.args = (
                np.empty((0, 0), dtype),
                np.ascontiguousarray(X.data, dtype=dtype),
                np.asarray(X.indices, dtype=np.int64),
                np.asarray(X.indptr, dtype=np.int64),
                True,
            )
        else:
            dense = np.ascontiguousarray(X, dtype=dtype)
            empty_int = np.empty(0, np.int64)
            self.args = (dense, np.empty(0, dtype), empty_int, empty_int, False)
        self.n_samples = X.shape[0]


class Network:
    """A feed-forward network: sizes, activations, loss, the flat parameters and a workspace.

    Parameters
    ----------
    sizes : sequence of int, length L+1
        ``[n_features, hidden..., n_outputs]``.
    activation : str
        Hidden activation, one of ``HIDDEN_ACTIVATIONS``.
    out_activation : str
        Output activation, one of ``OUTPUT_ACTIVATIONS``, valid for ``loss``.
    loss : str
        One of ``losses.LOSS_CODES``.
    dtype : numpy float dtype
        float32 or float64; parameters, workspace and gradients all use it.
    """

    def __init__(self, sizes, activation, out_activation, loss, dtype):
        if activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"Hidden activation must be one of {HIDDEN_ACTIVATIONS}.")
        if out_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"Output activation must be one of {OUTPUT_ACTIVATIONS}.")
        check_pair(loss, out_activation)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.activation, self.out_activation, self.loss = activation, out_activation, loss
        self.dtype = np.dtype(dtype)
        n_params = int(np.sum(self.sizes[:-1] * self.sizes[1:]) + np.sum(self.sizes[1:]))
        self.theta = np.zeros(n_params, self.dtype)
        self.grad = np.zeros(n_params, self.dtype)
        self.codes = (
            act_code(activation),
            act_code(out_activation),
            LOSS_CODES[loss],
            delta_derivative_code(loss, out_activation),
        )
        self.eps = clip_eps(self.dtype)
        self.capacity, self.n_threads, self._thread_shape = 0, 1, (1, 0)

    # ---- parameters ---------------------------------------------------------------------------

    def coefs(self, theta=None):
        """Views ``W[i]`` (fan_in, fan_out) into ``theta`` (default: the network's own)."""
        theta = self.theta if theta is None else theta
        ends = np.cumsum(self.sizes[:-1] * self.sizes[1:])
        return [theta[end - fi * fo : end].reshape(fi, fo)
                for end, fi, fo in zip(ends, self.sizes[:-1], self.sizes[1:])]

    def intercepts(self, theta=None):
        """Views ``b[i]`` (fan_out,) into ``theta`` (default: the network's own), after the W."""
        theta = self.theta if theta is None else theta
        ends = np.sum(self.sizes[:-1] * self.sizes[1:]) + np.cumsum(self.sizes[1:])
        return [theta[end - fo : end] for end, fo in zip(ends, self.sizes[1:])]

    def set_params(self, coefs, intercepts):
        """Copy lists of W (fan_in, fan_out) and b (fan_out,) into theta (checks shapes)."""
        for dst, src in zip(self.coefs() + self.intercepts(), list(coefs) + list(intercepts)):
            if dst.shape != np.shape(src):
                raise ValueError(f"Parameter of shape {np.shape(src)} where {dst.shape} is due.")
            dst[...] = src

    # ---- workspace ----------------------------------------------------------------------------

    def reserve(self, capacity, n_threads=None):
        """Allocate the batch buffers for up to ``capacity`` rows (once; reused after).

        With ``n_threads`` > 1 (training) the buffers are those of the data-parallel loop
        instead: each thread gets buffers for its share of a batch, ceil(capacity / n_threads)
        rows, and gradient sums of its own (thread 0's are the network's ``grad``). Without
        ``n_threads`` (predict, full-batch loss) the thread setting is left as it is.
        """
        if n_threads is not None:
            self.n_threads = n_threads
        if n_threads is not None and n_threads > 1:
            self._reserve_threads(-(-capacity // n_threads))
        elif capacity > self.capacity:
            s = self.sizes
            self.A_buf = np.empty(capacity * int(s.sum()), self.dtype)  # A[0..L]
            self.D_buf = np.empty(capacity * int(s[1:].sum()), self.dtype)  # D[0..L-1]
            self.Y_buf = np.empty(capacity * int(s[-1]), self.dtype)
            self.sw_buf = np.empty(capacity, self.dtype)
            self.scratch = np.empty(K.scratch_size(s, self.dtype.itemsize), self.dtype)
            self.capacity = capacity

    def _reserve_threads(self, rows):
        if (self.n_threads, rows) == self._thread_shape:
            return
        s, T = self.sizes, self.n_threads

        def per_thread(size):  # (n_threads, size): row t is thread t's buffer
            return np.empty((T, size), self.dtype)

        grads = per_thread(self.theta.size)
        grads[0] = self.grad
        self.grad = grads[0]  # thread 0 sums into the network's gradient itself
        self.thread_buffers = (
            per_thread(rows * int(s.sum())),  # A[0..L]
            per_thread(rows * int(s[1:].sum())),  # D[0..L-1]
            per_thread(rows * int(s[-1])),  # Y
            per_thread(rows),  # sample weights
            per_thread(K.scratch_size(s, self.dtype.itemsize)),
            grads,  # gradient sums
        )
        self._thread_shape = (T, rows)

    # ---- compute ------------------------------------------------------------------------------

    def forward(self, X):
        """Output activations ``A[L]`` (n, n_outputs) for X (n, n_features), dense or sparse.

        Runs the compiled forward pass over chunks of at most ``PREDICT_CHUNK`` rows, with the
        BLAS thread count of ``_threads.blas_threads``.
        """
        source = X if isinstance(X, DataSource) else DataSource(X, self.dtype)
        n = source.n_samples
        out = np.empty((n, self.sizes[-1]), self.dtype)
        chunk = max(1, min(n, PREDICT_CHUNK))
        self.reserve(chunk)
        idx = np.arange(n, dtype=np.int64)
        no_y = np.empty((n, 0), self.dtype)  # forward only: no targets to gather
        hidden, out_code = self.codes[0], self.codes[1]
        with limit_blas(blas_threads(self.sizes, chunk)):
            self._forward_chunks(source, idx, no_y, out, chunk, hidden, out_code)
        return out

    def _forward_chunks(self, source, idx, no_y, out, chunk, hidden, out_code):
        n = source.n_samples
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            m = stop - start
            A0 = self.A_buf[: m * self.sizes[0]].reshape(m, self.sizes[0])
            K.gather_batch_(*source.args, no_y, self.sw_buf, False, idx, start, stop, A0,
                            no_y[:m], self.sw_buf)
            K.forward_(self.theta, self.sizes, self.A_buf, m, hidden, out_code, self.scratch)
            out[start:stop] = K.layer_view(self.A_buf, self.sizes, m, len(self.sizes) - 1)

    def loss_grad(self, X, Y, sample_weight=None, alpha=0.0):
        """Full-batch loss and gradient: returns ``(loss, grad)``, grad (n_params,) a view of
        the network's gradient buffer, laid out as theta.

        X (n, n_features) dense/sparse or a DataSource; Y (n, n_outputs); sample_weight (n,).
        """
        source = X if isinstance(X, DataSource) else DataSource(X, self.dtype)
        n = source.n_samples
        Y = np.ascontiguousarray(Y, dtype=self.dtype).reshape(n, -1)
        use_sw = sample_weight is not None
        sw = np.ascontiguousarray(sample_weight, self.dtype) if use_sw else np.empty(0, self.dtype)
        self.reserve(n)
        idx = np.arange(n, dtype=np.int64)
        A0 = self.A_buf[: n * self.sizes[0]].reshape(n, self.sizes[0])
        Y_b = self.Y_buf[: n * self.sizes[-1]].reshape(n, -1)
        K.gather_batch_(*source.args, Y, sw, use_sw, idx, 0, n, A0, Y_b, self.sw_buf)
        hidden, out, loss, deriv = self.codes
        data, penalty = K.loss_grad_(self.theta, self.grad, self.sizes, self.A_buf, self.D_buf,
                                     Y_b, self.sw_buf[:n], use_sw, n, hidden, out, loss, deriv,
                                     float(alpha), self.eps, self.scratch)
        return data + penalty, self.grad

    def run_batches(self, source, Y, sw, idx, first_batch, last_batch, batch_size, alpha,
                    solver, state_1, state_2, hyper, adam_t):
        """Compiled minibatch loop over batches ``first_batch..last_batch-1`` of order ``idx``.

        Y (n, n_outputs) and sw (n,) or None are C-contiguous in the network's dtype. Runs
        ``_kernels.run_batches_``, or its data-parallel twin when the workspace was reserved
        for several threads. Returns ``(data, penalty, adam_t)``: the sums over batches of the
        batch loss's data term and L2 term, each times the batch's rows.
        """
        use_sw = sw is not None
        sw = sw if use_sw else np.empty(0, self.dtype)
        hidden, out, loss, deriv = self.codes
        head = (*source.args, Y, sw, use_sw, idx, first_batch, last_batch, batch_size,
                self.theta, self.grad, self.sizes)
        tail = (hidden, out, loss, deriv, float(alpha), self.eps,
                solver, state_1, state_2, hyper, adam_t)
        if self.n_threads > 1:
            return K.run_batches_parallel_(*head, *self.thread_buffers, *tail)
        return K.run_batches_(*head, self.A_buf, self.D_buf, self.Y_buf, self.sw_buf,
                              self.scratch, *tail)
