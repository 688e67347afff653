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
    """A tqdm bar on stderr, one step per epoch (or L-BFGS iteration), with the loss and the
    validation score. Follows the ``sklearn.callback.FitCallback`` protocol."""

    def __init__(self, total, unit="epoch", disable=False):
        self.total, self.unit, self.disable = total, unit, disable
        self.bar = None
        self.epochs = 0

    # -- FitCallback ------------------------------------------------------------------------------

    def setup(self, estimator, context):
        from tqdm.auto import tqdm

        self.epochs = 0
        self.bar = tqdm(total=self.total, desc="training", unit=self.unit, file=sys.stderr,
                        disable=self.disable, dynamic_ncols=True, leave=True)

    def teardown(self, estimator, context):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_fit_task_begin(self, estimator, context, *, metadata=None):
        return None

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name not in SUBTASKS or self.bar is None:
            return False
        self.epochs += 1
        self.bar.update(1)
        loss = getattr(fitted_estimator, "loss_", None)
        scores = getattr(fitted_estimator, "validation_scores_", None)
        postfix = []
        if loss is not None:
            postfix.append(f"loss={loss:.4g}")
        if scores:
            postfix.append(f"val={scores[-1]:.4f}")
        if postfix:
            self.bar.set_postfix_str(", ".join(postfix), refresh=False)
        return False


def attach(model, callback):
    """Set ``callback`` on the fastfnn estimators of ``model``; False when the installed
    scikit-learn has no callback API (training then runs without a bar)."""
    estimators = list(fnn_estimators(model))
    if not estimators or not all(hasattr(e, "set_callbacks") for e in estimators):
        return False
    for estimator in estimators:
        estimator.set_callbacks(callback)
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
