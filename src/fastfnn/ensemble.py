"""Ensembles of FNN networks that differ by their seed, trained together:
:class:`FNNEnsembleRegressor` and :class:`FNNEnsembleClassifier`.

Member k is ``clone(estimator)`` with ``random_state = seeds[k]``, the seeds drawn from the
ensemble's ``random_state`` (as scikit-learn's ensembles draw them); all members train in one
compiled call per epoch (``_fitmany.fit_together``), each exactly as its own ``fit`` would. The
regressor predicts the members' mean, and their spread with ``return_std=True`` (the
standard deviation over members: an uncertainty that grows away from the data); the
classifier averages the members' probabilities.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted

from ._fitmany import fit_together
from .estimators import FNNClassifier, FNNRegressor

SEED_BOUND = np.iinfo(np.int32).max  # seeds drawn in [0, 2^31 - 1), as scikit-learn's ensembles


class _Ensemble(BaseEstimator):
    _kind = None  # the FNN estimator class the members are

    def __init__(self, estimator=None, n_estimators=5, random_state=None, n_jobs=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None):
        """Fit ``n_estimators`` members, each with its own seed, all together.

        Parameters
        ----------
        X : {array-like, sparse matrix} (n_samples, n_features)
        y : array-like (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like (n_samples,), optional

        Returns
        -------
        self
        """
        base = self._kind() if self.estimator is None else self.estimator
        if not isinstance(base, self._kind):
            raise ValueError(f"estimator must be an unfitted {self._kind.__name__} (its "
                             f"parameters are the members'), got {type(base).__name__}.")
        n = self.n_estimators
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {n!r}.")
        seeds = check_random_state(self.random_state).randint(SEED_BOUND, size=int(n))
        members = [clone(base).set_params(random_state=int(seed)) for seed in seeds]
        errors = fit_together([(m, X, y, sample_weight) for m in members], n_jobs=self.n_jobs)
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            raise failed
        self.estimators_ = members
        self.seeds_ = seeds
        self.n_features_in_ = members[0].n_features_in_
        if hasattr(members[0], "feature_names_in_"):
            self.feature_names_in_ = members[0].feature_names_in_
        elif hasattr(self, "feature_names_in_"):  # a refit on input without names
            del self.feature_names_in_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        members = get_tags(self._kind() if self.estimator is None else self.estimator)
        tags.input_tags.sparse = members.input_tags.sparse
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = members.classifier_tags.multi_label
        return tags

    def _outputs(self, X, method):
        """(n_members, n_samples, ...) of each member's ``method(X)``."""
        check_is_fitted(self)
        return np.stack([getattr(m, method)(X) for m in self.estimators_])


class FNNEnsembleRegressor(RegressorMixin, _Ensemble):
    """``n_estimators`` FNNRegressors differing by their seed, trained together; ``predict``
    averages them, ``predict(X, return_std=True)`` also gives their spread.

    Parameters
    ----------
    estimator : FNNRegressor, default=FNNRegressor()
        The members' parameters (its ``random_state`` is replaced by each member's seed).
    n_estimators : int, default=5
    random_state : int, RandomState or None
        Draws the members' seeds.
    n_jobs : int or None
        Threads the members train on (None: 1; -1: all fastfnn may use); the same members on
        any number.

    Attributes
    ----------
    estimators_ : list of FNNRegressor
        Each equals ``clone(estimator).set_params(random_state=seeds_[k]).fit(X, y)``.
    seeds_ : ndarray (n_estimators,)
    """

    _kind = FNNRegressor

    def predict(self, X, return_std=False):
        """The members' mean prediction (n_samples,) or (n_samples, n_outputs); with
        ``return_std``, also their standard deviation (ddof 0), of the same shape."""
        outputs = self._outputs(X, "predict")
        mean = outputs.mean(axis=0)
        return (mean, outputs.std(axis=0)) if return_std else mean


class FNNEnsembleClassifier(ClassifierMixin, _Ensemble):
    """``n_estimators`` FNNClassifiers differing by their seed, trained together; class
    probabilities are the members' mean (parameters and attributes as
    :class:`FNNEnsembleRegressor`'s, with FNNClassifier members, plus ``classes_``)."""

    _kind = FNNClassifier

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight)
        self.classes_ = self.estimators_[0].classes_
        return self

    def predict_proba(self, X):
        """The members' mean probabilities (n_samples, n_classes), columns as ``classes_``."""
        return self._outputs(X, "predict_proba").mean(axis=0)

    def predict(self, X):
        """The labels of the members' mean output, decoded as a member decodes its own: the
        class of highest mean probability (one class: that class; multilabel: each label
        above 1/2)."""
        proba = self.predict_proba(X)
        member = self.estimators_[0]
        return member._output_to_prediction(proba[:, 1:] if member.n_outputs_ == 1 else proba)


__all__ = ["FNNEnsembleClassifier", "FNNEnsembleRegressor"]
