"""The model family: every hidden activation, every loss, gradient_norms_,
validation_loss_curve_ and class_weight, against independent oracles.

Oracles: central finite differences (``fastfnn.check_gradients``), torch.autograd on the same
network and weights (skipped without torch), a plain-NumPy forward/backward written here from
the formulas (not the package's twins), an SGD/Adam replay in NumPy of scikit-learn's draw order
(Glorot init, then the early-stopping split on the same RandomState), and scikit-learn's
``compute_sample_weight`` for ``class_weight``. Everything is float64 unless said otherwise.
"""

import numpy as np
import pytest
from scipy.special import erf, expit, softmax
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_sample_weight

import fastfnn
from fastfnn import FNNClassifier, FNNRegressor, check_gradients, gradcheck_cases
from fastfnn.network import Network

# Written out here, not read from the package, so that a name dropped from a registry still fails.
NEW_ACTS = ["leaky_relu", "elu", "softplus", "gelu", "silu"]
ALL_ACTS = ["identity", "logistic", "tanh", "relu"] + NEW_ACTS
NEW_LOSSES = ["huber", "absolute_error"]
REG_LOSSES = ["squared_error", "poisson"] + NEW_LOSSES
CLF_LOSSES = ["binary_log_loss", "log_loss"]
CANONICAL = {"squared_error": "identity", "poisson": "exp", "huber": "identity",
             "absolute_error": "identity", "binary_log_loss": "logistic", "log_loss": "softmax"}
N_FEATURES = 4

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---- NumPy oracle: the formulas, written independently of the package -----------------------

def _phi(z):
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def _Phi(z):
    return 0.5 * (1 + erf(z / np.sqrt(2)))


# name -> (f(z), f'(z))
NP_ACT = {
    "identity": (lambda z: z, np.ones_like),
    "logistic": (expit, lambda z: expit(z) * (1 - expit(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1, 0.01)),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            lambda z: np.where(z > 0, 1, np.exp(np.minimum(z, 0)))),
    "softplus": (lambda z: np.logaddexp(0, z), expit),
    "gelu": (lambda z: z * _Phi(z), lambda z: _Phi(z) + z * _phi(z)),
    "silu": (lambda z: z * expit(z), lambda z: expit(z) * (1 + z * (1 - expit(z)))),
    "exp": (np.exp, np.exp),
    "softmax": (lambda z: softmax(z, axis=1), None),
}


def np_forward(coefs, intercepts, X, act, out):
    """Pre-activations Z[i] and activations A[0..L] of the network."""
    A, Z = [X], []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        Z.append(A[-1] @ W + b)
        A.append(NP_ACT[act if i < len(coefs) - 1 else out][0](Z[-1]))
    return Z, A


def np_per_sample_loss(P, Y, loss):
    R = P - Y
    if loss == "squared_error":
        return 0.5 * (R ** 2).sum(1)
    if loss == "poisson":
        ylogy = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1)), 0.0)
        return (ylogy - Y * np.log(P) - Y + P).sum(1)
    if loss == "huber":
        return np.where(np.abs(R) <= 1, 0.5 * R * R, np.abs(R) - 0.5).sum(1)
    if loss == "absolute_error":
        return np.abs(R).sum(1)
    if loss == "binary_log_loss":
        return -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(1)
    return -(Y * np.log(P)).sum(1)


def np_loss_grad(coefs, intercepts, X, Y, act, loss, sw=None, alpha=0.0):
    """(data term, L2 term, dW list, db list) of ``sum s_i l_i / S + alpha/2 sum||W||^2 / S``,
    by the delta recursion with the canonical output (dl/dz^L = dl/da for identity outputs,
    a - y for the others)."""
    Z, A = np_forward(coefs, intercepts, X, act, CANONICAL[loss])
    s = np.ones(len(X)) if sw is None else sw
    S = s.sum()
    R = A[-1] - Y
    D = np.clip(R, -1, 1) if loss == "huber" else np.sign(R) if loss == "absolute_error" else R
    D = D * s[:, None]
    dW, db = [None] * len(coefs), [None] * len(coefs)
    for i in range(len(coefs) - 1, -1, -1):
        dW[i] = (A[i].T @ D + alpha * coefs[i]) / S
        db[i] = D.sum(0) / S
        if i:
            D = (D @ coefs[i].T) * NP_ACT[act][1](Z[i - 1])
    data = float(s @ np_per_sample_loss(A[-1], Y, loss) / S)
    penalty = 0.5 * alpha * sum(float((W ** 2).sum()) for W in coefs) / S
    return data, penalty, dW, db


def glorot(sizes, act, seed=0):
    """scikit-learn's initial weights: per layer W then b from U(-r, r) on RandomState(seed);
    returns (coefs, intercepts, the RandomState after the draws)."""
    rs = np.random.RandomState(seed)
    f = 2.0 if act == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        r = np.sqrt(f / (fan_in + fan_out))
        coefs.append(rs.uniform(-r, r, (fan_in, fan_out)))
        intercepts.append(rs.uniform(-r, r, fan_out))
    return coefs, intercepts, rs


# ---- problems ----------------------------------------------------------------------------------

def random_net(rng, n_hidden, n_out):
    sizes = [N_FEATURES] + [5] * n_hidden + [n_out]
    coefs = [rng.standard_normal((i, o)) / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
    intercepts = [rng.uniform(-0.5, 0.5, o) for o in sizes[1:]]
    return coefs, intercepts


def targets(rng, loss, outputs):
    """Targets for ``loss`` given the network's outputs (n, k). Huber and absolute error get
    residuals r = a - y with |r| in [0.2, 0.8] or [1.2, 2.5] (both Huber branches, no kink
    within reach of a finite-difference step)."""
    n, k = outputs.shape
    if loss == "squared_error":
        return rng.standard_normal((n, k)) + 1.0
    if loss == "poisson":
        return rng.poisson(2.0, (n, k)).astype(float)
    if loss in NEW_LOSSES:
        size = np.where(rng.uniform(size=(n, k)) < 0.5, rng.uniform(0.2, 0.8, (n, k)),
                        rng.uniform(1.2, 2.5, (n, k)))
        return outputs - size * rng.choice([-1.0, 1.0], (n, k))
    if loss == "binary_log_loss":
        return (rng.uniform(size=(n, k)) < 0.6).astype(float)
    return np.eye(k)[rng.randint(k, size=n)]


def problem(act, loss, n_hidden, n_out, seed, n=21):
    """(coefs, intercepts, X, Y, sw) for a random network; log-loss needs >= 2 outputs."""
    rng = np.random.RandomState(seed)
    n_out = max(n_out, 2) if loss == "log_loss" else n_out
    coefs, intercepts = random_net(rng, n_hidden, n_out)
    X = rng.standard_normal((n, N_FEATURES))
    _, A = np_forward(coefs, intercepts, X, act, CANONICAL[loss])
    return coefs, intercepts, X, targets(rng, loss, A[-1]), rng.uniform(0.5, 2.0, n)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def test_registries_name_the_new_members():
    assert set(ALL_ACTS) == set(fastfnn.HIDDEN_ACTIVATIONS)
    assert set(REG_LOSSES) == set(fastfnn.REGRESSION_LOSSES)
    cases = gradcheck_cases()
    assert {a for _, a, _ in cases} >= set(ALL_ACTS)
    assert {loss for loss, _, _ in cases} >= set(REG_LOSSES + CLF_LOSSES)


# ---- 1. finite differences -------------------------------------------------------------------

FD_SETTINGS = [(h, k, alpha, w) for h in (0, 1, 2) for k in (1, 3)
               for alpha, w in ((0.0, False), (0.3, True))]


@pytest.mark.parametrize("loss", REG_LOSSES + CLF_LOSSES)
@pytest.mark.parametrize("act", ALL_ACTS)
def test_finite_differences(act, loss):
    for seed, (n_hidden, n_out, alpha, weighted) in enumerate(FD_SETTINGS):
        if n_hidden == 0 and act != "tanh":
            continue  # without a hidden layer the hidden activation plays no part
        coefs, intercepts, X, Y, sw = problem(act, loss, n_hidden, n_out, seed)
        err = check_gradients((coefs, intercepts), X, Y, loss=loss, activation=act,
                              alpha=alpha, sample_weight=sw if weighted else None)
        assert err < 1e-6, (n_hidden, n_out, alpha, weighted, err)


@pytest.mark.parametrize("loss, act, out", gradcheck_cases())
def test_finite_differences_of_the_standard_cases(loss, act, out):
    coefs, intercepts, X, Y, sw = problem(act, loss, 2, 3, 7)
    if out != CANONICAL[loss]:  # squared error with a bounded/positive output: targets in range
        Y = np.random.RandomState(1).uniform(0.2, 0.8, Y.shape)
    layers = check_gradients((coefs, intercepts), X, Y, loss=loss, activation=act,
                             out_activation=out, alpha=0.1, sample_weight=sw, per_layer=True)
    assert len(layers) == 3
    assert max(max(e) for e in layers) < 1e-6


# ---- 2. torch autograd -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    yield torch
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


def torch_act(torch, name):
    F = torch.nn.functional
    return {
        "identity": lambda z: z, "logistic": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01), "elu": F.elu,
        "softplus": F.softplus, "gelu": F.gelu, "silu": F.silu, "exp": torch.exp,
        "softmax": lambda z: torch.softmax(z, dim=1),
    }[name]


def torch_loss_grad(torch, coefs, intercepts, X, Y, act, loss, sw=None, alpha=0.0):
    """(output activations, loss incl. L2, [dW], [db]) by torch.autograd."""
    F = torch.nn.functional
    W = [torch.tensor(c, requires_grad=True) for c in coefs]
    b = [torch.tensor(c, requires_grad=True) for c in intercepts]
    a = torch.tensor(X)
    for i in range(len(W)):
        z = a @ W[i] + b[i]
        if act == "softplus" and i < len(W) - 1:
            assert z.abs().max() < 15  # below torch's threshold (20): softplus is exact here
        a = torch_act(torch, act if i < len(W) - 1 else CANONICAL[loss])(z)
    y = torch.tensor(Y)
    per = {
        "squared_error": lambda: 0.5 * ((a - y) ** 2).sum(1),
        "poisson": lambda: (torch.xlogy(y, y) - torch.xlogy(y, a) - y + a).sum(1),
        "huber": lambda: F.huber_loss(a, y, reduction="none", delta=1.0).sum(1),
        "absolute_error": lambda: (a - y).abs().sum(1),
        "binary_log_loss": lambda: F.binary_cross_entropy(a, y, reduction="none").sum(1),
        "log_loss": lambda: -(y * torch.log(a)).sum(1),
    }[loss]()
    s = torch.ones(len(X)) if sw is None else torch.tensor(sw)
    value = (s * per).sum() / s.sum() + 0.5 * alpha * sum((w ** 2).sum() for w in W) / s.sum()
    value.backward()
    return (a.detach().numpy(), value.item(), [w.grad.numpy() for w in W],
            [c.grad.numpy() for c in b])


@pytest.mark.parametrize("loss", REG_LOSSES + CLF_LOSSES)
@pytest.mark.parametrize("act", ALL_ACTS)
def test_forward_and_gradients_equal_torch_autograd(torch, act, loss):
    for seed, (n_hidden, n_out, alpha, weighted) in enumerate(FD_SETTINGS):
        coefs, intercepts, X, Y, sw = problem(act, loss, n_hidden, n_out, 100 + seed, n=31)
        sw = sw if weighted else None
        net = Network([N_FEATURES] + [5] * n_hidden + [Y.shape[1]], act, CANONICAL[loss], loss,
                      np.float64)
        net.set_params(coefs, intercepts)
        out_t, value_t, dW_t, db_t = torch_loss_grad(torch, coefs, intercepts, X, Y, act, loss,
                                                     sw, alpha)
        assert rel(net.forward(X), out_t) < 1e-12
        value, grad = net.loss_grad(X, Y, sw, alpha)
        assert value == pytest.approx(value_t, rel=1e-12)
        for got, want in zip(net.coefs(grad) + net.intercepts(grad), dW_t + db_t):
            assert rel(got, want) < 1e-10, (n_hidden, n_out, alpha, weighted)
        # the NumPy oracle used by the replays below agrees with autograd as well
        data, penalty, dW, db = np_loss_grad(coefs, intercepts, X, Y, act, loss, sw, alpha)
        assert data + penalty == pytest.approx(value_t, rel=1e-12)
        assert max(rel(g, w) for g, w in zip(dW + db, dW_t + db_t)) < 1e-10


# ---- 3. one full-batch SGD step against torch ------------------------------------------------

def one_step_estimator(kind, loss, act, hidden, lr, alpha, n):
    params = dict(hidden_layer_sizes=hidden, activation=act, solver="sgd", momentum=0.0,
                  batch_size=n, shuffle=False, max_iter=1, learning_rate_init=lr,
                  alpha=alpha, random_state=0)
    return FNNRegressor(loss, **params) if kind == "reg" else FNNClassifier(**params)


def classification_data(rng, n, kind):
    X = rng.standard_normal((n, N_FEATURES))
    if kind == "binary":
        return X, np.array(["no", "yes"])[(X[:, 0] + rng.standard_normal(n) > 0).astype(int)]
    if kind == "multiclass":
        return X, np.array(["a", "b", "c"])[rng.randint(3, size=n)]
    return X, (rng.uniform(size=(n, 3)) < 0.4).astype(int)  # multilabel indicators


STEP_CASES = ([("reg", loss, act) for act in ALL_ACTS for loss in REG_LOSSES]
              + [("binary", "binary_log_loss", act) for act in ALL_ACTS]
              + [("multiclass", "log_loss", act) for act in NEW_ACTS])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind, loss, act", STEP_CASES)
def test_one_sgd_step_equals_torch(torch, kind, loss, act, weighted):
    rng = np.random.RandomState(3)
    n, hidden, lr, alpha = 40, (6, 5), 0.1, 0.05
    sw = rng.uniform(0.5, 2.0, n) if weighted else None
    if kind == "reg":
        X = rng.standard_normal((n, N_FEATURES))
        y = rng.poisson(2.0, (n, 2)).astype(float) if loss == "poisson" else \
            X[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]]) + rng.standard_normal((n, 2))
        Y = y
    else:
        X, y = classification_data(rng, n, kind)
        Y = LabelBinarizer().fit_transform(y).astype(float)
    sizes = [N_FEATURES, *hidden, Y.shape[1]]
    coefs0, intercepts0, _ = glorot(sizes, act)
    _, value_t, dW_t, db_t = torch_loss_grad(torch, coefs0, intercepts0, X, Y, act, loss, sw,
                                             alpha)
    model = one_step_estimator("reg" if kind == "reg" else "clf", loss, act, hidden, lr, alpha,
                               n)
    model.fit(X, y, sample_weight=sw)
    assert model.n_iter_ == 1 and model.loss_ == pytest.approx(value_t, rel=1e-12)
    for got, start, g in zip(model.coefs_ + model.intercepts_, coefs0 + intercepts0, dW_t + db_t):
        assert rel(got, start - lr * g) < 1e-10
    assert model.gradient_norms_.shape == (1, len(hidden) + 1)
    np.testing.assert_allclose(model.gradient_norms_[0], [np.linalg.norm(g) for g in dW_t],
                               rtol=1e-10)


# ---- 4. gradient_norms_ over several minibatches: a NumPy replay ------------------------------

class Replay:
    """scikit-learn's SGD (momentum 0) or Adam on minibatches in order (shuffle=False), in
    NumPy: records each epoch's loss and RMS over its batches of ||dW[i]||_F."""

    def __init__(self, coefs, intercepts, act, loss, solver, lr, alpha, batch_size):
        self.theta = [c.copy() for c in coefs] + [b.copy() for b in intercepts]
        self.L = len(coefs)
        self.act, self.loss, self.solver, self.lr, self.alpha = act, loss, solver, lr, alpha
        self.batch_size = batch_size
        self.restart_optimizer()

    def restart_optimizer(self):
        self.m = [np.zeros_like(p) for p in self.theta]
        self.v = [np.zeros_like(p) for p in self.theta]
        self.t = 0

    @property
    def coefs(self):
        return self.theta[: self.L]

    def epoch(self, X, Y, sw=None):
        sq, losses, rows = np.zeros(self.L), [], []
        for start in range(0, len(X), self.batch_size):
            sl = slice(start, start + self.batch_size)
            data, penalty, dW, db = np_loss_grad(self.coefs, self.theta[self.L:], X[sl], Y[sl],
                                                 self.act, self.loss,
                                                 None if sw is None else sw[sl], self.alpha)
            sq += [np.sum(g * g) for g in dW]
            losses.append(data + penalty)
            rows.append(len(X[sl]))
            self.step(dW + db)
        return np.dot(losses, rows) / len(X), np.sqrt(sq / len(rows))

    def step(self, grads):
        if self.solver == "sgd":
            for p, g in zip(self.theta, grads):
                p -= self.lr * g
            return
        self.t += 1
        b1, b2 = 0.9, 0.999
        lr_t = self.lr * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, m, v, g in zip(self.theta, self.m, self.v, grads):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr_t * m / (np.sqrt(v) + 1e-8)


REPLAY_CASES = [("reg", "squared_error", "tanh", "sgd", False),
                ("reg", "huber", "gelu", "sgd", True),
                ("reg", "absolute_error", "silu", "adam", False),
                ("reg", "poisson", "elu", "adam", True),
                ("reg", "huber", "leaky_relu", "adam", False),
                ("multiclass", "log_loss", "softplus", "sgd", True),
                ("binary", "binary_log_loss", "relu", "adam", False)]


def replay_setup(kind, loss, act, solver, weighted, n=50):
    rng = np.random.RandomState(11)
    sw = rng.uniform(0.5, 2.0, n) if weighted else None
    if kind == "reg":
        X = rng.standard_normal((n, N_FEATURES))
        y = rng.poisson(2.0, n).astype(float) if loss == "poisson" else \
            X @ [1.0, -2.0, 0.5, 0.0] + 0.5 * rng.standard_normal(n)
        Y = y.reshape(-1, 1)
        est = FNNRegressor(loss, (6, 4), act)
    else:
        X, y = classification_data(rng, n, kind)
        Y = LabelBinarizer().fit_transform(y).astype(float)
        est = FNNClassifier((6, 4), act)
    lr = 0.05 if solver == "sgd" else 0.01
    est.set_params(solver=solver, momentum=0.0, batch_size=16, shuffle=False,
                   learning_rate_init=lr, alpha=0.01, random_state=0, tol=0.0,
                   n_iter_no_change=100)
    coefs, intercepts, _ = glorot([N_FEATURES, 6, 4, Y.shape[1]], act)
    replay = Replay(coefs, intercepts, act, loss, solver, lr, 0.01, 16)
    return est, replay, X, y, Y, sw


@pytest.mark.parametrize("kind, loss, act, solver, weighted", REPLAY_CASES)
def test_gradient_norms_equal_a_replay_and_accumulate(kind, loss, act, solver, weighted):
    """Two epochs, a warm fit of two more (a new optimizer: Adam's moments restart, as in
    scikit-learn), then one partial_fit epoch (the optimizer kept)."""
    est, replay, X, y, Y, sw = replay_setup(kind, loss, act, solver, weighted)
    expected = [replay.epoch(X, Y, sw) for _ in range(2)]
    replay.restart_optimizer()
    expected += [replay.epoch(X, Y, sw) for _ in range(3)]
    est.set_params(max_iter=2, warm_start=True).fit(X, y, sample_weight=sw)
    assert est.gradient_norms_.shape == (2, 3) and est.gradient_norms_.dtype == np.float64
    first = est.gradient_norms_.copy()
    est.set_params(max_iter=2).fit(X, y, sample_weight=sw)  # warm start: two more epochs
    np.testing.assert_array_equal(est.gradient_norms_[:2], first)
    if kind == "reg":
        est.partial_fit(X, y, sample_weight=sw)
    else:
        est.partial_fit(X, y, sample_weight=sw, classes=est.classes_)
    assert est.gradient_norms_.shape == (5, 3) and len(est.loss_curve_) == 5
    np.testing.assert_allclose(est.gradient_norms_, [g for _, g in expected], rtol=1e-10)
    np.testing.assert_allclose(est.loss_curve_, [v for v, _ in expected], rtol=1e-10)
    for got, want in zip(est.coefs_, replay.coefs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    # a fresh fit starts the history afresh
    assert est.set_params(warm_start=False, max_iter=3).fit(X, y, sample_weight=sw) \
        .gradient_norms_.shape == (3, 3)


@pytest.mark.parametrize("kind, loss, act, solver, weighted", REPLAY_CASES[:4])
def test_gradient_norms_of_an_uninterrupted_fit_equal_the_replay(kind, loss, act, solver,
                                                                 weighted):
    est, replay, X, y, Y, sw = replay_setup(kind, loss, act, solver, weighted)
    expected = [replay.epoch(X, Y, sw) for _ in range(4)]
    est.set_params(max_iter=4).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(est.gradient_norms_, [g for _, g in expected], rtol=1e-10)
    np.testing.assert_allclose(est.loss_curve_, [v for v, _ in expected], rtol=1e-10)


def test_gradient_norms_unchanged_by_failed_fits():
    est, _, X, y, _, _ = replay_setup("reg", "huber", "gelu", "sgd", False)
    est.set_params(max_iter=2, warm_start=True).fit(X, y)
    before, curve = est.gradient_norms_.copy(), list(est.loss_curve_)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError):
        est.partial_fit(X_nan, y)
    with pytest.raises(ValueError, match="non-finite"):  # diverges: the fit raises at the end
        est.set_params(learning_rate_init=1e30).fit(X * 1e10, y)
    np.testing.assert_array_equal(est.gradient_norms_, before)
    assert est.loss_curve_ == curve


# ---- 5. validation_loss_curve_ ---------------------------------------------------------------

def held_out_score(kind, loss, coefs, intercepts, X, Y, act, sw):
    """The early-stopping score: R^2 for regression, accuracy for classification."""
    out = np_forward(coefs, intercepts, X, act, CANONICAL[loss])[1][-1]
    if kind == "reg":
        return r2_score(Y.ravel(), out.ravel(), sample_weight=sw)
    if kind == "binary":
        return accuracy_score(Y.ravel(), out.ravel() > 0.5, sample_weight=sw)
    return accuracy_score(Y.argmax(1), out.argmax(1), sample_weight=sw)


@pytest.mark.parametrize("kind, loss, act, solver, weighted",
                         [("reg", "huber", "gelu", "sgd", True),
                          ("reg", "absolute_error", "elu", "adam", False),
                          ("reg", "squared_error", "silu", "sgd", False),
                          ("binary", "binary_log_loss", "softplus", "sgd", True),
                          ("multiclass", "log_loss", "leaky_relu", "adam", False)])
def test_validation_loss_curve_equals_a_replay(kind, loss, act, solver, weighted):
    """The held-out rows are found as scikit-learn draws them: train_test_split on the
    RandomState that drew the initial weights (stratified for one output); each epoch is then
    replayed and its held-out loss (data term, weighted mean) computed in NumPy."""
    est, replay, X, y, Y, sw = replay_setup(kind, loss, act, solver, weighted, n=80)
    est.set_params(early_stopping=True, validation_fraction=0.25, max_iter=6)
    _, _, rs = glorot([N_FEATURES, 6, 4, Y.shape[1]], act)
    arrays = (X, Y) if sw is None else (X, Y, sw)
    parts = train_test_split(*arrays, random_state=rs, test_size=0.25,
                             stratify=Y.astype(bool) if kind == "binary" else None)
    X_tr, X_val, Y_tr, Y_val = parts[:4]
    sw_tr, sw_val = (parts[4], parts[5]) if sw is not None else (None, None)
    val_losses, val_scores, weights = [], [], []
    for _ in range(6):
        replay.epoch(X_tr, Y_tr, sw_tr)
        coefs, intercepts = replay.coefs, replay.theta[replay.L:]
        val_losses.append(np_loss_grad(coefs, intercepts, X_val, Y_val, act, loss, sw_val)[0])
        val_scores.append(held_out_score(kind, loss, coefs, intercepts, X_val, Y_val, act, sw_val))
        weights.append([w.copy() for w in coefs])
    est.fit(X, y, sample_weight=sw)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == 6
    np.testing.assert_allclose(est.validation_loss_curve_, val_losses, rtol=1e-10)
    np.testing.assert_allclose(est.validation_scores_, val_scores, rtol=1e-10)
    best = int(np.argmax(val_scores))
    for got, want in zip(est.coefs_, weights[best]):  # restored to the best epoch
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    restored = np_loss_grad(est.coefs_, est.intercepts_, X_val, Y_val, act, loss, sw_val)[0]
    assert restored == pytest.approx(est.validation_loss_curve_[best], rel=1e-10)
    # a warm fit continues the curve alongside the scores
    est.set_params(warm_start=True, max_iter=2).fit(X, y, sample_weight=sw)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == 8
    np.testing.assert_allclose(est.validation_loss_curve_[:6], val_losses, rtol=1e-10)


def test_validation_loss_curve_is_none_without_early_stopping():
    est, _, X, y, _, _ = replay_setup("reg", "huber", "gelu", "adam", False)
    assert est.set_params(max_iter=2).fit(X, y).validation_loss_curve_ is None
    clf, _, X, y, _, _ = replay_setup("multiclass", "log_loss", "silu", "sgd", False)
    assert clf.set_params(max_iter=2).fit(X, y).validation_loss_curve_ is None


# ---- 6. class_weight equals the sample weights scikit-learn computes -------------------------

CLASS_WEIGHTS = {
    "binary": [{"no": 3.0, "yes": 0.5}],
    "multiclass": [{"a": 2.0, "b": 0.5, "c": 1.5}, {"a": 4.0}],  # a class left out weighs 1
    "multilabel": [[{0: 1.0, 1: 3.0}, {0: 0.5, 1: 2.0}, {0: 2.0, 1: 1.0}]],
}


def _classifier(solver, class_weight=None):
    return FNNClassifier((5,), "silu", solver=solver, max_iter=15, batch_size=20,
                         learning_rate_init=0.05, random_state=0, class_weight=class_weight)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_class_weight_equals_computed_sample_weight(kind, solver):
    rng = np.random.RandomState(5)
    X, y = classification_data(rng, 60, kind)
    user_sw = rng.uniform(0.5, 2.0, len(X))
    for class_weight in ["balanced"] + CLASS_WEIGHTS[kind]:
        cw = compute_sample_weight(class_weight, y)
        assert np.ptp(cw) > 0  # the weights do weigh the classes differently
        for sw in (None, user_sw):
            weighted = _classifier(solver, class_weight).fit(X, y, sample_weight=sw)
            plain = _classifier(solver).fit(X, y, sample_weight=cw if sw is None else cw * sw)
            for got, want in zip(weighted.coefs_ + weighted.intercepts_,
                                 plain.coefs_ + plain.intercepts_):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
            assert weighted.loss_ == pytest.approx(plain.loss_, rel=1e-12)
    unweighted = _classifier(solver).fit(X, y)
    assert not np.allclose(unweighted.coefs_[0], weighted.coefs_[0])


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_partial_fit_with_a_class_weight_dict(kind):
    rng = np.random.RandomState(6)
    X, y = classification_data(rng, 60, kind)
    classes = np.arange(3) if kind == "multilabel" else np.unique(y)  # multilabel: columns
    # the last batch lacks a class: a class's weight is the same in every batch (scikit-learn's
    # weights of all the labels at once)
    parts = [np.arange(30), np.arange(30, 60),
             np.flatnonzero((y[:, 0] if kind == "multilabel" else y) != classes[0])[:20]]
    for class_weight in CLASS_WEIGHTS[kind]:
        weighted, plain = _classifier("adam", class_weight), _classifier("adam")
        for part in parts:
            weighted.partial_fit(X[part], y[part], classes=classes)
            plain.partial_fit(X[part], y[part], classes=classes,
                              sample_weight=compute_sample_weight(class_weight, y)[part])
        for got, want in zip(weighted.coefs_, plain.coefs_):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    balanced = _classifier("sgd", "balanced")
    with pytest.raises(ValueError, match="partial_fit"):
        balanced.partial_fit(X, y, classes=classes)
    assert not hasattr(balanced, "coefs_")
    weighted.set_params(class_weight="balanced")  # after a dict: the fitted model is kept
    before = [c.copy() for c in weighted.coefs_]
    with pytest.raises(ValueError, match="balanced"):
        weighted.partial_fit(X, y)
    for got, want in zip(weighted.coefs_, before):
        np.testing.assert_array_equal(got, want)


# ---- 7. float32 --------------------------------------------------------------------------------

@pytest.mark.parametrize("act, loss", [(a, "squared_error") for a in NEW_ACTS]
                         + [("tanh", loss) for loss in NEW_LOSSES] + [("gelu", "huber"),
                                                                      ("silu", "absolute_error")])
def test_float32_training_predicts_as_the_float64_forward(act, loss):
    rng = np.random.RandomState(8)
    X = rng.standard_normal((120, N_FEATURES))
    y = X @ [1.0, -1.0, 0.5, 2.0] + 0.3 * rng.standard_normal(120)
    model = FNNRegressor(loss, (8, 6), act, solver="adam", max_iter=20, random_state=0,
                         learning_rate_init=0.01).fit(X.astype(np.float32), y.astype(np.float32))
    assert all(c.dtype == np.float32 for c in model.coefs_ + model.intercepts_)
    assert model.gradient_norms_.shape == (20, 3) and np.isfinite(model.gradient_norms_).all()
    assert model.loss_curve_[-1] < model.loss_curve_[0]  # it trained
    pred = model.predict(X.astype(np.float32))
    assert pred.dtype == np.float32
    coefs = [c.astype(np.float64) for c in model.coefs_]
    intercepts = [b.astype(np.float64) for b in model.intercepts_]
    want = np_forward(coefs, intercepts, X.astype(np.float32).astype(np.float64), act,
                      "identity")[1][-1].ravel()
    np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("act", NEW_ACTS)
def test_float32_classifier_with_new_activations(act):
    rng = np.random.RandomState(9)
    X, y = classification_data(rng, 90, "multiclass")
    X32 = X.astype(np.float32)
    model = FNNClassifier((8,), act, max_iter=10, random_state=0).fit(X32, y)
    assert model.coefs_[0].dtype == np.float32
    proba = model.predict_proba(X32)
    want = np_forward([c.astype(np.float64) for c in model.coefs_],
                      [b.astype(np.float64) for b in model.intercepts_],
                      X32.astype(np.float64), act, "softmax")[1][-1]
    np.testing.assert_allclose(proba, want, rtol=1e-5, atol=1e-6)
