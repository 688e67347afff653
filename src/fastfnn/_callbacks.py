"""scikit-learn's callbacks on top of the trainer's observer hook.

A fit is the root task of the estimator's callback context; each epoch (the stochastic solvers)
or L-BFGS iteration is a subtask ("epoch" / "lbfgs-iter"). At the end of each subtask the
callbacks' ``on_fit_task_end`` may ask for ``fitted_estimator``: a copy of the estimator
as if training had stopped there (weights, ``n_iter_``, ``loss_``, ``loss_curve_`` and, with
early stopping, ``validation_scores_`` so far), built only when a callback asks for it. A
callback that returns True ends training as an early stop does. Without callbacks no observer
is made, so the hooks cost nothing.
"""

from .optimizers import RULES


class CallbackObserver:
    """The trainer's observer: forwards each epoch to the callbacks of the fit's context."""

    def __init__(self, estimator, context, task_name, X, y, metadata, net):
        self.estimator, self.context, self.task_name = estimator, context, task_name
        self.X, self.y, self.metadata, self.net = X, y, metadata, net
        self.subtask = None
        self.history = {}

    def resume(self, state):
        """Start from the history a stochastic fit continues (fitstate.TrainState)."""
        self.history = {"loss_curve_": list(getattr(self.estimator, "loss_curve_", None) or []),
                        "validation_scores_": (None if state.validation_scores is None
                                               else list(state.validation_scores))}

    def epoch_begins(self):
        """Opens the next subtask."""
        self.subtask = self.context.subcontext(task_name=self.task_name)
        self.subtask.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y,
                                            metadata=self.metadata)

    def epoch_ends(self, record, theta):
        """Closes the subtask with the epoch's ``record`` (trainer.EpochEnd) and ``theta``, the
        weights a stop here would leave (the best so far, with early stopping); True to stop."""
        if self.history:
            self.history["loss_curve_"].append(record.loss)
            if self.history["validation_scores_"] is not None:
                self.history["validation_scores_"].append(record.validation_score)
        history = {k: (None if v is None else list(v)) for k, v in self.history.items()}
        subtask, self.subtask = self.subtask, None
        return subtask.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=lambda: {
                "coefs_": [w.copy() for w in self.net.coefs(theta)],
                "intercepts_": [b.copy() for b in self.net.intercepts(theta)],
                "n_iter_": record.epoch, "loss_": record.loss, **history})

    def close(self):
        """Ends a subtask left open (training interrupted or failed inside an epoch)."""
        if self.subtask is not None:
            self.subtask.call_on_fit_task_end(estimator=self.estimator)
            self.subtask = None

    def finish(self):
        """Ends the fit's root task, once the estimator holds the fitted model."""
        self.context.call_on_fit_task_end(estimator=self.estimator, X=self.X, y=self.y,
                                          metadata=self.metadata, reconstruction_attributes={})


def callback_observer(estimator, X, y, sample_weight, net, max_subtasks):
    """The observer for this fit, or None when the estimator has no callbacks (no cost).

    Opens the fit's root task (up to ``max_subtasks`` subtasks: ``max_iter``, or 1 for
    ``partial_fit``); the caller ends a subtask left open with ``close()`` and the root task,
    after a successful fit, with ``finish()``. ``y`` are the targets as the user gave them (class
    labels, not their encoding) and ``sample_weight`` the user's weights.
    """
    if not getattr(estimator, "_skl_callbacks", None):
        return None
    stochastic = estimator.solver in RULES
    context = estimator._init_callback_context(max_subtasks=max_subtasks)
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    return CallbackObserver(estimator, context, "epoch" if stochastic else "lbfgs-iter",
                            X, y, metadata, net)
