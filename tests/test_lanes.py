"""Fits that share their minibatches, trained as lanes of one compiled call.

Oracle: each network's own ``fit`` (itself checked against scikit-learn and finite
differences elsewhere): every fitted attribute to rounding (lanes sum in another order), the
epoch counts exactly (these data keep the stopping rules' comparisons away from ``tol``'s
edge, where rounding could tip one); fits that lanes do not take, to the bit.
"""

import numpy as np
import pytest
from sklearn.base import clone

from fastfnn import FNNClassifier, FNNRegressor, _lanes
from fastfnn._fitmany import fit_together

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

BASE = dict(hidden_layer_sizes=(8,), batch_size=16, max_iter=6, random_state=0)
GRID = [dict(alpha=a, learning_rate_init=lr) for a in (1e-4, 1e-2, 1.0)
        for lr in (1e-3, 3e-3, 1e-2, 3e-2)][:11]  # 11: not a whole number of lane chunks


def data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, np.tanh(X[:, 0]) + X[:, 1] * X[:, 2]


@pytest.fixture
def laned(monkeypatch):
    """The number of fits each lanes call ran, as the calls happen."""
    counts = []
    run_epoch = _lanes.LaneSet.run_epoch

    def counted(self, members):
        counts.append(len(members))
        return run_epoch(self, members)

    monkeypatch.setattr(_lanes.LaneSet, "run_epoch", counted)
    return counts


def assert_as_solo(ests, X, y, rtol):
    """Each fitted estimator against a clone fitted alone."""
    for est in ests:
        solo = clone(est).fit(X, y)
        assert est.n_iter_ == solo.n_iter_ and est.t_ == solo.t_
        for a, b in zip(est.coefs_ + est.intercepts_, solo.coefs_ + solo.intercepts_):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(est.loss_curve_, solo.loss_curve_, rtol=rtol)
        np.testing.assert_allclose(est.gradient_norms_, solo.gradient_norms_, rtol=rtol)
        if solo.validation_scores_ is not None:
            np.testing.assert_allclose(est.validation_scores_, solo.validation_scores_,
                                       rtol=rtol)


@pytest.mark.parametrize("solver, activation, hidden, dtype, outputs", [
    ("adam", "relu", (8,), np.float64, 1),
    ("sgd", "relu", (8, 6, 4), np.float64, 1),
    ("sgd", "tanh", (8, 6), np.float64, 2),
    ("adamw", "logistic", (8, 6), np.float64, 1),
    ("adam", "identity", (8,), np.float32, 2),
    ("adam", "relu", (8,), np.float32, 1),
])
def test_laned_regressors_are_their_solo_fits(laned, solver, activation, hidden, dtype,
                                              outputs):
    X, y = data()
    X = X.astype(dtype)
    y = np.c_[y, np.sin(X[:, 3])] if outputs == 2 else y
    base = FNNRegressor(**{**BASE, "hidden_layer_sizes": hidden}, solver=solver,
                        activation=activation)
    ests = [clone(base).set_params(**p) for p in GRID]
    if solver == "sgd":  # classical momentum for five: a lane set of their own
        for est in ests[:5]:
            est.set_params(nesterovs_momentum=False)
    assert fit_together([(e, X, y, None) for e in ests], n_jobs=2, lanes=True) == [None] * 11
    assert sum(laned) == 11 * BASE["max_iter"]  # every fit as lanes, every epoch
    assert_as_solo(ests, X, y, rtol=1e-9 if dtype == np.float64 else 2e-4)


@pytest.mark.parametrize("classes", [["no", "yes"], ["low", "mid", "high"]])
def test_laned_classifiers_are_their_solo_fits(laned, classes):
    X, y = data()
    labels = np.array(classes)[np.digitize(y, [-0.3, 0.5][:len(classes) - 1])]
    ests = [FNNClassifier(**BASE, **p) for p in GRID[:5]]
    assert fit_together([(e, X, labels, None) for e in ests], lanes=True) == [None] * 5
    assert laned
    assert_as_solo(ests, X, labels, rtol=1e-9)


def test_stops_early_stopping_and_seeds_per_fit(laned):
    """Fits stop at their own epochs (the others go on as lanes); early stopping scores each
    laned fit on its own split; another seed, other minibatches: that fit trains alone."""
    X, y = data()
    base = FNNRegressor(**{**BASE, "max_iter": 30}, tol=1e-3, n_iter_no_change=2)
    ests = [clone(base).set_params(**p) for p in GRID[:6]]
    ests += [clone(base).set_params(early_stopping=True, alpha=a)
             for a in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)]
    ests.append(clone(base).set_params(random_state=1))
    fit_together([(e, X, y, None) for e in ests], lanes=True)
    assert len({e.n_iter_ for e in ests[:6]}) > 1  # stopped at different epochs
    # the early-stopping ones as lanes on their own split, all five until the first stops
    assert max(laned) <= 6 and laned.count(5) >= min(e.n_iter_ for e in ests[6:11])
    assert_as_solo(ests, X, y, rtol=1e-9)


def test_fits_lanes_do_not_take_stay_bit_exact_and_threads_change_nothing(laned):
    """Dropout and sample weights are not laned: those fits are their solo fits to the bit;
    laned results are the same bits on 1 and 2 threads."""
    X, y = data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    others = [(FNNRegressor(**BASE, dropout=0.2), X, y, None),
              (FNNRegressor(**BASE, alpha=1e-2, dropout=0.2), X, y, None),
              (FNNRegressor(**BASE), X, y, w), (FNNRegressor(**BASE, alpha=0.1), X, y, w)]
    runs = []
    for n_jobs in (1, 2):
        ests = [clone(e).set_params(**p) for e, p in zip([FNNRegressor(**BASE)] * 9, GRID)]
        jobs = [(e, X, y, None) for e in ests] + [(clone(e), *rest) for e, *rest in others]
        fit_together(jobs, n_jobs=n_jobs, lanes=True)
        runs.append(jobs)
        for est, X_, y_, sw in jobs[9:]:
            solo = clone(est).fit(X_, y_, sample_weight=sw)
            for a, b in zip(est.coefs_, solo.coefs_):
                np.testing.assert_array_equal(a, b)
    assert sum(laned) == 2 * 9 * BASE["max_iter"]  # all nine as lanes, every epoch, both runs
    for (a, *_), (b, *_) in zip(*runs):
        for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_array_equal(u, v)


def test_lanes_take_small_layers_only(laned):
    """A layer past the first larger than LANED_WEIGHTS: no lanes (each model's own tile
    kernel is faster there)."""
    X, y = data()
    base = FNNRegressor(**{**BASE, "hidden_layer_sizes": (48, 48), "max_iter": 2})
    assert 48 * 48 > _lanes.LANED_WEIGHTS
    fit_together([(clone(base).set_params(**p), X, y, None) for p in GRID[:6]], lanes=True)
    assert not laned


def test_too_few_fits_to_fill_a_chunk_train_alone_to_the_bit(laned):
    """Fewer than LANES_MIN fits with the same minibatches: each its solo fit, to the bit."""
    X, y = data()
    ests = [FNNRegressor(**BASE, **p) for p in GRID[:_lanes.LANES_MIN - 1]]
    fit_together([(e, X, y, None) for e in ests], lanes=True)
    assert not laned
    for est in ests:
        for a, b in zip(est.coefs_, clone(est).fit(X, y).coefs_):
            np.testing.assert_array_equal(a, b)


def test_the_lanes_kernel_refuses_arrays_that_disagree_with_its_layers(monkeypatch):
    """The laned step writes through vector code that checks nothing: the compiled call
    checks its groups first (a layer-norm table one layer short here)."""
    from fastfnn import _kernels as K

    run = K.run_lanes_
    caught = []

    def short(lanes, *args):
        try:
            run(lanes._replace(layer_sq=lanes.layer_sq[:-1].copy()), *args)
        except IndexError as exc:
            caught.append(exc)
        return run(lanes, *args)

    monkeypatch.setattr(K, "run_lanes_", short)
    X, y = data()
    fit_together([(FNNRegressor(**BASE, alpha=a), X, y, None) for a in (1e-4, 1e-3, 1e-2,
                                                                         1e-1, 1.0)],
                 lanes=True)
    assert caught and "do not match" in str(caught[0])


def test_schedules_unshuffled_rows_and_a_shared_generator(laned):
    """Rates that change every epoch (SGD's invscaling and adaptive, Adam's cosine) and
    unshuffled rows train as lanes, each its solo fit; fits that share one RandomState draw
    different orders from it, so they are not laned (the same bits as without lanes)."""
    X, y = data()
    base = FNNRegressor(**{**BASE, "max_iter": 12})
    ests = [clone(base).set_params(solver="sgd", learning_rate=schedule, **p)
            for schedule in ("invscaling", "adaptive") for p in GRID[:5]]
    ests += [clone(base).set_params(learning_rate="cosine", **p) for p in GRID[:5]]
    ests += [clone(base).set_params(shuffle=False, **p) for p in GRID[:5]]
    fit_together([(e, X, y, None) for e in ests], lanes=True)
    assert sum(laned) == sum(e.n_iter_ for e in ests)
    assert_as_solo(ests, X, y, rtol=1e-9)
    shared = np.random.RandomState(3)
    runs = []
    for lanes in (True, False):
        shared.seed(3)
        ests = [clone(base).set_params(random_state=shared, **p) for p in GRID[:6]]
        fit_together([(e, X, y, None) for e in ests], lanes=lanes)
        runs.append(ests)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
