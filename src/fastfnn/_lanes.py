"""Fits that share their minibatches, trained as lanes of one compiled call (``_kernels``'
``run_lanes_``).

A search's candidates on one fold with one seed see the same rows in the same order every
epoch; only their hyper-parameters (alpha, learning rate, momentum, betas...) differ. Trained
one by one, a small network's batch is a few microseconds of calls on tiny matrices. As lanes,
their parameters side by side, the first layer of all of them is one wide product of the
shared rows, and every other pass is one vector operation across the models.

Fits share their minibatches where their rows are equal and their random states are (one
seed): a set of them draws each epoch's order once, with a copy of that state (the draws each
would make), so no fit's own random state is advanced. Each epoch, the fits' parameters and
rule state are copied into the lanes and back: the fits stay what the trainer reads (stopping
rules, validation, best weights), and a fit that stops leaves the others going. A laned model
computes what its own fit computes, summed in another order: its values are its solo fit's to
rounding (about 1e-15 relative after 50 epochs of the tiny network), not its bits; which fits
are laned depends on the fits alone, never on the thread count. Training that amplifies
rounding (adam at a rate of 0.3 on batches of 8: 1e-16 relative after an epoch, 1e-10 after
50, 5e-2 after 100) takes a laned fit as far from its solo fit as a one-ulp change of the data
would: the searches lane their candidates only where ``FASTFNN_LANES`` asks.
"""

import copy
from typing import NamedTuple

import numpy as np

from . import _kernels as K

HIDDEN = (K.IDENTITY, K.LOGISTIC, K.TANH, K.RELU)
# (loss, output activation): the canonical pairs, whose output delta is A[L] - Y
PAIRS = ((K.SQUARED_ERROR, K.IDENTITY), (K.BINARY_LOG_LOSS, K.LOGISTIC),
         (K.LOG_LOSS, K.SOFTMAX))
RULES = (K.SGDRule, K.AdamRule, K.AdamWRule)
# The largest layer past the first (fan_in * fan_out) that lanes take: there every model has
# its own product (a vector across the models, no shared operand), which beats each model's
# own tile kernel on small layers only. 16 fits, adam, 50 epochs, 4,000 rows, one thread, on
# a 2-core Xeon (AVX-512): (16, 16) 1.41x faster as lanes, (32, 32) 1.08x slower, (64, 64)
# 1.33x slower; (32,) with one output 1.3x faster.
LANED_WEIGHTS = 512
# The fewest fits with the same minibatches that train as lanes: a call computes whole chunks
# of LANE_CHUNK models, so 4 fits alone would pay for 8 (slower than 4 solo fits: 141 against
# 166 fits a second); from 5 on the lanes are ahead. (A group of more than a call's worth is
# split evenly: 9 fits as sets of 5 and 4, the 16 lanes that 9 need either way.)
LANES_MIN = 5
ALWAYS_TILE = 2**62  # the first layer's one product: the tile kernel wherever its shape allows


def lanes_per_call(dtype):
    """Models per lane set and call for ``dtype``, at most: LANE_CHUNK, or the vector width
    where that is more (float32 with AVX-512: 16), so that the first layer's wide product is
    whole vectors of the tile kernel for any layer width. (In float64, 8 models a call ran
    1.15x faster than 16 on the tiny network: a laned layer of 64 KiB, not 128.)"""
    return int(np.lcm(K.LANE_CHUNK, K.VECTOR_BYTES // np.dtype(dtype).itemsize))


def lane_key(fit, groups):
    """A key equal for fits whose epochs can be lanes of one call (one shape, activations,
    loss, dtype, rule kind and batch size; dense rows, no sample weights, dropout or clipping),
    or None for a fit that lanes do not take."""
    params, rule, _, data, model = groups
    sizes = tuple(int(s) for s in params.sizes)
    if (data.is_sparse or data.use_sw or model.keeps_z or fit.settings.dropping
            or model.first_csr
            or model.max_grad_norm > 0 or model.deriv_act != K.IDENTITY
            or model.hidden_act not in HIDDEN or (model.loss, model.out_act) not in PAIRS
            or type(rule) not in RULES
            or any(a * b > LANED_WEIGHTS for a, b in zip(sizes[1:-1], sizes[2:]))):
        return None
    return (params.theta.dtype.str, sizes, model.hidden_act, model.out_act, model.loss,
            model.eps, type(rule), getattr(rule, "nesterov", False), fit.batch_size,
            data.X.shape, data.Y.shape)


def _same_batches(fit, other):
    """Whether two fits (before their first epoch) will draw the same minibatches every epoch:
    equal X and Y (views of the same memory, or equal arrays), and random states that will
    shuffle alike (two generators in equal states, not one shared; or no shuffling)."""
    if not all(a.__array_interface__ == b.__array_interface__  # one memory, seen alike
               or np.array_equal(a, b)
               for a, b in ((fit.data.X, other.data.X), (fit.data.Y, other.data.Y))):
        return False
    if not (fit.settings.shuffle or other.settings.shuffle):
        return True
    if fit.settings.shuffle != other.settings.shuffle or fit.random_state is other.random_state:
        return False  # one generator shared (random_state=None, one instance): each draws anew
    mine, theirs = fit.random_state.get_state(), other.random_state.get_state()
    return np.array_equal(mine[1], theirs[1]) and mine[:1] + mine[2:] == theirs[:1] + theirs[2:]


def lane_sets(fits):
    """The fits (``trainer.StochasticFit``, before their first epoch) that lanes take, as
    :class:`LaneSet` s of fits with one key and the same minibatches (:func:`_same_batches`),
    as few as :func:`lanes_per_call` allows, of sizes within one of each other (from the fits
    alone: never from the thread count), and the positions of the others."""
    by_key = {}
    rest = []
    for k, fit in enumerate(fits):
        groups = fit.loop.groups(fit.optimizer.rule(), fit.masks)
        key = lane_key(fit, groups)
        if key is None:
            rest.append(k)
            continue
        for members in by_key.setdefault(key, []):
            if _same_batches(fits[members[0]], fit):
                members.append(k)
                break
        else:
            by_key[key].append([k])
    sets = []
    for member_lists in by_key.values():
        for members in member_lists:
            if len(members) < LANES_MIN:
                rest.extend(members)
                continue
            per_call = lanes_per_call(fits[members[0]].state.net.dtype)
            for chunk in np.array_split(members, -(-len(members) // per_call)):
                sets.append(LaneSet([fits[k] for k in chunk]))
    return sets, sorted(rest)


class _Lane(NamedTuple):
    """One fit's arrays as a lane reads and writes them: theta, the rule's state (S2 is S1
    for SGD), its step count (or None) and its hyper-parameters (:class:`_kernels.Lanes`'s
    H column)."""

    theta: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    steps: np.ndarray
    H: tuple


def _lane(fit):
    """The fit's :class:`_Lane` for this epoch (its rule at this epoch's rate)."""
    rule = fit.optimizer.rule()
    alpha = fit.loop.alpha
    if isinstance(rule, K.SGDRule):
        return _Lane(fit.state.net.theta, rule.velocity, rule.velocity, None,
                     (alpha, rule.learning_rate, rule.momentum, 0.0, 0.0, 1.0))
    factor = 1.0 - rule.learning_rate * rule.weight_decay if isinstance(rule, K.AdamWRule) \
        else 1.0
    return _Lane(fit.state.net.theta, rule.m, rule.v, rule.steps,
                 (alpha, rule.learning_rate, rule.beta_1, rule.beta_2, rule.epsilon, factor))


class LaneSet:
    """Fits with one :func:`lane_key` and the same minibatches, their epochs run as lanes of
    one call."""

    def __init__(self, fits):
        self.fits = fits
        first = fits[0]
        params, rule, _, data, model = first.loop.groups(first.optimizer.rule(), first.masks)
        self.sizes = params.sizes
        self.dtype = params.theta.dtype
        self.codes = (int(model.hidden_act), int(model.out_act), int(model.loss),
                      float(model.eps), not isinstance(rule, K.SGDRule),
                      bool(getattr(rule, "nesterov", False)))
        self.per_call = lanes_per_call(self.dtype)
        rows, G = first.batch_size, _padded(len(fits), self.per_call)
        units = int(np.sum(self.sizes[1:]))
        self.A, self.D = (np.empty(rows * units * G, self.dtype) for _ in range(2))
        self.A0 = np.empty(rows * int(self.sizes[0]), self.dtype)
        self.Y = np.empty(rows * int(self.sizes[-1]), self.dtype)
        self.sw = np.empty(rows, self.dtype)
        # the fits' shared draws: a copy of the first one's random state and order
        self.random_state = copy.deepcopy(first.random_state)
        self.order = first.data.order.copy()
        self.shuffle = first.settings.shuffle

    def train(self, stop):
        """Run this set's fits until each is over (or ``stop``, a threading.Event, is set):
        per epoch, the order drawn once for all of them (the draws each fit's own random
        state would make: they are equal), the fits that go on as lanes (:meth:`run_epoch`),
        then each one's ``end_epoch`` (a fit whose Python part raises ends alone:
        ``StochasticFit.alone``)."""
        while not stop.is_set():
            if self.shuffle:
                self.random_state.shuffle(self.order)
            begun = [fit for fit in self.fits if fit.alone(fit.begin_epoch, self.order)]
            if not begun:
                return
            for fit, sums in zip(begun, self.run_epoch(begun)):
                fit.alone(fit.close_epoch, sums)

    def run_epoch(self, fits):
        """One epoch of ``fits`` (this set's that began it, with its order) as lanes: their
        arrays copied in, ``run_lanes_``, copied back, and each fit's workspace given its
        gradient-norm sums; returns each fit's ``(data, penalty)`` sums."""
        for fit in fits:
            fit.loop.begin()
        lanes = [_lane(fit) for fit in fits]
        lanes += lanes[:1] * (_padded(len(lanes), self.per_call) - len(lanes))  # unread copies
        G, L = len(lanes), len(self.sizes) - 1
        TH, S1, S2 = (np.stack(arrays, axis=1) for arrays in zip(*(l[:3] for l in lanes)))
        adam = self.codes[4]
        steps = np.array([l.steps[0] if adam else 0 for l in lanes], np.int64)
        group = K.Lanes(TH.ravel(), np.empty(TH.size, self.dtype), S1.ravel(), S2.ravel(),
                        np.array([l.H for l in lanes], np.float64).T.copy(), steps,
                        np.zeros((G, 2)), np.zeros((L, G)), np.zeros(G, np.int64))
        work = K.LaneWork(self.A0, self.Y, self.A, self.D, self.sw, np.zeros((5, G)))
        model = K.LaneModel(G, *self.codes, ALWAYS_TILE)
        K.run_lanes_(group, work, fits[0].data, self.sizes, model, fits[0].batch_size)
        for g, (fit, lane) in enumerate(zip(fits, lanes)):
            lane.theta[:] = TH[:, g]
            lane.S1[:] = S1[:, g]
            if adam:
                lane.S2[:] = S2[:, g]
                lane.steps[0] = steps[g]
            fit.loop.work.layer_sq[:] = group.layer_sq[:, g]
            fit.loop.work.n_updates[0] = group.n_updates[g]
        return group.sums[:len(fits)]


def _padded(n, per_call):
    """n lanes rounded up to whole calls' worth (``per_call``, a multiple of LANE_CHUNK)."""
    return -(-n // per_call) * per_call
