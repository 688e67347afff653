"""check_gradients: the delta-recursion gradients against central finite differences.

For every parameter ``theta_p``: ``g_fd[p] = (l(theta + eps e_p) - l(theta - eps e_p)) / (2 eps)``
on the full loss (data term + L2), in float64. Each parameter block (``W[i]``, ``b[i]``) is scored
by the relative error ``||g - g_fd|| / (||g|| + ||g_fd||)`` (0 when both vanish).

A comparison is refused (ValueError saying what to change) where finite differences cannot
measure the gradient, rather than reported as a large error:

* ``eps`` below :data:`MIN_EPS` or above :data:`MAX_EPS` (see there);
* outputs saturated where a log-loss clips its probabilities (the loss is flat there for finite
  differences, while the analytic gradient, scikit-learn's ``a - y``, is not);
* no parameter whose step of ``eps`` changes the loss by more than a few units in the last place
  of the loss (a flat loss, or a step too small for the loss's size).
"""

from numbers import Real

import numpy as np
from sklearn.utils import check_array

from ._validation import _check_sample_weight, check_weight_sum

from .activations import HIDDEN_ACTIVATIONS
from .dropout import hidden_rates, masks
from .losses import CANONICAL_OUTPUT, SQUARED_ERROR_OUTPUTS, check_pair, clip_eps
from .network import DataSource, Network, check_sparse, layer_sizes

# The masks a check with dropout holds fixed: those of this seed's first epoch, row r of X
# being row r of the epoch.
DROPOUT_SEED = 0

_FLOAT64_EPS = float(np.finfo(np.float64).eps)
# The smallest step. The differences are taken in float64, where each loss value carries a
# rounding error of about eps_mach * |l|, so a difference quotient carries eps_mach * |l| / eps.
# At eps = 1e-4 * sqrt(eps_mach) (about 1.5e-12) that is already 1e4 * sqrt(eps_mach) * |l|,
# about 1.5e-4 * |l|; smaller steps drown the gradient in rounding (and below about
# eps_mach * |theta_p| the step does not even change the weight). The default, 1e-6, sits near
# the step that balances this rounding against the truncation error (eps^2 times the third
# derivative).
MIN_EPS = 1e-4 * float(np.sqrt(_FLOAT64_EPS))
# The largest step: beyond it the truncation error (eps^2 / 6 times the third derivative) is of
# the order of the gradient itself for weights of order 1: the differences no longer measure a
# derivative.
MAX_EPS = 1e-1
# The loss must move by more than this many units in its last place over +-eps for some weight.
_ULPS = 4


def check_eps(eps):
    """``eps`` as a float; TypeError unless a real number, ValueError unless within
    [MIN_EPS, MAX_EPS] (see the module's notes for why)."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a real number, the finite-difference step (default "
                        f"1e-6), got {eps!r} of type {type(eps).__name__}.")
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite step, got {eps!r}: use the default "
                         "1e-6, or a step between 1e-8 and 1e-4.")
    if eps < MIN_EPS:
        raise ValueError(f"eps={eps!r} is below {MIN_EPS:.2g}, where float64 rounding of the "
                         "loss swamps its central differences: use a larger eps (the default "
                         "1e-6, or between 1e-8 and 1e-4).")
    if eps > MAX_EPS:
        raise ValueError(f"eps={eps!r} is above {MAX_EPS!r}, too large a step for the "
                         "differences to measure a derivative: use a smaller eps (the default "
                         "1e-6, or between 1e-8 and 1e-4).")
    return eps


def _check_unsaturated(net, source, Y, sample_weight):
    """ValueError where a log-loss output is clipped on the side its target weighs (there the
    loss is flat for finite differences but not for the analytic gradient)."""
    if net.loss not in ("binary_log_loss", "log_loss"):
        return
    A = net.forward(source)  # (n, n_outputs)
    eps = clip_eps(A.dtype)
    clipped = (A < eps) & (Y > 0)
    if net.loss == "binary_log_loss":
        clipped |= (A > 1 - eps) & (Y < 1)
    if sample_weight is not None:
        clipped &= (np.asarray(sample_weight) != 0)[:, None]
    n = int(np.count_nonzero(clipped.any(axis=1)))
    if n:
        raise ValueError(
            f"The model's outputs are saturated on {n} of the {len(A)} rows (probabilities "
            "within machine epsilon of 0 or 1, against the targets, where the log-loss clips "
            "them): finite differences see a flat loss there but the analytic gradient does "
            "not, so no comparison is possible. Check the gradients on rows where the model is "
            "less certain, or at less extreme weights."
        )


def gradcheck_cases():
    """(loss, hidden activation, output activation) of the standard checks (``fastfnn
    gradcheck``): every hidden activation, every output of squared error, every other loss with
    its canonical output, and last the derivation's network (logistic everywhere, squared
    error)."""
    cases = [("squared_error", a, "identity") for a in HIDDEN_ACTIVATIONS]
    cases += [("squared_error", "tanh", o) for o in SQUARED_ERROR_OUTPUTS if o != "identity"]
    cases += [(loss, "tanh", out) for loss, out in CANONICAL_OUTPUT.items()
              if loss != "squared_error"]
    return cases + [("squared_error", "logistic", "logistic")]


def gradients(net, X, Y, sample_weight=None, alpha=0.0, eps=1e-6, dropped=None):
    """Analytic and central-difference gradients of the full-batch loss, both (n_params,).

    ``net`` is a float64 Network (left unchanged); X (n, n_features); Y (n, n_outputs);
    ``dropped``: the dropout masks (a ``dropout.Masks``) held fixed in every evaluation, or
    None.
    Raises ValueError where the loss or a gradient overflows (no finite comparison exists), and
    where finite differences cannot resolve the gradient (see the module's notes): ``eps``
    outside [MIN_EPS, MAX_EPS], saturated log-loss outputs, or a loss that no step of ``eps``
    moves by more than a few units in its last place while the analytic gradient is not zero.
    """
    eps = check_eps(eps)
    source = DataSource(X, net.dtype)
    theta0 = net.theta.copy()
    loss, grad = net.loss_grad(source, Y, sample_weight, alpha, masks=dropped)
    if not (np.isfinite(loss) and np.isfinite(grad).all()):
        raise ValueError("The loss or its gradient overflows at these weights and data, so "
                         "there is nothing finite to compare: scale X (e.g. StandardScaler) "
                         "or check smaller weights.")
    _check_unsaturated(net, source, Y, sample_weight)
    analytic = grad.copy()
    numeric = np.empty_like(analytic)
    resolved = False
    try:
        for p in range(theta0.size):
            net.theta[p] = theta0[p] + eps
            f_plus, _ = net.loss_grad(source, Y, sample_weight, alpha, masks=dropped)
            net.theta[p] = theta0[p] - eps
            f_minus, _ = net.loss_grad(source, Y, sample_weight, alpha, masks=dropped)
            net.theta[p] = theta0[p]
            numeric[p] = (f_plus - f_minus) / (2 * eps)
            resolved = resolved or \
                abs(f_plus - f_minus) > _ULPS * _FLOAT64_EPS * max(abs(f_plus), abs(f_minus))
    finally:
        net.theta[:] = theta0
    if not np.isfinite(numeric).all():
        raise ValueError(f"The loss overflows within a step of eps={eps!r} of the weights: "
                         "use a smaller eps.")
    if not resolved and np.any(analytic):
        raise ValueError(
            f"No weight changes the loss ({float(loss):.6g}) by more than {_ULPS} units in its "
            f"last place over a step of eps={eps!r}, yet the analytic gradient is not zero "
            f"(norm {np.linalg.norm(analytic):.3g}): finite differences cannot resolve it. Use "
            "a larger eps (e.g. the default 1e-6, or 1e-4), or check the gradients where the "
            "loss is not flat (units or outputs not saturated)."
        )
    return analytic, numeric


def _relative_error(a, n):
    diff = np.linalg.norm(a - n)
    return 0.0 if diff == 0 else float(diff / (np.linalg.norm(a) + np.linalg.norm(n)))


def layer_errors(net, X, Y, sample_weight=None, alpha=0.0, eps=1e-6, dropped=None):
    """Per layer ``(error of dW[i], error of db[i])``, relative errors as in the module doc."""
    analytic, numeric = gradients(net, X, Y, sample_weight, alpha, eps, dropped)
    return [
        (_relative_error(gW, nW), _relative_error(gb, nb))
        for gW, nW, gb, nb in zip(net.coefs(analytic), net.coefs(numeric),
                                  net.intercepts(analytic), net.intercepts(numeric))
    ]


def check_gradients(model, X, y, eps=1e-6, *, sample_weight=None, loss="squared_error",
                    activation="relu", out_activation=None, alpha=0.0, per_layer=False,
                    dropout=False):
    """Largest relative error between the analytic (delta recursion) gradients and central
    finite differences of the loss, data term + L2.

    Parameters
    ----------
    model : fitted FNNRegressor / FNNClassifier, or a pair ``(coefs, intercepts)``
        An estimator is checked as fitted, with the settings it was fitted with: its loss
        (recorded by the fit), activations and L2 strength (``alpha``; none for 'adamw',
        whose ``alpha`` is a decay outside the loss), and never changed. A pair of lists
        ``W[i]`` (fan_in, fan_out), ``b[i]`` (fan_out,) is checked with ``loss``,
        ``activation``, ``out_activation`` (default: the loss's canonical one) and ``alpha``.
    X : array-like (n_samples, n_features)
    y : array-like (n_samples,) or (n_samples, n_outputs)
        Targets: labels for a classifier, values (or 0/1 indicators) otherwise.
    eps : float
        Finite-difference step, in [MIN_EPS, MAX_EPS] (about 1.5e-12 to 0.1; 1e-8 to 1e-4 is
        the useful range in float64).
    sample_weight : array-like (n_samples,), optional
    per_layer : bool
        Return ``[(error_W, error_b), ...]`` per layer instead of the maximum.
    dropout : bool, float or tuple
        Check the dropped network, its masks held fixed (those of a training epoch, row r of X
        at position r): True takes an estimator's own ``dropout``; a rate, or one per hidden
        layer, gives them. False (default): the whole network, as predictions use it.

    Returns
    -------
    float, or list of (float, float) if ``per_layer``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is an unfitted estimator.
    TypeError
        If ``eps`` is not a real number, or ``model`` neither an estimator nor a pair.
    ValueError
        For inputs that do not fit the model (X's columns, y's rows or columns, labels), and
        where finite differences cannot resolve the gradient: ``eps`` outside
        [MIN_EPS, MAX_EPS], saturated log-loss outputs, or a loss no step of ``eps`` moves
        measurably (the message says what to change).
    """
    eps = check_eps(eps)
    if hasattr(model, "_gradient_problem"):
        net, X, Y, sample_weight, settings = model._gradient_problem(X, y, sample_weight)
        alpha = settings.l2
        rates = settings.dropout if dropout is True else dropout
    elif isinstance(model, (tuple, list)) and len(model) == 2:
        net = _network_of(model, loss, activation, out_activation)
        X, Y, sample_weight = _checked_data(net, X, y, sample_weight)
        if dropout is True:
            raise ValueError("dropout=True takes an estimator's own rates: pass the rate (or "
                             "one per hidden layer) to check a pair (coefs, intercepts).")
        rates = dropout
    else:
        raise TypeError(
            "check_gradients takes a fitted FNNRegressor/FNNClassifier or a pair "
            f"(coefs, intercepts); got {type(model).__name__}."
        )
    dropped = None
    if rates is not False and rates is not None:
        rates = hidden_rates(rates, len(net.sizes) - 2)
        dropped = masks(rates, DROPOUT_SEED, 0) if any(rates) else None
    errors = layer_errors(net, X, Y, sample_weight, alpha, eps, dropped)
    return errors if per_layer else max(max(e) for e in errors)


def _network_of(pair, loss, activation, out_activation):
    """A float64 Network holding ``(coefs, intercepts)``; ValueError unless the lists chain:
    ``coefs[i]`` (fan_in, fan_out) with ``coefs[i+1]`` taking fan_out inputs, ``intercepts[i]``
    (fan_out,), all finite."""
    coefs, intercepts = pair
    try:
        coefs = [np.asarray(W, dtype=np.float64) for W in coefs]
        intercepts = [np.asarray(b, dtype=np.float64) for b in intercepts]
    except (TypeError, ValueError):
        raise ValueError("coefs and intercepts must be lists of numeric arrays.") from None
    if not coefs or len(coefs) != len(intercepts):
        raise ValueError(f"Got {len(coefs)} coefs and {len(intercepts)} intercepts: give one "
                         "weight matrix and one bias vector per layer (at least one layer).")
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or 0 in W.shape:
            raise ValueError(f"coefs[{i}] must be a non-empty (fan_in, fan_out) matrix, got "
                             f"shape {W.shape}.")
        if i and W.shape[0] != coefs[i - 1].shape[1]:
            raise ValueError(f"coefs[{i}] takes {W.shape[0]} inputs but coefs[{i - 1}] gives "
                             f"{coefs[i - 1].shape[1]} outputs.")
        if b.shape != (W.shape[1],):
            raise ValueError(f"intercepts[{i}] must have shape ({W.shape[1]},), got {b.shape}.")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"Layer {i}'s weights contain NaN or infinity.")
    out_activation = out_activation or CANONICAL_OUTPUT.get(loss)
    check_pair(loss, out_activation)  # (an unknown loss named first)
    net = Network(layer_sizes(coefs), activation, out_activation, loss, np.float64)
    net.set_params(coefs, intercepts)
    return net


def _checked_data(net, X, y, sample_weight):
    """``(X, Y (n, n_outputs), sample_weight)`` in float64, checked against the network."""
    check_sparse(X)
    X = check_array(X, accept_sparse="csr", dtype=np.float64)
    if X.shape[1] != net.sizes[0]:
        raise ValueError(f"X has {X.shape[1]} features, but coefs[0] takes {net.sizes[0]}.")
    Y = check_array(y, ensure_2d=False, dtype=np.float64)
    Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape != (X.shape[0], net.sizes[-1]):
        raise ValueError(f"y must have shape ({X.shape[0]}, {net.sizes[-1]}) (one row per "
                         f"sample, one column per output), got {np.shape(y)}.")
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X)
        check_weight_sum(sample_weight)
    return X, Y, sample_weight
