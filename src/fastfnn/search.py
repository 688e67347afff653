"""Hyper-parameter searches whose candidates train together: :class:`FNNGridSearchCV` and
:class:`FNNRandomizedSearchCV`.

They are scikit-learn's ``GridSearchCV`` / ``RandomizedSearchCV`` (the same signatures,
attributes, ``cv_results_``, refit, multi-metric scoring, error handling, metadata routing),
with one step added before scikit-learn's own loop over candidates and folds: every candidate
of every fold is trained ahead, all of them together (``_base.fit_together``: one compiled
call per epoch for each group of networks of one kind, the networks on ``n_jobs`` threads).
scikit-learn's loop then runs as always, in this process: it clones each candidate, and the
candidate's ``fit`` takes its network made ahead (``_prefit``), which is the very fit it would
have made on those rows with those parameters, to the bit; scoring, aggregation and the refit
are scikit-learn's. For a ``Pipeline`` ending in an FNN estimator, the steps before it are
fitted once per fold for each setting of their parameters, shared by the candidates that
agree on them.

Where a candidate cannot be trained ahead (another final estimator, callbacks, 'lbfgs', fit
parameters other than ``sample_weight``, a fit that fails), scikit-learn's loop fits it as
usual: the results do not depend on what was trained ahead, only the time does.
``mean_fit_time`` is the time scikit-learn's loop spent in ``fit``, which for a candidate
trained ahead is the time to take it; the time training them all together took is
``together_fit_time_``.
"""

import time
from contextvars import ContextVar

from joblib import parallel_config
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.model_selection._validation import _check_method_params
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable
from sklearn.utils.metaestimators import _safe_split

from . import _prefit
from ._base import BaseFNN, fit_together

_INPUTS = ContextVar("fastfnn_search_inputs", default=None)  # (X, y, fit params) of a fit


class _Splits:
    """A cross-validator that gives the splits it was made with (made once per search)."""

    def __init__(self, splits):
        self.splits = splits

    def split(self, X=None, y=None, groups=None, **kwargs):
        return iter(self.splits)

    def get_n_splits(self, X=None, y=None, groups=None, **kwargs):
        return len(self.splits)


def _final_fnn(estimator):
    """``(name of the last step or None, the FNN estimator)`` for an FNN estimator or a
    Pipeline ending in one; None where it is neither."""
    if isinstance(estimator, BaseFNN):
        return None, estimator
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], BaseFNN):
        return estimator.steps[-1][0], estimator.steps[-1][1]
    return None


class _TrainedTogether:
    """What the two searches add to scikit-learn's: the candidates trained ahead, together."""

    def fit(self, X, y=None, **params):
        """scikit-learn's ``fit``, its candidates trained ahead (see the module's notes);
        scikit-learn's loop then runs in this process (``n_jobs`` are the threads the
        networks train on)."""
        token = _INPUTS.set((X, y, params))
        try:
            with parallel_config(backend="sequential"):
                return super().fit(X, y, **params)
        finally:
            _INPUTS.reset(token)

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        def evaluate(candidate_params, cv=None, more_results=None, **options):
            candidates = list(candidate_params)  # drawn once (a sampler draws as it goes)
            X, y, params = _INPUTS.get()
            X, y = indexable(X, y)
            params = _check_method_params(X, params=params)
            routed = self._get_routed_params_for_fit(params)
            splits = list((cv or self._checked_cv_orig).split(X, y, **routed.splitter.split))
            made = self._train_ahead(candidates, splits, X, y, routed.estimator.fit)
            with _prefit.offering(made):
                return evaluate_candidates(candidates, cv=_Splits(splits),
                                           more_results=more_results, **options)

        return super()._run_search(evaluate, callback_ctx=callback_ctx)

    def _train_ahead(self, candidates, splits, X, y, fit_params):
        """Train every candidate of every fold that can be, together; returns the fits made,
        filed for ``_prefit.take``."""
        final = _final_fnn(self.estimator)
        if final is None:
            return {}
        last, _ = final
        weight_key = "sample_weight" if last is None else f"{last}__sample_weight"
        if set(fit_params) - {weight_key}:
            return {}  # other fit parameters: scikit-learn's loop fits every candidate
        jobs, keys = [], []
        for train, _ in splits:
            X_train, y_train = _safe_split(self.estimator, X, y, train)
            fold_params = _check_method_params(X, params=fit_params, indices=train)
            weight = fold_params.get(weight_key)
            inputs = {}  # the final step's input, per setting of the steps before it
            for candidate in candidates:
                estimator = clone(self.estimator).set_params(**candidate)
                fnn = estimator if last is None else estimator.steps[-1][1]
                if not isinstance(fnn, BaseFNN) or fnn.solver == "lbfgs":
                    continue
                before = tuple(sorted((k, repr(v)) for k, v in candidate.items()
                                      if last is None or not k.startswith(f"{last}__")))
                if before not in inputs:
                    Xt = X_train if last is None else estimator[:-1].fit_transform(X_train,
                                                                                    y_train)
                    inputs[before] = (Xt, _prefit.data_digest(Xt, y_train, weight))
                Xt, digest = inputs[before]
                jobs.append((fnn, Xt, y_train, weight))
                keys.append(_prefit.key_of(fnn, digest))
        start = time.perf_counter()
        errors = fit_together(jobs, n_jobs=self.n_jobs)
        self.together_fit_time_ = time.perf_counter() - start
        return {key: job[0] for key, job, error in zip(keys, jobs, errors) if error is None}


class FNNGridSearchCV(_TrainedTogether, GridSearchCV):
    """scikit-learn's ``GridSearchCV`` for an FNN estimator (or a Pipeline ending in one),
    every candidate of every fold trained together (see :mod:`fastfnn.search`); the same
    parameters, attributes and results, plus ``together_fit_time_`` (seconds)."""


class FNNRandomizedSearchCV(_TrainedTogether, RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV`` for an FNN estimator (or a Pipeline ending in
    one), every candidate of every fold trained together (see :mod:`fastfnn.search`); the
    same parameters, attributes and results, plus ``together_fit_time_`` (seconds)."""


__all__ = ["FNNGridSearchCV", "FNNRandomizedSearchCV"]
