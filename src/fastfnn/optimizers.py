"""Update rules on the flat parameter vector: SGD (momentum, Nesterov) and Adam.

Each rule has a Python face here (its state, allocated once, and its hyper-parameters) and a
compiled step in ``_kernels.py``, side by side in name:

===========  =====================  ====================================================
rule         compiled group / step  update per batch (g: the batch gradient)
===========  =====================  ====================================================
:class:`SGD`   ``SGDRule``            ``v <- mu v - lr g``; ``theta += mu v - lr g``
             ``sgd_batch_step_``      (Nesterov) or ``theta += v``
:class:`Adam`  ``AdamRule``           ``steps += 1``; ``m <- b1 m + (1-b1) g``;
             ``adam_step_``           ``v <- b2 v + (1-b2) g^2``;
                                    ``theta -= lr sqrt(1-b2^steps)/(1-b1^steps) m/(sqrt(v)+eps)``
===========  =====================  ====================================================

The learning-rate schedules of SGD and the stopping rules are the trainer's (pure functions
there); ``learning_rate`` is the one value they change here.
"""

import numpy as np

from . import _kernels as K


class SGD:
    """SGD with momentum ``mu`` (Nesterov's or classical); state: the velocity (n_params,)."""

    name = "sgd"

    def __init__(self, n_params, dtype, learning_rate_init=0.1, momentum=0.9, nesterov=True):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)  # changed by the trainer's schedules
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.dtype = np.dtype(dtype)
        self.velocity = np.zeros(n_params, dtype)

    def rule(self):
        """The compiled loop's ``_kernels.SGDRule``: the velocity (updated in place) and the
        current hyper-parameters."""
        return K.SGDRule(self.velocity, self.learning_rate, self.momentum, self.nesterov)


class Adam:
    """Adam as scikit-learn writes it (Kingma & Ba's "efficient" form: ``eps`` is added to
    ``sqrt(v)``, not to the bias-corrected one); state: the moments m, v (n_params,) and the
    number of steps taken."""

    name = "adam"

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate_init = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.dtype = np.dtype(dtype)
        self.m = np.zeros(n_params, dtype)
        self.v = np.zeros(n_params, dtype)
        self.steps = np.zeros(1, np.int64)  # (1,): the compiled step counts in place

    @property
    def learning_rate(self):
        """The step size of the last update, ``lr0 sqrt(1 - b2^steps) / (1 - b1^steps)`` (as
        scikit-learn's ``AdamOptimizer.learning_rate``); ``lr0`` before the first."""
        steps = int(self.steps[0])
        if steps == 0:
            return self.learning_rate_init
        return (self.learning_rate_init * np.sqrt(1 - self.beta_2**steps)
                / (1 - self.beta_1**steps))

    def rule(self):
        """The compiled loop's ``_kernels.AdamRule``: the moments and step count (updated in
        place) and the hyper-parameters."""
        return K.AdamRule(self.m, self.v, self.steps, self.learning_rate_init, self.beta_1,
                          self.beta_2, self.epsilon)


def make_optimizer(solver, n_params, dtype, cfg):
    """The optimizer for ``solver`` ('sgd' or 'adam') with the estimator's hyper-parameters."""
    if solver == "sgd":
        return SGD(n_params, dtype, cfg.learning_rate_init, cfg.momentum, cfg.nesterovs_momentum)
    return Adam(n_params, dtype, cfg.learning_rate_init, cfg.beta_1, cfg.beta_2, cfg.epsilon)
