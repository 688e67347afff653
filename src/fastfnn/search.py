"""Hyper-parameter searches whose candidates train together: :class:`FNNGridSearchCV` and
:class:`FNNRandomizedSearchCV`.

They are scikit-learn's ``GridSearchCV`` / ``RandomizedSearchCV`` (the same signatures,
attributes, ``cv_results_``, refit, multi-metric scoring, error handling, metadata routing),
with one step added before scikit-learn's own loop over candidates and folds: every candidate
of every fold is trained ahead, all of them together (``_fitmany.fit_together``: one compiled
call per epoch for each group of networks of one kind, the networks on ``n_jobs`` threads).
scikit-learn's loop then runs as always, in this process: it clones each candidate, and the
candidate's ``fit`` takes its network made ahead (``_prefit``), which is the very fit it would
have made on those rows with those parameters, to the bit; scoring, aggregation and the
refit (a fit of its own: ``best_estimator_`` is the solo fit) are
scikit-learn's. For a ``Pipeline`` ending in an FNN estimator, or a
``TransformedTargetRegressor`` around either, the steps around the network (the
transformers before it, the target's transformer) are fitted once per fold for each setting
of their parameters, shared by the candidates that agree on them.

With ``FASTFNN_LANES=on``, candidates that share their minibatches (one seed on one fold, the
common grid over alpha and learning rate) train as lanes of one call instead (``_lanes``: the
first layer of all of them one product, every other pass one vector operation across them),
about 1.4x faster on the tiny network: each is then its solo fit to rounding, not to the
bit, and where training amplifies rounding (large rates, small batches, many epochs; float32
sooner) a laned candidate's score can differ from scikit-learn's loop's by far more.

Under joblib's "dask" backend (``fastfnn.scaling.search``), the candidates go to the
cluster's workers in groups, one task per fold and kind of network (shape, activation,
solver, batch size, loss, dropout layout; 'lbfgs' networks are fitted one after another in
their fold's task), submitted to the backend's client (a cluster of one worker thread too),
each task under the caller's warning filters and scikit-learn configuration; the workers
announce the fits made on the event topic ``progress_topic`` (an instance's own where set,
as ``fastfnn.scaling.search`` sets one per search).

Where a candidate cannot be trained ahead (another final estimator, callbacks that reach the
network, fit parameters other than ``sample_weight`` reaching the network, steps around it
that fail, a parameter that is invalid or that pickle cannot write, a fit that fails),
scikit-learn's loop fits it as usual, in this process: the results do not depend on what was
trained ahead, only the time does. Grid values are cloned for each fit, as that loop clones
them; equal candidates with a fixed seed train once, each taking that fit (they tie, as equal
solo fits do).
``mean_fit_time`` is the time scikit-learn's loop spent in ``fit``, which for a candidate
trained ahead is the time to take it; the time training them all together took is
``together_fit_time_``.
"""

import time
import warnings
from contextvars import ContextVar

import numpy as np
from joblib import parallel_config
from joblib.parallel import get_active_backend
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.model_selection._validation import _check_method_params
from sklearn.utils import indexable
from sklearn.utils.metaestimators import _safe_split

from . import _env, _prefit
from ._base import BaseFNN
from ._fitmany import fit_together

# (X, y, fit params, joblib's backend, lanes asked for)
_INPUTS = ContextVar("fastfnn_search_inputs", default=None)
# Workers of a Dask cluster announce the fits each group made on this event topic.
PROGRESS_TOPIC = "fastfnn-search-fits"


class _Splits:
    """A cross-validator that gives the splits it was made with (made once per search)."""

    def __init__(self, splits):
        self.splits = splits

    def split(self, X=None, y=None, groups=None, **kwargs):
        return iter(self.splits)

    def get_n_splits(self, X=None, y=None, groups=None, **kwargs):
        return len(self.splits)


def _network_path(estimator):
    """The parameter name of the one FNN estimator that ``estimator`` trains ("" for an FNN
    estimator itself, ``"fnn"`` for a Pipeline's last step ``fnn``, ``"regressor__fnn"`` for
    one inside a TransformedTargetRegressor's Pipeline); None where there is none."""
    if isinstance(estimator, BaseFNN):
        return ""
    steps = getattr(estimator, "steps", None)  # a Pipeline (not imported: fastfnn stays light)
    if steps:
        name, inner = steps[-1]
    elif type(estimator).__name__ == "TransformedTargetRegressor":
        name, inner = "regressor", estimator.regressor
    else:
        return None
    path = _network_path(inner)
    if path is None:
        return None
    return f"{name}__{path}" if path else name


class _TrainedTogether:
    """What the two searches add to scikit-learn's: the candidates trained ahead, together."""

    @staticmethod
    def trains_together(estimator):
        """Whether this search trains the candidates of ``estimator`` together: an FNN
        estimator, a Pipeline ending in one, or a TransformedTargetRegressor around either
        (else scikit-learn's loop fits each, as ``GridSearchCV`` does)."""
        return _network_path(estimator) is not None

    def fit(self, X, y=None, **params):
        """scikit-learn's ``fit``, its candidates trained ahead (see the module's notes);
        scikit-learn's loop then runs in this process (``n_jobs`` are the threads the
        networks train on)."""
        lanes = _env.flag("FASTFNN_LANES", False)  # (a bad value: its error, before any change)
        token = _INPUTS.set((X, y, params, get_active_backend()[0], lanes))
        try:
            with parallel_config(backend="sequential"):
                return super().fit(X, y, **params)
        finally:
            _INPUTS.reset(token)

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        def evaluate(candidate_params, cv=None, more_results=None, **options):
            candidates = list(candidate_params)  # drawn once (a sampler draws as it goes)
            X, y, params, backend, lanes = _INPUTS.get()
            X, y = indexable(X, y)
            params = _check_method_params(X, params=params)
            routed = self._get_routed_params_for_fit(params)
            splits = list((cv or self._checked_cv_orig).split(X, y, **routed.splitter.split))
            made = self._train_ahead(candidates, splits, X, y, routed.estimator.fit, backend,
                                     lanes)
            with _prefit.offering(made):
                return evaluate_candidates(candidates, cv=_Splits(splits),
                                           more_results=more_results, **options)

        return super()._run_search(evaluate, callback_ctx=callback_ctx)

    def _train_ahead(self, candidates, splits, X, y, fit_params, backend, lanes):
        """Train every candidate of every fold that can be, together (on a Dask cluster where
        ``backend``, joblib's backend in force when fit began, is its "dask" backend; as lanes
        where ``lanes``); returns the fits made, filed for ``_prefit.take``."""
        self.together_fit_time_ = 0.0
        path = _network_path(self.estimator)
        if path is None:
            return {}
        if _callbacks_reach(self, 1 + (len(path.split("__")) if path else 0)):
            return {}  # each candidate's fit reports to them, in scikit-learn's loop
        jobs, keys, groups = [], [], []
        repeats = {}  # key -> the fits asking for it
        for fold, (train, _) in enumerate(splits):
            X_train, y_train = _safe_split(self.estimator, X, y, train)
            fold_params = _check_method_params(X, params=fit_params, indices=train)
            inputs = {}  # what the network is handed, per setting of the steps around it
            for candidate in candidates:
                # as scikit-learn's loop sets them: the values cloned (estimators, generators)
                estimator = clone(self.estimator).set_params(**clone(candidate, safe=False))
                # (None where the candidate replaces a step on the way: not trained ahead)
                fnn = estimator.get_params().get(path) if path else estimator
                kind = _kind(fnn)
                if kind is None or getattr(fnn, "_skl_callbacks", None):
                    continue  # (a network's own callbacks see its own fit)
                around = tuple(sorted((k, repr(v)) for k, v in candidate.items()
                                      if path and not k.startswith(f"{path}__")))
                if around not in inputs:
                    inputs[around] = _network_input(estimator, path, fnn, X_train, y_train,
                                                    fold_params)
                if inputs[around] is None:
                    continue  # scikit-learn's loop fits it (and reports what failed)
                Xt, yt, weight, digest = inputs[around]
                key = _prefit.key_of(fnn, digest)
                if key is None:
                    continue
                if key in repeats and fnn.random_state is not None:
                    repeats[key] += 1  # the same fit again: one fit, taken by each (a tie)
                    continue
                repeats[key] = 1
                jobs.append((fnn, Xt, yt, weight))
                keys.append(key)
                groups.append((fold, around, kind))
        if not jobs:
            return {}
        start = time.perf_counter()
        if type(backend).__name__ == "DaskDistributedBackend":
            made = _train_on_cluster(jobs, groups, backend.client, lanes, self.progress_topic)
        else:
            made = [(job[0], error) for job, error in
                    zip(jobs, fit_together(jobs, n_jobs=self.n_jobs, lanes=lanes))]
        self.together_fit_time_ = time.perf_counter() - start
        fits = {}
        for key, (fitted, error) in zip(keys, made):
            if error is None:  # (a seed drawn afresh, random_state=None: a fit each)
                fits.setdefault(key, []).extend([fitted] * repeats[key])
        return fits


def _train_on_cluster(jobs, groups, client, lanes, topic):
    """:func:`fit_together` on a Dask cluster's workers (``client``: the client of joblib's
    "dask" backend): one task per group of networks of one kind on one fold's rows
    (``groups``: the group of each job), as ``lanes`` where asked, each announcing its fits on
    ``topic``. Submitted to the client itself, not through joblib, whose ``Parallel`` runs the
    tasks in this process where the cluster has one thread; each fold's arrays are sent once
    (scattered), and each task runs under this process's warning filters and scikit-learn
    configuration, as scikit-learn's own loop runs its tasks. Returns ``(fitted estimator,
    error)`` per job."""
    tasks = {}
    for i, group in enumerate(groups):
        tasks.setdefault(group, []).append(i)
    # id of an array -> (the array, its future): a fold's rows are shared by its jobs; the
    # array is held so that its id names it until the end
    scattered = {}

    def sent(value):
        if value is None:
            return None
        if id(value) not in scattered:
            scattered[id(value)] = (value, client.scatter(value, hash=False))
        return scattered[id(value)][1]

    sent_jobs = [(fnn, sent(X), sent(y), sent(weight)) for fnn, X, y, weight in jobs]
    context = (get_config(), list(warnings.filters))
    futures = [client.submit(_fit_group, [sent_jobs[i] for i in members], lanes, topic,
                             context, pure=False) for members in tasks.values()]
    results = client.gather(futures)
    made = [None] * len(jobs)
    for members, result in zip(tasks.values(), results):
        for i, pair in zip(members, result):
            made[i] = pair
    return made


def _callbacks_reach(search, depth):
    """Whether a callback of ``search`` reaches a network ``depth`` estimators below it (1:
    the search's estimator, 2: a Pipeline's last step, 3: that of a Pipeline in a
    TransformedTargetRegressor), as scikit-learn hands its
    auto-propagated callbacks down (those whose ``max_propagation_depth`` is None or at
    least the depth)."""
    try:
        from sklearn.callback import AutoPropagatedCallback
    except ImportError:  # a scikit-learn without callbacks
        return False
    return any(isinstance(callback, AutoPropagatedCallback)
               and (callback.max_propagation_depth is None
                    or callback.max_propagation_depth >= depth)
               for callback in getattr(search, "_skl_callbacks", None) or ())


class _Handed(Exception):
    """Raised by :class:`_StandIn` with what the network's ``fit`` would have been handed."""


class _StandIn(BaseEstimator):
    """Takes the network's place in a candidate's estimator: its ``fit`` raises
    :class:`_Handed` with the arguments, so the steps around the network (a Pipeline's
    transformers, a TransformedTargetRegressor's target transformer) run as in the
    candidate's own fit, and no further (its ``predict``, never called, is there because a
    TransformedTargetRegressor checks that its regressor has one)."""

    def fit(self, X, y=None, **params):
        raise _Handed(X, y, params)

    def predict(self, X):  # pragma: no cover - never fitted
        raise NotImplementedError


def _network_input(estimator, path, fnn, X, y, fit_params):
    """``(X, y, sample_weight, data_digest)`` handed to the network ``fnn`` at ``path`` (see
    :func:`_network_path`) when a candidate's ``estimator`` is fitted on X, y with
    ``fit_params``; None where the steps around it fail or hand it other fit parameters
    (scikit-learn's loop then fits the candidate)."""
    handed = (X, y, fit_params)
    if path:
        stand_in = _StandIn()
        # the network's metadata requests (metadata routing routes to it what it asked for)
        stand_in._metadata_request = fnn._get_metadata_request()
        try:
            estimator.set_params(**{path: stand_in}).fit(X, y, **fit_params)
            return None  # (the network was never reached)
        except _Handed as seen:
            handed = seen.args
        except Exception:  # noqa: BLE001 - scikit-learn's loop fits it again, and reports it
            return None
    Xt, yt, params = handed
    if set(params) - {"sample_weight"}:
        return None
    weight = params.get("sample_weight")
    return Xt, yt, weight, _prefit.data_digest(Xt, yt, weight)


def _kind(fnn):
    """What networks must share to train in one compiled call: their shape, activation,
    solver, batch size, loss and output, and which layers drop units ('lbfgs' networks are
    fitted one after another, each its own fit); None for what does not train ahead (another
    estimator, a dropout that is no rate)."""
    if not isinstance(fnn, BaseFNN):
        return None
    try:
        dropping = tuple(float(r) > 0 for r in np.atleast_1d(fnn.dropout))
    except (TypeError, ValueError):  # the fit refuses it, in scikit-learn's loop
        return None
    return repr((fnn.hidden_layer_sizes, fnn.activation, fnn.solver, fnn.batch_size,
                 getattr(fnn, "loss", None), getattr(fnn, "out_activation", None), dropping))


def _fit_group(jobs, lanes, topic, context):
    """A task of :func:`_train_on_cluster`: ``fit_together(jobs, lanes=lanes)`` under
    ``context`` (the caller's scikit-learn configuration and warning filters); returns
    ``(fitted estimator, error)`` per job and, on a Dask worker, announces the fits made on
    ``topic``."""
    config, filters = context
    with config_context(**config), warnings.catch_warnings():
        warnings.filters[:] = filters
        errors = fit_together(jobs, lanes=lanes)
    try:
        from distributed import get_worker

        get_worker().log_event(topic, len(jobs))
    except (ImportError, ValueError):  # not on a worker
        pass
    return [(job[0], error) for job, error in zip(jobs, errors)]


class FNNGridSearchCV(_TrainedTogether, GridSearchCV):
    """scikit-learn's ``GridSearchCV`` for an FNN estimator (or a Pipeline ending in one, or a
    TransformedTargetRegressor around either), every candidate of every fold trained together
    (see :mod:`fastfnn.search`); the same parameters, attributes and results, plus
    ``together_fit_time_`` (seconds)."""

    progress_topic = PROGRESS_TOPIC


class FNNRandomizedSearchCV(_TrainedTogether, RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV`` for an FNN estimator (or a Pipeline ending in
    one, or a TransformedTargetRegressor around either), every candidate of every fold trained
    together (see :mod:`fastfnn.search`); the same parameters, attributes and results, plus
    ``together_fit_time_`` (seconds)."""

    progress_topic = PROGRESS_TOPIC


__all__ = ["FNNGridSearchCV", "FNNRandomizedSearchCV"]
