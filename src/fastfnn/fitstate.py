"""What a fit reads from the estimator and publishes back: one table, one state object.

Training works on a :class:`TrainState` holding copies of everything it may change; the
estimator publishes it only when the fit succeeds, so a failed fit changes nothing. Which
fitted attribute maps to which field, and where a fresh history starts, is written once, in
:data:`HISTORY`; :func:`resume` and :func:`publish` read that table.

A history belongs to a mode: without early stopping the stall rule follows the training loss
(``best_loss_``); with it, the validation score (``validation_scores_``...), as the ``scoring``
it was recorded with (``_validation_scored_by``: :func:`scoring_key`) computes it. A warm start or
``partial_fit`` continues the history of its own mode (and scoring), and starts any other afresh
(scikit-learn fails with AttributeError/TypeError there; scores of another scoring do not
compare).
"""

import copy
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

LOSS, VALIDATION, BOTH, CURRENT = "loss", "validation", "both", "current"


@dataclass
class TrainState:
    """Everything a fit reads and changes: the network (with theta), the optimizer and the
    history. ``epochs`` holds this call's epochs (``trainer.EpochEnd`` records), one record
    each, appended in one step: the per-epoch histories (loss, validation score and loss,
    gradient norms), ``n_iter_``, ``loss_`` and ``t_`` are all read from it on publish, so
    they always describe the same epochs. (L-BFGS sets ``n_iter`` and ``loss`` itself.)"""

    net: object
    optimizer: object = None
    n_iter: int = 0
    epochs_before: int = 0  # the model's stochastic epochs before this call (its loss_curve_)
    samples_seen: int = 0  # before this call; rows_per_epoch more per recorded epoch
    rows_per_epoch: int = 0
    loss: float = None
    epochs: list = field(default_factory=list)
    best_loss: float = np.inf
    best_stall_loss: float = np.inf  # best loss in scikit-learn's units (for the stall rule)
    no_improvement_count: int = 0
    validation_scores: list = None
    validation_loss_curve: list = None
    best_validation_score: float = None
    best_theta: np.ndarray = None  # the early-stopping snapshot, packed as theta
    validation_scoring: str = None  # what the validation scores are (scoring_key)


# (fitted attribute, TrainState field, value of a fresh history, mode the history belongs to:
#  BOTH is carried whatever the mode, CURRENT only when the recorded mode is the same)
HISTORY = (
    ("t_", "samples_seen", lambda: 0, BOTH),
    ("loss_", "loss", lambda: None, BOTH),
    ("_no_improvement_count", "no_improvement_count", lambda: 0, CURRENT),  # either mode's
    ("best_loss_", "best_loss", lambda: np.inf, LOSS),
    ("_best_stall_loss", "best_stall_loss", lambda: np.inf, LOSS),
    ("validation_scores_", "validation_scores", list, VALIDATION),
    ("validation_loss_curve_", "validation_loss_curve", list, VALIDATION),
    ("best_validation_score_", "best_validation_score", lambda: -np.inf, VALIDATION),
)


def history_mode(estimator):
    """The mode of the estimator's recorded stochastic history, or None (none, or 'lbfgs')."""
    if getattr(estimator, "validation_scores_", None) is not None:
        return VALIDATION
    if getattr(estimator, "best_loss_", None) is not None:
        return LOSS
    return None


def scoring_key(scoring):
    """What a validation history records its ``scoring`` as: None (the estimator's default
    score), the name, or a scorer's repr (a function's names its address: after a reload
    its history starts afresh)."""
    return scoring if scoring is None or isinstance(scoring, str) else repr(scoring)


def resume(estimator, net, mode, keep_optimizer, scoring=None):
    """A TrainState continuing the estimator's history in ``mode`` (LOSS or VALIDATION, the
    latter scored by ``scoring``, a :func:`scoring_key`) from the network's current weights:
    copies, so the estimator is untouched until publish."""
    state = TrainState(net, n_iter=getattr(estimator, "n_iter_", 0),
                       epochs_before=len(getattr(estimator, "loss_curve_", None) or ()))
    same_mode = history_mode(estimator) == mode and (
        mode != VALIDATION  # (a file from before scorings were recorded: the same)
        or getattr(estimator, "_validation_scored_by", scoring) == scoring)
    for attribute, name, fresh, owner in HISTORY:
        if owner not in (BOTH, CURRENT, mode):  # the other mode's history
            setattr(state, name, None)
            continue
        value = getattr(estimator, attribute, None) if owner == BOTH or same_mode else None
        setattr(state, name, fresh() if value is None else copy.copy(value))
    if keep_optimizer:
        state.optimizer = copy.deepcopy(estimator._optimizer)
    if mode == VALIDATION:
        state.validation_scoring = scoring
        state.best_theta = net.theta.copy()
        if same_mode:
            for dst, src in zip(net.coefs(state.best_theta) + net.intercepts(state.best_theta),
                                estimator._best_coefs + estimator._best_intercepts):
                dst[...] = src
    return state


def close_epochs(state):
    """Fold the recorded epochs into the state's totals and histories (once, on publish)."""
    epochs = state.epochs
    state.n_iter = len(epochs)
    state.samples_seen += len(epochs) * state.rows_per_epoch
    if epochs:
        state.loss = epochs[-1].loss
    if state.validation_scores is not None:
        state.validation_scores += [e.validation_score for e in epochs]
        state.validation_loss_curve += [e.validation_loss for e in epochs]


def snapshot(state, estimator):
    """The fitted attributes a stochastic fit stopped after the state's last recorded epoch
    would publish (:func:`publish` of copies: the state and the estimator stay as they are).
    Its ``coefs_`` and ``intercepts_`` are views of the network's current weights."""
    copied = copy.copy(state)
    for name in ("epochs", "validation_scores", "validation_loss_curve"):
        value = getattr(state, name)
        setattr(copied, name, None if value is None else list(value))
    copied.optimizer = copy.deepcopy(state.optimizer)
    stand_in = SimpleNamespace(**{name: copy.copy(vars(estimator)[name])
                                  for name in ("loss_curve_", "gradient_norms_")
                                  if name in vars(estimator)})
    publish(copied, stand_in, stochastic=True)
    return vars(stand_in)


def publish(state, estimator, stochastic):
    """Set the estimator's fitted attributes from a successful fit's state."""
    net = state.net
    if stochastic:
        close_epochs(state)
    # views into the trained theta, which no one else holds after the fit (no copy)
    estimator.coefs_ = net.coefs()
    estimator.intercepts_ = net.intercepts()
    estimator.n_iter_ = state.n_iter
    estimator.loss_ = state.loss
    if not stochastic:
        return
    for attribute, name, _, _ in HISTORY:
        setattr(estimator, attribute, getattr(state, name))
    losses = [e.loss for e in state.epochs]
    if isinstance(getattr(estimator, "loss_curve_", None), list):
        estimator.loss_curve_.extend(losses)  # after success only: rollback-safe
    else:  # first stochastic fit (or the first after an 'lbfgs' one)
        estimator.loss_curve_ = losses
    rows = np.array([e.gradient_norms for e in state.epochs], dtype=np.float64)
    rows = rows.reshape(-1, len(net.sizes) - 1)
    before = getattr(estimator, "gradient_norms_", None)
    estimator.gradient_norms_ = rows if before is None else np.vstack([before, rows])
    estimator._optimizer = state.optimizer
    if state.validation_scores is not None:
        estimator._validation_scored_by = state.validation_scoring
    else:
        estimator.__dict__.pop("_validation_scored_by", None)
    if state.best_theta is not None:
        estimator._best_coefs = [w.copy() for w in net.coefs(state.best_theta)]
        estimator._best_intercepts = [b.copy() for b in net.intercepts(state.best_theta)]
