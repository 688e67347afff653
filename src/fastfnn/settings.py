"""The one frozen object that travels from an estimator down to training and to
``check_gradients``: the hyper-parameters of a fit, and the network's loss and activations.

The estimator builds it once per fit (:meth:`Settings.of`), after validating its parameters;
nothing below the estimator reads or writes the estimator itself. A fitted model's settings
carry the loss it was fitted with, so ``check_gradients`` differentiates that loss and never
guesses it from the output activation.
"""

from dataclasses import dataclass, fields

from .dropout import hidden_rates
from .optimizers import RULES, schedule_of


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters (scikit-learn's names and meanings; fastfnn's additions ``dropout``,
    one rate per hidden layer, and ``max_grad_norm``) and the network: hidden ``activation``,
    ``out_activation`` and ``loss``."""

    hidden_layer_sizes: tuple
    activation: str
    out_activation: str
    loss: str
    solver: str
    alpha: float
    batch_size: object  # 'auto' or int
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    tol: float
    verbose: int
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: float
    max_fun: int
    dropout: tuple = ()
    max_grad_norm: float = None

    @classmethod
    def of(cls, estimator, hidden, loss, out_activation):
        """The settings of ``estimator`` (its parameters, read once) for a network with
        ``hidden`` layer widths, ``loss`` and ``out_activation``."""
        names = {f.name for f in fields(cls)} - {"hidden_layer_sizes", "loss", "out_activation",
                                                 "dropout"}
        values = {name: getattr(estimator, name) for name in names}
        values["max_grad_norm"] = getattr(estimator, "max_grad_norm", None)
        return cls(hidden_layer_sizes=tuple(hidden), loss=loss, out_activation=out_activation,
                   dropout=hidden_rates(getattr(estimator, "dropout", 0.0), len(hidden)),
                   **values)

    @property
    def stochastic(self):
        """Whether the solver is an update rule of the minibatch loop (not L-BFGS)."""
        return self.solver in RULES

    @property
    def l2(self):
        """The L2 strength of the loss: ``alpha``, except for rules whose ``alpha`` is their
        own decay ('adamw'), which descend the data term alone."""
        return self.alpha if not self.stochastic or RULES[self.solver].alpha_is_l2 else 0.0

    @property
    def dropping(self):
        """Whether any hidden layer's outputs are dropped in training."""
        return any(rate > 0 for rate in self.dropout)

    @property
    def schedule(self):
        """The learning-rate schedule the rule follows ('constant' where it ignores
        ``learning_rate``, as scikit-learn's Adam)."""
        return schedule_of(self) if self.stochastic else "constant"
