"""The one place that touches scikit-learn's private helpers.

Parameter constraints (scikit-learn 1.9's MLPs', with the names read from fastfnn's activation,
loss and update-rule registries, so the same ``InvalidParameterError`` comes out of ``fit``), the
fit-context decorator that checks them, and small helpers of ``_fit_lbfgs`` / ``partial_fit``.
If scikit-learn moves one of these, only this file changes.
"""

from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context  # noqa: F401  (re-exported)
from sklearn.utils._param_validation import (  # noqa: F401
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.multiclass import _check_partial_fit_first_call  # noqa: F401
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight  # noqa: F401

from .activations import HIDDEN_ACTIVATIONS
from .losses import REGRESSION_LOSSES, REGRESSOR_OUTPUTS
from .optimizers import SCHEDULES, SOLVERS

try:  # scikit-learn >= 1.9: callbacks (set_callbacks); older versions train without them
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Stand-in where scikit-learn has no callback API: no ``set_callbacks``."""


MLP_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions(set(HIDDEN_ACTIVATIONS))],
    "solver": [StrOptions(set(SOLVERS))],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions(set(SCHEDULES))],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "random_state": ["random_state"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "max_fun": [Interval(Integral, 1, None, closed="left")],
    # fastfnn's additions (a tuple of dropout rates is checked against the layers in fit)
    "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
    "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
    "scoring": [None, str, callable],
}

REGRESSOR_CONSTRAINTS = {
    **MLP_CONSTRAINTS,
    "loss": [StrOptions(set(REGRESSION_LOSSES))],
    "out_activation": [StrOptions(set(REGRESSOR_OUTPUTS))],
}


def check_weight_sum(sample_weight, name="sample_weight"):
    """ValueError unless the sample weights (n,) (``name``: what they are made of) sum to
    a finite number above 0: the loss ``sum_i s_i l_i / sum_i s_i`` is defined only then."""
    if sample_weight is not None and not 0 < np.sum(sample_weight) < np.inf:
        raise ValueError(
            f"The sample weights ({name}) sum to {float(np.sum(sample_weight))!r}: they need a "
            "finite, positive sum for the loss (their weighted mean) to be defined."
        )


def check_prediction_activation(estimator):
    """Raise InvalidParameterError (a ValueError) unless the estimator's ``activation``
    parameter is a hidden activation.

    Prediction reads this parameter for the hidden layers, as scikit-learn's MLP does (it has
    no fitted attribute for it), so ``set_params(activation=...)`` after fitting changes the
    predictions. Fit validates every parameter; prediction checks this one, the only one it
    reads, the same way for any number of rows (scikit-learn would apply a 'softmax' to the
    hidden layers, which fit refuses).
    """
    activation = estimator.activation
    if not (isinstance(activation, str) and activation in HIDDEN_ACTIVATIONS):
        raise InvalidParameterError(
            f"The 'activation' parameter of {type(estimator).__name__} must be a str among "
            f"{sorted(HIDDEN_ACTIVATIONS)} to predict (the hidden layers' activation, which "
            f"predict reads as scikit-learn's MLP does). Got {activation!r} instead: set it "
            "back to the activation the model was fitted with (set_params(activation=...))."
        )


def lbfgs_iprint_options(iprint):
    """``{'iprint': iprint}`` for SciPy versions that still take it, else ``{}``."""
    return _get_additional_lbfgs_options_dict("iprint", iprint)


def check_optimize_result(solver, result, max_iter):
    """Number of iterations of a SciPy result; warns (ConvergenceWarning) if it did not converge."""
    return _check_optimize_result(solver, result, max_iter)


# scikit-learn's input-validation messages say what is wrong; these add what to do about it.
_HINTS = (
    ("contains NaN", "impute",
     "Impute the missing values first (e.g. sklearn.impute.SimpleImputer in a Pipeline) or "
     "drop those rows."),
    ("contains infinity", "Replace",
     "Replace or drop the infinite values, and rescale very large ones (e.g. with "
     "sklearn.preprocessing.StandardScaler)."),
    ("inconsistent numbers of samples", "same length",
     "X, y and sample_weight need one entry per sample: pass arrays of the same length."),
    ("sample(s) (shape=", "non-empty", "Pass a non-empty X (at least one row)."),
    ("feature(s) (shape=", "non-empty", "Pass X (and a 2-D y) with at least one column."),
)


@contextmanager
def explained_errors():
    """Append to scikit-learn's input-validation ValueErrors a sentence saying what to do.

    The exception keeps its type and traceback; only plain ValueErrors are touched.
    """
    try:
        yield
    except ValueError as err:
        if type(err) is ValueError and err.args and isinstance(err.args[0], str):
            msg = err.args[0]
            for key, already, hint in _HINTS:
                if key in msg and already not in msg:
                    err.args = (f"{msg.rstrip()} {hint}",) + err.args[1:]
                    break
        raise
