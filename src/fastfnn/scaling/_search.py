"""Hyper-parameter searches across a Dask cluster: scikit-learn's searches, whose fits joblib
sends to the cluster's workers (joblib's "dask" backend).

Why not dask-ml's ``IncrementalSearchCV`` / ``HyperbandSearchCV``: with dask >= 2025.3 their
``fit`` fails with "Attempting to use an asynchronous Client in a synchronous context of
`dask.compute`" (they call ``dask.persist`` inside the client's event loop, which dask now
refuses, and persisting collections of futures, their way of chaining ``partial_fit`` calls,
is no longer allowed by distributed); with dask and distributed 2025.2.0 they run.
scikit-learn's successive halving over ``max_iter`` covers the same adaptive idea without a
pin: many candidates on few epochs, the best on more (restarted, where Hyperband continues
them with ``partial_fit``).
"""

import re
import uuid
from contextlib import contextmanager

import joblib
from distributed.diagnostics.plugin import SchedulerPlugin
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)

from .. import FNNClassifier, FNNGridSearchCV, FNNRandomizedSearchCV, FNNRegressor
from ._cluster import cluster_client

SEARCH_KINDS = ("grid", "random", "halving", "halving-random")

# joblib names each task it sends to dask after the batch it runs:
# "batch_of__fit_and_score_3_calls-<uuid>" (three cross-validation fits), or
# "mixed_batch_of__fit_and_score_3_calls-<uuid>" where it sees the calls as different
# functions (scikit-learn's ``delayed`` wraps each call anew).
_FIT_BATCH = re.compile(r"(?:mixed_)?batch_of__fit_and_score_(\d+)_calls")


class FitCounter(SchedulerPlugin):
    """Scheduler plugin: logs an event on ``topic`` with the number of cross-validation fits
    each finished joblib batch held, of the batches the client ``client_id`` sent (another
    search's, through another client, are not this one's), for that client to subscribe."""

    def __init__(self, topic, client_id):
        self.topic = topic
        self.name = topic
        self.client_id = client_id
        self.scheduler = None

    async def start(self, scheduler):
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, **kwargs):
        if finish != "memory" or self.scheduler is None:
            return
        match = _FIT_BATCH.match(str(key))
        task = self.scheduler.tasks.get(key)
        if match and task is not None and any(wanting.client_key == self.client_id
                                              for wanting in task.who_wants):
            self.scheduler.log_event(self.topic, int(match.group(1)))


def n_fits(searcher):
    """Cross-validation fits a fitted search ran (every round of successive halving)."""
    n_candidates = getattr(searcher, "n_candidates_", None)
    total = sum(n_candidates) if n_candidates else len(searcher.cv_results_["params"])
    return total * searcher.n_splits_


@contextmanager
def _fits_done(client, on_progress, searcher):
    """Call ``on_progress(done)`` as the cluster finishes cross-validation fits, and once more
    with the total at the end (the scheduler's last events can arrive after the results).
    The events come on a topic of this search's own (joblib's batches, counted by a scheduler
    plugin, and the groups an FNN search trains together), so two searches on one cluster
    count their own fits."""
    if on_progress is None:
        yield
        return
    topic = f"fastfnn-search-{uuid.uuid4().hex}"
    done = [0]

    def handler(event):
        done[0] += event[1]
        on_progress(done[0])

    client.register_plugin(FitCounter(topic, client.id))
    client.subscribe_topic(topic, handler)
    if hasattr(searcher, "progress_topic"):  # its groups trained together announce here too
        searcher.progress_topic = topic
    try:
        yield
    finally:
        client.unsubscribe_topic(topic)
        client.unregister_scheduler_plugin(topic)
    total = n_fits(searcher)
    if done[0] != total:
        on_progress(total)


def _epochs_parameter(estimator):
    """The parameter of ``estimator`` that counts a network's epochs: its own ``max_iter``,
    or that of the one FNN estimator inside it (``fnn__max_iter`` of a Pipeline,
    ``regressor__fnn__max_iter`` of a TransformedTargetRegressor around one); None where
    there is none; ValueError where several networks would each need theirs."""
    params = estimator.get_params()
    if "max_iter" in params:
        return "max_iter"
    found = [f"{name}__max_iter" for name, value in params.items()
             if isinstance(value, (FNNRegressor, FNNClassifier))
             and f"{name}__max_iter" in params]
    if len(found) > 1:
        raise ValueError(f"successive halving spends one network's epochs, and "
                         f"{type(estimator).__name__} holds {len(found)} ({', '.join(found)}): "
                         f"search them with kind='grid' or 'random'.")
    return found[0] if found else None


def make_search(estimator, params, *, kind="grid", cv=5, scoring=None, n_iter=10,
                random_state=None, refit=True, factor=3, min_resources="exhaust",
                max_resources=None, n_jobs=-1, **search_kwargs):
    """The unfitted scikit-learn search of :func:`search` (same parameters)."""
    common = dict(cv=cv, scoring=scoring, refit=refit, n_jobs=n_jobs, **search_kwargs)
    # a network, a Pipeline ending in one, a TransformedTargetRegressor around either: its
    # candidates go to the workers in groups
    together = FNNGridSearchCV.trains_together(estimator)
    if kind == "grid":
        return (FNNGridSearchCV if together else GridSearchCV)(estimator, params, **common)
    if kind == "random":
        search_class = FNNRandomizedSearchCV if together else RandomizedSearchCV
        return search_class(estimator, params, n_iter=n_iter, random_state=random_state,
                            **common)
    if kind in ("halving", "halving-random"):
        epochs = _epochs_parameter(estimator)
        if epochs is None:
            raise ValueError(f"successive halving spends epochs (max_iter); "
                             f"{type(estimator).__name__} has no max_iter parameter, nor a "
                             f"network inside it.")
        if any(epochs in grid for grid in (params if isinstance(params, list) else [params])):
            raise ValueError(f"with kind='halving', {epochs} is the resource that successive "
                             "halving gives out: remove it from the parameters and set "
                             "max_resources (the most epochs a candidate gets).")
        halving = dict(resource=epochs, factor=factor, min_resources=min_resources,
                       max_resources=max_resources or estimator.get_params()[epochs],
                       random_state=random_state, **common)
        if kind == "halving":
            return HalvingGridSearchCV(estimator, params, **halving)
        return HalvingRandomSearchCV(estimator, params, n_candidates=n_iter, **halving)
    raise ValueError(f"kind must be one of {SEARCH_KINDS}, got {kind!r}.")


def search(estimator, params, X, y, *, kind="grid", scheduler=None, n_workers=2,
           threads_per_worker=1, cv=5, scoring=None, n_iter=10, random_state=None, refit=True,
           factor=3, min_resources="exhaust", max_resources=None, on_progress=None,
           **search_kwargs):
    """Run a scikit-learn hyper-parameter search with its fits spread over a Dask cluster.

    joblib's "dask" backend sends each cross-validation fit (``_fit_and_score``, in batches) to
    the cluster's workers (where the cluster has more than one worker thread: joblib runs a
    single one's in this process); the search's logic, the final refit on all of ``X`` and the
    result stay in this process. For a fastfnn network (or a Pipeline ending in one, or a
    TransformedTargetRegressor around either) the grid and random searches are
    ``FNNGridSearchCV`` / ``FNNRandomizedSearchCV``: the workers get the candidates in groups,
    one task per fold and kind of network submitted to the client (a cluster of one worker
    thread too), each training its group in one compiled call per epoch ('lbfgs' networks one
    after another); scoring, and the fits such a search does not train ahead, stay here. Each
    worker thread runs one fit at a time, single-threaded with the default
    ``threads_per_worker=1`` (a local cluster sets ``FASTFNN_NUM_THREADS``,
    ``OMP_NUM_THREADS`` and the BLAS thread counts of its workers to ``threads_per_worker``).
    fastfnn's results depend on the data, parameters and seed, not on the thread count, so
    the scores are those of the same search run in one process.

    Parameters
    ----------
    estimator : estimator
        E.g. ``FNNRegressor(solver='adam', random_state=0)`` or a Pipeline around one.
    params : dict or list of dict
        The parameter grid (``kind='grid'`` and ``'halving'``) or distributions (``'random'``
        and ``'halving-random'``), as scikit-learn's searches take them.
    X, y : array-like
        The data, in memory (joblib sends it to each worker once).
    kind : {"grid", "random", "halving", "halving-random"}, default="grid"
        ``GridSearchCV``, ``RandomizedSearchCV``, or successive halving over epochs
        (``HalvingGridSearchCV`` / ``HalvingRandomSearchCV`` over the network's epochs:
        ``resource`` its ``max_iter``, nested or not, e.g. ``regressor__fnn__max_iter``):
        every candidate trains a few epochs, the best ``1/factor`` go on with ``factor`` times
        more, up to ``max_resources`` epochs (default: the estimator's ``max_iter``).
    scheduler : None, "local", str or distributed.Client, optional
        None or "local" starts a local cluster of ``n_workers`` processes with
        ``threads_per_worker`` threads and closes it afterwards; a string connects to a
        scheduler at that address; a Client is used as it is.
    n_workers, threads_per_worker : int, default=2, 1
    cv, scoring, refit : as in scikit-learn's searches
    n_iter : int, default=10
        Candidates drawn by the random searches.
    random_state : int or None
        Seeds the random searches' draws.
    factor, min_resources, max_resources : successive halving's parameters
    on_progress : callable, optional
        Called as ``on_progress(done)`` with the number of cross-validation fits finished on
        the cluster (from the cluster's scheduler, as joblib's batches finish), the last time
        with the total.
    **search_kwargs
        More parameters of the scikit-learn search (``return_train_score``, ``error_score``).

    Returns
    -------
    search : fitted GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV or
        HalvingRandomSearchCV
        ``best_params_``, ``best_score_``, ``cv_results_``, ``best_estimator_`` (with
        ``refit``), as scikit-learn gives them.
    """
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable or None, got "
                        f"{type(on_progress).__name__}.")
    searcher = make_search(estimator, params, kind=kind, cv=cv, scoring=scoring, n_iter=n_iter,
                           random_state=random_state, refit=refit, factor=factor,
                           min_resources=min_resources, max_resources=max_resources,
                           **search_kwargs)
    with cluster_client(scheduler, n_workers=n_workers,
                        threads_per_worker=threads_per_worker) as client, \
            _fits_done(client, on_progress, searcher), \
            joblib.parallel_config(backend="dask", client=client):
        searcher.fit(X, y)
    return searcher
