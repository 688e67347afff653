"""Update rules on the flat parameter vector: SGD (momentum, Nesterov) and Adam.

State buffers are allocated once, when the optimizer is made; the per-batch step runs inside the
compiled minibatch loop (``_kernels.sgd_step_`` / ``_kernels.adam_step_``). The Python objects
here hold the hyper-parameters, the state and the learning-rate schedule, which changes only at
epoch ends, as scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer``.
"""

import numpy as np

from . import _kernels as K


class SGD:
    """``v <- mu v - lr g``; ``theta += mu v - lr g`` (Nesterov) or ``theta += v``.

    Schedules: constant; invscaling ``lr = lr0 / (t + 1)^power_t`` at each epoch end (t =
    samples seen); adaptive: ``lr /= 5`` when training stalls, stop once ``lr <= 1e-6``.
    """

    solver = K.SGD
    name = "sgd"

    def __init__(self, n_params, dtype, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.power_t = float(power_t)
        self.dtype = np.dtype(dtype)
        self.velocity = np.zeros(n_params, dtype)
        self.t = 0  # unused by SGD; kept so the kernel call is uniform

    @property
    def state(self):
        """The two state buffers the kernel takes (SGD uses the first)."""
        return self.velocity, self.velocity

    def hyper(self):
        """[learning_rate, momentum, nesterov, beta_1, beta_2, epsilon] for the kernel."""
        return np.array([self.learning_rate, self.momentum, float(self.nesterov), 0, 0, 0])

    def iteration_ends(self, time_step):
        """Epoch end: the invscaling schedule uses the number of samples seen so far."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Called when training stalls: True to stop; 'adaptive' divides the rate by 5 first."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class Adam:
    """Adam as scikit-learn writes it (Kingma & Ba's "efficient" form): per step ``t += 1``,
    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``theta -= lr0 sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``.
    """

    solver = K.ADAM
    name = "adam"

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate_init = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.t = 0
        self.dtype = np.dtype(dtype)
        self.m1 = np.zeros(n_params, dtype)
        self.m2 = np.zeros(n_params, dtype)

    @property
    def learning_rate(self):
        """The step size of the last update, ``lr0 sqrt(1 - b2^t) / (1 - b1^t)`` (as
        scikit-learn's ``AdamOptimizer.learning_rate``); ``lr0`` before the first."""
        if self.t == 0:
            return self.learning_rate_init
        return (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                / (1 - self.beta_1**self.t))

    @property
    def state(self):
        """First and second moment buffers."""
        return self.m1, self.m2

    def hyper(self):
        """[learning_rate, momentum, nesterov, beta_1, beta_2, epsilon] for the kernel."""
        return np.array([self.learning_rate_init, 0, 0, self.beta_1, self.beta_2, self.epsilon])

    def iteration_ends(self, time_step):
        """Adam has no epoch-level schedule."""

    def trigger_stopping(self, msg, verbose):
        """Training stalled: stop."""
        if verbose:
            print(msg + " Stopping.")
        return True


def make_optimizer(solver, n_params, dtype, cfg):
    """The optimizer for ``solver`` ('sgd' or 'adam') with the estimator's hyper-parameters."""
    if solver == "sgd":
        return SGD(n_params, dtype, cfg.learning_rate_init, cfg.learning_rate, cfg.momentum,
                   cfg.nesterovs_momentum, cfg.power_t)
    return Adam(n_params, dtype, cfg.learning_rate_init, cfg.beta_1, cfg.beta_2, cfg.epsilon)
