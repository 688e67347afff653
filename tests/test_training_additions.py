"""What fastfnn trains beyond scikit-learn's MLP: 'adamw', the 'cosine' schedule, gradient
clipping, dropout, a given validation set and early stopping on other scores.

Oracles: a NumPy reference of full-batch training (shuffle=False) written from the update
rules' equations; PyTorch (AdamW with per-group decay, CosineAnnealingLR, clip_grad_norm_) where
its conventions coincide; the dropped network's loss and gradient from the masks' NumPy twin
and central differences with the masks held fixed; the estimators' own ``score`` and
scikit-learn's metrics on the given validation rows. The defaults stay scikit-learn's bits
(the parity tests); here, each addition switched off is today's bits.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, log_loss
from sklearn.utils.class_weight import compute_class_weight

import fastfnn.trainer
from fastfnn import FNNClassifier, FNNRegressor, check_gradients, load_model, save_model
from fastfnn.dropout import draw_seed, dropout_mask, masks
from fastfnn.network import Network, init_params

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

HIDDEN = (8, 6)


def data(n=80, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


# ---- the NumPy reference: full batch, tanh hidden layers, identity output, squared error -------


def reference_fit(X, y, *, solver, alpha, lr0, max_iter, schedule="constant",
                  max_grad_norm=None, beta_1=0.9, beta_2=0.999, epsilon=1e-8, momentum=0.9,
                  seed=0):
    """Weights after ``max_iter`` full-batch epochs, from the equations: loss ``1/(2n) sum
    ||a - y||^2 (+ alpha/(2n) sum ||W||^2)``, clipping ``g *= min(1, c / (||g|| + 1e-6))``,
    AdamW's ``W *= 1 - lr alpha`` before Adam's step, cosine ``lr0 (1 + cos(pi e / T)) / 2``.
    ``alpha``: a number, or one per epoch."""
    alphas = np.broadcast_to(alpha, (max_iter,))
    n, sizes = len(X), [X.shape[1], *HIDDEN, 1]
    W, b = init_params(sizes, "tanh", np.random.RandomState(seed), np.float64)
    params = W + b
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    Y = y[:, None]
    L = len(W)
    for e in range(max_iter):
        alpha = alphas[e]
        l2 = 0.0 if solver == "adamw" else alpha
        lr = lr0 * (1 + np.cos(np.pi * e / max_iter)) / 2 if schedule == "cosine" else lr0
        A = [X]
        for i in range(L):
            z = A[-1] @ W[i] + b[i]
            A.append(np.tanh(z) if i < L - 1 else z)
        D = A[-1] - Y
        gW, gb = [None] * L, [None] * L
        for i in range(L - 1, -1, -1):
            gW[i] = (A[i].T @ D + l2 * W[i]) / n
            gb[i] = D.sum(axis=0) / n
            if i:
                D = (D @ W[i].T) * (1 - A[i] ** 2)
        grads = gW + gb
        if max_grad_norm is not None:
            norm = np.sqrt(sum(np.sum(g * g) for g in grads))
            grads = [g * min(1.0, max_grad_norm / (norm + 1e-6)) for g in grads]
        if solver == "adamw":
            for w in W:
                w *= 1 - lr * alpha
        for k, (p, g) in enumerate(zip(params, grads)):
            if solver == "sgd":
                m[k] = momentum * m[k] - lr * g
                p += momentum * m[k] - lr * g
            else:
                m[k] = beta_1 * m[k] + (1 - beta_1) * g
                v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
                t = e + 1
                p -= (lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)) * m[k] / (np.sqrt(v[k])
                                                                            + epsilon)
    return W + b


def full_batch(**params):
    """An FNNRegressor training full batches ('auto': min(200, n)) in order, never stopping
    early."""
    base = dict(hidden_layer_sizes=HIDDEN, activation="tanh", shuffle=False,
                tol=0.0, n_iter_no_change=10**6, random_state=0)
    return FNNRegressor(**{**base, **params})


@pytest.mark.parametrize("case", [
    dict(solver="adamw", alpha=0.3, lr0=0.01),
    dict(solver="adamw", alpha=0.3, lr0=0.01, schedule="cosine", max_grad_norm=0.05),
    dict(solver="adam", alpha=0.01, lr0=0.02, schedule="cosine"),
    dict(solver="sgd", alpha=0.01, lr0=0.05, schedule="cosine", max_grad_norm=0.1),
], ids=["adamw", "adamw+cosine+clip", "adam+cosine", "sgd+cosine+clip"])
def test_trajectories_follow_the_numpy_reference(case):
    X, y = data()
    max_iter = 25
    est = full_batch(solver=case["solver"], alpha=case["alpha"],
                     learning_rate_init=case["lr0"], max_iter=max_iter,
                     learning_rate=case.get("schedule", "constant"),
                     max_grad_norm=case.get("max_grad_norm")).fit(X, y)
    want = reference_fit(X, y, max_iter=max_iter, **case)
    assert est.n_iter_ == max_iter
    for got, ref in zip(est.coefs_ + est.intercepts_, want):
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_clipping_bites_and_gradient_norms_are_before_it():
    """A tight clip changes the trajectory; ``gradient_norms_`` still reports the norms the
    gradient had before clipping (the first epoch's equal the unclipped fit's)."""
    X, y = data()
    free = full_batch(solver="adam", max_iter=3).fit(X, y)
    clipped = full_batch(solver="adam", max_iter=3, max_grad_norm=1e-3).fit(X, y)
    np.testing.assert_allclose(clipped.gradient_norms_[0], free.gradient_norms_[0], rtol=1e-12)
    assert clipped.gradient_norms_[0].max() > 1e-2  # so the clip to 1e-3 did bite
    assert not np.allclose(clipped.coefs_[0], free.coefs_[0], rtol=1e-6)


def test_adamw_without_decay_is_adam_to_the_bit():
    X, y = data()
    for params in (dict(), dict(learning_rate="cosine"), dict(dropout=0.2)):
        adam = FNNRegressor(hidden_layer_sizes=HIDDEN, alpha=0.0, max_iter=4, random_state=1,
                            **params).fit(X, y)
        adamw = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="adamw", alpha=0.0, max_iter=4,
                             random_state=1, **params).fit(X, y)
        for a, b in zip(adam.coefs_ + adam.intercepts_, adamw.coefs_ + adamw.intercepts_):
            np.testing.assert_array_equal(a, b)
        assert adam.loss_curve_ == adamw.loss_curve_


def test_adamw_decay_is_not_in_the_loss():
    """With 'adamw', alpha is a decay outside the loss: the first epoch's loss is the data term
    of the initial weights alone (their L2 term would add more than 1%), and check_gradients
    differentiates the data term."""
    X, y = data()
    est = full_batch(solver="adamw", alpha=5.0, max_iter=3).fit(X, y)
    W, _ = init_params([X.shape[1], *HIDDEN, 1], "tanh", np.random.RandomState(0), np.float64)
    data_term = reference_loss_of_first_epoch(X, y)
    assert 2.5 * sum(np.sum(w * w) for w in W) / len(X) > 0.01 * data_term
    assert est.loss_curve_[0] == pytest.approx(data_term, rel=1e-12)
    assert check_gradients(est, X[:40], y[:40]) < 1e-6


def reference_loss_of_first_epoch(X, y):
    """The data term at the initial weights (seed 0): the first epoch's full-batch loss."""
    sizes = [X.shape[1], *HIDDEN, 1]
    W, b = init_params(sizes, "tanh", np.random.RandomState(0), np.float64)
    a = X
    for i in range(len(W)):
        a = a @ W[i] + b[i]
        a = np.tanh(a) if i < len(W) - 1 else a
    return 0.5 * np.sum((a[:, 0] - y) ** 2) / len(X)


def test_adamw_cosine_and_clipping_match_pytorch():
    torch = pytest.importorskip("torch")
    X, y = data()
    n, max_iter, lr0, alpha, clip = len(X), 20, 0.01, 0.5, 0.05
    est = full_batch(solver="adamw", alpha=alpha, learning_rate_init=lr0, max_iter=max_iter,
                     learning_rate="cosine", max_grad_norm=clip, epsilon=1e-30).fit(X, y)
    W, b = init_params([X.shape[1], *HIDDEN, 1], "tanh", np.random.RandomState(0), np.float64)
    Wt = [torch.tensor(w, requires_grad=True) for w in W]
    bt = [torch.tensor(c, requires_grad=True) for c in b]
    opt = torch.optim.AdamW([{"params": Wt, "weight_decay": alpha},
                             {"params": bt, "weight_decay": 0.0}], lr=lr0, eps=1e-30)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_iter, eta_min=0.0)
    Xt, Yt = torch.tensor(X), torch.tensor(y[:, None])
    for _ in range(max_iter):
        opt.zero_grad()
        a = Xt
        for i in range(len(Wt)):
            a = a @ Wt[i] + bt[i]
            a = torch.tanh(a) if i < len(Wt) - 1 else a
        loss = 0.5 * ((a - Yt) ** 2).sum() / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(Wt + bt, clip)
        opt.step()
        sched.step()
    for got, ref in zip(est.coefs_ + est.intercepts_, Wt + bt):
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("solver", ["sgd", "adamw"])
def test_cosine_in_partial_fit_counts_the_models_epochs(solver, tmp_path):
    """partial_fit call k (0-based) takes the rate of epoch k, the epochs the model has
    trained before it (``len(loss_curve_)``): max_iter calls make one cosine cycle, as
    max_iter epochs of fit do. At the horizon the rate is 0, and the model still saves,
    loads and goes on as the one in memory."""
    X, y = data()
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, solver=solver, learning_rate="cosine",
                       learning_rate_init=0.05, max_iter=4, random_state=0)
    for k in range(5):
        est.partial_fit(X, y)
        assert est._optimizer.rate == pytest.approx(
            0.05 * (1 + np.cos(np.pi * k / 4)) / 2, rel=1e-15, abs=1e-18)
    assert est._optimizer.rate == 0.0
    save_model(est, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    for model in (est, loaded):
        model.partial_fit(X, y)
    for got, want in zip(loaded.coefs_, est.coefs_):
        np.testing.assert_array_equal(got, want)


def test_partial_fit_reads_alpha_afresh_and_keeps_its_first_calls_schedule():
    """Between partial_fit calls, a new alpha takes effect at the next call, for 'adamw' (its
    decay) as for the L2 rules; the learning rate, the schedule and cosine's horizon stay
    those of the first call (the NumPy reference: one full-batch epoch per call)."""
    X, y = data()
    adamw = full_batch(solver="adamw", alpha=0.3, learning_rate_init=0.01)
    cosine = full_batch(solver="sgd", alpha=0.01, learning_rate="cosine",
                        learning_rate_init=0.05, max_iter=6)
    for epoch in range(6):
        if epoch == 3:
            adamw.set_params(alpha=2.0)
            cosine.set_params(learning_rate_init=0.5, max_iter=100, learning_rate="constant")
        adamw.partial_fit(X, y)
        cosine.partial_fit(X, y)
    wants = [reference_fit(X, y, solver="adamw", alpha=[0.3] * 3 + [2.0] * 3, lr0=0.01,
                           max_iter=6),
             reference_fit(X, y, solver="sgd", alpha=0.01, lr0=0.05, max_iter=6,
                           schedule="cosine")]
    for est, want in zip((adamw, cosine), wants):
        for got, ref in zip(est.coefs_ + est.intercepts_, want):
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


# ---- dropout -----------------------------------------------------------------------------------


ACTIVATIONS = ["relu", "tanh", "gelu"]  # the fused relu path, an a-derivative, a z-derivative


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_dropped_loss_and_gradient_match_the_numpy_twin(activation, sparse):
    """The compiled pass with masks: its loss equals the NumPy network with the twin's masks,
    and its gradient equals central differences with the masks held fixed."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 7))
    if sparse:
        X[rng.random(X.shape) < 0.6] = 0
    Y = rng.standard_normal((40, 2))
    net = Network([7, 16, 12, 2], activation, "identity", "squared_error", np.float64)
    net.theta[:] = 0.4 * rng.standard_normal(net.theta.size)
    dropped = masks((0.3, 0.5), seed=123, epoch=4)
    Xin = sp.csr_matrix(X) if sparse else X
    loss, grad = net.loss_grad(Xin, Y, alpha=0.1, masks=dropped)
    grad = grad.copy()
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
           "gelu": lambda z: z * 0.5 * (1 + __import__("scipy").special.erf(z / np.sqrt(2)))}
    a = X
    W, b = net.coefs(), net.intercepts()
    for i in range(2):
        a = act[activation](a @ W[i] + b[i])
        keep = dropout_mask(dropped.key, i, 0, 40, a.shape[1], dropped.rates[i])
        a = np.where(keep, a / (1 - dropped.rates[i]), 0.0)
    out = a @ W[2] + b[2]
    want = 0.5 * np.sum((out - Y) ** 2) / 40 + 0.05 * sum(np.sum(w * w) for w in W) / 40
    assert loss == pytest.approx(want, rel=1e-12)
    assert check_gradients((W, b), X, Y, activation=activation, alpha=0.1,
                           dropout=(0.3, 0.5)) < 1e-6
    fd = np.empty(12)
    for k, p in enumerate(range(0, net.theta.size, net.theta.size // 12)[:12]):
        th = net.theta[p]
        net.theta[p] = th + 1e-6
        up, _ = net.loss_grad(Xin, Y, alpha=0.1, masks=dropped)
        net.theta[p] = th - 1e-6
        down, _ = net.loss_grad(Xin, Y, alpha=0.1, masks=dropped)
        net.theta[p] = th
        fd[k] = (up - down) / 2e-6
        assert fd[k] == pytest.approx(grad[p], rel=1e-5, abs=1e-8)


def test_masks_drop_at_their_rate_and_differ_by_layer_row_and_epoch():
    k0 = masks((0.25, 0.25), seed=7, epoch=0).key
    k1 = masks((0.25, 0.25), seed=7, epoch=1).key
    m = dropout_mask(k0, 0, 0, 400, 100, 0.25)
    # 40,000 Bernoulli(0.75) draws: within 5 standard deviations of the mean
    assert abs(m.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / m.size)
    assert abs(m.mean(axis=0) - 0.75).max() < 0.12  # no unit stuck
    for other in (dropout_mask(k0, 1, 0, 400, 100, 0.25), dropout_mask(k1, 0, 0, 400, 100, 0.25),
                  dropout_mask(k0, 0, 1, 400, 100, 0.25)):
        agree = np.mean(other == m)
        assert abs(agree - (0.75**2 + 0.25**2)) < 0.02  # independent masks agree by chance only
    np.testing.assert_array_equal(dropout_mask(k0, 0, 100, 300, 100, 0.25), m[100:])


def test_mask_units_are_independent():
    """Joint patterns of 8 neighbouring units (p = 0.5: each of the 256 patterns equally
    likely) by a chi-square test, and every pair of units uncorrelated: one cheap round of
    mixing per unit leaves no structure along a row's Weyl sequence."""
    from scipy.stats import chi2

    key = masks((0.5,), seed=11, epoch=3).key
    m = dropout_mask(key, 0, 0, 20000, 64, 0.5).astype(np.int64)  # (rows, units)
    codes = (m.reshape(-1, 8, 8) << np.arange(8)).sum(axis=2).ravel()  # 8 adjacent units
    counts = np.bincount(codes, minlength=256)
    expected = codes.size / 256
    assert chi2.sf(((counts - expected) ** 2 / expected).sum(), 255) > 1e-4
    corr = np.corrcoef(m, rowvar=False)[~np.eye(64, dtype=bool)]
    assert np.abs(corr).max() < 5 / np.sqrt(len(m))


def test_dropout_fit_records_the_dropped_loss_and_predicts_with_the_whole_network():
    """loss_curve_[0] is the dropped network's full-batch loss at the initial weights (the
    masks of the seed drawn after the initial weights, epoch 0); predict uses no mask."""
    X, y = data()
    est = full_batch(solver="adam", alpha=0.0, dropout=(0.5, 0.2), max_iter=2).fit(X, y)
    rs = np.random.RandomState(0)
    W, b = init_params([X.shape[1], *HIDDEN, 1], "tanh", rs, np.float64)
    dropped = masks((0.5, 0.2), draw_seed(rs), 0)
    a = X
    for i in range(2):
        a = np.tanh(a @ W[i] + b[i])
        keep = dropout_mask(dropped.key, i, 0, len(X), a.shape[1], dropped.rates[i])
        a = np.where(keep, a / (1 - dropped.rates[i]), 0.0)
    out = (a @ W[2] + b[2])[:, 0]
    assert est.loss_curve_[0] == pytest.approx(0.5 * np.mean((out - y) ** 2), rel=1e-12)
    a = X
    for i, (w, c) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ w + c
        a = np.tanh(a) if i < 2 else a
    np.testing.assert_allclose(est.predict(X), a[:, 0], rtol=1e-12)
    assert check_gradients(est, X[:30], y[:30], dropout=True) < 1e-6


@pytest.mark.parametrize("solver", ["sgd", "adamw"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_additions_give_the_same_bits_on_any_split_and_thread_count(monkeypatch, solver,
                                                                   dtype):
    """Dropout masks, clipping and the schedule do not depend on how many threads run the
    parts of a batch (the parts themselves are fixed by the problem, as without them)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20)).astype(dtype)
    y = (X[:, 0] - X[:, 1] * X[:, 2]).astype(dtype)
    params = dict(hidden_layer_sizes=(64, 32), solver=solver, dropout=(0.3, 0.1),
                  max_grad_norm=0.5, learning_rate="cosine", batch_size=64, max_iter=3,
                  random_state=0)
    results = []
    for parts, threads in ((3, 1), (3, 2), (3, 3)):
        monkeypatch.setattr(fastfnn.trainer, "training_parts", lambda *a, p=parts: p)
        monkeypatch.setattr(fastfnn.trainer, "training_threads", lambda *a, t=threads: t)
        est = FNNRegressor(**params).fit(X, y)
        results.append(est.coefs_ + est.intercepts_ + [np.array(est.loss_curve_)])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_dropout_rates_are_checked():
    X, y = data(n=30)
    with pytest.raises(ValueError, match="lbfgs"):
        FNNRegressor(hidden_layer_sizes=(4,), solver="lbfgs", dropout=0.1).fit(X, y)
    with pytest.raises(ValueError, match="one rate per hidden layer"):
        FNNRegressor(hidden_layer_sizes=(4, 4), dropout=(0.1,)).fit(X, y)
    with pytest.raises(ValueError):
        FNNRegressor(hidden_layer_sizes=(4,), dropout=1.0).fit(X, y)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FNNRegressor(hidden_layer_sizes=(4, 4), dropout=(0.1, 1.5)).fit(X, y)


# ---- a given validation set, early stopping on other scores ----------------------------------


def test_given_validation_rows_replace_the_split():
    X, y = data(n=120)
    X_val, y_val = data(n=40, seed=5)
    est = FNNRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                       random_state=0).fit(X, y, X_val=X_val, y_val=y_val)
    assert est.t_ == est.n_iter_ * len(X)  # every training row trained
    assert est.best_validation_score_ == pytest.approx(est.score(X_val, y_val), rel=1e-12)
    assert max(est.validation_scores_) == est.best_validation_score_
    clf_X, clf_y = X, (y > 0).astype(int)
    clf = FNNClassifier(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                        random_state=0).fit(clf_X, clf_y, X_val=X_val,
                                            y_val=(y_val > 0).astype(int))
    assert clf.best_validation_score_ == clf.score(X_val, (y_val > 0).astype(int))


def test_given_validation_rows_take_the_targets_of_the_fit_under_way():
    """Validation rows are checked against the fit's own targets (the number of outputs of
    this y), not against the model's earlier fit or its absence."""
    X, y = data(n=120)
    Y = np.c_[y, -y]
    X_val, y_val = data(n=40, seed=5)
    Y_val = np.c_[y_val, -y_val]
    est = FNNRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=5,
                       random_state=0).fit(X, Y, X_val=X_val, y_val=Y_val)
    assert est.n_outputs_ == 2
    assert est.best_validation_score_ == pytest.approx(est.score(X_val, Y_val), rel=1e-12)
    est.fit(X, y, X_val=X_val, y_val=y_val[:, None])  # a one-column y_val for a 1-D y
    assert est.n_outputs_ == 1
    before = [w.copy() for w in est.coefs_]
    with pytest.raises(ValueError, match="y_val .* 2 target column"):
        est.fit(X, y, X_val=X_val, y_val=Y_val)
    for a, b in zip(before, est.coefs_):
        np.testing.assert_array_equal(a, b)


def test_given_validation_rows_need_their_targets_and_early_stopping():
    X, y = data(n=40)
    est = FNNRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    before = [w.copy() for w in est.coefs_]
    with pytest.raises(ValueError, match="without y_val"):
        est.set_params(early_stopping=True).fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="early_stopping=True"):
        est.set_params(early_stopping=False).fit(X, y, X_val=X, y_val=y)
    with pytest.raises(ValueError, match="X_val does not fit .* 3 features"):
        est.set_params(early_stopping=True).fit(X, y, X_val=X[:, :3], y_val=y)
    with pytest.raises(ValueError, match="X_val: Input X contains NaN"):
        est.fit(X, y, X_val=np.where(X > 1, np.nan, X), y_val=y)
    with pytest.raises(ValueError, match=r"\(sample_weight_val\) sum to 0\.0"):
        est.fit(X, y, X_val=X, y_val=y, sample_weight_val=np.r_[1.0, -1.0, np.zeros(38)])
    with pytest.raises(ValueError, match="sample_weight_val: .*non-zero"):
        est.fit(X, y, X_val=X, y_val=y, sample_weight_val=np.zeros(len(y)))
    with pytest.raises(ValueError, match="solver='lbfgs' does not stop early"):
        est.set_params(solver="lbfgs").fit(X, y, X_val=X, y_val=y)
    for a, b in zip(before, est.coefs_):
        np.testing.assert_array_equal(a, b)  # a refused fit leaves the model as it was


def test_given_validation_targets_are_checked_as_the_training_targets():
    """Poisson's validation targets must be non-negative as its training targets must: the
    same refusal as for y (a negative count had made every validation score NaN, and the fit
    kept its untrained weights)."""
    X, y = data(n=40)
    counts = np.abs(y)
    est = FNNRegressor(loss="poisson", hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                       early_stopping=True, scoring="loss")
    with pytest.raises(ValueError) as for_y:
        est.fit(X, -counts)
    with pytest.raises(ValueError) as for_y_val:
        est.fit(X, counts, X_val=X, y_val=-counts)
    assert str(for_y_val.value) == str(for_y.value).replace("targets y ", "targets y_val ")
    assert not hasattr(est, "coefs_")


def test_a_warm_start_scored_otherwise_starts_its_validation_history_afresh():
    """Scores of another ``scoring`` do not compare: a warm start after a change of scoring
    keeps the weights of its own best epoch, and its history holds only its own scores
    (its best score is minus the loss of the weights it keeps, on the given rows)."""
    X, y = data(n=160)
    X_val, y_val = X[120:], y[120:]
    est = FNNRegressor(hidden_layer_sizes=(16,), early_stopping=True, warm_start=True,
                       max_iter=8, random_state=0).fit(X[:120], y[:120], X_val=X_val,
                                                       y_val=y_val)
    est.set_params(scoring="loss", max_iter=5).fit(X[:120], y[:120], X_val=X_val, y_val=y_val)
    assert len(est.validation_scores_) == est.n_iter_ == 5
    loss = 0.5 * np.mean((est.predict(X_val) - y_val) ** 2)
    assert est.best_validation_score_ == pytest.approx(-loss, rel=1e-9)
    assert est.best_validation_score_ == max(est.validation_scores_)
    est.set_params(scoring=None, max_iter=3).fit(X[:120], y[:120], X_val=X_val, y_val=y_val)
    assert len(est.validation_scores_) == 3  # R^2 again: afresh again
    assert est.best_validation_score_ == pytest.approx(est.score(X_val, y_val), rel=1e-12)


def test_scoring_loss_stops_on_the_negative_validation_loss():
    X, y = data(n=160)
    labels = (y > 0).astype(int) + (y > 1).astype(int)  # three classes
    X_val, y_val = X[120:], labels[120:]
    clf = FNNClassifier(hidden_layer_sizes=(16,), early_stopping=True, scoring="loss",
                        max_iter=25, random_state=0).fit(X[:120], labels[:120], X_val=X_val,
                                                         y_val=y_val)
    np.testing.assert_allclose(clf.validation_scores_, -np.array(clf.validation_loss_curve_))
    assert clf.best_validation_score_ == pytest.approx(
        -log_loss(y_val, clf.predict_proba(X_val)), rel=1e-9)
    reg = FNNRegressor(hidden_layer_sizes=(16,), early_stopping=True, scoring="loss",
                       max_iter=25, random_state=0).fit(X, y)
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    assert all(s <= 0 for s in reg.validation_scores_)


def test_a_scorer_name_scores_what_the_builtin_score_does():
    """scoring='r2' (a scikit-learn scorer on a model holding the epoch's weights) gives the
    validation scores of the default (R^2 on the outputs), and the same fit."""
    X, y = data(n=150)
    params = dict(hidden_layer_sizes=(16,), early_stopping=True, max_iter=15, random_state=0)
    default = FNNRegressor(**params).fit(X, y)
    named = FNNRegressor(scoring="r2", **params).fit(X, y)
    np.testing.assert_allclose(named.validation_scores_, default.validation_scores_,
                               rtol=1e-12)
    np.testing.assert_array_equal(named.coefs_[0], default.coefs_[0])
    calls = []

    def neg_mae(estimator, X_, y_):
        calls.append(len(X_))
        return -np.mean(np.abs(estimator.predict(X_) - y_))

    FNNRegressor(scoring=neg_mae, **params).fit(X, y)
    assert calls and all(c == 15 for c in calls)  # 10% of 150 rows, once per epoch



def test_given_validation_rows_are_balanced_by_the_training_classes():
    """class_weight='balanced' weighs given validation rows as it weighs the rows split off
    for validation: by the training targets' class frequencies (oracle: scikit-learn's
    accuracy with those weights), not by the validation rows' own, which would leave a
    balanced validation set unweighted."""
    X, y = data(n=200)
    labels = np.digitize(y, [-0.3, 0.8])  # three classes of unequal size
    X_val, y_val = X[140:], labels[140:]
    X_val = np.r_[X_val[y_val == 0][:5], X_val[y_val == 1][:5], X_val[y_val == 2][:5]]
    y_val = np.repeat([0, 1, 2], 5)  # balanced: its own frequencies weigh every row alike
    clf = FNNClassifier(hidden_layer_sizes=(5,), early_stopping=True, max_iter=1,
                        class_weight="balanced", random_state=0)
    clf.fit(X[:140], labels[:140], X_val=X_val, y_val=y_val)
    by_class = compute_class_weight("balanced", classes=np.arange(3), y=labels[:140])
    assert clf.validation_scores_[0] == pytest.approx(
        accuracy_score(y_val, clf.predict(X_val), sample_weight=by_class[y_val]), rel=1e-12)
    assert not np.allclose(by_class, 1.0)


def test_a_scorer_without_sample_weight_scores_weighted_rows_unweighted():
    """A callable ``scorer(estimator, X, y)`` (scikit-learn's form) with weighted rows
    (sample_weight, class_weight) scores them unweighted, once warned; one that takes
    ``sample_weight`` gets the rows' weights (oracle: the metric computed here on the one
    epoch's model)."""
    X, y = data(n=150)
    X_val, y_val = data(n=40, seed=5)
    weights = np.linspace(0.5, 2.0, len(y_val))
    params = dict(hidden_layer_sizes=(8,), early_stopping=True, max_iter=1, random_state=0)

    def unweighted(estimator, X_, y_):
        return -np.mean(np.abs(estimator.predict(X_) - y_))

    def weighted(estimator, X_, y_, sample_weight=None):
        return -np.average(np.abs(estimator.predict(X_) - y_), weights=sample_weight)

    for scorer, expected in [(unweighted, None), (weighted, weights)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = FNNRegressor(scoring=scorer, **params).fit(
                X, y, X_val=X_val, y_val=y_val, sample_weight_val=weights)
        told = [w for w in caught if "takes no sample_weight" in str(w.message)]
        assert len(told) == (1 if expected is None else 0)
        error = np.abs(est.predict(X_val) - y_val)
        assert est.validation_scores_[0] == pytest.approx(
            -np.average(error, weights=expected), rel=1e-12)
    clf = FNNClassifier(scoring=lambda e, X_, y_: e.score(X_, y_), class_weight="balanced",
                        **params)
    with pytest.warns(UserWarning, match="takes no sample_weight"):
        clf.fit(X, (y > 0.5).astype(int))

# ---- everywhere else: model files, ONNX, callbacks ---------------------------------------------


def test_a_model_file_keeps_the_additions_and_partial_fit_goes_on_alike(tmp_path):
    """An 'adamw' model with dropout, clipping and the cosine schedule, saved and loaded:
    the same parameters and optimizer state, and partial_fit continues to the same bits as
    the model that never left memory."""
    import fastfnn

    X, y = data()
    est = FNNRegressor(hidden_layer_sizes=HIDDEN, solver="adamw", alpha=0.1, dropout=(0.2, 0.1),
                       max_grad_norm=1.0, learning_rate="cosine", max_iter=3,
                       random_state=0).fit(X, y)
    fastfnn.save_model(est, tmp_path / "m.skops")
    loaded = fastfnn.load_model(tmp_path / "m.skops")
    assert loaded.get_params() == est.get_params()
    assert type(loaded._optimizer).__name__ == "AdamW"
    for model in (est, loaded):
        model.set_params(random_state=4).partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, loaded.coefs_ + loaded.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_onnx_export_of_a_dropout_model_has_no_dropout():
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    import fastfnn.onnx  # noqa: F401  (registers the converters)

    X, y = data()
    clf = FNNClassifier(hidden_layer_sizes=HIDDEN, solver="adamw", dropout=0.5, max_iter=5,
                        random_state=0).fit(X, (y > 0).astype(int))
    onx = skl2onnx.to_onnx(clf, X[:1].astype(np.float64), options={"zipmap": False})
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {session.get_inputs()[0].name: X})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(labels, clf.predict(X))
