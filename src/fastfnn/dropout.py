"""Inverted dropout of the hidden layers: the rates, the per-epoch key, and the NumPy twin of
the masks.

During training ('sgd', 'adam', 'adamw') hidden layer i's outputs are
``a * mask / (1 - p_i)``, ``mask`` 0 with probability ``p_i``; prediction, validation scoring and
``check_gradients`` (unless asked) use the whole network. No mask is ever stored: the compiled
kernel (``_kernels.dropout_``) draws unit j of the row at position r of an epoch's order from a
counter-based generator: the row's key ``mix64(mix64(key + (i + 1) G) ^ r)`` (SplitMix64's
finalizer) starts a Weyl sequence ``x = row key + j G`` over the units, and unit j's draw is the
top 53 bits of one xorshift-multiply round, ``(x ^ (x >> 32)) M1``; the key mixes the seed and
the epoch. So the forward and the backward pass find the same mask, and neither the split of a
batch into parts nor the thread count changes a bit.
"""

from numbers import Real
from typing import NamedTuple

import numpy as np

_MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


class Masks(NamedTuple):
    """The dropout of one pass: ``rates`` (L,) float64, layer i's outputs dropped with
    probability ``rates[i]`` (the output layer's 0), and ``key`` (uint64, see
    :func:`epoch_key`)."""

    rates: np.ndarray
    key: np.uint64

    @staticmethod
    def none(n_layers):
        """No dropout on a network of ``n_layers`` weight layers: one object per depth (its
        rates are never written), so that an epoch's compiled groups can be seen unchanged."""
        masks = _NO_MASKS.get(n_layers)
        if masks is None:
            masks = _NO_MASKS.setdefault(n_layers, Masks(np.zeros(n_layers), np.uint64(0)))
        return masks


_NO_MASKS = {}  # n_layers -> Masks.none(n_layers)


def hidden_rates(dropout, n_hidden):
    """The ``dropout`` parameter as one rate per hidden layer (a tuple of ``n_hidden`` floats).

    A number applies to every hidden layer; a sequence gives one rate per hidden layer. Each
    rate must be in [0, 1): ValueError otherwise, saying what to pass.
    """
    if isinstance(dropout, (bool, np.bool_)):
        raise ValueError(f"dropout must be a number in [0, 1) or one per hidden layer, got "
                         f"{dropout!r}.")
    if isinstance(dropout, Real):
        rates = (float(dropout),) * n_hidden
    else:
        try:
            rates = tuple(dropout)
        except TypeError:
            raise ValueError(f"dropout must be a number in [0, 1) or a sequence with one rate "
                             f"per hidden layer, got {dropout!r}.") from None
        if len(rates) != n_hidden:
            raise ValueError(f"dropout gives {len(rates)} rate(s) but the network has "
                             f"{n_hidden} hidden layer(s): pass one rate per hidden layer, or "
                             "a single number for all.")
        if any(isinstance(r, (bool, np.bool_)) or not isinstance(r, Real) for r in rates):
            raise ValueError(f"dropout rates must be numbers in [0, 1), got {dropout!r}.")
        rates = tuple(float(r) for r in rates)
    bad = [r for r in rates if not 0.0 <= r < 1.0]
    if bad:
        raise ValueError(f"dropout rates must be in [0, 1) (the probability of dropping a "
                         f"unit), got {bad[0]!r}.")
    return rates


def _mix64(x):
    """SplitMix64's finalizer on Python ints (mod 2^64)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def draw_seed(random_state):
    """The dropout seed of a fit: one 63-bit draw from its RandomState (made only where dropout
    is on, so that fits without it draw what scikit-learn draws)."""
    return int(random_state.randint(0, 2**63 - 1, dtype=np.int64))


def epoch_key(seed, epoch):
    """The masks' key of ``epoch`` (the model's epoch count) for ``seed``: ``mix64(seed ^
    mix64(epoch G))``."""
    return np.uint64(_mix64((int(seed) ^ _mix64((int(epoch) * GOLDEN) & _MASK)) & _MASK))


def masks(rates, seed, epoch):
    """:class:`Masks` for hidden ``rates`` (one per hidden layer), ``seed`` and ``epoch``."""
    return Masks(np.array(tuple(rates) + (0.0,), dtype=np.float64), epoch_key(seed, epoch))


def dropout_mask(key, layer, row0, m, k, rate):
    """NumPy twin of the compiled mask: (m, k) bool, True where unit j of row ``row0 + r`` of
    hidden layer ``layer`` is kept under ``key`` (see the module's notes)."""
    u64 = np.uint64

    def mix(x):
        x = (x ^ (x >> u64(30))) * u64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> u64(27))) * u64(0x94D049BB133111EB)
        return x ^ (x >> u64(31))

    with np.errstate(over="ignore"):
        base = mix(np.array([int(key)], u64) + u64(layer + 1) * u64(GOLDEN))
        rows = mix(base ^ (u64(row0) + np.arange(m, dtype=u64)))[:, None]  # (m, 1)
        x = rows + np.arange(k, dtype=u64)[None, :] * u64(GOLDEN)  # (m, k)
        h = (x ^ (x >> u64(32))) * u64(0xBF58476D1CE4E5B9)
    return (h >> u64(11)) >= u64(rate * 2.0**53)
