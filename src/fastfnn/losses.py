"""Losses: the value of each (loss, output activation) pair and its output delta.

Per sample (summed over the k outputs), averaged over the batch with optional sample weights
``s_i`` as ``sum_i s_i l_i / sum_i s_i``:

=================  ==============================================  ===============  ==========
loss               l(a, y), r = a - y                              canonical output  dl/da
=================  ==============================================  ===============  ==========
squared_error      1/2 ||r||^2                                     identity         r
poisson            sum_j y_j log(y_j / a_j) - y_j + a_j            exp              (canonical)
binary_log_loss    -sum_j [y_j log a_j + (1 - y_j) log(1 - a_j)]   logistic         (canonical)
log_loss           -sum_j y_j log a_j                              softmax          (canonical)
huber              sum_j r_j^2/2 if |r_j| <= 1 else |r_j| - 1/2     identity         clip(r, -1, 1)
absolute_error     sum_j |r_j|                                     identity         sign(r)
=================  ==============================================  ===============  ==========

The output delta is ``dl/dz^L = dl/da^L * act'(z^L)``; for the canonical pairs it reduces to
``a^L - y``. Squared error also takes a logistic, tanh, relu or exp output (the derivation's own
network is logistic everywhere), with the general form ``(a - y) * act'(a)``.

:data:`LOSSES` is the one registry of loss names: the estimators' validation, the CLI's choices
(``fastfnn.REGRESSION_LOSSES``) and the docs read it.
"""

from typing import NamedTuple

import numpy as np

from . import _kernels as K
from .activations import ACTIVATIONS
from .activations import code as act_code

class Loss(NamedTuple):
    """One loss: its kernel code, its canonical output activation, the output activations it
    takes, and whether FNNRegressor offers it (``regression``; the others are the
    classifier's)."""

    code: int
    canonical_output: str
    outputs: tuple
    regression: bool


LOSSES = {
    "squared_error": Loss(K.SQUARED_ERROR, "identity",
                          ("identity", "logistic", "tanh", "relu", "exp"), True),
    "poisson": Loss(K.POISSON, "exp", ("exp",), True),
    "huber": Loss(K.HUBER, "identity", ("identity",), True),
    "absolute_error": Loss(K.ABSOLUTE_ERROR, "identity", ("identity",), True),
    "binary_log_loss": Loss(K.BINARY_LOG_LOSS, "logistic", ("logistic",), False),
    "log_loss": Loss(K.LOG_LOSS, "softmax", ("softmax",), False),
}
LOSS_CODES = {name: loss.code for name, loss in LOSSES.items()}
CANONICAL_OUTPUT = {name: loss.canonical_output for name, loss in LOSSES.items()}
SQUARED_ERROR_OUTPUTS = LOSSES["squared_error"].outputs
REGRESSION_LOSSES = tuple(name for name, loss in LOSSES.items() if loss.regression)
# FNNRegressor's ``out_activation`` choices (poisson's 'exp' is implied by the loss)
REGRESSOR_OUTPUTS = tuple(a for a in SQUARED_ERROR_OUTPUTS if a != "exp")


def check_pair(loss, out_activation):
    """Raise ValueError unless the (loss, output activation) pair is supported."""
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; expected one of {sorted(LOSSES)}.")
    allowed = LOSSES[loss].outputs
    if out_activation not in allowed:
        raise ValueError(
            f"The {loss!r} loss takes an output activation in {list(allowed)}, "
            f"got {out_activation!r}."
        )


def delta_derivative_code(loss, out_activation):
    """Kernel code of the factor act'(z^L) in the output delta: identity for canonical pairs."""
    check_pair(loss, out_activation)
    if CANONICAL_OUTPUT[loss] == out_activation:
        return K.IDENTITY
    return act_code(out_activation)


def clip_eps(dtype):
    """scikit-learn's probability clip for the log-losses: the machine epsilon of the dtype."""
    return float(np.finfo(dtype).eps)


def loss_value(A, Y, sample_weight, loss):
    """Mean loss of a batch (compiled); A, Y (m, k), sample_weight (m,) or None."""
    sw = sample_weight if sample_weight is not None else np.empty(0, A.dtype)
    return K.loss_value(A, Y, sw, sample_weight is not None, LOSS_CODES[loss], clip_eps(A.dtype))


def output_delta(A, Y, sample_weight, loss, out_activation):
    """dl/dz^L for a batch (compiled), as a new (m, k) array."""
    D = np.empty_like(A)
    sw = sample_weight if sample_weight is not None else np.empty(0, A.dtype)
    K.output_delta_(D, A, Y, sw, sample_weight is not None, LOSS_CODES[loss],
                    delta_derivative_code(loss, out_activation))
    return D


# ---- NumPy twins (test oracles) -------------------------------------------------------------


def reference_loss_value(A, Y, sample_weight, loss):
    """NumPy twin of :func:`loss_value`."""
    eps = clip_eps(A.dtype)
    A = A.astype(np.float64)
    Y = Y.astype(np.float64)
    if loss == "squared_error":
        per_sample = 0.5 * ((A - Y) ** 2).sum(axis=1)
    elif loss == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            ylog = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / A), 0.0)
        per_sample = (ylog - Y + A).sum(axis=1)
    elif loss == "binary_log_loss":
        P = np.clip(A, eps, 1 - eps)
        per_sample = -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1)
    elif loss == "log_loss":
        P = np.clip(A, eps, 1 - eps)
        per_sample = -(Y * np.log(P)).sum(axis=1)
    elif loss == "huber":
        R = np.abs(A - Y)
        per_sample = np.where(R <= 1, 0.5 * R * R, R - 0.5).sum(axis=1)
    elif loss == "absolute_error":
        per_sample = np.abs(A - Y).sum(axis=1)
    else:
        raise ValueError(loss)
    return float(np.average(per_sample, weights=sample_weight))


def reference_output_delta(A, Y, sample_weight, loss, out_activation):
    """NumPy twin of :func:`output_delta`: ``dl/da * act'(A)``, or ``dl/da`` if canonical."""
    D = A - Y
    if loss == "huber":
        D = np.clip(D, -1, 1)
    elif loss == "absolute_error":
        D = np.sign(D)
    if CANONICAL_OUTPUT[loss] != out_activation:
        D = D * ACTIVATIONS[out_activation].reference_derivative(A)
    if sample_weight is not None:
        D = D * sample_weight[:, None]
    return D.astype(A.dtype)
