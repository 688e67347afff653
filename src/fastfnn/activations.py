"""Activation registry: name -> (kernel code, NumPy reference twin of a = act(z), and of act'(z)).

The compiled kernels live in ``_kernels.py`` (``bias_act_`` and ``mul_act_deriv_``); the NumPy
twins here are the test oracle and state the math plainly. Derivatives are written in terms of the
output ``a = act(z)``, so the forward pass need not keep ``z``.
"""

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


class Activation(NamedTuple):
    """One activation: its kernel code and its NumPy twins ``a = f(z)`` and ``f'(z) = g(a)``."""

    code: int
    reference: Callable[[np.ndarray], np.ndarray]
    reference_derivative: Callable[[np.ndarray], np.ndarray] | None  # None: not elementwise


ACTIVATIONS = {
    "identity": Activation(K.IDENTITY, lambda z: z.copy(), lambda a: np.ones_like(a)),
    "logistic": Activation(K.LOGISTIC, _logistic, lambda a: a * (1 - a)),
    "tanh": Activation(K.TANH, np.tanh, lambda a: 1 - a * a),
    "relu": Activation(K.RELU, lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "exp": Activation(K.EXP, np.exp, lambda a: a.copy()),
    "softmax": Activation(K.SOFTMAX, _softmax, None),
}

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softmax", "exp")


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


def mul_derivative_(D, A, name):
    """In place ``D <- D * act'(z)`` with ``A = act(z)``; D, A (n, k). Not for softmax."""
    if ACTIVATIONS[name].reference_derivative is None:
        raise ValueError(f"{name!r} has no elementwise derivative.")
    K.mul_act_deriv_(D, A, code(name))
