"""The network core: forward pass, minibatch loop, workspace.

Oracles: scikit-learn's MLPRegressor / MLPClassifier predictions on the same coefs_/intercepts_,
and a plain-NumPy reference of the forward pass, the loss, the backward recursion (output delta
from dl/da and the softmax Jacobian, not the canonical shortcut) and SGD/Adam steps.
Allocation on the hot path is measured with tracemalloc and numba's NRT allocation counters.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastfnn import FNNClassifier, FNNRegressor, network
from fastfnn.network import DataSource, Network
from fastfnn.optimizers import SGD, Adam

# the cases scikit-learn and this file's references know (additions: test_model_family.py)
from cases import SKLEARN_HIDDEN_ACTS as HIDDEN_ACTS  # noqa: E402
from cases import SKLEARN_PAIRS as PAIRS  # noqa: E402
PAIR_PARAMS = [pytest.param(loss, out, id=f"{loss}+{out}") for loss, out in PAIRS]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
INPUTS = [pytest.param(False, id="dense"), pytest.param(True, id="csr")]


# ---- NumPy reference ------------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# activation -> (a = f(z), f'(z) written in terms of a)
REF_ACT = {
    "identity": (lambda z: z, lambda a: np.ones_like(a)),
    "logistic": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
    "tanh": (np.tanh, lambda a: 1 - a**2),
    "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(float)),
    "exp": (np.exp, lambda a: a),
    "softmax": (_softmax, None),
}


def ref_forward(coefs, intercepts, X, act, out):
    """All layer activations [A[0] = X, ..., A[L]], in float64."""
    A = [np.asarray(X.toarray() if sp.issparse(X) else X, dtype=float)]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        A.append(REF_ACT[out if i == len(coefs) - 1 else act][0](A[-1] @ W + b))
    return A


def ref_loss_grad(coefs, intercepts, X, Y, sw, alpha, act, out, loss):
    """Weighted-mean loss + alpha/2 sum ||W||^2 / S and its gradient packed as theta."""
    A = ref_forward(coefs, intercepts, X, act, out)
    a, Y = A[-1], np.asarray(Y, dtype=float)
    s = np.ones(len(a)) if sw is None else np.asarray(sw, dtype=float)
    S = s.sum()
    if loss == "squared_error":
        per_sample, dl_da = 0.5 * ((a - Y) ** 2).sum(1), a - Y
    elif loss == "poisson":
        ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0)
        per_sample, dl_da = (ylogy - Y * np.log(a) - Y + a).sum(1), 1 - Y / a
    elif loss == "binary_log_loss":
        per_sample = -(Y * np.log(a) + (1 - Y) * np.log(1 - a)).sum(1)
        dl_da = -Y / a + (1 - Y) / (1 - a)
    else:
        per_sample, dl_da = -(Y * np.log(a)).sum(1), -Y / a
    if out == "softmax":  # Jacobian-vector product of softmax: a * (g - <a, g>)
        delta = a * (dl_da - (a * dl_da).sum(1, keepdims=True))
    else:
        delta = dl_da * REF_ACT[out][1](a)
    delta = delta * s[:, None]
    value = (s * per_sample).sum() / S + 0.5 * alpha * sum((W**2).sum() for W in coefs) / S
    dW, db = [None] * len(coefs), [None] * len(coefs)
    for i in range(len(coefs) - 1, -1, -1):
        dW[i] = (A[i].T @ delta + alpha * coefs[i]) / S
        db[i] = delta.sum(0) / S
        if i > 0:
            delta = (delta @ coefs[i].T) * REF_ACT[act][1](A[i])
    return value, pack(dW, db)


def pack(coefs, intercepts):
    return np.concatenate([W.ravel() for W in coefs] + [np.ravel(b) for b in intercepts])


def unpack(theta, sizes):
    coefs, intercepts, off = [], [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        coefs.append(theta[off: off + fan_in * fan_out].reshape(fan_in, fan_out))
        off += fan_in * fan_out
    for fan_out in sizes[1:]:
        intercepts.append(theta[off: off + fan_out])
        off += fan_out
    return coefs, intercepts


def targets(loss, rng, n, k):
    if loss == "squared_error":
        return rng.standard_normal((n, k))
    if loss == "poisson":
        return rng.poisson(2.0, (n, k)).astype(float)
    if loss == "binary_log_loss":
        return (rng.uniform(size=(n, k)) < 0.5).astype(float)
    return np.eye(k)[rng.randint(k, size=n)]


def make_net(sizes, act, out, loss, dtype=np.float64, seed=0):
    net = Network(sizes, act, out, loss, dtype)
    rng = np.random.RandomState(seed)
    coefs = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.uniform(-0.5, 0.5, b) for b in sizes[1:]]
    net.set_params(coefs, intercepts)
    return net


# ---- forward pass against scikit-learn -------------------------------------------------------


def quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def data(n=40, n_features=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_features))
    X[rng.uniform(size=X.shape) < 0.5] = 0.0  # half zeros: a real sparse pattern for CSR
    return rng, X


def sk_tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def network_like(est, loss, dtype):
    sizes = [est.coefs_[0].shape[0]] + [c.shape[1] for c in est.coefs_]
    net = Network(sizes, est.activation, est.out_activation_, loss, dtype)
    net.set_params(est.coefs_, est.intercepts_)
    return net


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_out", [1, 3], ids=lambda k: f"{k}out")
@pytest.mark.parametrize("hidden", [(), (7,), (7, 5)], ids=lambda h: f"hidden{list(h)}")
@pytest.mark.parametrize("act", HIDDEN_ACTS)
def test_forward_equals_sklearn_regressor(act, hidden, n_out, dtype, sparse):
    rng, X = data()
    X = X.astype(dtype)
    y = rng.standard_normal((len(X), n_out)).squeeze()
    reg = quiet_fit(MLPRegressor(hidden_layer_sizes=hidden, activation=act, max_iter=5,
                                 random_state=0), X, y)
    Xin = sp.csr_matrix(X) if sparse else X
    got = network_like(reg, "squared_error", dtype).forward(Xin)
    assert got.dtype == dtype and got.shape == (len(X), n_out)
    np.testing.assert_allclose(got, reg.predict(Xin).reshape(len(X), -1), **sk_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_equals_sklearn_poisson_regressor(dtype):
    rng, X = data()
    X = X.astype(dtype)
    reg = quiet_fit(MLPRegressor(loss="poisson", hidden_layer_sizes=(7,), activation="tanh",
                                 max_iter=5, random_state=0), X, rng.poisson(2.0, len(X)))
    got = network_like(reg, "poisson", dtype).forward(X)
    np.testing.assert_allclose(got[:, 0], reg.predict(X), **sk_tol(dtype))


CLASS_PROBLEMS = {
    # name -> (labels, loss); sklearn picks the output: logistic (binary, multilabel), softmax
    "binary": (lambda rng, n: rng.randint(2, size=n), "binary_log_loss"),
    "multiclass": (lambda rng, n: rng.randint(4, size=n), "log_loss"),
    "multilabel": (lambda rng, n: (rng.uniform(size=(n, 3)) < 0.5).astype(int),
                   "binary_log_loss"),
}


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", list(CLASS_PROBLEMS))
@pytest.mark.parametrize("act", HIDDEN_ACTS)
def test_forward_equals_sklearn_classifier(act, problem, dtype, sparse):
    rng, X = data()
    X = X.astype(dtype)
    make_y, loss = CLASS_PROBLEMS[problem]
    clf = quiet_fit(MLPClassifier(hidden_layer_sizes=(7, 5), activation=act, max_iter=5,
                                  random_state=0), X, make_y(rng, len(X)))
    Xin = sp.csr_matrix(X) if sparse else X
    got = network_like(clf, loss, dtype).forward(Xin)
    proba = clf.predict_proba(Xin)
    if problem == "binary":
        proba = proba[:, 1:]  # sklearn stacks [1 - p, p]; the network outputs p
    assert got.dtype == dtype
    np.testing.assert_allclose(got, proba, **sk_tol(dtype))


def test_forward_in_chunks_equals_sklearn(monkeypatch):
    """predict runs the compiled forward over chunks; a chunk size that does not divide n."""
    monkeypatch.setattr(network, "PREDICT_CHUNK", 7)
    rng, X = data(n=45)
    reg = quiet_fit(MLPRegressor(hidden_layer_sizes=(7, 5), activation="tanh", max_iter=5,
                                 random_state=0), X, rng.standard_normal((45, 2)))
    net = network_like(reg, "squared_error", np.float64)
    np.testing.assert_allclose(net.forward(X), reg.predict(X), **sk_tol(np.float64))
    np.testing.assert_allclose(net.forward(sp.csr_matrix(X)), reg.predict(X),
                               **sk_tol(np.float64))


def _copy_params(dst, src):
    dst.coefs_ = [c.copy() for c in src.coefs_]
    dst.intercepts_ = [b.copy() for b in src.intercepts_]


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("act", HIDDEN_ACTS)
def test_fnn_regressor_with_sklearn_weights_predicts_like_sklearn(act, sparse):
    rng, X = data()
    y = rng.standard_normal((len(X), 2))
    kw = dict(hidden_layer_sizes=(7, 5), activation=act, max_iter=3, random_state=0)
    reg = quiet_fit(MLPRegressor(**kw), X, y)
    fnn = quiet_fit(FNNRegressor(**kw), X, y)
    _copy_params(fnn, reg)
    Xin = sp.csr_matrix(X) if sparse else X
    np.testing.assert_allclose(fnn.predict(Xin), reg.predict(Xin), **sk_tol(np.float64))


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("problem", list(CLASS_PROBLEMS))
def test_fnn_classifier_with_sklearn_weights_predicts_like_sklearn(problem, sparse):
    rng, X = data()
    y = CLASS_PROBLEMS[problem][0](rng, len(X))
    kw = dict(hidden_layer_sizes=(7, 5), activation="relu", max_iter=3, random_state=0)
    clf = quiet_fit(MLPClassifier(**kw), X, y)
    fnn = quiet_fit(FNNClassifier(**kw), X, y)
    _copy_params(fnn, clf)
    Xin = sp.csr_matrix(X) if sparse else X
    np.testing.assert_allclose(fnn.predict_proba(Xin), clf.predict_proba(Xin),
                               **sk_tol(np.float64))
    np.testing.assert_array_equal(fnn.predict(Xin), clf.predict(Xin))


# ---- forward and gradients against the NumPy reference ----------------------------------------


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, out", PAIR_PARAMS)
@pytest.mark.parametrize("sizes", [[5, 3], [5, 6, 4, 3]], ids=["nohidden", "2hidden"])
def test_forward_equals_numpy(sizes, loss, out, dtype, sparse):
    net = make_net(sizes, "tanh", out, loss, dtype)
    _, X = data(n_features=5)
    X = X.astype(dtype)
    coefs = [c.astype(float) for c in net.coefs()]
    intercepts = [b.astype(float) for b in net.intercepts()]
    want = ref_forward(coefs, intercepts, X, "tanh", out)[-1]
    got = net.forward(sp.csr_matrix(X) if sparse else X)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **sk_tol(dtype))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss, out", PAIR_PARAMS)
@pytest.mark.parametrize("sizes", [[5, 3], [5, 6, 4, 3]], ids=["nohidden", "2hidden"])
def test_loss_grad_equals_numpy(sizes, loss, out, weighted):
    net = make_net(sizes, "logistic", out, loss)
    rng, X = data(n_features=5)
    Y = targets(loss, rng, len(X), sizes[-1])
    sw = rng.uniform(0.5, 2.0, len(X)) if weighted else None
    value, grad = net.loss_grad(X, Y, sw, alpha=0.2)
    want_value, want_grad = ref_loss_grad(net.coefs(), net.intercepts(), X, Y, sw, 0.2,
                                          "logistic", out, loss)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-13)


def test_float32_network_stays_float32():
    """float32 in, float32 through: parameters, workspace, gradient and output; values agree
    with the float64 reference to float32 precision."""
    net = make_net([5, 6, 3], "relu", "softmax", "log_loss", np.float32)
    rng, X = data(n_features=5)
    X = X.astype(np.float32)
    Y = targets("log_loss", rng, len(X), 3)
    sw = rng.uniform(0.5, 2, len(X))
    value, grad = net.loss_grad(X, Y, sw, alpha=0.1)
    work = net.workspace(len(X))
    assert all(b.dtype == np.float32 for b in (work.A, work.D, work.Y, work.sw))
    value, grad = net.loss_grad(X, Y, sw, alpha=0.1, work=work)
    assert net.theta.dtype == grad.dtype == np.float32
    assert net.forward(X).dtype == np.float32
    want_value, want_grad = ref_loss_grad([c.astype(float) for c in net.coefs()],
                                          [b.astype(float) for b in net.intercepts()], X, Y,
                                          sw, 0.1, "relu", "softmax", "log_loss")
    assert value == pytest.approx(want_value, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)


# ---- the compiled minibatch loop against NumPy training ----------------------------------------


def make_optimizer(kind, n_params, dtype, lr):
    if kind == "adam":
        return Adam(n_params, dtype, learning_rate_init=lr)
    momentum, nesterov = {"sgd": (0.0, False), "momentum": (0.9, False),
                          "nesterov": (0.9, True)}[kind]
    return SGD(n_params, dtype, lr, momentum, nesterov)


def ref_train(theta, sizes, X, Y, sw, idx, batch_size, alpha, act, out, loss, kind, lr):
    """NumPy minibatch training: batches idx[k*bs:(k+1)*bs] (the last one shorter), one
    update per batch. Returns (theta, sum of batch_loss * batch_rows, last gradient)."""
    theta = theta.astype(float).copy()
    v, m1, m2, t, acc = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta), 0, 0.0
    for start in range(0, len(idx), batch_size):
        rows = idx[start: start + batch_size]
        coefs, intercepts = unpack(theta, sizes)
        value, g = ref_loss_grad(coefs, intercepts, X[rows], Y[rows],
                                 None if sw is None else sw[rows], alpha, act, out, loss)
        acc += value * len(rows)
        if kind == "adam":
            t += 1
            m1 = 0.9 * m1 + 0.1 * g
            m2 = 0.999 * m2 + 0.001 * g**2
            theta -= lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m1 / (np.sqrt(m2) + 1e-8)
        else:
            mu = 0.0 if kind == "sgd" else 0.9
            v = mu * v - lr * g
            theta += (mu * v - lr * g) if kind == "nesterov" else v
    return theta, acc, g


def adam_steps(opt):
    return int(opt.steps[0]) if opt.name == "adam" else 0


def run_all_batches(net, X, Y, sw, idx, batch_size, alpha, opt, parts=1, threads=1):
    """All batches of ``idx`` in one compiled call; returns (loss sum, Adam steps, batches)."""
    n_batches = -(-len(idx) // batch_size)
    data = DataSource(X, net.dtype).data(Y, sw, idx)
    work = net.workspace(batch_size, parts)
    value, penalty = net.run_batches(data, work, opt.rule(), 0, n_batches, batch_size, alpha,
                                     threads)
    return value + penalty, adam_steps(opt), n_batches


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("sizes", [[5, 3], [5, 6, 4, 3]], ids=["nohidden", "2hidden"])
def test_run_batches_equals_numpy_training(sizes, kind, weighted, sparse):
    """23 rows in batches of 5 (last batch 3 rows), shuffled order, all in one compiled call."""
    loss, out = "log_loss", "softmax"
    net = make_net(sizes, "tanh", out, loss)
    rng, X = data(n=23, n_features=5)
    Y = targets(loss, rng, 23, sizes[-1])
    sw = rng.uniform(0.5, 2.0, 23) if weighted else None
    idx = rng.permutation(23).astype(np.int64)
    lr = 0.05
    want_theta, want_acc, _ = ref_train(net.theta, sizes, X, Y, sw, idx, 5, 0.01, "tanh", out,
                                        loss, kind, lr)
    opt = make_optimizer(kind, net.theta.size, net.dtype, lr)
    acc, t, n_batches = run_all_batches(net, sp.csr_matrix(X) if sparse else X, Y, sw, idx, 5,
                                        0.01, opt)
    assert n_batches == 5
    assert t == (n_batches if kind == "adam" else 0)
    assert acc == pytest.approx(want_acc, rel=1e-12)
    np.testing.assert_allclose(net.theta, want_theta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss, out", PAIR_PARAMS)
def test_last_short_batch_gradient_equals_numpy(loss, out, weighted):
    """After a full batch, the shorter last batch (21 = 2*8 + 5 rows) uses only its own rows:
    with lr = 0 the gradient buffer holds exactly the reference gradient of rows idx[16:21]."""
    sizes = [5, 6, 3]
    net = make_net(sizes, "relu", out, loss)
    rng, X = data(n=21, n_features=5)
    Y = targets(loss, rng, 21, 3)
    sw = rng.uniform(0.5, 2.0, 21) if weighted else None
    idx = rng.permutation(21).astype(np.int64)
    theta0 = net.theta.copy()
    acc, _, _ = run_all_batches(net, X, Y, sw, idx, 8, 0.1,
                                make_optimizer("sgd", net.theta.size, net.dtype, 0.0))
    np.testing.assert_array_equal(net.theta, theta0)
    last = idx[16:]
    _, want_grad = ref_loss_grad(net.coefs(), net.intercepts(), X[last], Y[last],
                                 None if sw is None else sw[last], 0.1, "relu", out, loss)
    np.testing.assert_allclose(net.grad, want_grad, rtol=1e-10, atol=1e-13)
    _, want_acc, _ = ref_train(theta0, sizes, X, Y, sw, idx, 8, 0.1, "relu", out, loss, "sgd",
                               0.0)
    assert acc == pytest.approx(want_acc, rel=1e-12)


# ---- workspace -------------------------------------------------------------------------------


def test_workspace_sizes_follow_rows_and_parts():
    """A workspace holds, per part, ceil(rows / parts) rows of A[0..L], D[0..L-1], targets and
    weights; each part beyond the first has gradient sums of its own."""
    net = make_net([5, 6, 3], "tanh", "identity", "squared_error")
    for rows, parts in ((64, 1), (65, 1), (65, 2), (7, 3)):
        work = net.workspace(rows, parts)
        per_part = -(-rows // parts)
        assert work.A.shape == (parts, per_part * (5 + 6 + 3))
        assert work.D.shape == (parts, per_part * (6 + 3))
        assert work.Y.shape == (parts, per_part * 3) and work.sw.shape == (parts, per_part)
        assert work.part_grads.shape == (parts - 1, net.theta.size)


def test_smaller_problem_reuses_workspace_and_ignores_stale_rows():
    """A 30-row gradient fills a workspace; a 7-row one then reuses it, reads only its rows."""
    net = make_net([5, 6, 4, 3], "logistic", "logistic", "binary_log_loss")
    rng, X = data(n=30, n_features=5)
    Y = targets("binary_log_loss", rng, 30, 3)
    work = net.workspace(30)
    net.loss_grad(X, Y, alpha=0.1, work=work)
    value, grad = net.loss_grad(X[:7], Y[:7], alpha=0.1, work=work)
    want_value, want_grad = ref_loss_grad(net.coefs(), net.intercepts(), X[:7], Y[:7], None,
                                          0.1, "logistic", "logistic", "binary_log_loss")
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-13)


# ---- no allocation per batch -------------------------------------------------------------------


@pytest.fixture
def nrt_stats():
    """numba's runtime allocation counter (compiled code allocates outside tracemalloc's view)."""
    from numba.core.runtime import _nrt_python as nrt

    was_enabled = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    yield nrt.memsys_get_stats_alloc
    if not was_enabled:
        nrt.memsys_disable_stats()


@pytest.mark.parametrize("sparse", INPUTS)
@pytest.mark.parametrize("kind", ["nesterov", "adam"])
@pytest.mark.parametrize("sizes", [[6, 3], [6, 16, 8, 3]], ids=["nohidden", "2hidden"])
def test_run_batches_allocates_nothing_per_batch(sizes, kind, sparse, nrt_stats):
    """Python-side peak (tracemalloc) and compiled-side allocation count (numba NRT) of one
    run_batches call are the same for 10 and for 300 batches. Batches of 64 rows make any
    batch-sized buffer (>= 64 * 9 * 8 bytes) larger than the allowed peak."""
    batch_size, n = 64, 64 * 300
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n, sizes[0]))
    Y = rng.standard_normal((n, sizes[-1]))
    sw = rng.uniform(0.5, 2.0, n)
    idx = rng.permutation(n).astype(np.int64)
    data = DataSource(sp.csr_matrix(X) if sparse else X, np.float64).data(Y, sw, idx)
    net = make_net(sizes, "tanh", "identity", "squared_error")
    opt = make_optimizer(kind, net.theta.size, net.dtype, 1e-4)
    work = net.workspace(batch_size)
    rule = opt.rule()

    def call(n_batches):
        return net.run_batches(data, work, rule, 0, n_batches, batch_size, 1e-4)

    call(2)  # warm-up: compilation and first-call caches are not the hot path
    peaks, nrt_allocs = {}, {}
    tracemalloc.start()
    try:
        call(2)  # and once traced: tracemalloc's own first-call bookkeeping is not the loop's
        for n_batches in (10, 300) * 5:  # the least of 5: per-call noise aside
            tracemalloc.reset_peak()
            current, _ = tracemalloc.get_traced_memory()
            allocs = nrt_stats()
            call(n_batches)
            nrt_allocs[n_batches] = nrt_stats() - allocs
            peak = tracemalloc.get_traced_memory()[1] - current
            peaks[n_batches] = min(peaks.get(n_batches, peak), peak)
    finally:
        tracemalloc.stop()
    assert peaks[300] < 4096 and peaks[10] < 4096, peaks
    # 290 more batches: nothing more (the noise of other threads' bookkeeping, up to about
    # 520 bytes under a parallel test run, aside; 4 bytes a batch would be 1160)
    assert peaks[300] <= peaks[10] + 1024, peaks
    assert nrt_allocs[300] == nrt_allocs[10], nrt_allocs
    assert np.isfinite(net.theta).all()


# ---- no hidden layer ---------------------------------------------------------------------------


def test_network_without_hidden_layer_trains():
    """sizes [n_features, n_outputs]: full-batch gradient descent through run_batches lowers
    the loss, and matches NumPy gradient descent step for step."""
    sizes = [5, 2]
    net = make_net(sizes, "relu", "identity", "squared_error")
    rng, X = data(n=30, n_features=5)
    Y = X @ rng.standard_normal((5, 2)) + 0.1 * rng.standard_normal((30, 2))
    idx = np.arange(30, dtype=np.int64)
    loss0 = net.loss_grad(X, Y)[0]
    want_theta, _, _ = ref_train(net.theta, sizes, X, Y, None, np.tile(idx, 20), 30, 0.0,
                                 "relu", "identity", "squared_error", "sgd", 0.1)
    opt = make_optimizer("sgd", net.theta.size, net.dtype, 0.1)
    for _ in range(20):
        run_all_batches(net, X, Y, None, idx, 30, 0.0, opt)
    np.testing.assert_allclose(net.theta, want_theta, rtol=1e-10, atol=1e-12)
    assert net.loss_grad(X, Y)[0] < 0.5 * loss0


# ---- data-parallel training ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_data_parallel_batches_equal_the_serial_loop(dtype, solver, weighted):
    """Rows of each batch split into parts give the serial loop's result (up to the order of
    additions), including a last batch shorter than the part count times 8; and the parts run
    on several threads give the same bits as on one."""
    from fastfnn.network import DataSource, Network
    from fastfnn.optimizers import make_optimizer

    rs = np.random.RandomState(3)
    n, sizes = 203, [6, 9, 7, 2]
    X = rs.standard_normal((n, sizes[0])).astype(dtype)
    Y = rs.standard_normal((n, sizes[-1])).astype(dtype)
    sw = rs.uniform(0.5, 2, n).astype(dtype) if weighted else None
    idx = rs.permutation(n).astype(np.int64)
    theta0 = rs.uniform(-0.5, 0.5, Network(sizes, "tanh", "identity", "squared_error",
                                           dtype).theta.size).astype(dtype)
    cfg = type("Cfg", (), dict(learning_rate_init=1e-2, learning_rate="constant", momentum=0.9,
                               schedule="constant", max_iter=200, nesterovs_momentum=True,
                               power_t=0.5, beta_1=0.9, beta_2=0.999,
                               epsilon=1e-8))
    results = {}
    for parts, threads in ((1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3)):
        net = Network(sizes, "tanh", "identity", "squared_error", dtype)
        net.theta[:] = theta0
        opt = make_optimizer(solver, net.theta.size, dtype, cfg)
        value, penalty = net.run_batches(DataSource(X, dtype).data(Y, sw, idx),
                                         net.workspace(50, parts), opt.rule(), 0, 5, 50, 1e-3,
                                         threads)
        results[parts, threads] = (value + penalty, net.theta.copy())
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    for (parts, threads), (loss, theta) in results.items():
        assert loss == pytest.approx(results[1, 1][0], rel=rtol)
        np.testing.assert_allclose(theta, results[1, 1][1], rtol=rtol, atol=rtol)
        assert loss == results[parts, 1][0]  # the same bits on any thread count
        np.testing.assert_array_equal(theta, results[parts, 1][1])


def test_training_in_a_forked_child_after_parallel_training(monkeypatch):
    """GNU OpenMP is not fork-safe: a child forked after data-parallel training must still train
    (fastfnn keeps forked children on one thread)."""
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", "0")  # split, whatever this machine measured
    import multiprocessing

    from fastfnn import FNNRegressor

    from fastfnn._parts import training_parts
    from fastfnn._threads import part_threads

    rs = np.random.RandomState(0)
    X, y = rs.standard_normal((600, 30)), rs.standard_normal(600)
    params = dict(hidden_layer_sizes=(128, 128), batch_size=256, max_iter=2, random_state=0)
    if part_threads(training_parts([30, 128, 128, 1], 256, np.float64)) < 2:
        pytest.skip("one core (or no thread-safe Numba layer): no data-parallel training here")
    parent = FNNRegressor(**params).fit(X, y)  # data-parallel
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child_coefs = pool.apply_async(_fit_coefs, (params, X, y)).get(timeout=60)
    for a, b in zip(child_coefs, parent.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _fit_coefs(params, X, y):
    import warnings

    from fastfnn import FNNRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FNNRegressor(**params).fit(X, y).coefs_


@pytest.mark.parametrize("dtype", DTYPES)
def test_data_parallel_with_wide_layers_and_a_one_row_last_batch(dtype):
    """Layers wide enough for the compiled small-product kernel (float64) inside the threads,
    and a last batch of one row: fewer rows than threads, so one thread has nothing to do."""
    from fastfnn.network import DataSource, Network
    from fastfnn.optimizers import SGD

    rs = np.random.RandomState(5)
    sizes, batch = [20, 32, 32, 3], 40
    n = 2 * batch + 1
    X = rs.standard_normal((n, sizes[0])).astype(dtype)
    Y = rs.standard_normal((n, sizes[-1])).astype(dtype)
    idx = np.arange(n, dtype=np.int64)
    theta0 = rs.uniform(-0.3, 0.3, Network(sizes, "relu", "identity", "squared_error",
                                           dtype).theta.size).astype(dtype)
    results = []
    for threads in (1, 2):
        net = Network(sizes, "relu", "identity", "squared_error", dtype)
        net.theta[:] = theta0
        opt = SGD(net.theta.size, dtype, 1e-2)
        value, penalty = net.run_batches(DataSource(X, dtype).data(Y, None, idx),
                                         net.workspace(batch, threads), opt.rule(), 0, 3, batch,
                                         1e-3, threads)
        results.append((value + penalty, net.theta.copy()))
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert results[1][0] == pytest.approx(results[0][0], rel=rtol)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=rtol, atol=rtol)


def test_csr_rows_with_repeated_columns_add_up():
    """A CSR matrix may hold a column twice in a row (scipy keeps duplicates until
    sum_duplicates); its value is the sum, as scikit-learn's products see it."""
    rs = np.random.RandomState(0)
    data = np.array([1.0, 2.0, 3.0, -1.0, 0.5])
    indices = np.array([0, 0, 2, 1, 1])
    indptr = np.array([0, 3, 5])
    X = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    assert not X.has_canonical_format
    net = Network([3, 4, 2], "tanh", "identity", "squared_error", np.float64)
    net.theta[:] = rs.standard_normal(net.theta.size)
    np.testing.assert_allclose(net.forward(X), net.forward(X.toarray()), rtol=1e-12)


@pytest.mark.parametrize("solver, field, bad", [("sgd", "velocity", np.zeros(3)),
                                                ("adam", "m", np.zeros(1)),
                                                ("adam", "steps", np.zeros(0, np.int64))])
def test_an_update_rule_the_step_would_index_past_is_refused(solver, field, bad):
    """The compiled step trusts its state's lengths: a state that disagrees with the network
    (set in memory; files are checked on load) is a ValueError before anything runs, and the
    model stays as it was."""
    X = np.random.RandomState(0).randn(60, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=2).fit(X, X[:, 0])
    setattr(est._optimizer, field, bad)
    before = [w.copy() for w in est.coefs_]
    with pytest.raises(ValueError, match=f"update rule's {field}"):
        est.partial_fit(X, X[:, 0])
    assert all(np.array_equal(a, b) for a, b in zip(est.coefs_, before))
