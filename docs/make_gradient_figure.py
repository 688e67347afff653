"""Draw docs/gradients.png: per-layer weight-gradient norms of a deep logistic and a deep relu
network over training (``FNNRegressor.gradient_norms_``).

The derivation's remark made visible: each logistic layer multiplies the backpropagated delta by
``a (1 - a) <= 1/4``, so the first layers' gradients of a deep logistic network are orders of
magnitude below the last layer's; relu's derivative is 0 or 1 and keeps them comparable.

Run ``python docs/make_gradient_figure.py [output.png]``; prints the last/first layer ratios.
"""

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_friedman1  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastfnn import FNNRegressor  # noqa: E402

HIDDEN = (32,) * 8
EPOCHS = 30


def train(activation, X, y):
    """An FNNRegressor with 8 hidden layers of 32 units: ``EPOCHS`` epochs of SGD (momentum 0.9,
    learning rate 0.01, batches of 32), scikit-learn's Glorot initialisation, and no L2 term
    (``alpha=0``: its ``alpha W / n`` would set a floor under the backpropagated gradient)."""
    model = FNNRegressor(hidden_layer_sizes=HIDDEN, activation=activation, solver="sgd", alpha=0.0,
                         learning_rate_init=0.01, batch_size=32, max_iter=EPOCHS,
                         n_iter_no_change=EPOCHS, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs
        return model.fit(X, y)


def draw(ax, model):
    """One line per layer on a log scale, coloured from the first layer to the last."""
    norms = model.gradient_norms_
    epochs = np.arange(1, norms.shape[0] + 1)
    colours = plt.cm.viridis(np.linspace(0, 0.9, norms.shape[1]))
    for layer, colour in enumerate(colours):
        ax.semilogy(epochs, norms[:, layer], color=colour, label=f"layer {layer + 1}")
    ax.set_title(f"{model.activation}: last/first layer {norms[0, -1] / norms[0, 0]:.2g} at "
                 f"epoch 1, {norms[-1, -1] / norms[-1, 0]:.2g} at {norms.shape[0]}\n"
                 f"training loss {model.loss_curve_[0]:.3f} -> {model.loss_:.3f}", fontsize=10)
    ax.set_xlabel("epoch")
    ax.grid(True, which="major", alpha=0.3)


def main(path):
    X, y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    ratios = {}
    for ax, activation in zip(axes, ("logistic", "relu")):
        model = train(activation, X, y)
        draw(ax, model)
        norms = model.gradient_norms_
        ratios[activation] = (norms[0, -1] / norms[0, 0], norms[-1, -1] / norms[-1, 0])
    axes[0].set_ylabel("RMS over minibatches of ||dW||_F")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle("Weight-gradient norm per layer, 8 hidden layers of 32 (Friedman #1, SGD, no L2): "
                 "logistic gradients vanish towards the input, relu's do not", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    for activation, (first, last) in ratios.items():
        print(f"{activation}: last/first layer gradient norm = {first:.3g} at epoch 1, "
              f"{last:.3g} at epoch {EPOCHS}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("gradients.png"))
