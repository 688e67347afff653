"""``fastfnn fit --plot``: a fitted network's pictures, as one PNG.

* the loss per epoch: the training loss the optimiser descends, the validation loss and score
  when the estimator kept them (early stopping), the best epoch marked;
* the error per epoch on the training rows and on the test rows, computed alike (RMSE in the
  target's units for regressors, log-loss for classifiers) by :class:`Curves`, a fit callback:
  overfitting shows as the two curves parting, with or without early stopping (the test rows'
  log-loss is undefined, and not drawn, where they hold a class the training rows lack);
* on the test rows: the confusion matrix (classifiers) or predicted against actual
  (regressors);
* each layer's gradient norm per epoch, when the estimator records them (``gradient_norms_``).
"""

#: Training rows on which the per-epoch training error is computed (a seeded sample beyond).
CURVE_ROWS = 5000


class Curves:
    """The per-epoch training and test error of a pipeline being fitted: ``record(fnn)`` is
    called with the network as it stands after each epoch. The pipeline's preparation (fitted
    before the network trains) transforms the rows once, at the first epoch."""

    def __init__(self, model, X_train, y_train, X_test, y_test, classify):
        import numpy as np

        rows = np.arange(len(X_train))
        if len(rows) > CURVE_ROWS:
            rows = np.sort(np.random.RandomState(0).choice(rows, CURVE_ROWS, replace=False))
        self.model, self.classify = model, classify
        self.sets = {"training": (X_train.iloc[rows], np.asarray(y_train)[rows]),
                     "test": (X_test, np.asarray(y_test))}
        self.prepared = None
        self.errors = {"training": [], "test": []}
        self.name = "log-loss" if classify else "RMSE"

    def _pipeline(self):
        return self.model.regressor_ if hasattr(self.model, "regressor") else self.model

    def record(self, fnn):
        import numpy as np
        from sklearn.metrics import root_mean_squared_error

        if self.prepared is None:
            prepare = self._pipeline().steps[0][1]
            self.prepared = {k: prepare.transform(X) for k, (X, _) in self.sets.items()}
        for key, (_, y) in self.sets.items():
            X = self.prepared[key]
            if self.classify:
                self.errors[key].append(_log_loss(fnn, X, y))
            else:
                pred = fnn.predict(X)
                transformer = getattr(self.model, "transformer_", None)
                if transformer is not None:
                    shape = np.shape(pred)
                    pred = transformer.inverse_transform(np.reshape(pred, (shape[0], -1)))
                    pred = np.reshape(pred, shape)
                self.errors[key].append(float(root_mean_squared_error(
                    y.reshape(np.shape(pred)), np.asarray(pred, dtype=np.float64))))


def _log_loss(fnn, X, y):
    """The log-loss of ``fnn`` on (X, y); NaN where it is undefined (a class of y that the
    network never saw, which only the test rows hold), as the metrics leave it out."""
    import numpy as np
    from sklearn.metrics import log_loss

    from .metrics import _defined

    proba = fnn.predict_proba(X)
    if np.ndim(y) == 2:  # multilabel: every label's binary log-loss, averaged
        loss = _defined(lambda: float(log_loss(np.ravel(y), np.ravel(proba), labels=[0, 1])))
    else:
        loss = _defined(lambda: float(log_loss(y, proba, labels=fnn.classes_)))
    return np.nan if loss is None else loss


def plot_training(fnn, path, label, description, args, curves=None, model=None, test=None):
    """Draw the pictures of the fitted ``fnn`` (in ``model``) into the PNG file ``path``;
    ``test`` is (X_test, y_test, ids) of the test rows."""
    import textwrap

    import numpy as np
    from matplotlib.figure import Figure

    norms = getattr(fnn, "gradient_norms_", None)
    norms = None if norms is None else np.asarray(norms, dtype=np.float64)
    panels = [lambda ax: _loss_panel(ax, fnn, args)]
    if curves is not None and curves.errors["test"]:
        panels.append(lambda ax: _error_panel(ax, curves))
    if model is not None and test is not None:
        X_test, y_test, _ = test
        if args.classify and np.ndim(y_test) == 1:
            panels.append(lambda ax: _confusion_panel(ax, model, X_test, y_test))
        elif not args.classify:
            panels.append(lambda ax: _actual_panel(ax, model, X_test, y_test))
    if norms is not None and norms.ndim == 2 and norms.size:
        panels.append(lambda ax: _gradient_panel(ax, norms))
    n_cols = 2 if len(panels) > 1 else 1
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(6.4 * n_cols, 4.6 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, draw in zip(axes, panels):
        draw(ax)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(textwrap.fill(f"fastfnn fit {label}: {description}", 75 * n_cols),
                 fontsize=10)
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
        name = ("validation accuracy" if args.classify else "validation R²") \
            if not getattr(args, "scoring", None) else (
                "validation score (-loss)" if args.scoring == "loss"
                else f"validation {args.scoring}")
        ax2.plot(epochs[:len(scores)], scores, color="C1", label=name)
        best = int(np.nanargmax(scores))
        ax2.plot(best + 1, scores[best], "o", color="C1",
                 label=f"best, epoch {best + 1} (weights kept)")
        ax2.set_ylabel(name)
        handles = handles + ax2.get_lines()
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_title("loss per epoch (what the optimiser descends)", fontsize=10)


def _error_panel(ax, curves):
    import numpy as np

    for key, color in (("training", "C0"), ("test", "C3")):
        values = curves.errors[key]
        label = f"{key} rows"
        if curves.classify and not np.isfinite(values).any():
            label += f" ({curves.name} undefined: a class the training rows lack)"
        ax.plot(np.arange(1, len(values) + 1), values, color=color, label=label)
    test = np.asarray(curves.errors["test"])
    best = int(np.nanargmin(test)) if np.isfinite(test).any() else None
    if best is not None:
        ax.plot(best + 1, test[best], "o", color="C3", label=f"lowest test, epoch {best + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(curves.name)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{curves.name} per epoch: training vs test rows", fontsize=10)


def _confusion_panel(ax, model, X_test, y_test):
    import numpy as np

    from .metrics import confusion

    classes, matrix = confusion(model, X_test, y_test)
    ax.imshow(matrix, cmap="Blues")
    labels = [str(c) for c in classes]
    ticks = np.arange(len(classes))
    small = len(classes) > 12
    crowded = small or (len(classes) > 4 and max(map(len, labels)) > 6)
    ax.set_xticks(ticks, labels, rotation=90 if crowded else 0, fontsize=7 if small else 9)
    ax.set_yticks(ticks, labels, fontsize=7 if small else 9)
    if len(classes) <= 20:
        top = matrix.max() if matrix.size else 0
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8 if small else 10,
                    color="white" if v > top / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix, {len(y_test)} test rows", fontsize=10)


def _actual_panel(ax, model, X_test, y_test):
    import numpy as np

    pred = np.asarray(model.predict(X_test), dtype=np.float64).reshape(len(y_test), -1)[:, 0]
    actual = np.asarray(y_test, dtype=np.float64).reshape(len(y_test), -1)[:, 0]
    ax.scatter(actual, pred, s=10, alpha=0.5, color="C0", edgecolors="none")
    low = float(min(actual.min(), pred.min()))
    high = float(max(actual.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1, label="predicted = actual")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.legend(loc="upper left", fontsize=8)
    extra = " (first target)" if np.ndim(y_test) == 2 and np.shape(y_test)[1] > 1 else ""
    ax.set_title(f"predicted against actual, {len(y_test)} test rows{extra}", fontsize=10)


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
    ax.set_title("per-layer gradient norm per epoch", fontsize=10)
