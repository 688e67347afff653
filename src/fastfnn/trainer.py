"""Training: epochs, minibatch order, learning-rate schedules, stopping, early stopping, L-BFGS.

Follows scikit-learn 1.9's ``_fit_stochastic`` / ``_fit_lbfgs`` step for step (same random draws
in the same order, same stopping rules; see shared/SKLEARN_MLP.md), while the minibatch loop itself
runs compiled (``Network.run_batches``). Everything a fit changes lives in a :class:`TrainState`,
so the estimator can commit it only when training succeeds.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from ._threads import blas_threads, limit_blas, training_threads
from ._validation import check_optimize_result, lbfgs_iprint_options
from .network import DataSource, Network
from .optimizers import make_optimizer

# Work per compiled call: chunks of whole batches of about this many flops (~0.1 s), so that a
# KeyboardInterrupt is seen between chunks while per-call overhead stays negligible.
FLOPS_PER_CALL = 2e8


@dataclass
class TrainState:
    """What a fit reads and changes: the network (with theta), the optimizer and the history."""

    net: Network
    optimizer: object = None
    n_iter: int = 0
    t: int = 0
    loss: float = None
    loss_curve: list = field(default_factory=list)  # this call's epochs only
    best_loss: float = np.inf
    best_stall_loss: float = np.inf  # best loss in scikit-learn's units (for the stall rule)
    no_improvement_count: int = 0
    validation_scores: list = None
    best_validation_score: float = None
    best_theta: np.ndarray = None


def batch_size_for(cfg, n_samples):
    """scikit-learn's batch size: min(200, n) for 'auto', else clipped to [1, n] (warns)."""
    if cfg.batch_size == "auto":
        return min(200, n_samples)
    if cfg.batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
        )
    return int(np.clip(cfg.batch_size, 1, n_samples))


def split_validation(X, Y, sw, cfg, random_state, stratify):
    """Hold out ``validation_fraction`` of the rows exactly as scikit-learn's train_test_split
    (stratified on the binarized target when ``stratify``). Returns train and validation parts.
    """
    arrays = (X, Y) if sw is None else (X, Y, sw)
    parts = train_test_split(
        *arrays,
        random_state=random_state,
        test_size=cfg.validation_fraction,
        stratify=Y.astype(bool) if stratify else None,
    )
    X_tr, X_val, Y_tr, Y_val = parts[:4]
    sw_tr, sw_val = (parts[4], parts[5]) if sw is not None else (None, None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size of "
            "your dataset."
        )
    return (X_tr, Y_tr, sw_tr), (X_val, Y_val, sw_val)


def fit_stochastic(state, cfg, X, Y, sw, random_state, incremental, stratify, make_scorer):
    """Train with 'sgd' or 'adam' for up to ``cfg.max_iter`` epochs (one if ``incremental``).

    Parameters
    ----------
    state : TrainState
        Network with initial parameters; changed in place.
    cfg : estimator-like
        Reads the scikit-learn hyper-parameters by name.
    X : (n, n_features) dense or sparse; Y : (n, n_outputs); sw : (n,) or None.
    random_state : numpy RandomState, consumed as scikit-learn does (split, then shuffles).
    incremental : bool
        partial_fit: one epoch, optimizer state kept.
    stratify : bool
        Stratify the early-stopping split (binary classification).
    make_scorer : callable(X_val, Y_val, sw_val) -> callable(net) -> float
        Builds the early-stopping score (accuracy or R^2; NaN as scikit-learn's) of the
        network on the held-out rows; called once per fit.
    """
    net = state.net
    if cfg.early_stopping and incremental:
        raise ValueError(
            "partial_fit does not support early_stopping=True: set early_stopping=False, or "
            "use fit for early stopping."
        )
    if (not incremental or state.optimizer is None
            or state.optimizer.name != cfg.solver or state.optimizer.dtype != net.dtype):
        state.optimizer = make_optimizer(cfg.solver, net.theta.size, net.dtype, cfg)
    opt = state.optimizer
    scorer = None
    if cfg.early_stopping:
        (X, Y, sw), (X_val, Y_val, sw_val) = split_validation(X, Y, sw, cfg, random_state,
                                                              stratify)
        scorer = make_scorer(X_val, Y_val, sw_val)
    source = DataSource(X, net.dtype)
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    sw = None if sw is None else np.ascontiguousarray(sw, dtype=net.dtype)
    n = source.n_samples
    batch_size = batch_size_for(cfg, n)
    data_threads = training_threads(net.sizes, batch_size)
    net.reserve(batch_size, data_threads)
    n_batches = -(-n // batch_size)
    flops_per_batch = 6 * batch_size * float(np.sum(net.sizes[:-1] * net.sizes[1:]))
    per_call = max(1, int(FLOPS_PER_CALL // flops_per_batch))
    idx = np.arange(n, dtype=np.int64)

    # BLAS threads only when the batch rows are not split across threads already
    with limit_blas(1 if data_threads > 1 else blas_threads(net.sizes, batch_size)):
        try:
            state.n_iter = 0
            for _ in range(cfg.max_iter):
                if cfg.shuffle:
                    # = sklearn.utils.shuffle(idx, random_state): the same draws and swaps
                    random_state.shuffle(idx)
                data = penalty = 0.0
                for first in range(0, n_batches, per_call):
                    last = min(first + per_call, n_batches)
                    d, p, opt.t = net.run_batches(
                        source, Y, sw, idx, first, last, batch_size, cfg.alpha,
                        opt.solver, *opt.state, opt.hyper(), opt.t,
                    )
                    data, penalty = data + d, penalty + p
                if _end_epoch(state, cfg, data / n, penalty / n, n, scorer, incremental):
                    break
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
    if cfg.early_stopping:
        net.theta[:] = state.best_theta


def _end_epoch(state, cfg, data, penalty, n, scorer, incremental):
    """scikit-learn's end-of-epoch bookkeeping; returns True to stop training.

    ``data`` and ``penalty`` are the epoch's mean data and L2 terms of the loss.
    ``scorer(net)`` is the early-stopping validation score, or None without early stopping.
    """
    opt = state.optimizer
    loss = np.float64(data + penalty)
    state.n_iter += 1
    state.loss = loss
    state.t += n
    state.loss_curve.append(loss)
    if cfg.verbose:
        print("Iteration %d, loss = %.8f" % (state.n_iter, loss))
    if scorer is None and not np.isfinite(loss) and not np.all(np.isfinite(state.net.theta)):
        # Diverged. Without early stopping nothing can bring finite weights back, and the
        # estimator raises on them; scikit-learn runs on to max_iter first. (With early
        # stopping the best weights are restored at the end, so training goes on as there.)
        return True
    _update_no_improvement_count(state, cfg, scorer, loss, data / per_output_divisor(state.net)
                                 + penalty)
    opt.iteration_ends(state.t)
    if state.no_improvement_count > cfg.n_iter_no_change:
        if scorer is not None:
            msg = ("Validation score did not improve more than tol=%f for %d consecutive "
                   "epochs." % (cfg.tol, cfg.n_iter_no_change))
        else:
            msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                   % (cfg.tol, cfg.n_iter_no_change))
        if opt.trigger_stopping(msg, cfg.verbose):
            return True
        state.no_improvement_count = 0
    if incremental:
        return True
    if state.n_iter == cfg.max_iter:
        warnings.warn(
            "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
            "hasn't converged yet." % cfg.max_iter,
            ConvergenceWarning,
        )
    return False


def _update_no_improvement_count(state, cfg, scorer, loss, stall_loss):
    """scikit-learn's stall count: on the validation score (early stopping), else on the
    training loss against the best so far.

    The training-loss rule compares ``stall_loss``, the loss as scikit-learn reports it: for
    squared error with k outputs fastfnn's data term is the sum over outputs and scikit-learn's
    the mean, so the rule uses data / k + L2, and ``tol`` means what it means in scikit-learn
    (the same epoch stops).
    """
    if scorer is not None:
        val_score = scorer(state.net)
        state.validation_scores.append(val_score)
        if cfg.verbose:
            print("Validation score: %f" % val_score)
        if val_score < state.best_validation_score + cfg.tol:
            state.no_improvement_count += 1
        else:
            state.no_improvement_count = 0
        if val_score > state.best_validation_score:
            state.best_validation_score = val_score
            state.best_theta = state.net.theta.copy()
    else:
        if stall_loss > state.best_stall_loss - cfg.tol:
            state.no_improvement_count += 1
        else:
            state.no_improvement_count = 0
        state.best_stall_loss = min(state.best_stall_loss, stall_loss)
        state.best_loss = min(state.best_loss, loss)


def per_output_divisor(net):
    """k for squared error with k outputs (fastfnn's loss is k times scikit-learn's), else 1."""
    return int(net.sizes[-1]) if net.loss == "squared_error" else 1


def fit_lbfgs(state, cfg, X, Y, sw):
    """Full-batch L-BFGS-B (SciPy) on the loss and gradient of the compiled backward pass.

    SciPy works in float64; a float32 network copies each iterate into its own theta, so the
    network's gradients stay in its dtype. A KeyboardInterrupt keeps the last accepted iterate
    (warning "Training interrupted by user.", as the stochastic solvers; scikit-learn lets it
    propagate from the middle of an evaluation).
    """
    net = state.net
    source = DataSource(X, net.dtype)
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    sw = None if sw is None else np.ascontiguousarray(sw, dtype=net.dtype)
    last_eval = {}  # the most recent evaluation: x and its loss
    accepted = {"x": net.theta.astype(np.float64), "loss": None, "n_iter": 0}

    def loss_grad(x):
        net.theta[:] = x
        value, grad = net.loss_grad(source, Y, sw, cfg.alpha)
        last_eval["x"], last_eval["loss"] = x.copy(), value
        return value, grad.astype(np.float64)

    def record_iterate(xk):
        same = "x" in last_eval and np.array_equal(xk, last_eval["x"])
        accepted["x"], accepted["n_iter"] = xk.copy(), accepted["n_iter"] + 1
        accepted["loss"] = last_eval["loss"] if same else None

    iprint = 1 if cfg.verbose else -1
    with limit_blas(blas_threads(net.sizes, source.n_samples)):
        try:
            opt_res = scipy.optimize.minimize(
                loss_grad,
                net.theta.astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                callback=record_iterate,
                options={"maxfun": cfg.max_fun, "maxiter": cfg.max_iter, "gtol": cfg.tol,
                         **lbfgs_iprint_options(iprint)},
            )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
            net.theta[:] = accepted["x"]
            state.n_iter = accepted["n_iter"]
            loss = accepted["loss"]
            if loss is None:
                loss, _ = net.loss_grad(source, Y, sw, cfg.alpha)
            state.loss = np.float64(loss)
            return
    state.n_iter = check_optimize_result("lbfgs", opt_res, cfg.max_iter)
    state.loss = np.float64(opt_res.fun)
    net.theta[:] = opt_res.x
