"""The one place that touches scikit-learn's private helpers.

Parameter constraints (the same as scikit-learn 1.9's MLPs, so the same ``InvalidParameterError``
comes out of ``fit``), the fit-context decorator that checks them, and small helpers of
``_fit_lbfgs`` / ``partial_fit``. If scikit-learn moves one of these, only this file changes.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context  # noqa: F401  (re-exported)
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.multiclass import _check_partial_fit_first_call  # noqa: F401
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight  # noqa: F401

MLP_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
    "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
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
}

REGRESSOR_CONSTRAINTS = {
    **MLP_CONSTRAINTS,
    "loss": [StrOptions({"squared_error", "poisson"})],
    "out_activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
}


def lbfgs_iprint_options(iprint):
    """``{'iprint': iprint}`` for SciPy versions that still take it, else ``{}``."""
    return _get_additional_lbfgs_options_dict("iprint", iprint)


def check_optimize_result(solver, result, max_iter):
    """Number of iterations of a SciPy result; warns (ConvergenceWarning) if it did not converge."""
    return _check_optimize_result(solver, result, max_iter)
