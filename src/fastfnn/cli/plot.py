"""``fastfnn fit --plot``: the training curves of a fitted network, as a PNG.

Left: the training loss per epoch, the validation loss when the estimator kept one
(``validation_loss_curve_``), and the validation score on a second axis, its best epoch marked.
Right, when the estimator records them (``gradient_norms_``, shape (n_epochs, n_layers_ - 1)):
each layer's gradient norm per epoch, on a log scale.
"""


def plot_training(fnn, path, label, description, args):
    """Draw the curves of the fitted ``fnn`` into the PNG file ``path``."""
    import textwrap

    import numpy as np
    from matplotlib.figure import Figure

    norms = getattr(fnn, "gradient_norms_", None)
    norms = None if norms is None else np.asarray(norms, dtype=np.float64)
    panels = 2 if norms is not None and norms.ndim == 2 and norms.size else 1
    fig = Figure(figsize=(7 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _loss_panel(axes[0], fnn, args)
    if panels == 2:
        _gradient_panel(axes[1], norms)
    fig.suptitle(textwrap.fill(f"fastfnn fit {label}: {description}", 90 * panels), fontsize=9)
    fig.savefig(path, format="png", dpi=100)


def _loss_panel(ax, fnn, args):
    import numpy as np

    from .training import scales_target

    loss = np.asarray(fnn.loss_curve_, dtype=np.float64)
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, color="C0", label="training loss")
    curves = [loss]
    validation_loss = getattr(fnn, "validation_loss_curve_", None)
    if validation_loss is not None and len(validation_loss):
        validation_loss = np.asarray(validation_loss, dtype=np.float64)
        ax.plot(np.arange(1, len(validation_loss) + 1), validation_loss, color="C2",
                label="validation loss")
        curves.append(validation_loss)
    values = np.concatenate(curves)
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (standardised target)" if scales_target(args) else ""))
    handles = ax.get_lines()
    scores = getattr(fnn, "validation_scores_", None)
    if scores:
        ax2 = ax.twinx()
        name = "validation accuracy" if args.classify else "validation R²"
        ax2.plot(epochs[:len(scores)], scores, color="C1", label=name)
        best = int(np.nanargmax(scores))
        ax2.plot(best + 1, scores[best], "o", color="C1",
                 label=f"best, epoch {best + 1} (weights kept)")
        ax2.set_ylabel(name)
        handles = handles + ax2.get_lines()
    ax.legend(handles=handles, loc="center right")
    ax.set_title("loss per epoch", fontsize=9)


def _gradient_panel(ax, norms):
    import numpy as np

    epochs = np.arange(1, norms.shape[0] + 1)
    for layer in range(norms.shape[1]):
        ax.plot(epochs, norms[:, layer], label=f"layer {layer + 1}")
    if np.any(norms > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("per-layer gradient norm per epoch", fontsize=9)
