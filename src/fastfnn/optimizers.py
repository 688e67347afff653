"""Update rules on the flat parameter vector: one registry entry per rule (:data:`RULES`).

Each rule has a Python face here (its state, allocated once, and its hyper-parameters, with
the kind of each field for the model-file check), a compiled group and batch step in
``_kernels.py`` (``_kernels.STEPS``), and the learning-rate schedules it follows:

==========  ==================  ==========================================================
solver      face / group, step  update per batch (g: the batch gradient, lr: the epoch's rate)
==========  ==================  ==========================================================
'sgd'       :class:`SGD`        ``v <- mu v - lr g``; ``theta += mu v - lr g`` (Nesterov)
            ``SGDRule``         or ``theta += v``
'adam'      :class:`Adam`       ``t += 1``; ``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g^2``;
            ``AdamRule``        ``theta -= lr sqrt(1-b2^t)/(1-b1^t) m/(sqrt(v)+eps)``
'adamw'     :class:`AdamW`      ``W <- W (1 - lr alpha)`` (weights only), then Adam's step on
            ``AdamWRule``       the data gradient (alpha is no L2 term of the loss)
==========  ==================  ==========================================================

Adding a rule: its face and entry here, its group, step and ``STEPS`` entry in
``_kernels.py``. Validation, the estimators, the trainer, model files and the command read
the registry; nothing else names a rule. The schedules and stopping rules are the trainer's
(pure functions there); a face's ``rate`` is the one value they set.

A face keeps what it was made with, as scikit-learn's optimizers do: ``partial_fit``
continues the rule's hyper-parameters and schedule (:class:`Scheduled`) of the call that
made the face, and reads afresh only what scikit-learn reads at every call, ``alpha``
(:meth:`Scheduled.read_each_call`: AdamW's decay).
"""

from typing import Callable, NamedTuple

import numpy as np

from . import _kernels as K

# What a field of a face holds, for the model-file check (``_modelcheck``): a learning rate
# (> 0; the rate a schedule set may be 0: cosine's at its horizon), a fraction in [0, 1] or
# [0, 1), a positive or non-negative number, a flag, the dtype, a state vector (n_params,)
# (non-negative), the step count (1,) int64; a trailing '?' marks a field that older model
# files do not have.
RATE, FRACTION, FRACTION_OPEN, POSITIVE, NON_NEGATIVE = ("rate", "fraction", "fraction<1",
                                                         "positive", "non-negative")
FLAG, DTYPE, STATE, STATE_NON_NEGATIVE, STEPS = ("flag", "dtype", "state", "state>=0",
                                                 "steps")
SCHEDULE, COUNT = "schedule", "count"  # one of the rule's schedules; an integer >= 1

SCHEDULES = ("constant", "invscaling", "adaptive", "cosine")


class Scheduled:
    """The learning-rate schedule a face follows, fixed when the face is made (as
    scikit-learn's optimizers fix theirs): ``schedule``, one of its rule's schedules;
    invscaling's ``power_t``; cosine's ``horizon``, the fit's ``max_iter`` in epochs. Faces
    in files saved before faces kept them lack the three (the trainer then has them
    :meth:`follow` the fit's settings)."""

    SCHEDULE_FIELDS = {"schedule": SCHEDULE + "?", "power_t": NON_NEGATIVE + "?",
                       "horizon": COUNT + "?"}

    def follow(self, settings):
        """Take the schedule of ``settings`` (``settings.schedule``, ``power_t``,
        ``max_iter``)."""
        self.schedule = settings.schedule
        self.power_t = float(settings.power_t)
        self.horizon = int(settings.max_iter)

    def read_each_call(self, settings):
        """Take what a fit reads afresh at every call, ``partial_fit`` included (scikit-learn
        reads ``alpha`` so): nothing here, the L2 term is the trainer's."""


class SGD(Scheduled):
    """SGD with momentum ``mu`` (Nesterov's or classical); state: the velocity (n_params,)."""

    name = "sgd"
    FIELDS = {"learning_rate_init": RATE, "learning_rate": NON_NEGATIVE, "momentum": FRACTION,
              "nesterov": FLAG, "dtype": DTYPE, "velocity": STATE, **Scheduled.SCHEDULE_FIELDS}

    def __init__(self, n_params, dtype, learning_rate_init=0.1, momentum=0.9, nesterov=True):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)  # changed by the trainer's schedules
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.dtype = np.dtype(dtype)
        self.velocity = np.zeros(n_params, dtype)

    @property
    def rate(self):
        """The epoch's learning rate (the schedules set it)."""
        return self.learning_rate

    @rate.setter
    def rate(self, value):
        self.learning_rate = float(value)

    def rule(self):
        """The compiled loop's ``_kernels.SGDRule``: the velocity (updated in place) and the
        current hyper-parameters (as floats: the compiled types never follow a file's)."""
        return K.SGDRule(self.velocity, float(self.learning_rate), float(self.momentum),
                         bool(self.nesterov))


class Adam(Scheduled):
    """Adam as scikit-learn writes it (Kingma & Ba's "efficient" form: ``eps`` is added to
    ``sqrt(v)``, not to the bias-corrected one); state: the moments m, v (n_params,) and the
    number of steps taken."""

    name = "adam"
    FIELDS = {"learning_rate_init": RATE, "beta_1": FRACTION_OPEN, "beta_2": FRACTION_OPEN,
              "epsilon": POSITIVE, "dtype": DTYPE, "m": STATE, "v": STATE_NON_NEGATIVE,
              "steps": STEPS, "scheduled_rate": NON_NEGATIVE + "?", **Scheduled.SCHEDULE_FIELDS}

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate_init = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.dtype = np.dtype(dtype)
        self.m = np.zeros(n_params, dtype)
        self.v = np.zeros(n_params, dtype)
        self.steps = np.zeros(1, np.int64)  # (1,): the compiled step counts in place
        self.scheduled_rate = self.learning_rate_init  # set per epoch by a schedule

    @property
    def rate(self):
        """The epoch's rate before bias correction (``learning_rate_init`` unless scheduled;
        files saved before schedules lack the attribute)."""
        return self.__dict__.get("scheduled_rate", self.learning_rate_init)

    @rate.setter
    def rate(self, value):
        self.scheduled_rate = float(value)

    @property
    def learning_rate(self):
        """The step size of the last update, ``lr sqrt(1 - b2^steps) / (1 - b1^steps)`` (as
        scikit-learn's ``AdamOptimizer.learning_rate``); ``lr`` before the first."""
        steps = int(self.steps[0])
        if steps == 0:
            return self.rate
        return self.rate * np.sqrt(1 - self.beta_2**steps) / (1 - self.beta_1**steps)

    def rule(self):
        """The compiled loop's ``_kernels.AdamRule``: the moments and step count (updated in
        place) and the hyper-parameters."""
        return K.AdamRule(self.m, self.v, self.steps, float(self.rate), float(self.beta_1),
                          float(self.beta_2), float(self.epsilon))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): scikit-learn's Adam step on the data gradient, after the
    decoupled weight decay ``W <- W (1 - lr weight_decay)`` of the weights (not the
    intercepts); ``weight_decay`` is the estimators' ``alpha``."""

    name = "adamw"
    FIELDS = {**Adam.FIELDS, "weight_decay": NON_NEGATIVE}

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, weight_decay=0.0):
        super().__init__(n_params, dtype, learning_rate_init, beta_1, beta_2, epsilon)
        self.weight_decay = float(weight_decay)

    def read_each_call(self, settings):
        """The decay is ``alpha``, which every call reads afresh (as the other rules' L2)."""
        self.weight_decay = float(settings.alpha)

    def rule(self):
        """The compiled loop's ``_kernels.AdamWRule``."""
        return K.AdamWRule(self.m, self.v, self.steps, float(self.rate), float(self.beta_1),
                           float(self.beta_2), float(self.epsilon), float(self.weight_decay))


class UpdateRule(NamedTuple):
    """A registry entry: the Python face, how a fit makes it from its settings, whether
    ``alpha`` is an L2 term of the loss (or the rule's own decay), and the ``learning_rate``
    schedules it follows (any other value means 'constant' for it, as in scikit-learn)."""

    face: type
    make: Callable
    alpha_is_l2: bool
    schedules: tuple


RULES = {
    "sgd": UpdateRule(
        SGD, lambda n, dtype, s: SGD(n, dtype, s.learning_rate_init, s.momentum,
                                     s.nesterovs_momentum),
        alpha_is_l2=True, schedules=SCHEDULES),
    "adam": UpdateRule(
        Adam, lambda n, dtype, s: Adam(n, dtype, s.learning_rate_init, s.beta_1, s.beta_2,
                                       s.epsilon),
        alpha_is_l2=True, schedules=("constant", "cosine")),
    "adamw": UpdateRule(
        AdamW, lambda n, dtype, s: AdamW(n, dtype, s.learning_rate_init, s.beta_1, s.beta_2,
                                         s.epsilon, s.alpha),
        alpha_is_l2=False, schedules=("constant", "cosine")),
}
# Every value of the estimators' ``solver``: full-batch L-BFGS (the trainer's), then the rules.
SOLVERS = ("lbfgs", *RULES)


def make_optimizer(solver, n_params, dtype, settings):
    """The optimizer of ``solver`` (a key of :data:`RULES`) with the fit's hyper-parameters
    and schedule."""
    optimizer = RULES[solver].make(n_params, dtype, settings)
    optimizer.follow(settings)
    return optimizer


def schedule_of(settings):
    """The schedule the fit's rule follows: ``settings.learning_rate`` where the rule follows
    it, else 'constant'."""
    follows = RULES[settings.solver].schedules
    return settings.learning_rate if settings.learning_rate in follows else "constant"
