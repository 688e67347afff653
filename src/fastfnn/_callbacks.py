"""scikit-learn's callbacks on top of the trainer's observer hook.

A fit is the root task of the estimator's callback context; each epoch (the stochastic solvers)
or L-BFGS iteration is a subtask ("epoch" / "lbfgs-iter"). At the end of each subtask the
callbacks' ``on_fit_task_end`` may ask for ``fitted_estimator``: a copy of the estimator
as if training had stopped there (its weights and every fitted attribute a stop there would
publish: ``n_iter_``, ``t_``, ``loss_curve_``, ``best_loss_`` or, with early stopping, the
best weights and ``validation_scores_`` so far...), built only when a callback asks for it. A
callback that returns True ends training as an early stop does. Without callbacks no observer
is made, so the hooks cost nothing.
"""

import numpy as np

from .fitstate import snapshot
from .optimizers import RULES


_ABSENT = object()


class CallbackObserver:
    """The trainer's observer: forwards each epoch to the callbacks of the fit's context."""

    def __init__(self, estimator, work, context, task_name, X, y, metadata, net):
        self.estimator, self.work = estimator, work
        self.context, self.task_name = context, task_name
        self.X, self.y, self.metadata, self.net = X, y, metadata, net
        self.subtask = None
        self.state = None  # a stochastic fit's fitstate.TrainState

    def resume(self, state):
        """Follow the state of a stochastic fit (fitstate.TrainState), whose history a
        ``fitted_estimator`` continues."""
        self.state = state

    def epoch_begins(self):
        """Opens the next subtask."""
        self.subtask = self.context.subcontext(task_name=self.task_name)
        self.subtask.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y,
                                            metadata=self.metadata)

    def epoch_ends(self, record, theta):
        """Closes the subtask with the epoch's ``record`` (trainer.EpochEnd) and ``theta``, the
        weights a stop here would leave (the best so far, with early stopping); True to stop."""
        subtask, self.subtask = self.subtask, None

        def fitted():
            made = self._set_by_fit()
            if self.state is not None:  # a stochastic fit: all it would publish
                made.update(snapshot(self.state, self.work))
            else:  # an L-BFGS iterate
                made.update(n_iter_=record.epoch,
                            loss_=None if record.loss is None else np.float64(record.loss))
            made.update(coefs_=[w.copy() for w in self.net.coefs(theta)],
                        intercepts_=[b.copy() for b in self.net.intercepts(theta)])
            return made

        return subtask.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=fitted)

    def _set_by_fit(self):
        """What makes a copy of the estimator the stand-in's model so far: the attributes the
        fit set or changed, and None for those it removed (a refit's earlier history, the
        feature names of a frame it was fitted on before)."""
        own, work = vars(self.estimator), vars(self.work)
        made = {key: value for key, value in work.items() if own.get(key, _ABSENT) is not value}
        made.update({key: None for key in own if key not in work})
        return made

    def close(self):
        """Ends a subtask left open (training interrupted or failed inside an epoch)."""
        if self.subtask is not None:
            self.subtask.call_on_fit_task_end(estimator=self.estimator)
            self.subtask = None

    def finish(self):
        """Ends the fit's root task, once the estimator holds the fitted model."""
        self.context.call_on_fit_task_end(estimator=self.estimator, X=self.X, y=self.y,
                                          metadata=self.metadata, reconstruction_attributes={})


def callback_observer(estimator, work, X, y, sample_weight, net, max_subtasks):
    """The observer for this fit of ``estimator``, or None when it has no callbacks (no cost).

    Opens the fit's root task (up to ``max_subtasks`` subtasks: ``max_iter``, or 1 for
    ``partial_fit``); the caller ends a subtask left open with ``close()`` and the root task,
    after a successful fit, with ``finish()``. ``work`` is the stand-in that trains (it holds
    the fitted attributes a stop would publish; the estimator itself, which the callbacks see,
    changes only when the fit succeeds). ``y`` are the targets as the user gave them (class
    labels, not their encoding) and ``sample_weight`` the user's weights.
    """
    if not getattr(estimator, "_skl_callbacks", None):
        return None
    stochastic = estimator.solver in RULES
    context = estimator._init_callback_context(max_subtasks=max_subtasks)
    # the stand-in holds them alike, so that a fitted copy does not count them as removed
    work._callback_fit_ctx = context
    work._skl_callbacks_to_teardown = estimator._skl_callbacks_to_teardown
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    return CallbackObserver(estimator, work, context, "epoch" if stochastic else "lbfgs-iter",
                            X, y, metadata, net)
