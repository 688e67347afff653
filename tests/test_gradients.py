"""Analytic gradients (the delta recursion) against independent oracles.

Oracles: central finite differences of the loss (``fastfnn.check_gradients``, and a plain-NumPy
one for the derivation's network), the derivation's hand formulas in NumPy, row duplication for
integer sample weights, and torch.autograd (skipped without torch).
"""

import numpy as np
import pytest

import fastfnn.gradcheck
from fastfnn import check_gradients
from fastfnn.gradcheck import gradients
from fastfnn.network import Network

# the cases scikit-learn and this file's references know (additions: test_model_family.py)
from cases import SKLEARN_HIDDEN_ACTS as HIDDEN_ACTS  # noqa: E402
from cases import SKLEARN_PAIRS as PAIRS  # noqa: E402
N_FEATURES, WIDTH, N_SAMPLES = 4, 5, 20
# Central differences in float64: step 1e-5 balances truncation (~h^2) against round-off
# (~1e-16 / h); relu kinks are rare at this step for the seeds used.
FD_EPS = 1e-5
FD_TOL = 1e-7


def make_problem(activation, loss, out, n_hidden, n_outputs, seed):
    """A small random network and data valid for ``loss``: (coefs, intercepts, X, Y, sw).

    Weights ~ N(0, s^2 / fan_in) with s = 3 for logistic hidden layers (whose derivative is at
    most 1/4), else 1, so no gradient block vanishes below the finite-difference noise. Targets
    are offset from the outputs' centre so that no block's gradient is near 0 by chance.
    """
    rng = np.random.RandomState(seed)
    sizes = [N_FEATURES] + [WIDTH] * n_hidden + [n_outputs]
    coefs = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        s = 3.0 if (activation == "logistic" and i < n_hidden) else 1.0
        coefs.append(s * rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in))
    intercepts = [rng.uniform(-0.5, 0.5, fan_out) for fan_out in sizes[1:]]
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    if loss == "squared_error":
        Y = rng.standard_normal((N_SAMPLES, n_outputs)) + (1.5 if out == "tanh" else 2.0)
    elif loss == "poisson":
        Y = rng.poisson(3.0, (N_SAMPLES, n_outputs)).astype(float)  # counts, zeros included
    elif loss == "binary_log_loss":
        Y = (rng.uniform(size=(N_SAMPLES, n_outputs)) < 0.85).astype(float)  # 0/1 indicators
    else:
        p = np.linspace(3, 1, n_outputs)
        Y = np.eye(n_outputs)[rng.choice(n_outputs, size=N_SAMPLES, p=p / p.sum())]  # one-hot
    sw = rng.uniform(0.5, 2.0, N_SAMPLES)
    return coefs, intercepts, X, Y, sw


def grid(n_hidden_options, n_output_options, regs):
    """pytest params over hidden activation x (loss, output) x depth x outputs x (alpha, sw).

    With no hidden layer the hidden activation plays no part, so it appears once. Softmax with
    one output is constant (log-loss 0, gradient 0), so log-loss uses 2 outputs instead of 1.
    """
    params, seed = [], 0
    for n_hidden in n_hidden_options:
        for act in HIDDEN_ACTS if n_hidden else ["identity"]:
            for loss, out in PAIRS:
                for n_out in n_output_options:
                    n_out = 2 if (loss == "log_loss" and n_out == 1) else n_out
                    for alpha, weighted in regs:
                        reg = ("L2" if alpha else "noL2") + ("-sw" if weighted else "")
                        hid = f"{n_hidden}x{act}" if n_hidden else "nohidden"
                        params.append(pytest.param(
                            act, loss, out, n_hidden, n_out, alpha, weighted, seed,
                            id=f"{hid}-{loss}+{out}-{n_out}out-{reg}"))
                        seed += 1
    return params


ALL_REGS = [(0.0, False), (0.1, False), (0.0, True), (0.1, True)]


@pytest.mark.parametrize("act, loss, out, n_hidden, n_out, alpha, weighted, seed",
                         grid([0, 1, 3], [1, 3], ALL_REGS))
def test_finite_differences_agree(act, loss, out, n_hidden, n_out, alpha, weighted, seed):
    coefs, intercepts, X, Y, sw = make_problem(act, loss, out, n_hidden, n_out, seed)
    err = check_gradients((coefs, intercepts), X, Y, eps=FD_EPS, loss=loss, activation=act,
                          out_activation=out, alpha=alpha,
                          sample_weight=sw if weighted else None)
    assert err < FD_TOL


def test_per_layer_reports_each_layer_and_leaves_the_network_alone():
    coefs, intercepts, X, Y, sw = make_problem("tanh", "squared_error", "logistic", 3, 3, 7)
    before = [a.copy() for a in coefs + intercepts]
    kw = dict(eps=FD_EPS, loss="squared_error", activation="tanh", out_activation="logistic",
              alpha=0.1, sample_weight=sw)
    per_layer = check_gradients((coefs, intercepts), X, Y, per_layer=True, **kw)
    overall = check_gradients((coefs, intercepts), X, Y, **kw)
    assert len(per_layer) == len(coefs) == 4
    for err_W, err_b in per_layer:
        assert 0 <= err_W < FD_TOL and 0 <= err_b < FD_TOL
    assert overall == max(max(e) for e in per_layer)
    for a, b in zip(coefs + intercepts, before):
        np.testing.assert_array_equal(a, b)


def test_gradients_leaves_theta_unchanged():
    coefs, intercepts, X, Y, _ = make_problem("relu", "poisson", "exp", 1, 3, 8)
    net = Network([N_FEATURES, WIDTH, 3], "relu", "exp", "poisson", np.float64)
    net.set_params(coefs, intercepts)
    theta = net.theta.copy()
    gradients(net, X, Y, alpha=0.1, eps=FD_EPS)
    np.testing.assert_array_equal(net.theta, theta)


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    """The checker is not blind: an analytic gradient off by 1% is reported (error ~ 0.5%)."""
    coefs, intercepts, X, Y, _ = make_problem("tanh", "squared_error", "identity", 1, 3, 9)
    true_loss_grad = Network.loss_grad

    def off_by_one_percent(self, *args, **kwargs):
        value, grad = true_loss_grad(self, *args, **kwargs)
        return value, grad * 1.01

    monkeypatch.setattr(fastfnn.gradcheck.Network, "loss_grad", off_by_one_percent)
    err = check_gradients((coefs, intercepts), X, Y, eps=FD_EPS, activation="tanh")
    assert 4e-3 < err < 6e-3


@pytest.mark.parametrize("loss, out", [pytest.param(*p, id="+".join(p)) for p in PAIRS])
def test_integer_sample_weights_equal_repeated_rows(loss, out):
    """A weighted mean with integer weights is the plain mean over rows repeated that often,
    L2 term included (both divide by the same total)."""
    coefs, intercepts, X, Y, _ = make_problem("tanh", loss, out, 2, 3, 10)
    reps = np.random.RandomState(0).randint(1, 4, N_SAMPLES)
    net = Network([N_FEATURES, WIDTH, WIDTH, 3], "tanh", out, loss, np.float64)
    net.set_params(coefs, intercepts)
    value_w, grad_w = net.loss_grad(X, Y, reps.astype(float), alpha=0.3)
    grad_w = grad_w.copy()
    value_r, grad_r = net.loss_grad(np.repeat(X, reps, 0), np.repeat(Y, reps, 0), alpha=0.3)
    assert value_w == pytest.approx(value_r, rel=1e-12)
    np.testing.assert_allclose(grad_w, grad_r, rtol=1e-10, atol=1e-14)


# ---- the derivation's own network ------------------------------------------------------------


def derivation_loss(coefs, intercepts, X, Y):
    """1/2 ||a^L - y||^2 averaged over the rows, logistic everywhere, plain NumPy."""
    a = X
    for W, b in zip(coefs, intercepts):
        a = 1 / (1 + np.exp(-(a @ W + b)))
    return 0.5 * ((a - Y) ** 2).sum() / X.shape[0]


def derivation_gradients(coefs, intercepts, X, Y):
    """The hand formulas, row-batch layout: delta^L = (a^L - y) a^L (1 - a^L),
    delta^l = delta^{l+1} W^T a^l (1 - a^l), dl/dW = a^T delta / n, dl/db = sum delta / n."""
    n, L = X.shape[0], len(coefs)
    a = [X]
    for W, b in zip(coefs, intercepts):
        a.append(1 / (1 + np.exp(-(a[-1] @ W + b))))
    delta = (a[L] - Y) * a[L] * (1 - a[L])
    dW, db = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        dW[l] = a[l].T @ delta / n
        db[l] = delta.sum(axis=0) / n
        if l > 0:
            delta = (delta @ coefs[l].T) * a[l] * (1 - a[l])
    return dW, db


def numpy_central_differences(coefs, intercepts, X, Y, h=FD_EPS):
    """Central differences of :func:`derivation_loss`, one parameter at a time."""
    params = [p.copy() for p in coefs + intercepts]
    L = len(coefs)
    out = []
    for p in params:
        g = np.empty_like(p)
        for i in np.ndindex(p.shape):
            x0 = p[i]
            p[i] = x0 + h
            f_plus = derivation_loss(params[:L], params[L:], X, Y)
            p[i] = x0 - h
            f_minus = derivation_loss(params[:L], params[L:], X, Y)
            p[i] = x0
            g[i] = (f_plus - f_minus) / (2 * h)
        out.append(g)
    return out[:L], out[L:]


def relative_error(a, b):
    return np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))


@pytest.mark.parametrize("n_out", [1, 3], ids=lambda k: f"{k}out")
@pytest.mark.parametrize("n_hidden", [1, 2, 3], ids=lambda h: f"{h}hidden")
def test_derivation_network_matches_hand_formulas(n_hidden, n_out):
    coefs, intercepts, X, Y, _ = make_problem("logistic", "squared_error", "logistic",
                                              n_hidden, n_out, 100 + n_hidden)
    net = Network([N_FEATURES] + [WIDTH] * n_hidden + [n_out], "logistic", "logistic",
                  "squared_error", np.float64)
    net.set_params(coefs, intercepts)
    analytic, numeric = gradients(net, X, Y, eps=FD_EPS)
    dW, db = derivation_gradients(coefs, intercepts, X, Y)
    fd_W, fd_b = numpy_central_differences(coefs, intercepts, X, Y)

    assert net.loss_grad(X, Y)[0] == pytest.approx(derivation_loss(coefs, intercepts, X, Y),
                                                   rel=1e-13)
    blocks = zip(net.coefs(analytic) + net.intercepts(analytic),
                 net.coefs(numeric) + net.intercepts(numeric), dW + db, fd_W + fd_b)
    for got, got_fd, hand, hand_fd in blocks:
        np.testing.assert_allclose(got, hand, rtol=1e-11, atol=1e-15)  # code == formulas
        assert relative_error(hand, hand_fd) < FD_TOL  # formulas == NumPy differences
        assert relative_error(got, got_fd) < FD_TOL  # code == its own differences
    assert check_gradients((coefs, intercepts), X, Y, eps=FD_EPS, activation="logistic",
                           out_activation="logistic") < FD_TOL


# ---- torch.autograd ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    """torch (the tests skip without it), on one thread: the problems are tiny and extra
    threads only contend."""
    torch = pytest.importorskip("torch")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n_threads)


def torch_loss_and_grad(torch, coefs, intercepts, X, Y, sw, alpha, act, out, loss):
    """Loss of losses.py's docstring (weighted mean + alpha/2 sum ||W||^2 / S) and its
    autograd gradient, packed as theta: [W[0].ravel(), ..., b[0], ...]."""
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    Ws = [t(W).requires_grad_() for W in coefs]
    bs = [t(b).requires_grad_() for b in intercepts]
    fns = {"identity": lambda z: z, "logistic": torch.sigmoid, "tanh": torch.tanh,
           "relu": torch.relu, "exp": torch.exp, "softmax": lambda z: torch.softmax(z, dim=1)}
    a = t(X)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        a = fns[out if i == len(Ws) - 1 else act](a @ W + b)
    y = t(Y)
    eps = float(np.finfo(np.float64).eps)
    if loss == "squared_error":
        per_sample = 0.5 * ((a - y) ** 2).sum(1)
    elif loss == "poisson":
        per_sample = (torch.xlogy(y, y) - torch.xlogy(y, a) - y + a).sum(1)
    elif loss == "binary_log_loss":
        p = a.clamp(eps, 1 - eps)
        per_sample = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum(1)
    else:
        per_sample = -(y * torch.log(a.clamp(eps, 1 - eps))).sum(1)
    s = t(sw) if sw is not None else torch.ones(X.shape[0], dtype=torch.float64)
    S = s.sum()
    value = (s * per_sample).sum() / S + 0.5 * alpha * sum((W ** 2).sum() for W in Ws) / S
    value.backward()
    grad = np.concatenate([W.grad.numpy().ravel() for W in Ws] + [b.grad.numpy() for b in bs])
    return value.item(), grad


@pytest.mark.parametrize("act, loss, out, n_hidden, n_out, alpha, weighted, seed",
                         grid([0, 1, 3], [3], ALL_REGS))
def test_gradients_equal_torch_autograd(torch, act, loss, out, n_hidden, n_out, alpha, weighted,
                                        seed):
    coefs, intercepts, X, Y, sw = make_problem(act, loss, out, n_hidden, n_out, seed)
    sw = sw if weighted else None
    want_value, want_grad = torch_loss_and_grad(torch, coefs, intercepts, X, Y, sw, alpha, act,
                                                out, loss)
    net = Network([N_FEATURES] + [WIDTH] * n_hidden + [n_out], act, out, loss, np.float64)
    net.set_params(coefs, intercepts)
    value, grad = net.loss_grad(X, Y, sw, alpha)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scale, eps, match", [(1e300, 1e-6, "overflows at these weights"),
                                               (1.0, 1e300, "smaller eps")])
def test_an_overflowing_check_is_a_clear_error_not_nan(scale, eps, match):
    """Where the loss overflows there is nothing finite to compare: a ValueError saying what to
    change, not a NaN error (which compares as neither small nor large)."""
    rng = np.random.default_rng(0)
    coefs = [rng.standard_normal((3, 4)), rng.standard_normal((4, 1))]
    intercepts = [np.zeros(4), np.zeros(1)]
    X = rng.standard_normal((20, 3)) * scale
    with pytest.raises(ValueError, match=match):
        check_gradients((coefs, intercepts), X, X[:, 0], eps=eps, activation="tanh")
