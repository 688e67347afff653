"""Searches and ensembles whose networks train together.

Oracles: scikit-learn's GridSearchCV / RandomizedSearchCV on the same estimator, grid, cv and
fit parameters (every entry of ``cv_results_`` but the timings, ``best_*``, the refitted
model), and each network's solo ``fit`` (ensemble members, the networks trained together).
"""

import threading
import warnings

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastfnn import (FNNClassifier, FNNEnsembleClassifier, FNNEnsembleRegressor,
                     FNNGridSearchCV, FNNRandomizedSearchCV, FNNRegressor)
from fastfnn import _prefit
from fastfnn._fitmany import fit_together

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = np.tanh(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


def same_results(ours, theirs, X, rtol=1e-12):
    """Every cv_results_ entry but the timings, best_* and the refitted model agree: scores
    to ``rtol`` (candidates that share their minibatches train as lanes: their solo fits'
    values to rounding), everything else exactly."""
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        if "time" in key:
            continue
        mine = ours.cv_results_[key]
        if isinstance(value, np.ma.MaskedArray):  # a parameter some candidates do not set
            np.testing.assert_array_equal(np.ma.getmaskarray(mine), np.ma.getmaskarray(value))
            mine, value = mine.compressed(), value.compressed()
        a, b = np.asarray(mine, dtype=object), np.asarray(value, dtype=object)
        assert a.shape == b.shape, key
        for x, y in zip(a.ravel(), b.ravel()):
            if isinstance(x, float) and "score" in key:
                assert x == pytest.approx(y, rel=rtol, abs=rtol, nan_ok=True), key
            else:
                assert x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y)), key
    for name in ("best_params_", "best_index_", "n_splits_", "multimetric_"):
        if hasattr(theirs, name):
            assert getattr(ours, name) == getattr(theirs, name), name
    if hasattr(theirs, "best_score_"):
        assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=rtol)
    if hasattr(theirs, "best_estimator_"):
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


BASE = dict(hidden_layer_sizes=(16,), batch_size=32, max_iter=8, random_state=0)


@pytest.mark.parametrize("lanes", ["off", "on"])
def test_grid_search_is_scikit_learns_with_mixed_candidates(monkeypatch, lanes):
    """Mixed groups (adam, sgd with momentum, early stopping, lbfgs, float alpha and seeds)
    train ahead where they can; every result is GridSearchCV's: to the bit, or to rounding
    where FASTFNN_LANES has the candidates of one seed and fold train as lanes."""
    monkeypatch.setenv("FASTFNN_LANES", lanes)
    laned = _laned_sets(monkeypatch)
    X, y = data()
    grid = [{"alpha": [1e-4, 1e-2, 1e-1], "learning_rate_init": [1e-3, 1e-2],
             "random_state": [0, 1]},  # six a seed and fold: lanes, where asked
            {"solver": ["sgd"], "momentum": [0.0, 0.9], "early_stopping": [True]},
            {"solver": ["lbfgs"], "max_iter": [20]}]
    ours = FNNGridSearchCV(FNNRegressor(**BASE), grid, cv=3).fit(X, y)
    theirs = GridSearchCV(FNNRegressor(**BASE), grid, cv=3).fit(X, y)
    same_results(ours, theirs, X, rtol=1e-12 if lanes == "on" else 0)
    assert ours.together_fit_time_ > 0 and (sum(laned) > 0) == (lanes == "on")


def test_training_that_amplifies_rounding_gives_scikit_learns_results_to_the_bit():
    """Adam at a rate of 0.3 on batches of 8 takes a difference of one rounding to the
    second digit within 100 epochs: the candidates of one seed and fold (five, a lane set
    where asked) train to their solo fits' bits by default."""
    X, y = data(n=150)
    net = FNNRegressor(hidden_layer_sizes=(16,), activation="tanh", batch_size=8,
                       learning_rate_init=0.3, max_iter=100, n_iter_no_change=100,
                       random_state=0)
    grid = {"alpha": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}
    same_results(FNNGridSearchCV(net, grid, cv=3).fit(X, y),
                 GridSearchCV(net, grid, cv=3).fit(X, y), X, rtol=0)


def test_threads_over_models_give_the_same_results():
    X, y = data()
    grid = {"alpha": [1e-4, 1e-2, 1.0], "learning_rate_init": [1e-3, 3e-3, 1e-2]}
    one = FNNGridSearchCV(FNNRegressor(**BASE), grid, cv=2, n_jobs=1).fit(X, y)
    two = FNNGridSearchCV(FNNRegressor(**BASE), grid, cv=2, n_jobs=2).fit(X, y)
    same_results(two, one, X)


def test_pipeline_weights_multimetric_and_refit_false():
    """A Pipeline whose scaler's parameter is searched too (the scaler fitted once per fold
    and setting), sample weights routed to the network, a scoring dict, refit=False."""
    X, y = data()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    pipe = make_pipeline(StandardScaler(), FNNRegressor(**BASE))
    grid = {"standardscaler__with_mean": [True, False], "fnnregressor__alpha": [1e-4, 1e-2]}
    scoring = {"r2": "r2", "mae": "neg_mean_absolute_error"}
    kwargs = dict(cv=KFold(3, shuffle=True, random_state=0), scoring=scoring, refit=False)
    params = {"fnnregressor__sample_weight": w}
    ours = FNNGridSearchCV(pipe, grid, **kwargs).fit(X, y, **params)
    theirs = GridSearchCV(pipe, grid, **kwargs).fit(X, y, **params)
    same_results(ours, theirs, X)
    refit = FNNGridSearchCV(pipe, grid, cv=3, scoring=scoring, refit="mae").fit(X, y, **params)
    same_results(refit, GridSearchCV(pipe, grid, cv=3, scoring=scoring,
                                     refit="mae").fit(X, y, **params), X)


def test_sample_weights_routed_by_metadata_routing(monkeypatch):
    """With scikit-learn's metadata routing on, a Pipeline whose network asks for the sample
    weights (and whose scaler does not): GridSearchCV's results, every fit of its loop taking
    the network made ahead."""
    import sklearn
    from sklearn.metrics import get_scorer

    taken = []
    take = _prefit.take
    monkeypatch.setattr(_prefit, "take", lambda *args: taken.append(take(*args)) or taken[-1])
    X, y = data()
    w = np.random.default_rng(5).uniform(0.5, 2.0, len(X))
    grid = {"fnnregressor__alpha": [1e-4, 1e-2]}
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             FNNRegressor(**BASE).set_fit_request(sample_weight=True))
        r2 = get_scorer("r2").set_score_request(sample_weight=False)
        theirs = GridSearchCV(pipe, grid, cv=3, scoring=r2).fit(X, y, sample_weight=w)
        taken.clear()
        same_results(FNNGridSearchCV(pipe, grid, cv=3, scoring=r2).fit(X, y, sample_weight=w),
                     theirs, X, rtol=0)
    assert len(taken) == 2 * 3 + 1 and all(fit is not None for fit in taken[:-1])


def test_classifier_with_string_labels_and_a_randomized_search():
    X, y = data(n=180)
    labels = np.array(["low", "mid", "high"])[np.digitize(y, [-0.5, 0.5])]
    dists = {"alpha": loguniform(1e-5, 1e-1), "learning_rate_init": loguniform(1e-3, 3e-2)}
    kwargs = dict(n_iter=5, cv=3, random_state=np.random.RandomState(7))
    ours = FNNRandomizedSearchCV(FNNClassifier(**BASE), dists,
                                 **{**kwargs, "random_state": np.random.RandomState(7)})
    theirs = RandomizedSearchCV(FNNClassifier(**BASE), dists,
                                **{**kwargs, "random_state": np.random.RandomState(7)})
    same_results(ours.fit(X, labels), theirs.fit(X, labels), X)
    assert set(ours.best_estimator_.classes_) == {"low", "mid", "high"}


def test_a_diverging_candidate_scores_as_scikit_learns():
    """A candidate whose fit diverges fails alone (error_score), as in scikit-learn's loop,
    also as one of a lane set."""
    X, y = data()
    grid = {"learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2, 1e6], "solver": ["sgd"]}
    with pytest.warns(UserWarning):
        ours = FNNGridSearchCV(FNNRegressor(**BASE), grid, cv=2).fit(X, 100 * y)
    with pytest.warns(UserWarning):
        theirs = GridSearchCV(FNNRegressor(**BASE), grid, cv=2).fit(X, 100 * y)
    same_results(ours, theirs, X)
    assert np.isnan(ours.cv_results_["mean_test_score"][4])


@pytest.mark.parametrize("lanes", ["off", "on"])
def test_a_candidate_whose_epoch_raises_fails_alone(monkeypatch, lanes):
    """A validation scorer that refuses the targets (MSLE of targets below -1), and a
    ConvergenceWarning turned into an error: those candidates score error_score and the others
    as scikit-learn's loop scores them, trained together, and as lanes where asked (ten
    candidates of one seed on a fold)."""
    from sklearn.exceptions import ConvergenceWarning

    monkeypatch.setenv("FASTFNN_LANES", lanes)
    laned = _laned_sets(monkeypatch)
    X, y = data(n=90)
    early = FNNRegressor(**{**BASE, "max_iter": 5}, early_stopping=True)
    cases = [({"scoring": ["r2", "neg_mean_squared_log_error"]}, "ignore"),
             ({"scoring": ["r2", "neg_mean_squared_log_error"],
               "alpha": [1e-4, 1e-3, 1e-2, 1e-1, 1.0]}, "ignore"),
             ({"tol": [10.0, 0.0], "n_iter_no_change": [1]}, "error")]
    for grid, convergence in cases:
        estimator = early if "scoring" in grid else FNNRegressor(**{**BASE, "max_iter": 5})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter(convergence, ConvergenceWarning)
            theirs = GridSearchCV(estimator, grid, cv=2).fit(X, y - 2)
            ours = FNNGridSearchCV(estimator, grid, cv=2).fit(X, y - 2)
        same_results(ours, theirs, X, rtol=1e-12 if lanes == "on" else 0)
        assert np.isnan(ours.cv_results_["mean_test_score"]).sum() == len(ours.cv_results_[
            "params"]) // 2
    assert (sum(laned) > 0) == (lanes == "on")


def _laned_sets(monkeypatch):
    """A list that gets the number of lane sets each ``train_together`` call trains."""
    from fastfnn import _together

    counts, lane_sets = [], _together.lane_sets

    def counting(fits):
        sets, rest = lane_sets(fits)
        counts.append(len(sets))
        return sets, rest

    monkeypatch.setattr(_together, "lane_sets", counting)
    return counts


def test_grid_values_are_cloned_and_equal_candidates_tie_as_in_scikit_learn():
    """Grid values that are objects (the final step itself, a step before it, a RandomState)
    are cloned for each fit as scikit-learn's loop clones them: the grid's own objects stay
    unfitted and unadvanced, and every fold scores its own network. A candidate repeated
    trains once and ties with itself, as two equal solo fits tie."""
    X, y = data(n=120)
    scalers = [StandardScaler(), None]
    steps = {"fnnregressor": [FNNRegressor(**BASE, alpha=1e-3), FNNRegressor(**BASE, alpha=1.0)],
             "standardscaler": scalers}
    seed = np.random.RandomState(3)
    seeded = [{"random_state": [seed], "alpha": [1e-4, 1e-2]},
              {"alpha": [1e-4, 1e-2, 1e-1]}, {"alpha": [1e-4]}]  # the last repeats the first
    for estimator, grid in [(make_pipeline(StandardScaler(), FNNRegressor(**BASE)), steps),
                            (FNNRegressor(**BASE), seeded)]:
        state = seed.get_state()[1].copy()
        ours = FNNGridSearchCV(estimator, grid, cv=3).fit(X, y)
        theirs = GridSearchCV(estimator, grid, cv=3).fit(X, y)
        same_results(ours, theirs, X, rtol=0)  # (ties exactly as scikit-learn's)
        np.testing.assert_array_equal(ours.cv_results_["rank_test_score"],
                                      theirs.cv_results_["rank_test_score"])
        np.testing.assert_array_equal(seed.get_state()[1], state)
    assert not any(hasattr(fnn, "coefs_") for fnn in steps["fnnregressor"])
    assert not hasattr(scalers[0], "mean_")


def test_what_cannot_train_ahead_fails_or_fits_in_scikit_learns_loop():
    """A step before the network that fails to fit, a dropout that is no rate, a parameter
    that cannot be pickled (a scoring lambda): scored as scikit-learn scores them (error_score,
    or its own fit), not raised by the training ahead."""
    from sklearn.decomposition import PCA

    X, y = data(n=120)
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    net = FNNRegressor(**BASE)
    cases = [(make_pipeline(PCA(), FNNRegressor(**BASE)), {"pca__n_components": [2, 50]}),
             # candidates that replace a step on the way to the network
             (make_pipeline(StandardScaler(), net),
              {"steps": [[("scale", StandardScaler()), ("net", net)]]}),
             (TransformedTargetRegressor(make_pipeline(StandardScaler(), net)),
              {"regressor": [Ridge(), Pipeline([("scale", StandardScaler()), ("net", net)])]}),
             (FNNRegressor(**BASE), {"dropout": [0.1, "high", [0.1, "x"]]}),
             (FNNRegressor(**BASE, early_stopping=True,
                           scoring=lambda est, X_val, y_val: -np.abs(est.predict(X_val) - y_val)
                           .mean()), {"alpha": [1e-4, 1e-1]})]
    for estimator, grid in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = FNNGridSearchCV(estimator, grid, cv=2).fit(X, y)
            theirs = GridSearchCV(estimator, grid, cv=2).fit(X, y)
        same_results(ours, theirs, X)
    # a validation set of its own handed to the network: nothing trained ahead
    pipe = make_pipeline(StandardScaler(), FNNRegressor(**BASE, early_stopping=True))
    params = {"fnnregressor__X_val": X[:7], "fnnregressor__y_val": y[:7]}
    search = FNNGridSearchCV(pipe, {"fnnregressor__alpha": [1e-4, 1e-1]}, cv=2)
    same_results(search.fit(X, y).fit(X, y, **params),
                 GridSearchCV(pipe, {"fnnregressor__alpha": [1e-4, 1e-1]}, cv=2)
                 .fit(X, y, **params), X)
    assert search.together_fit_time_ == 0


def test_a_target_transformer_and_a_steps_own_fit_parameters(monkeypatch):
    """A TransformedTargetRegressor around a Pipeline (the model ``fastfnn search`` builds for
    a regression), the target's transformer searched too, sample weights for the scaler and
    for the network: scikit-learn's results, and every fit of scikit-learn's loop takes the
    network made ahead."""
    from sklearn.compose import TransformedTargetRegressor

    taken = []
    take = _prefit.take
    monkeypatch.setattr(_prefit, "take", lambda *args: taken.append(take(*args)) or taken[-1])
    X, y = data()
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(X))
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), FNNRegressor(**BASE)),
                                       transformer=StandardScaler())
    grid = {"transformer__with_mean": [True, False],
            "regressor__fnnregressor__alpha": [1e-4, 1e-2, 1e-1]}
    params = {"standardscaler__sample_weight": w, "fnnregressor__sample_weight": w[::-1]}
    theirs = GridSearchCV(model, grid, cv=3).fit(X, y, **params)
    taken.clear()
    same_results(FNNGridSearchCV(model, grid, cv=3).fit(X, y, **params), theirs, X)
    assert len(taken) == 6 * 3 + 1 and all(fit is not None for fit in taken[:-1])
    assert taken[-1] is None  # the refit trains


def test_callbacks_of_the_search_reach_every_candidates_fit():
    """A propagated callback on the search sees each candidate's fit and epochs, as under
    GridSearchCV, and its stop (after a fit's second epoch) ends them: the candidates train
    in scikit-learn's loop."""
    from collections import Counter

    class StopAfterTwo:  # a callback of the estimator it is set on
        def __init__(self):
            self.tasks = Counter()

        def setup(self, estimator, context):
            pass

        def teardown(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, **kwargs):
            pass

        def on_fit_task_end(self, estimator, context, **kwargs):
            self.tasks[type(estimator).__name__, context.task_name] += 1
            return context.task_name == "epoch" and context.task_id >= 1

    class Propagated(StopAfterTwo):  # handed down to every estimator below the search
        max_propagation_depth = None

    X, y = data(n=120)
    grid = [{"alpha": [1e-4, 1e-1]}, {"alpha": [1e-4]}]  # (a repeat: one fit, not a copy)
    tasks, results = [], []
    for search in (FNNGridSearchCV, GridSearchCV):
        callback = Propagated()
        results.append(search(FNNRegressor(**BASE), grid, cv=2).set_callbacks(callback)
                       .fit(X, y))
        tasks.append({key: n for key, n in callback.tasks.items() if key[0] == "FNNRegressor"})
    assert tasks[0] == tasks[1] == {("FNNRegressor", "fit"): 7, ("FNNRegressor", "epoch"): 14}
    same_results(*results, X)
    assert results[0].best_estimator_.n_iter_ == 2
    # callbacks of the network itself (holding a lock: no copy of them can be made) and a
    # callback that stays with the search: scikit-learn's results; the second trains ahead
    from sklearn.callback import ProgressBar

    own = StopAfterTwo()
    own.lock = threading.Lock()
    for network, search_callbacks in [(FNNRegressor(**BASE).set_callbacks(own), ()),
                                      (FNNRegressor(**BASE), (ProgressBar(0),))]:
        ours = FNNGridSearchCV(network, grid, cv=2).set_callbacks(*search_callbacks)
        same_results(ours.fit(X, y), GridSearchCV(network, grid, cv=2).fit(X, y), X)
        assert (ours.together_fit_time_ > 0) == bool(search_callbacks)


def test_repeated_candidates_with_seeds_drawn_afresh_do_not_tie():
    """With random_state=None each fit draws its seed, also a repeated candidate's (as in
    scikit-learn's loop): its scores differ from the first's."""
    X, y = data(n=120)
    grid = [{"alpha": [1e-4, 1e-2]}, {"alpha": [1e-4]}]
    search = FNNGridSearchCV(FNNRegressor(**{**BASE, "random_state": None}), grid, cv=2)
    scores = search.fit(X, y).cv_results_["split0_test_score"]
    assert scores[0] != scores[2]


def test_networks_trained_together_are_their_solo_fits():
    """fit_together on networks of several kinds (dtype, sparse, solvers, dropout, early
    stopping, rates that change every epoch): each equals its own fit to the bit; a bad one
    fails alone."""
    import scipy.sparse as sp

    X, y = data(n=200)
    X32 = X.astype(np.float32)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0.0))
    kinds = [(solver, X) for solver in ("sgd", "adam", "adamw")] + [("adam", X32), ("adam", Xs)]
    jobs = [(FNNRegressor(**BASE, solver=solver, dropout=drop, early_stopping=stop), data_X, y,
             None)
            for solver, data_X in kinds for drop in (0.0, 0.2) for stop in (False, True)]
    jobs += [(FNNRegressor(**BASE, solver=solver, learning_rate=schedule), X, y, None)
             for solver, schedule in (("adam", "cosine"), ("sgd", "invscaling"))]  # new rates
    jobs.append((FNNRegressor(**{**BASE, "hidden_layer_sizes": (4, 4), "dropout": (0.1,)}), X,
                 y, None))
    solo = [clone(est).fit(*args[:2]) for est, *args in jobs[:-1]]
    errors = fit_together(jobs, n_jobs=2)
    assert all(e is None for e in errors[:-1])
    assert isinstance(errors[-1], ValueError) and not hasattr(jobs[-1][0], "coefs_")
    for (est, *_), ref in zip(jobs, solo):
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_array_equal(a, b)
        assert est.loss_curve_ == ref.loss_curve_ and est.n_iter_ == ref.n_iter_


def test_ensembles_are_their_members_solo_fits():
    X, y = data()
    ens = FNNEnsembleRegressor(FNNRegressor(**BASE), n_estimators=4, random_state=3,
                               n_jobs=2).fit(X, y)
    seeds = np.random.RandomState(3).randint(np.iinfo(np.int32).max, size=4)
    np.testing.assert_array_equal(ens.seeds_, seeds)
    preds = []
    for member, seed in zip(ens.estimators_, seeds):
        solo = FNNRegressor(**{**BASE, "random_state": int(seed)}).fit(X, y)
        np.testing.assert_array_equal(member.coefs_[0], solo.coefs_[0])
        preds.append(solo.predict(X))
    mean, std = ens.predict(X, return_std=True)
    np.testing.assert_allclose(mean, np.mean(preds, axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, np.std(preds, axis=0), rtol=1e-9, atol=1e-15)
    labels = (y > 0).astype(int)
    clf = FNNEnsembleClassifier(FNNClassifier(**BASE), n_estimators=3, random_state=0)
    clf.fit(X, labels)
    proba = np.mean([m.predict_proba(X) for m in clf.estimators_], axis=0)
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.argmax(proba, axis=1))
    strings = np.where(labels == 1, "yes", "no")
    clf.set_params(n_estimators=2).fit(X, strings)
    proba = np.mean([m.predict_proba(X) for m in clf.estimators_], axis=0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])
    clf.fit(X, np.zeros(len(y), int))  # one class: each member predicts it, and so does the mean
    np.testing.assert_array_equal(clf.predict(X), clf.estimators_[0].predict(X))
    with pytest.raises(ValueError, match="FNNRegressor"):
        FNNEnsembleRegressor(FNNClassifier()).fit(X, y)
    # feature names follow the last fit's input, as scikit-learn's ensembles' do
    import pandas as pd
    from sklearn.ensemble import BaggingRegressor

    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    for model in (ens.set_params(n_estimators=2), BaggingRegressor(n_estimators=2)):
        assert list(model.fit(frame, y).feature_names_in_) == list(frame.columns)
        assert not hasattr(model.fit(X, y), "feature_names_in_")


def test_the_grouping_key_of_fits_is_numbas_type():
    """Fits train in one compiled call where their groups have one Numba type; the cheap key
    that sorts them (``type_key``) is equal exactly where ``numba.typeof`` is, over arrays of
    every dtype, layout, dimension and writability, scalars (Python ints past int64 too),
    nested tuples and the update rules' groups. Oracle: ``numba.typeof``."""
    import itertools

    import numba

    from fastfnn import _kernels as K
    from fastfnn._together import type_key

    base = np.zeros((4, 3))
    read_only = base.copy()
    read_only.flags.writeable = False
    arrays = [base, base.astype(np.float32), base[:, ::2], np.asfortranarray(base), base[0],
              read_only, np.zeros(3, np.int64), np.zeros((1, 1))]
    scalars = [1, 2**63, -1, 1.5, True, np.uint64(3), np.int64(2), np.float64(2), np.bool_(0),
               np.float32(1), None]
    rules = [K.SGDRule(base[0], 0.1, 0.9, True), K.SGDRule(base[0], 1, 0.9, True),
             K.SGDRule(base[0].astype(np.float32), 0.1, 0.9, True)]
    values = arrays + scalars + rules + [(a, s) for a in arrays[:3] for s in scalars[:3]]
    for a, b in itertools.combinations(values, 2):
        assert (type_key(a) == type_key(b)) == (numba.typeof(a) == numba.typeof(b)), (a, b)


def test_a_fit_made_ahead_is_taken_only_with_its_exact_parameters_and_data():
    """Oracle: equality of ``get_params`` and of the data. A fit takes the made fit filed
    for an estimator of equal parameters on equal rows, and trains on its own otherwise (a
    parameter one ulp away, another type of the same number, one value of X changed)."""
    X, y = data()
    base = FNNRegressor(hidden_layer_sizes=(4,), max_iter=2, alpha=1e-3, random_state=0)
    made = clone(base).fit(X, y)
    X_other = X.copy()
    X_other[3, 1] += 1.0
    cases = [
        (clone(base), X, True),
        (FNNRegressor(hidden_layer_sizes=[4], max_iter=2, alpha=1e-3, random_state=0), X, False),
        (clone(base).set_params(alpha=np.nextafter(1e-3, 1.0)), X, False),
        (clone(base).set_params(alpha=np.float32(1e-3)), X, False),
        (clone(base), X_other, False),
    ]
    for estimator, X_fit, taken in cases:
        key = _prefit.key_of(base, _prefit.data_digest(X, y, None))
        with _prefit.offering({key: [made]}):
            estimator.fit(X_fit, y)
        assert (estimator.coefs_ is made.coefs_) == taken, estimator
