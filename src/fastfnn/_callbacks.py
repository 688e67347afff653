"""scikit-learn's callbacks on top of the trainer's observer hook.

A fit is the root task of the estimator's callback context; each epoch ('sgd', 'adam') or
L-BFGS iteration is a subtask ("epoch" / "lbfgs-iter"). At the end of each subtask the
callbacks' ``on_fit_task_end`` may ask for ``fitted_estimator``: a copy of the estimator
as if training had stopped there (weights, ``n_iter_``, ``loss_``, ``loss_curve_`` and, with
early stopping, ``validation_scores_`` so far), built only when a callback asks for it. A
callback that returns True ends training as an early stop does. Without callbacks no observer
is made, so the hooks cost nothing.
"""

from contextlib import contextmanager


class CallbackObserver:
    """The trainer's observer: forwards each epoch to the callbacks of the fit's context."""

    def __init__(self, estimator, context, task_name, X, y, metadata, net):
        self.estimator, self.context, self.task_name = estimator, context, task_name
        self.X, self.y, self.metadata, self.net = X, y, metadata, net
        self.subtask = None
        self.history = {"loss_curve_": list(getattr(estimator, "loss_curve_", None) or [])}
        scores = getattr(estimator, "validation_scores_", None)
        self.history["validation_scores_"] = None if scores is None else list(scores)

    def epoch_begins(self):
        """Opens the next subtask."""
        self.subtask = self.context.subcontext(task_name=self.task_name)
        self.subtask.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y,
                                            metadata=self.metadata)

    def epoch_ends(self, record):
        """Closes the subtask with the epoch's ``record`` (trainer.EpochEnd); True to stop."""
        if self.task_name == "epoch":
            self.history["loss_curve_"].append(record.loss)
            if self.history["validation_scores_"] is not None:
                self.history["validation_scores_"].append(record.validation_score)
        subtask, self.subtask = self.subtask, None
        return subtask.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=lambda: self.fitted_attributes(record))

    def fitted_attributes(self, record=None):
        """The attributes of a fitted copy of the estimator at this point of training."""
        attributes = {"coefs_": [w.copy() for w in self.net.coefs()],
                      "intercepts_": [b.copy() for b in self.net.intercepts()]}
        if record is not None:
            attributes.update(n_iter_=record.epoch, loss_=record.loss)
            if self.task_name == "epoch":
                attributes.update({k: (None if v is None else list(v))
                                   for k, v in self.history.items()})
        return attributes

    def close(self):
        """Ends a subtask left open (training interrupted or failed inside an epoch)."""
        if self.subtask is not None:
            self.subtask.call_on_fit_task_end(estimator=self.estimator)
            self.subtask = None


@contextmanager
def callback_observer(estimator, X, y, sample_weight, net, max_subtasks):
    """Yields the observer for this fit, or None when the estimator has no callbacks.

    Opens the fit's root task (up to ``max_subtasks`` subtasks: ``max_iter``, or 1 for
    ``partial_fit``) and closes it when the block ends; a subtask left open by an error is
    closed first.
    """
    if not getattr(estimator, "_skl_callbacks", None):
        yield None
        return
    stochastic = estimator.solver in ("sgd", "adam")
    context = estimator._init_callback_context(max_subtasks=max_subtasks)
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    observer = CallbackObserver(estimator, context, "epoch" if stochastic else "lbfgs-iter",
                                X, y, metadata, net)
    try:
        yield observer
    finally:
        observer.close()
    context.call_on_fit_task_end(estimator=estimator, X=X, y=y, metadata=metadata,
                                 reconstruction_attributes=observer.fitted_attributes)
