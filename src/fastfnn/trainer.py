"""Training: epochs, minibatch order, learning-rate schedules, stopping, early stopping, L-BFGS.

Follows scikit-learn 1.9's ``_fit_stochastic`` / ``_fit_lbfgs`` step for step (same random draws
in the same order, same stopping rules; see the estimators' notes), while the minibatch loop
itself runs compiled (``Network.run_batches``). Everything a fit changes lives in a
``fitstate.TrainState``, so the estimator can publish it only when training succeeds.

The schedules and stopping rules are pure functions (:func:`invscaling_rate`, :func:`on_stall`,
:func:`improved`); an ``observer`` (the estimators' callback bridge, the CLI's progress bar on
top of it) sees each epoch's :class:`EpochEnd` and may stop training.
"""

import warnings
from typing import NamedTuple

import numpy as np
import scipy.optimize
from sklearn.model_selection import train_test_split
from sklearn.exceptions import ConvergenceWarning

from ._parts import (batch_flops, full_batch_parts, lbfgs_threads, prediction_threads,
                     training_parts, training_threads)
from ._threads import numba_threads
from ._validation import check_optimize_result, lbfgs_iprint_options
from .dropout import draw_seed, masks
from .losses import loss_value
from .network import DataSource
from .optimizers import make_optimizer

# Work per compiled call: chunks of whole batches of about this many flops (~0.1 s), so that a
# KeyboardInterrupt is seen between chunks while per-call overhead stays negligible. A batch's
# work: its products (a CSR first layer at its sparsity) and STEP_FLOPS per parameter updated.
FLOPS_PER_CALL = 2e8
STEP_FLOPS = 10
ADAPTIVE_MIN_RATE = 1e-6  # 'adaptive' stops once the learning rate is this small


class EpochEnd(NamedTuple):
    """What an observer sees after each epoch (``epoch`` counts from 1 within this fit)."""

    epoch: int
    loss: float
    validation_score: float = None
    learning_rate: float = None
    validation_loss: float = None
    gradient_norms: np.ndarray = None


# ---- pure rules -----------------------------------------------------------------------------


def batch_size_for(settings, n_samples):
    """scikit-learn's batch size: min(200, n) for 'auto', else clipped to [1, n] (warns)."""
    if settings.batch_size == "auto":
        return min(200, n_samples)
    if settings.batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
        )
    return int(np.clip(settings.batch_size, 1, n_samples))


def invscaling_rate(learning_rate_init, samples_seen, power_t):
    """'invscaling': ``lr = lr0 / (t + 1)^power_t``, t the samples seen (set at epoch ends)."""
    return learning_rate_init / (samples_seen + 1) ** power_t


def cosine_rate(learning_rate_init, epoch, max_iter):
    """'cosine': ``lr = lr0 (1 + cos(pi e / max_iter)) / 2`` for epoch e (0-based), as
    PyTorch's ``CosineAnnealingLR(T_max=max_iter, eta_min=0)`` stepped once per epoch (its
    closed form: past max_iter the rate rises again)."""
    return learning_rate_init * (1.0 + np.cos(np.pi * epoch / max_iter)) / 2.0


def on_stall(schedule, learning_rate):
    """What a stalled SGD/Adam fit does: ``(stop, new learning rate, what to print)``.

    'adaptive' divides the rate by 5 and goes on, until it is at most 1e-6; every other
    schedule stops.
    """
    if schedule != "adaptive":
        return True, learning_rate, " Stopping."
    if learning_rate <= ADAPTIVE_MIN_RATE:
        return True, learning_rate, " Learning rate too small. Stopping."
    learning_rate /= 5.0
    return False, learning_rate, " Setting learning rate to %f" % learning_rate


def improved(value, best, tol, higher_is_better):
    """scikit-learn's improvement test: a score reaches ``best + tol``, a loss ``best - tol``
    (written as scikit-learn's, so that NaN counts as an improvement there too)."""
    return not (value < best + tol) if higher_is_better else not (value > best - tol)


def per_output_divisor(net):
    """k for squared error with k outputs (fastfnn's loss is k times scikit-learn's), else 1."""
    return int(net.sizes[-1]) if net.loss == "squared_error" else 1


def split_validation(X, Y, sw, settings, random_state, stratify):
    """Hold out ``validation_fraction`` of the rows exactly as scikit-learn's train_test_split
    (stratified on the binarized target when ``stratify``). Returns train and validation parts.
    """
    arrays = (X, Y) if sw is None else (X, Y, sw)
    parts = train_test_split(
        *arrays,
        random_state=random_state,
        test_size=settings.validation_fraction,
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


# ---- stochastic solvers ---------------------------------------------------------------------


class _Validation:
    """The held-out rows (X (n_val, n_features), Y (n_val, n_outputs) encoded, sw (n_val,) or
    None), and the early-stopping score and the loss of a network on them."""

    def __init__(self, X_val, Y_val, sw_val, scoring):
        self.X, self.Y, self.sw, self.scoring = X_val, Y_val, sw_val, scoring
        self.sources = {}

    def evaluate(self, net):
        """``(score, loss)``: the loss's data term (weighted mean per sample, no L2: the units
        of the training loss's data term) and the early-stopping score, ``scoring(self,
        outputs, loss, net)`` (higher is better)."""
        source = self.sources.get(net.dtype)
        if source is None:
            source = self.sources[net.dtype] = DataSource(self.X, net.dtype)
        out = net.forward(source, prediction_threads(net.sizes, source.n_samples, net.dtype))
        Y = np.ascontiguousarray(self.Y, dtype=net.dtype).reshape(out.shape)
        sw = None if self.sw is None else np.ascontiguousarray(self.sw, dtype=net.dtype)
        with np.errstate(all="ignore"):
            loss = np.float64(loss_value(out, Y, sw, net.loss))
        return self.scoring(self, out, loss, net), loss


def fit_stochastic(state, settings, X, Y, sw, random_state, incremental, stratify, scoring,
                   observer=None, validation_set=None):
    """Train with an update rule of ``optimizers.RULES`` for up to ``settings.max_iter``
    epochs (one if ``incremental``): :class:`StochasticFit`, its epochs run here one after
    another (``fastfnn._together`` runs many fits' epochs in one compiled call).

    Parameters
    ----------
    state : fitstate.TrainState
        Network with initial parameters and the optimizer to continue (or None); changed in
        place.
    settings : settings.Settings
        The fit's hyper-parameters.
    X : (n, n_features) dense or sparse; Y : (n, n_outputs); sw : (n,) or None.
    random_state : numpy RandomState, consumed as scikit-learn does (split, then shuffles;
        with dropout, one draw for its seed between the two).
    incremental : bool
        partial_fit: one epoch, optimizer state kept.
    stratify : bool
        Stratify the early-stopping split (binary classification).
    scoring : callable(validation, outputs, loss, net) -> float
        The early-stopping score (higher is better; NaN as scikit-learn's).
    observer : object, optional
        ``observer.epoch_begins()`` before each epoch and ``observer.epoch_ends(EpochEnd,
        theta)`` after it (theta: the weights a stop there leaves); True from the latter stops
        training as an early stop does.
    validation_set : (X_val, Y_val, sw_val), optional
        With early stopping, the rows to score instead of a split of X (every row trains).
    """
    fit = StochasticFit(state, settings, X, Y, sw, random_state, incremental, stratify,
                        scoring, observer, validation_set)
    with numba_threads(fit.threads):
        try:
            while fit.begin_epoch():
                fit.end_epoch(*fit.loop.epoch(fit.optimizer.rule, fit.masks))
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
    fit.finish()


class StochasticFit:
    """One stochastic fit, an epoch at a time: set up once (optimizer, the early-stopping
    split, the dropout seed, the data, batch size, parts and workspace; arguments as
    :func:`fit_stochastic`), then ``begin_epoch`` (shuffle, schedule, masks: False once
    training is over), the epoch's compiled batches (``loop.epoch``, or many fits' at once),
    ``end_epoch`` with its sums (scikit-learn's bookkeeping and stopping rules), and
    ``finish`` (the best weights of early stopping)."""

    def __init__(self, state, settings, X, Y, sw, random_state, incremental, stratify, scoring,
                 observer=None, validation_set=None, threads=None):
        net = state.net
        if (not incremental or state.optimizer is None or state.optimizer.name != settings.solver
                or state.optimizer.dtype != net.dtype):
            state.optimizer = make_optimizer(settings.solver, net.theta.size, net.dtype, settings)
        elif not hasattr(state.optimizer, "schedule"):  # kept by a file from before schedules
            state.optimizer.follow(settings)
        state.optimizer.read_each_call(settings)
        self.validation = None
        if settings.early_stopping:
            if validation_set is None:
                (X, Y, sw), validation_set = split_validation(X, Y, sw, settings, random_state,
                                                              stratify)
            self.validation = _Validation(*validation_set, scoring)
        self.seed = draw_seed(random_state) if settings.dropping else None
        source = DataSource(X, net.dtype)
        self.data = source.data(Y, sw)
        self.batch_size = batch_size_for(settings, source.n_samples)
        parts = training_parts(net.sizes, self.batch_size, net.dtype)
        self.threads = threads or training_threads(net.sizes, self.batch_size, net.dtype, parts)
        work = net.workspace(self.batch_size, parts, dropout=settings.dropping)
        self.loop = _EpochLoop(net, self.data, work, self.batch_size, settings, self.threads)
        self.state, self.settings, self.random_state = state, settings, random_state
        self.incremental, self.observer = incremental, observer
        self.optimizer = state.optimizer
        self.masks = None
        self.epoch = 0  # epochs begun in this fit
        self.over = False
        self.error = None  # what ended it, trained among others (see ``alone``)
        state.rows_per_epoch = source.n_samples

    def begin_epoch(self, order=None):
        """Prepare the next epoch (shuffle its order, set its rate and masks); False, changing
        nothing, where training is over (stopped, or ``max_iter`` epochs run). ``order``
        (n,): this epoch's order as drawn for fits whose random state is this one's (lanes
        draw it once for all of them), taken instead of shuffling (this fit's random state is
        then not advanced)."""
        if self.over or self.epoch == self.settings.max_iter:
            return False
        if self.settings.shuffle and order is not None:
            self.data.order[:] = order
        elif self.settings.shuffle:
            # = sklearn.utils.shuffle(order, random_state): the same draws and swaps
            self.random_state.shuffle(self.data.order)
        state = self.state
        epoch = state.epochs_before + len(state.epochs)  # the model's epochs so far
        _schedule(self.optimizer, epoch if self.incremental else self.epoch)
        if self.observer is not None:
            self.observer.epoch_begins()
        self.masks = None if self.seed is None else masks(self.settings.dropout, self.seed,
                                                           epoch)
        self.epoch += 1
        return True

    def end_epoch(self, data_term, penalty, norms):
        """The epoch's bookkeeping from its mean data and L2 terms and per-layer gradient
        norms (:meth:`_EpochLoop.epoch`); ends training where a rule says so."""
        self.over = _end_epoch(self.state, self.settings, data_term, penalty, norms,
                               self.validation, self.incremental, self.observer)

    def close_epoch(self, sums):
        """:meth:`end_epoch` from the epoch's compiled sums ``(data, penalty)`` (its batches'
        terms times their rows)."""
        self.end_epoch(*self.loop.close(*sums))

    def alone(self, step, *args):
        """``step(*args)`` (an epoch method of this fit, trained among others), failing alone:
        where it raises, this fit is over and keeps the exception in ``error`` (what its own
        ``fit`` would have raised), and the others go on. Returns what ``step`` returns
        (False where it raised)."""
        try:
            return step(*args)
        except Exception as exc:  # noqa: BLE001 - reported per fit, as its own fit would
            self.error, self.over = exc, True
            return False

    def finish(self):
        """Leave the network at the weights training keeps (early stopping: the best)."""
        if self.settings.early_stopping:
            self.state.net.theta[:] = self.state.best_theta


def _schedule(optimizer, epoch):
    """Set the optimizer's rate for ``epoch`` (0-based) where its schedule is a function of
    the epoch ('cosine'); the others keep scikit-learn's rules (set at epoch ends)."""
    if optimizer.schedule == "cosine":
        optimizer.rate = cosine_rate(optimizer.learning_rate_init, epoch, optimizer.horizon)


class _EpochLoop:
    """One epoch of the compiled minibatch loop, in calls of about FLOPS_PER_CALL flops."""

    def __init__(self, net, data, work, batch_size, settings, threads):
        self.net, self.data, self.work = net, data, work
        self.batch_size, self.threads = batch_size, threads
        self.alpha, self.max_grad_norm = settings.l2, settings.max_grad_norm
        n = data.order.shape[0]
        self.n_batches = -(-n // batch_size)
        first_per_row = data.X_data.shape[0] / max(n, 1) if data.is_sparse else None
        flops_per_batch = (batch_flops(net.sizes, batch_size, first_per_row)
                           + STEP_FLOPS * net.theta.size)
        self.per_call = max(1, int(FLOPS_PER_CALL // flops_per_batch))

    def epoch(self, make_rule, dropped=None):
        """Runs every batch once, with the dropout masks ``dropped`` (None: none); returns the
        epoch's mean data term and L2 term, and the root mean square over its updates of each
        layer's weight-gradient norm (L,)."""
        self.begin()
        data_sum = penalty_sum = 0.0
        for first in range(0, self.n_batches, self.per_call):
            last = min(first + self.per_call, self.n_batches)
            d, p = self.net.run_batches(self.data, self.work, make_rule(), first, last,
                                        self.batch_size, self.alpha, self.threads,
                                        masks=dropped, max_grad_norm=self.max_grad_norm)
            data_sum, penalty_sum = data_sum + d, penalty_sum + p
        return self.close(data_sum, penalty_sum)

    def begin(self):
        """Reset the epoch's gradient-norm sums."""
        self.work.layer_sq[:] = 0.0
        self.work.n_updates[:] = 0

    def close(self, data_sum, penalty_sum):
        """The epoch's mean data and L2 terms and per-layer gradient norms (L,), from the sums
        over its batches of each term times the batch's rows."""
        n = self.data.order.shape[0]
        norms = np.sqrt(self.work.layer_sq / max(int(self.work.n_updates[0]), 1))
        return data_sum / n, penalty_sum / n, norms

    def groups(self, rule, dropped=None):
        """The compiled loop's groups for a whole epoch, checked by the network's wall:
        ``(params, rule, work, data, model)`` (``Network.batch_groups``)."""
        return self.net.batch_groups(self.data, self.work, rule, self.batch_size, self.alpha,
                                     masks=dropped, max_grad_norm=self.max_grad_norm)


def _end_epoch(state, settings, data, penalty, norms, validation, incremental, observer):
    """scikit-learn's end-of-epoch bookkeeping; returns True to stop training.

    ``data`` and ``penalty`` are the epoch's mean data and L2 terms of the loss, ``norms`` its
    per-layer gradient norms. The epoch enters the history in one step, as one record, after
    the validation pass: an interrupt leaves every history describing the same epochs.
    """
    opt = state.optimizer
    loss = np.float64(data + penalty)
    score = validation_loss = None
    if validation is not None:
        score, validation_loss = validation.evaluate(state.net)
    record = EpochEnd(len(state.epochs) + 1, loss, score, opt.learning_rate, validation_loss,
                      norms)
    state.epochs.append(record)  # the one step that records the epoch
    if settings.verbose:
        print("Iteration %d, loss = %.8f" % (record.epoch, loss))
        if validation is not None:
            print("Validation score: %f" % score)
    if not np.isfinite(loss):
        # Diverged: the estimator raises and stays as it was (scikit-learn runs on to
        # max_iter first, and with early stopping may even return the last finite weights).
        return True
    _update_no_improvement_count(state, settings, record,
                                 data / per_output_divisor(state.net) + penalty)
    if opt.schedule == "invscaling":
        samples_seen = state.samples_seen + len(state.epochs) * state.rows_per_epoch
        opt.rate = invscaling_rate(opt.learning_rate_init, samples_seen, opt.power_t)
    stall_stop = False
    if state.no_improvement_count > settings.n_iter_no_change:
        what = "Validation score" if validation is not None else "Training loss"
        msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
               % (what, settings.tol, settings.n_iter_no_change))
        stall_stop, rate, how = on_stall(opt.schedule, opt.rate)
        if settings.verbose:
            print(msg + how)
        if not stall_stop:
            opt.rate = rate
            state.no_improvement_count = 0
    # the observer sees the epoch's bookkeeping done: the model a stop here leaves
    stop = observer is not None and observer.epoch_ends(
        record, state.best_theta if validation is not None else state.net.theta)
    if stall_stop or stop or incremental:
        return True
    if record.epoch == settings.max_iter:
        warnings.warn(
            "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
            "hasn't converged yet." % settings.max_iter,
            ConvergenceWarning,
        )
    return False


def _update_no_improvement_count(state, settings, record, stall_loss):
    """scikit-learn's stall count: on the validation score (early stopping), else on the
    training loss against the best so far.

    The training-loss rule compares ``stall_loss``, the loss as scikit-learn reports it: for
    squared error with k outputs fastfnn's data term is the sum over outputs and scikit-learn's
    the mean, so the rule uses data / k + L2, and ``tol`` means what it means in scikit-learn
    (the same epoch stops).
    """
    if record.validation_score is not None:
        score = record.validation_score
        if improved(score, state.best_validation_score, settings.tol, higher_is_better=True):
            state.no_improvement_count = 0
        else:
            state.no_improvement_count += 1
        if score > state.best_validation_score:
            state.best_validation_score = score
            state.best_theta = state.net.theta.copy()
        return
    if improved(stall_loss, state.best_stall_loss, settings.tol, higher_is_better=False):
        state.no_improvement_count = 0
    else:
        state.no_improvement_count += 1
    state.best_stall_loss = min(state.best_stall_loss, stall_loss)
    state.best_loss = min(state.best_loss, record.loss)


# ---- L-BFGS ----------------------------------------------------------------------------------


def fit_lbfgs(state, settings, X, Y, sw, observer=None):
    """Full-batch L-BFGS-B (SciPy) on the loss and gradient of the compiled backward pass.

    ``observer`` (as in :func:`fit_stochastic`) sees each accepted iterate; True from it ends
    the optimization there (no ConvergenceWarning: the stop was asked for).

    SciPy works in float64; a float32 network copies each iterate into its own theta, so the
    network's gradients stay in its dtype. A KeyboardInterrupt keeps the last accepted iterate
    (warning "Training interrupted by user.", as the stochastic solvers; scikit-learn lets it
    propagate from the middle of an evaluation).
    """
    net = state.net
    source = DataSource(X, net.dtype)
    data = source.data(Y, sw)
    parts = full_batch_parts(net.sizes, source.n_samples, net.dtype)
    work = net.workspace(source.n_samples, parts)
    threads = lbfgs_threads(net.sizes, source.n_samples, parts)
    last_eval = {}  # the most recent evaluation: x and its loss
    accepted = {"x": net.theta.astype(np.float64), "loss": None, "n_iter": 0}

    def loss_grad(x):
        net.theta[:] = x
        with numba_threads(threads):
            value, grad = net.loss_grad_data(data, work, settings.alpha, threads)
        last_eval["x"], last_eval["loss"] = x.copy(), value
        if "first" not in last_eval:
            last_eval["first"] = value
        if not np.isfinite(value):
            last_eval["overflowed"] = value
        return value, grad.astype(np.float64)

    def record_iterate(xk):
        same = "x" in last_eval and np.array_equal(xk, last_eval["x"])
        accepted["x"], accepted["n_iter"] = xk.copy(), accepted["n_iter"] + 1
        accepted["loss"] = last_eval["loss"] if same else None
        if observer is not None:
            observer.epoch_begins()
            net.theta[:] = xk  # the iterate a stop here would keep
            if observer.epoch_ends(EpochEnd(accepted["n_iter"], accepted["loss"]), net.theta):
                accepted["stopped"] = True
                raise StopIteration

    iprint = 1 if settings.verbose else -1
    try:
        opt_res = scipy.optimize.minimize(
            loss_grad,
            net.theta.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=record_iterate,
            options={"maxfun": settings.max_fun, "maxiter": settings.max_iter,
                     "gtol": settings.tol,
                     **lbfgs_iprint_options(iprint)},
        )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        net.theta[:] = accepted["x"]
        state.n_iter = accepted["n_iter"]
        loss = accepted["loss"]
        if loss is None:
            loss, _ = net.loss_grad_data(data, work, settings.alpha, threads)
        state.loss = np.float64(loss)
        return
    if "overflowed" in last_eval and not opt_res.fun < last_eval["first"]:
        # The line search stepped into an overflow (e.g. exp of a huge input) and SciPy gave up
        # where it started, calling it converged: report the divergence instead.
        state.loss = np.float64(last_eval["overflowed"])
        return
    if accepted.get("stopped"):
        state.n_iter = accepted["n_iter"]
    else:
        state.n_iter = check_optimize_result("lbfgs", opt_res, settings.max_iter)
    state.loss = np.float64(opt_res.fun)
    net.theta[:] = opt_res.x
