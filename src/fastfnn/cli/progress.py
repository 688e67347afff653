"""The progress bar of ``fastfnn fit``: a scikit-learn fit callback that drives a tqdm bar.

The estimators follow scikit-learn's callback API (``sklearn.callback``): a fit is the root task
and each epoch a subtask named "epoch" ("lbfgs-iter" for an L-BFGS iteration), whose end hook
can ask for ``fitted_estimator``, the model as if training had stopped there (its ``loss_`` and,
with early stopping, ``validation_scores_``). The bar observes only: it never stops training, so
the model is exactly the one a plain ``fit`` gives.
"""

import sys

SUBTASKS = ("epoch", "lbfgs-iter")


class ProgressBar:
    """Progress on stderr, one step per epoch (or L-BFGS iteration), with the loss and the
    validation score. Follows the ``sklearn.callback.FitCallback`` protocol.

    On a terminal: a tqdm bar redrawn in place. Anywhere else (a log file, a pipe): no
    carriage-return frames, but one plain line every ``ceil(total / LINES)`` epochs and one for
    the last epoch run.
    """

    #: Lines written for a whole run in a non-terminal.
    LINES = 10

    def __init__(self, total, unit="epoch", disable=False, stream=None):
        self.total, self.unit, self.disable = total, unit, disable
        self.stream = stream
        self.bar = None
        self.epochs = 0
        self.last = None  # (epoch, text) of the latest epoch, for the closing line

    @property
    def _out(self):
        return sys.stderr if self.stream is None else self.stream

    def _terminal(self):
        try:
            return self._out.isatty()
        except (AttributeError, ValueError):
            return False

    # -- FitCallback ------------------------------------------------------------------------------

    def setup(self, estimator, context):
        self.epochs, self.last, self.printed = 0, None, 0
        if self.disable or not self._terminal():
            self.bar = None
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="training", unit=self.unit, file=self._out,
                        dynamic_ncols=True, leave=True)

    def teardown(self, estimator, context):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.last is not None and self.printed != self.last[0] and not self.disable:
            print(self.last[1], file=self._out, flush=True)  # the last epoch run
        self.last = None

    def on_fit_task_begin(self, estimator, context, *, metadata=None):
        return None

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name not in SUBTASKS:
            return False
        self.epochs += 1
        loss = getattr(fitted_estimator, "loss_", None)
        scores = getattr(fitted_estimator, "validation_scores_", None)
        postfix = []
        if loss is not None:
            postfix.append(f"loss={loss:.4g}")
        if scores:
            postfix.append(f"val={scores[-1]:.4f}")
        if self.bar is not None:  # the postfix first: the frame drawn shows this epoch's loss
            self.bar.set_postfix_str(", ".join(postfix), refresh=False)
            self.bar.update(1)
            return False
        text = f"{self.unit} {self.epochs}/{self.total}" + (f": {', '.join(postfix)}"
                                                             if postfix else "")
        self.last = (self.epochs, text)
        every = max(1, -(-self.total // self.LINES))
        if not self.disable and (self.epochs % every == 0 or self.epochs == self.total):
            print(text, file=self._out, flush=True)
            self.printed = self.epochs
        return False


class EpochRecorder:
    """A FitCallback that calls ``record(epoch, fitted_estimator)`` at the end of each epoch
    (the per-epoch training and test curves of ``--plot``); it only observes."""

    def __init__(self, record):
        self.record = record

    def setup(self, estimator, context):
        return None

    def teardown(self, estimator, context):
        return None

    def on_fit_task_begin(self, estimator, context, *, metadata=None):
        return None

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name in SUBTASKS and fitted_estimator is not None:
            self.record(fitted_estimator)
        return False


def attach(model, *callbacks):
    """Set ``callbacks`` on the fastfnn estimators of ``model``; False when the installed
    scikit-learn has no callback API (training then runs without a bar)."""
    estimators = list(fnn_estimators(model))
    if not estimators or not all(hasattr(e, "set_callbacks") for e in estimators):
        return False
    for estimator in estimators:
        estimator.set_callbacks(*callbacks)
    return True


def detach(model):
    """Remove the callbacks from the fastfnn estimators of ``model`` (fitted ones included), so
    that a saved model holds none."""
    for estimator in fnn_estimators(model):
        if hasattr(estimator, "set_callbacks"):
            estimator.set_callbacks()


def fnn_estimators(model):
    """The FNNRegressor/FNNClassifier objects inside ``model`` (Pipeline steps, the template
    and the fitted regressor of a TransformedTargetRegressor)."""
    from fastfnn import FNNClassifier, FNNRegressor

    if isinstance(model, (FNNRegressor, FNNClassifier)):
        yield model
        return
    for attribute in ("regressor", "regressor_"):
        if hasattr(model, attribute):
            yield from fnn_estimators(getattr(model, attribute))
    for _, step in getattr(model, "steps", []):
        yield from fnn_estimators(step)
