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
packing); ``coefs``/``intercepts`` are views into it. The compiled work is in ``_kernels.py``; this
module builds the named groups it takes (``Data``, ``Params``, ``Workspace``, ``Model``). A
workspace is an object of its own, made per fit or per call and passed down: the network holds no
buffers, so one fitted network can predict from several threads at once.
"""

import threading

import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from . import _compile_ahead, _notice  # noqa: F401  (a first compile: helped, announced)
from ._threads import numba_threads
from ._tuning import tile_limits
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .activations import code as act_code
from .dropout import Masks
from .losses import LOSS_CODES, check_pair, clip_eps, delta_derivative_code

PREDICT_CHUNK = 1024  # rows per compiled forward pass in predict (bounds the workspace)
# Parameters from which the update's elementwise passes run on the training threads, a share of
# the blocks per part (the speed only: fixed blocks, the same bits on any thread count). On a
# Zen 4 EPYC a parallel region costs 1.2 us, and a serial step after split parts also reads the
# other core's part gradient and hands it the new weights: shared, a (20, 64, 64, 1) network's
# batch on two threads ran 1.13x faster, (32, 64 x 8, 1) 1.21x; three 32 x 32 layers (3,200
# parameters) gained 1.04-1.21x on two threads in five measurements, against 1.05-1.12x in two
# with the step on one thread.
PARALLEL_STEP_PARAMS = 2048


def describe():
    """Lines on the training kernels' rules that do not depend on a measurement: the update's
    sweep and the first layer of CSR input (``fastfnn bench`` prints them in its header)."""
    return [
        f"update: one sweep over blocks of {K.STEP_BLOCK} parameters (gradient finished, "
        f"decay, step), on the training threads for networks of >= {PARALLEL_STEP_PARAMS} "
        "parameters when a fit trains on several (the rule; the same bits on any thread count)",
        "CSR input: the first layer's forward and weight gradient read the stored entries "
        "(O(nonzeros x width)); A[0] is never filled; SGD without momentum or L2 steps only "
        "the first-layer weights of the columns a batch stores entries in (exact); Adam and "
        "L2 update every weight each batch (their moments and decay move every weight)",
    ]


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


def available_memory():
    """Bytes this process may still allocate: MemAvailable of /proc/meminfo, or None where
    unknown (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def training_bytes(sizes, dtype, n_samples, batch_rows, stochastic):
    """Bytes a fit allocates for the network: theta, gradient and (stochastic) two optimizer
    buffers and a second part's gradient; the workspace of a batch (L-BFGS: of all rows, its
    activations, deltas and targets, which is why it needs about 2-3x the data's size)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    n_params = float(np.sum(sizes[:-1] * sizes[1:]) + np.sum(sizes[1:]))
    rows = batch_rows if stochastic else n_samples
    per_row = 2 * float(np.sum(sizes)) + float(sizes[-1]) + 1
    vectors = 5 if stochastic else 2 + 4  # theta, grad (+ state, parts) | SciPy's float64 copies
    return np.dtype(dtype).itemsize * (vectors * n_params + rows * per_row)


# Below this much a fit does not read the available memory (a file read on every fit): any
# machine that runs Python with NumPy and Numba has it.
SURELY_AVAILABLE = 64 * 2**20


def check_memory(sizes, dtype, n_samples, batch_rows, stochastic):
    """MemoryError, before anything is allocated, where a fit needs more memory than is
    available, saying how much it needs."""
    need = training_bytes(sizes, dtype, n_samples, batch_rows, stochastic)
    if need < SURELY_AVAILABLE:
        return
    have = available_memory()
    if have is not None and need > have:
        raise MemoryError(
            f"This network needs about {need / 2**30:.1f} GiB to train (parameters, gradient, "
            f"optimizer state and a batch's activations), but only {have / 2**30:.1f} GiB of "
            "memory is available. Use fewer or narrower hidden layers, float32 input, or (for "
            "'lbfgs', which holds every row's activations) solver='adam' with a smaller "
            "batch_size."
        )


def check_sparse(X):
    """ValueError where X is a CSR/CSC matrix whose index arrays are out of range or
    inconsistent: checked before anything converts it (conversions trust the indices)."""
    if sp.issparse(X) and hasattr(X, "check_format"):
        X.check_format(full_check=True)


def layer_sizes(coefs):
    """``[n_features, hidden..., n_outputs]`` of a list of W (fan_in, fan_out)."""
    return [np.shape(c)[0] for c in coefs] + [np.shape(coefs[-1])[1]]


# Rows of a chunk of predict's direct path (:func:`forward_direct`; more where the calling
# thread's buffer has grown larger): inputs of up to this many rows run on the calling thread.
DIRECT_ROWS = 256
_thread_buffers = threading.local()  # per thread: {dtype: 1-D buffer}, grown as needed
KEPT_BUFFER_BYTES = 16 << 20  # the most a thread keeps between calls (larger: the call's own)


def _thread_buffer(size, dtype):
    """An array of at least ``size`` elements of ``dtype``, owned by the calling thread (reused
    across calls: no allocation once grown; never shared between threads). Kept for the
    thread's next call up to KEPT_BUFFER_BYTES; a larger request gets a buffer of its own."""
    most = KEPT_BUFFER_BYTES // np.dtype(dtype).itemsize
    if size > most:
        return np.empty(size, dtype)
    buffers = getattr(_thread_buffers, "arrays", None)
    if buffers is None:
        buffers = _thread_buffers.arrays = {}
    buf = buffers.get(dtype)
    if buf is None or buf.shape[0] < size:
        grown = max(size, 2 * (0 if buf is None else buf.shape[0]))
        buf = buffers[dtype] = np.empty(min(grown, most), dtype)
    return buf


def forward_direct(X, coefs, intercepts, activation, out_activation, threads=1):
    """Output activations ``A[L]`` (m, n_outputs) of the dense, C-ordered rows X (m, n_features)
    through the layers ``coefs`` (W[i] (fan_in, fan_out)) and ``intercepts`` (b[i]
    (fan_out,)), in chunks of at least DIRECT_ROWS rows (as many as the calling thread's buffer
    holds), on up to ``threads`` threads (the same bits on any number); None where these arrays
    do not all share X's dtype and C order, or X holds a NaN or an infinity (the caller then
    takes the general path, which reports it). The kernels' wall for the direct path: every
    shape is checked here. The buffer is the calling thread's (:func:`_thread_buffer`: 2 *
    DIRECT_ROWS rows of the widest hidden layer a thread); nothing of the network is built or
    copied, and X reaches the kernels read-only (one compiled version for any input)."""
    dtype = X.dtype
    sizes = [X.shape[1]]
    if len(coefs) != len(intercepts):
        return None
    for W, b in zip(coefs, intercepts):
        if (W.dtype != dtype or b.dtype != dtype or W.ndim != 2 or not W.flags.c_contiguous
                or W.shape[0] != sizes[-1] or b.shape != (W.shape[1],)):
            return None
        sizes.append(W.shape[1])
    m = X.shape[0]
    rows = max(1, min(m, DIRECT_ROWS))  # (no rows: one empty chunk)
    threads = max(1, min(int(threads), -(-m // rows)))
    buf = _thread_buffer(threads * 2 * rows * max(sizes[1:-1], default=1), dtype)
    out = np.empty((m, sizes[-1]), dtype)
    layers = (out, read_only(X), tuple(coefs), tuple(intercepts), act_code(activation),
              act_code(out_activation), buf, K.EVERY_SHAPE)
    if threads == 1:
        finite = K.forward_layers_(*layers)
    else:
        with numba_threads(threads):
            finite = K.forward_layers_parallel_(*layers, threads)
    return out if finite else None


def read_only(array):
    """A view of ``array`` that cannot be written. The kernels only read the data, and Numba
    compiles a kernel once per argument type, writability included: the data reaches them
    read-only always, so that a read-only input (a memory map in read mode, as joblib hands
    its workers every array over 1 MB) runs the kernels compiled for a writable one (installed
    precompiled) instead of compiling its own (11 s for a first fit on 2 cores)."""
    view = array.view()
    view.flags.writeable = False
    return view


class DataSource:
    """Rows of X in the form the compiled gather reads: dense C-ordered, or CSR.

    ``X`` (n, n_features) dense or sparse; converted once (no copy when already right), a CSR
    matrix checked once (indices in range, pointers consistent). :meth:`data` pairs them with
    targets, weights and an order as a ``_kernels.Data``, every array but the order
    (shuffled in place) :func:`read_only`.
    """

    def __init__(self, X, dtype):
        self.dtype = np.dtype(dtype)
        if sp.issparse(X):
            check_sparse(X)  # before the conversion, which trusts the indices
            X = sp.csr_matrix(X, dtype=dtype)
            X.check_format(full_check=True)  # an index out of range would be a wild write
            self.rows = (
                read_only(np.empty((0, 0), dtype)),
                read_only(np.ascontiguousarray(X.data, dtype=dtype)),
                read_only(np.asarray(X.indices, dtype=np.int64)),
                read_only(np.asarray(X.indptr, dtype=np.int64)),
                True,
            )
        else:
            dense = np.ascontiguousarray(X, dtype=dtype)
            if dense.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {dense.shape}.")
            empty_int = read_only(np.empty(0, np.int64))
            self.rows = (read_only(dense), read_only(np.empty(0, dtype)), empty_int, empty_int,
                         False)
        self.n_samples, self.n_features = X.shape

    def data(self, Y=None, sw=None, order=None):
        """The ``_kernels.Data`` group: these rows with Y (n, n_outputs) (None: no targets,
        forward only), sample weights sw (n,) or None, and ``order`` (n,) int64 (default: the
        rows in order). Raises ValueError where the arrays disagree with the rows."""
        n, dtype = self.n_samples, self.dtype
        if Y is None:
            Y = np.empty((n, 0), dtype)
        else:
            Y = np.ascontiguousarray(Y, dtype)
            Y = Y.reshape(n, -1) if Y.ndim == 1 or (Y.ndim == 2 and Y.shape[0] == n) else Y
            if Y.ndim != 2 or Y.shape[0] != n:
                raise ValueError(f"y must have one row per sample of X ({n}), got shape "
                                 f"{np.shape(Y)}.")
        use_sw = sw is not None
        sw = np.ascontiguousarray(sw, dtype) if use_sw else np.empty(0, dtype)
        if use_sw and sw.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sw.shape}.")
        if order is None:
            order = np.arange(n, dtype=np.int64)
        elif (order.dtype != np.int64 or order.ndim != 1
              or (order.size and (order.min() < 0 or order.max() >= n))):
            raise ValueError(f"order must be int64 row numbers in [0, {n}).")
        return K.Data(*self.rows, self.n_features, read_only(Y), read_only(sw), use_sw, order)


class Network:
    """A feed-forward network: sizes, activations, loss and the flat parameters.

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
        float32 or float64; parameters, workspaces and gradients all use it.
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
        self.params = K.Params(self.theta, self.grad, self.sizes)
        self.keeps_z = ACTIVATIONS[activation].keeps_z
        self._codes = (LOSS_CODES[loss], delta_derivative_code(loss, out_activation))

    def model(self, alpha=0.0, backward=True, masks=None, max_grad_norm=None, data=None,
              parallel_step=False):
        """The ``_kernels.Model`` group: activation and loss codes, L2 ``alpha``, clip eps,
        tile limits, the dropout ``masks`` of this pass (a ``dropout.Masks``; None: none) and
        the gradient's clipping norm ``max_grad_norm`` (None: none). A forward pass alone
        (``backward=False``: prediction) needs no z kept, and takes the tile kernel for every
        layer (``EVERY_SHAPE``: a row's result then does not depend on the rows predicted
        with it). Where ``data`` (the ``_kernels.Data`` the pass runs on) holds CSR rows, the
        first layer reads them at their sparsity (``first_csr``: its products take O(stored
        entries x width), not O(n_features x width)). ``parallel_step``: the update's
        elementwise passes on Numba's threads, in fixed blocks (the same bits as on one)."""
        limits = tile_limits(self.dtype)
        if not backward:
            limits = (K.EVERY_SHAPE, *limits[1:])
        if masks is None:
            masks = Masks.none(len(self.sizes) - 1)
        elif masks.rates.shape != (len(self.sizes) - 1,) or masks.rates[-1] != 0:
            raise ValueError(f"Dropout needs one rate per layer, the output's 0; got "
                             f"{masks.rates} for {len(self.sizes) - 1} layers.")
        return K.Model(act_code(self.activation), act_code(self.out_activation),
                       self.keeps_z and backward, *self._codes, float(alpha),
                       clip_eps(self.dtype), *limits, bool(np.any(masks.rates > 0)),
                       masks.rates, masks.key, float(max_grad_norm or 0.0),
                       bool(parallel_step), False, *self._csr_fields(data))

    @staticmethod
    def _csr_fields(data):
        """``(first_csr, csr_data, csr_indices, csr_indptr, csr_order, csr_rows, csr_nnz,
        csr_positions)`` of
        ``Model``: the addresses and sizes of ``data``'s CSR arrays and order where it holds
        CSR rows (:meth:`check` guards them against the Data the kernels run on), else 0s."""
        if data is not None and data.is_sparse:
            return (True, data.X_data.ctypes.data, data.X_indices.ctypes.data,
                    data.X_indptr.ctypes.data, data.order.ctypes.data,
                    data.X_indptr.shape[0] - 1, data.X_data.shape[0], data.order.shape[0])
        return False, 0, 0, 0, 0, 0, 0, 0

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

    def workspace(self, rows, parts=1, dropout=False):
        """A ``_kernels.Workspace`` for batches of up to ``rows`` rows split into ``parts``
        parts: each part gets buffers for ceil(rows / parts) rows and, beyond the first,
        gradient sums of its own (the first sums into the network's ``grad``); with
        ``dropout``, room for the hidden outputs before their masks."""
        s, dt = self.sizes, self.dtype
        per_part = max(1, -(-rows // parts))

        def buffers(size):  # (parts, size): row p is part p's buffer
            return np.empty((parts, size), dt)

        weights = s[1:-1] * s[2:]  # W[1..L-1]: the delta recursion's D @ W[i].T
        tiled = weights[weights <= tile_limits(dt).nt]
        return K.Workspace(
            A=buffers(per_part * int(s.sum())),  # A[0..L]
            D=buffers(per_part * int(s[1:].sum())),  # D[0..L-1]
            Z=buffers(per_part * int(s[1:].sum()) if self.keeps_z or dropout else 0),
            WT=buffers(int(tiled.max(initial=0))),  # W[i].T for the tile kernel
            Y=buffers(per_part * int(s[-1])),
            sw=buffers(per_part),
            part_grads=np.empty((parts - 1, self.theta.size), dt),
            part_loss=np.zeros(parts),
            part_weight=np.zeros(parts),
            layer_sq=np.zeros(len(s) - 1),
            n_updates=np.zeros(1, np.int64),
            step_sums=np.zeros((K.n_step_blocks(s, self.theta.size), 2)),
            batch=np.zeros(3, np.int64),
            seen=np.zeros((2, int(s[0])), np.int64),
        )

    # ---- the wall before the kernels -----------------------------------------------------------

    def check(self, data, work=None, rows=0, targets=True, model=None):
        """Raise ValueError unless ``data`` (and ``work``, for ``rows`` rows a batch, and the
        ``model`` it runs) fit this network: every compiled call goes through here, so no
        kernel sees arrays whose shapes or dtypes disagree (an out-of-bounds access in
        compiled code is memory corruption, not an exception)."""
        n_features, n_outputs = int(self.sizes[0]), int(self.sizes[-1])
        if data.n_features != n_features:
            raise ValueError(f"X has {data.n_features} features, but the network takes "
                             f"{n_features}.")
        if not data.is_sparse and data.X.shape[1] != n_features:
            raise ValueError(f"X has {data.X.shape[1]} columns, but the network takes "
                             f"{n_features}.")
        if targets and data.Y.shape[1] != n_outputs:
            raise ValueError(f"y has {data.Y.shape[1]} column(s), but the network has "
                             f"{n_outputs} output(s).")
        for array in (data.X, data.X_data, data.Y, data.sw):
            if array.dtype != self.dtype:
                raise ValueError(f"Arrays must be {self.dtype} for this network, got "
                                 f"{array.dtype}.")
        if model is not None and model.first_csr and not (
                data.is_sparse and model[-8:] == self._csr_fields(data)
                and all(a.flags.c_contiguous for a in (data.X_data, data.X_indices,
                                                       data.X_indptr, data.order))
                and data.X_indices.shape == data.X_data.shape):
            raise ValueError("The model's first layer reads other rows than the data's.")
        if work is not None:
            parts = work.A.shape[0]
            per_part = -(-max(rows, 1) // parts)
            s = self.sizes
            keeps = self.keeps_z or (model is not None and model.dropping)
            if (work.A.shape[1] < per_part * int(s.sum())
                    or work.sw.shape[1] < per_part or work.A.dtype != self.dtype
                    or work.part_grads.shape != (parts - 1, self.theta.size)
                    or work.layer_sq.shape != (len(s) - 1,)
                    or work.step_sums.shape != (K.n_step_blocks(s, self.theta.size), 2)
                    or work.seen.shape != (2, int(s[0])) or work.batch.shape != (3,)
                    or work.Z.shape[1] < (per_part * int(s[1:].sum()) if keeps else 0)):
                raise ValueError("The workspace was not made by this network for "
                                 f"{rows}-row batches.")

    # ---- compute ------------------------------------------------------------------------------

    def forward(self, X, threads=1):
        """Output activations ``A[L]`` (n, n_outputs) for X (n, n_features), dense, sparse or a
        DataSource: the compiled forward pass over chunks of at most ``PREDICT_CHUNK`` rows, in
        a workspace of this call's own, the chunks on up to ``threads`` threads (the same bits
        on any number: a row's result does not depend on its chunk)."""
        source = X if isinstance(X, DataSource) else DataSource(X, self.dtype)
        n = source.n_samples
        out = np.empty((n, self.sizes[-1]), self.dtype)
        chunk = max(1, min(n, PREDICT_CHUNK))
        threads = max(1, min(int(threads), -(-n // chunk)))
        work = self.workspace(chunk * threads, threads)
        data = source.data()
        model = self.model(backward=False, data=data)
        self.check(data, work, chunk * threads, targets=False, model=model)
        if threads == 1:
            K.forward_rows_(out, work, data, self.params, model)
        else:
            with numba_threads(threads):
                K.forward_rows_parallel_(out, work, data, self.params, model)
        return out

    def loss_grad(self, X, Y, sample_weight=None, alpha=0.0, work=None, masks=None):
        """Full-batch loss and gradient: returns ``(loss, grad)``, grad (n_params,) the
        network's gradient buffer, laid out as theta.

        X (n, n_features) dense/sparse or a DataSource; Y (n, n_outputs); sample_weight (n,).
        ``work``: a workspace for all n rows (reused across calls), else one is made.
        ``masks``: dropout of the hidden layers (a ``dropout.Masks``; row r of X is row r of
        the masks' epoch), the same masks on every call.
        """
        source = X if isinstance(X, DataSource) else DataSource(X, self.dtype)
        if work is None:
            work = self.workspace(source.n_samples, dropout=masks is not None)
        return self.loss_grad_data(source.data(Y, sample_weight), work, alpha, masks=masks)

    def loss_grad_data(self, data, work, alpha=0.0, threads=1, masks=None):
        """:meth:`loss_grad` on a ``_kernels.Data`` group, all its rows one batch, in the
        workspace ``work`` (for that many rows), its parts on ``threads`` threads (the same
        bits as one). Returns ``(loss, grad)``."""
        model = self.model(alpha, masks=masks, data=data)
        self.check(data, work, data.order.shape[0], model=model)
        if threads > 1:
            value, penalty = K.loss_grad_parallel_(self.params, work, data, model)
        else:
            value, penalty = K.loss_grad_(self.params, work, data, model)
        return value + penalty, self.grad

    def check_rule(self, rule):
        """Refuse an update rule whose state the compiled step would index past: every state
        array of the network's dtype and one entry per parameter (Adam's step count: one
        int64), and a group the compiled loop knows (``_kernels.STEPS``)."""
        if type(rule) not in K.STEPS:
            raise ValueError(f"{type(rule).__name__} is not an update rule of the compiled "
                             "loop.")
        for name, array in zip(rule._fields, rule):
            if not isinstance(array, np.ndarray):
                continue
            want = ((1,), np.dtype(np.int64)) if name == "steps" else (self.theta.shape,
                                                                       self.dtype)
            if (array.shape, array.dtype) != want or not array.flags.c_contiguous:
                raise ValueError(f"The update rule's {name} has shape {array.shape} and dtype "
                                 f"{array.dtype}; this network needs {want[0]} and {want[1]}.")

    def run_batches(self, data, work, rule, first_batch, last_batch, batch_size, alpha,
                    threads=1, masks=None, max_grad_norm=None):
        """The compiled minibatch loop over batches ``first_batch..last_batch-1`` of
        ``data.order``, updating theta by ``rule`` (a group of ``_kernels.STEPS``).

        ``work`` is a workspace for ``batch_size`` rows; with ``threads`` > 1 its parts run on
        that many threads (the same bits as one). ``masks``: the epoch's dropout (a
        ``dropout.Masks``, or None); ``max_grad_norm``: each batch's gradient clipped to this
        global norm (None: not clipped). Returns ``(data, penalty)``: the sums over batches of
        the batch loss's data term and L2 term, each times the batch's rows.
        """
        groups = self.batch_groups(data, work, rule, batch_size, alpha, masks, max_grad_norm,
                                   threads)
        run = K.run_batches_parallel_ if threads > 1 else K.run_batches_
        return run(*groups, first_batch, last_batch, batch_size)

    def batch_groups(self, data, work, rule, batch_size, alpha, masks=None, max_grad_norm=None,
                     threads=1):
        """``(params, rule, work, data, model)``: the groups the compiled minibatch loop takes
        (:meth:`run_batches`), checked against this network for batches of ``batch_size``
        rows (the wall). With ``threads`` > 1 and at least ``PARALLEL_STEP_PARAMS``
        parameters, the step's elementwise passes run on Numba's threads (the same bits)."""
        model = self.model(alpha, masks=masks, max_grad_norm=max_grad_norm, data=data,
                           parallel_step=threads > 1 and self.theta.size >= PARALLEL_STEP_PARAMS)
        self.check(data, work, batch_size, model=model)
        self.check_rule(rule)
        if (model.first_csr and type(rule) is K.SGDRule and rule.momentum == 0
                and model.alpha == 0 and model.max_grad_norm == 0):
            model = model._replace(sparse_update=True)  # W[0]'s untouched rows stay as they are
        return self.params, rule, work, data, model
