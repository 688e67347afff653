"""Activation registry: name -> kernel code, where it may be used, and NumPy reference twins.

The one list of activation names: validation (the estimators' parameter constraints), the CLI's
choices (``fastfnn.HIDDEN_ACTIVATIONS``) and the docs read it. The compiled kernels live in
``_kernels.py`` (``bias_act_``, ``mul_act_deriv_`` and, for the activations whose derivative is
not a function of the output ``a``, ``mul_act_deriv_z_``); the NumPy twins here are the test
oracle and state the math plainly.

=============  ==========================================  ===============================
name           a = f(z)                                    f'(z)
=============  ==========================================  ===============================
identity       z                                           1
logistic       1 / (1 + e^-z)                              a (1 - a)
tanh           tanh z                                      1 - a^2
relu           max(z, 0)                                   [a > 0]
leaky_relu     z if z > 0 else 0.01 z                      1 if a > 0 else 0.01
elu            z if z > 0 else e^z - 1 (alpha 1)           1 if a > 0 else a + 1
softplus       log(1 + e^z) (beta 1)                       1 - e^-a  (= logistic(z))
gelu           z Phi(z), Phi the normal CDF (erf form)     Phi(z) + z phi(z)  (needs z)
silu           z logistic(z)                               s (1 + z (1 - s)), s = logistic(z)
exp            e^z (output of the Poisson loss)            a
softmax        e^z / sum e^z, per row (multiclass output)  (not elementwise)
=============  ==========================================  ===============================
"""

from math import erf as _erf
from typing import Callable, NamedTuple

import numpy as np

from . import _kernels as K


def _logistic(z):
    # 1 / (1 + exp(-z)) without overflow: exp only of -|z|
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_vector_erf = np.vectorize(_erf, otypes=[float])


def _normal_cdf(z):
    return 0.5 * (1.0 + _vector_erf(np.asarray(z, dtype=float) / np.sqrt(2.0)))


class Activation(NamedTuple):
    """One activation: its kernel code, where it may be used (``hidden``: a hidden layer of
    both estimators; else an output only), and its NumPy twins ``a = f(z)`` and ``f'``:
    ``reference_derivative(a)`` in terms of the output, or ``reference_derivative_z(z)`` where
    the derivative needs z."""

    code: int
    hidden: bool
    reference: Callable[[np.ndarray], np.ndarray]
    reference_derivative: Callable[[np.ndarray], np.ndarray] | None = None
    reference_derivative_z: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def keeps_z(self):
        """True where the derivative is not a function of the output (the forward keeps z)."""
        return self.code in K.KEEPS_Z


def _cast(f):
    return lambda x: np.asarray(f(x)).astype(x.dtype, copy=False)


ACTIVATIONS = {
    "identity": Activation(K.IDENTITY, True, lambda z: z.copy(), np.ones_like),
    "logistic": Activation(K.LOGISTIC, True, _logistic, lambda a: a * (1 - a)),
    "tanh": Activation(K.TANH, True, np.tanh, lambda a: 1 - a * a),
    "relu": Activation(K.RELU, True, lambda z: np.maximum(z, 0),
                       lambda a: (a > 0).astype(a.dtype)),
    "leaky_relu": Activation(K.LEAKY_RELU, True,
                             lambda z: np.where(z > 0, z, K.LEAKY_SLOPE * z).astype(z.dtype),
                             lambda a: np.where(a > 0, 1.0, K.LEAKY_SLOPE).astype(a.dtype)),
    "elu": Activation(K.ELU, True, lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
                      lambda a: np.where(a > 0, 1.0, a + 1).astype(a.dtype)),
    "softplus": Activation(K.SOFTPLUS, True,
                           lambda z: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))),
                           lambda a: -np.expm1(-a)),
    "gelu": Activation(K.GELU, True, _cast(lambda z: z * _normal_cdf(z)),
                       reference_derivative_z=_cast(
                           lambda z: _normal_cdf(z) + z * np.exp(-0.5 * z * z)
                           / np.sqrt(2 * np.pi))),
    "silu": Activation(K.SILU, True, lambda z: z * _logistic(z),
                       reference_derivative_z=lambda z: _logistic(z) * (1 + z * (1 - _logistic(z)))),
    "exp": Activation(K.EXP, False, np.exp, lambda a: a.copy()),
    "softmax": Activation(K.SOFTMAX, False, _softmax),
}

# scikit-learn's four first, then fastfnn's additions
HIDDEN_ACTIVATIONS = tuple(name for name, a in ACTIVATIONS.items() if a.hidden)
OUTPUT_ACTIVATIONS = tuple(ACTIVATIONS)


def code(name):
    """Kernel code of the activation ``name`` (ValueError if unknown)."""
    try:
        return ACTIVATIONS[name].code
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}."
        ) from None


def bias_act_(Z, b, name):
    """In place ``Z <- act(Z + b)``; Z (n, k) C-contiguous, b (k,), same float dtype."""
    K.bias_act_(Z, b, code(name))


def mul_derivative_(D, A, name, Z=None):
    """In place ``D <- D * act'(z)`` with ``A = act(z)``; D, A (n, k). For gelu and silu the
    pre-activation ``Z`` (n, k) is needed instead. Not for softmax."""
    activation = ACTIVATIONS[name]
    if activation.keeps_z:
        if Z is None:
            raise ValueError(f"{name!r}'s derivative needs the pre-activation Z.")
        K.mul_act_deriv_z_(D, Z, activation.code)
    elif activation.reference_derivative is None:
        raise ValueError(f"{name!r} has no elementwise derivative.")
    else:
        K.mul_act_deriv_(D, A, activation.code)
