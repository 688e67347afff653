"""scikit-learn's callback API on the estimators (``set_callbacks``, ``sklearn.callback``).

A fit is the root task of the estimator's callback context and each epoch ('sgd', 'adam') or
L-BFGS iteration one of its subtasks. The oracle for what a callback sees at the end of epoch
``e`` is an independent fit with ``max_iter=e`` and the same ``random_state``: it draws the same
initial weights and the same shuffles for its ``e`` epochs, so the weights agree bit for bit.
"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastfnn import FNNClassifier, FNNRegressor
from fastfnn import _callbacks

callback = pytest.importorskip("sklearn.callback")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SOLVERS = ["sgd", "adam", "lbfgs"]
ESTIMATORS = [FNNRegressor, FNNClassifier]
SUBTASK = {"sgd": "epoch", "adam": "epoch", "lbfgs": "lbfgs-iter"}
MAX_ITER = 6


def _data(estimator_class, n=60, seed=0):
    """Small standardized data: a noisy linear target, or three string classes."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 4)
    score = X @ rng.randn(4) + 0.1 * rng.randn(n)
    if estimator_class is FNNRegressor:
        return X, score
    tertile = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return X, np.array(["low", "mid", "high"])[tertile]


def _params(solver, **extra):
    """Training that never stalls within MAX_ITER epochs (every run goes the full length)."""
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=MAX_ITER, random_state=0,
                  learning_rate_init=0.01, n_iter_no_change=100)
    params.update(extra)
    return params


def _trained(estimator_class, params, X, y, max_iter, **fit_kwargs):
    """The oracle: an independent fit without callbacks, stopped by ``max_iter``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator_class(**{**params, "max_iter": max_iter}).fit(X, y, **fit_kwargs)


def _assert_same_model(got, expected, X):
    """Bit-identical weights and predictions."""
    assert len(got.coefs_) == len(expected.coefs_)
    for a, b in zip(got.coefs_ + got.intercepts_, expected.coefs_ + expected.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.predict(X), expected.predict(X))
    if hasattr(expected, "predict_proba"):
        np.testing.assert_array_equal(got.predict_proba(X), expected.predict_proba(X))


def _assert_same_fitted_attributes(got, expected):
    """Every fitted attribute (``*_``, and the private ones a continued fit reads: the
    history, the best weights, the optimizer's state) equal, in value and type."""
    def fitted(estimator):
        return {k: v for k, v in vars(estimator).items() if k.endswith("_")
                and not k.startswith("__") or k in (
                    "_optimizer", "_best_coefs", "_best_intercepts", "_no_improvement_count",
                    "_best_stall_loss", "_validation_scored_by")}

    def same(a, b):
        if isinstance(b, np.ndarray):
            return a.dtype == b.dtype and np.array_equal(a, b)
        if isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if hasattr(b, "__dict__"):  # the optimizer (the oracle's max_iter is its horizon)
            return type(a) is type(b) and same(
                *({k: v for k, v in vars(c).items() if k != "horizon"} for c in (a, b)))
        if isinstance(b, dict):
            return set(a) == set(b) and all(same(a[k], b[k]) for k in b)
        return type(a) is type(b) and a == b

    mine, theirs = fitted(got), fitted(expected)
    assert set(mine) == set(theirs)
    for name, value in theirs.items():
        assert same(mine[name], value), name


def _state(estimator):
    """The pickled estimator, less its list of callbacks (whose own records grow)."""
    return pickle.dumps({k: v for k, v in estimator.__dict__.items() if k != "_skl_callbacks"})


class Recorder:
    """A FitCallback recording every hook call; returns True (stop) at the end of subtask
    ``stop_at`` (counted from 1) of the estimator named ``stop_in``."""

    def __init__(self, stop_at=None, stop_in=None):
        self.events, self.fitted, self.seen = [], [], []
        self.root_fitted = None
        self.estimators = []  # the estimator each hook was handed
        self.stop_at, self.stop_in = stop_at, stop_in

    def setup(self, estimator, context):
        self.events.append(("setup", type(estimator).__name__))
        self.estimators.append(estimator)

    def teardown(self, estimator, context):
        self.events.append(("teardown", type(estimator).__name__))
        self.estimators.append(estimator)

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.events.append(("begin", context.estimator_name, context.task_name, context.task_id))
        self.estimators.append(estimator)

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.estimator_name, context.task_name, context.task_id))
        self.estimators.append(estimator)
        if context.task_name in ("epoch", "lbfgs-iter"):
            self.fitted.append(fitted_estimator)
            self.seen.append((X, y, metadata))
            return (context.task_id + 1 == self.stop_at
                    and self.stop_in in (None, context.estimator_name))
        if context.estimator_name in ("FNNRegressor", "FNNClassifier"):
            self.root_fitted = fitted_estimator
        return False

    def subtasks(self, estimator_name):
        """The (hook, task name, task id) of the named estimator's subtasks, in order."""
        return [(e[0], e[2], e[3]) for e in self.events
                if e[0] in ("begin", "end") and e[1] == estimator_name
                and e[2] in ("epoch", "lbfgs-iter")]


class AutoRecorder(Recorder):
    """The Recorder as an auto-propagated callback: set on a meta-estimator, it reaches every
    sub-estimator."""

    max_propagation_depth = None


class NoOp:
    """A FitCallback that asks for nothing and does nothing."""

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        pass


class CallbackFailed(Exception):
    """Raised by a callback (distinct from anything the estimators raise)."""


class FailingRecorder(Recorder):
    """Raises inside ``on_fit_task_end`` of subtask ``fail_at`` (counted from 1)."""

    def __init__(self, fail_at):
        super().__init__()
        self.fail_at = fail_at

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        self.events.append(("end", context.estimator_name, context.task_name, context.task_id))
        if context.parent is not None and context.task_id + 1 == self.fail_at:
            raise CallbackFailed("the callback failed")


def _expected_events(name, subtask, n):
    return ([("setup", name), ("begin", name, "fit", 0)]
            + [ev for i in range(n) for ev in (("begin", name, subtask, i),
                                               ("end", name, subtask, i))]
            + [("end", name, "fit", 0), ("teardown", name)])


# ---- 1. one task per epoch; the fitted copy is the model trained that long -----------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_each_epoch_is_a_subtask_whose_fitted_copy_is_the_model_trained_that_long(
        estimator_class, solver):
    X, y = _data(estimator_class)
    params = _params(solver)
    recorder = Recorder()
    est = estimator_class(**params).set_callbacks(recorder).fit(X, y)
    name = estimator_class.__name__
    assert est.n_iter_ == MAX_ITER
    assert recorder.events == _expected_events(name, SUBTASK[solver], est.n_iter_)
    assert len(recorder.fitted) == est.n_iter_
    for e, fitted in enumerate(recorder.fitted, start=1):
        oracle = _trained(estimator_class, params, X, y, e)
        assert fitted is not est
        _assert_same_model(fitted, oracle, X)
        assert fitted.n_iter_ == oracle.n_iter_ == e
        _assert_same_fitted_attributes(fitted, oracle)
    # the copies are snapshots: the last one is the fitted estimator, the first is not
    _assert_same_model(recorder.fitted[-1], est, X)
    assert not np.array_equal(recorder.fitted[0].coefs_[0], est.coefs_[0])
    # the root task's fitted copy holds the final weights
    _assert_same_model(recorder.root_fitted, est, X)


@pytest.mark.parametrize("schedule", [dict(learning_rate="invscaling"),
                                      dict(learning_rate="adaptive", tol=1e3,
                                           n_iter_no_change=1)], ids=["invscaling", "adaptive"])
def test_fitted_copies_hold_the_rate_the_epochs_end_set(schedule):
    """The copy at epoch e is the model after the epoch's bookkeeping (invscaling's new rate;
    adaptive's rate cut and stall count reset), as a fit stopped there leaves it."""
    X, y = _data(FNNRegressor)
    params = _params("sgd", **schedule)
    recorder = Recorder()
    FNNRegressor(**params).set_callbacks(recorder).fit(X, y)
    for e, fitted in enumerate(recorder.fitted, start=1):
        _assert_same_fitted_attributes(fitted, _trained(FNNRegressor, params, X, y, e))


def test_callbacks_see_the_training_data_and_sample_weight():
    X, y = _data(FNNRegressor)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, size=len(y))
    recorder = Recorder()
    est = FNNRegressor(**_params("adam", max_iter=3)).set_callbacks(recorder)
    est.fit(X, y, sample_weight=sw)
    assert len(recorder.seen) == 3
    for seen_X, seen_y, metadata in recorder.seen:
        np.testing.assert_array_equal(seen_X, X)
        np.testing.assert_array_equal(seen_y, y)
        assert set(metadata) == {"sample_weight"}
        np.testing.assert_array_equal(metadata["sample_weight"], sw)
    recorder = Recorder()
    est.set_callbacks(recorder).fit(X, y)
    assert [metadata for _, _, metadata in recorder.seen] == [None] * 3


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_partial_fit_is_one_subtask_whose_copy_is_the_updated_model(estimator_class):
    X, y = _data(estimator_class)
    est = estimator_class(**_params("adam", max_iter=3)).fit(X, y)
    recorder = Recorder()
    est.set_callbacks(recorder).partial_fit(X, y)
    name = estimator_class.__name__
    assert recorder.events == _expected_events(name, "epoch", 1)
    (fitted,) = recorder.fitted
    _assert_same_model(fitted, est, X)
    assert fitted.n_iter_ == est.n_iter_
    assert fitted.loss_curve_ == est.loss_curve_ and len(est.loss_curve_) == 4


@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_start_copies_continue_the_history(early_stopping):
    """On a warm start the copy at epoch e is the first fit continued for e epochs: every
    fitted attribute as the oracle, a warm start with ``max_iter=e`` (t_, the curves, the
    best loss or score and weights, the optimizer)."""
    X, y = _data(FNNRegressor)
    params = _params("sgd", max_iter=3, warm_start=True, early_stopping=early_stopping)
    first = FNNRegressor(**params).fit(X, y)
    recorder = Recorder()
    est = pickle.loads(pickle.dumps(first)).set_callbacks(recorder).fit(X, y)
    assert len(est.loss_curve_) == 6 and len(recorder.fitted) == 3
    for e, fitted in enumerate(recorder.fitted, start=1):
        oracle = pickle.loads(pickle.dumps(first)).set_params(max_iter=e).fit(X, y)
        _assert_same_model(fitted, oracle, X)
        _assert_same_fitted_attributes(fitted, oracle)
    _assert_same_model(recorder.fitted[-1], est, X)


# ---- 2. a callback stops training ----------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_a_callback_returning_true_stops_training_cleanly(estimator_class, solver):
    X, y = _data(estimator_class)
    params = _params(solver, max_iter=8)
    recorder = Recorder(stop_at=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = estimator_class(**params).set_callbacks(recorder).fit(X, y)
    # the stop was asked for: not a failure to converge
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    name = estimator_class.__name__
    assert recorder.events == _expected_events(name, SUBTASK[solver], 3)
    assert est.n_iter_ == 3
    oracle = _trained(estimator_class, params, X, y, 3)
    _assert_same_model(est, oracle, X)
    assert est.loss_ == oracle.loss_
    if solver != "lbfgs":
        assert len(est.loss_curve_) == 3 and est.loss_curve_ == oracle.loss_curve_
        # the stopped model continues as a warm start would from max_iter=3 training
        est.set_callbacks().partial_fit(X, y)
        oracle.partial_fit(X, y)
        _assert_same_model(est, oracle, X)


def _early_stopping_case():
    """Data and parameters where the validation score drops at epoch 7 below an earlier
    one, so that at epoch 7 the best weights so far are not the current ones."""
    X, y = _data(FNNRegressor)
    params = _params("sgd", max_iter=8, early_stopping=True, learning_rate_init=0.3,
                     momentum=0.9)
    scores = _trained(FNNRegressor, params, X, y, 8).validation_scores_
    assert scores[6] < max(scores[:6]), scores  # the case needs a drop at epoch 7
    return X, y, params


def test_stopping_with_early_stopping_keeps_the_best_weights_so_far():
    X, y, params = _early_stopping_case()
    recorder = Recorder(stop_at=7)
    est = FNNRegressor(**params).set_callbacks(recorder).fit(X, y)
    oracle = _trained(FNNRegressor, params, X, y, 7)
    assert est.n_iter_ == 7
    _assert_same_model(est, oracle, X)
    assert est.validation_scores_ == oracle.validation_scores_
    assert est.best_validation_score_ == oracle.best_validation_score_


# ---- 3. scikit-learn's own callbacks -------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
def test_progress_bar_runs_on_a_fit_and_changes_nothing(solver, capsys):
    pytest.importorskip("rich")
    X, y = _data(FNNRegressor)
    params = _params(solver, max_iter=4)
    est = FNNRegressor(**params).set_callbacks(callback.ProgressBar()).fit(X, y)
    _assert_same_model(est, _trained(FNNRegressor, params, X, y, 4), X)
    assert "FNNRegressor" in capsys.readouterr().out
    # torn down: its per-fit monitor thread is gone
    from sklearn.callback import _progressbar

    assert _progressbar._run_monitors == {}


@pytest.mark.parametrize("solver", SOLVERS)
def test_scoring_monitor_records_the_r2_of_each_epoch(solver):
    X, y = _data(FNNRegressor)
    params = _params(solver)
    monitor = callback.ScoringMonitor(scoring="r2")
    est = FNNRegressor(**params).set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    epochs = [row for row in rows if row["task_name"] == SUBTASK[solver]]
    assert [row["task_id"] for row in epochs] == list(range(est.n_iter_))
    expected = [r2_score(y, _trained(FNNRegressor, params, X, y, e).predict(X))
                for e in range(1, est.n_iter_ + 1)]
    assert [row["r2"] for row in epochs] == expected
    (root,) = [row for row in rows if row["task_name"] == "fit"]
    assert root["r2"] == r2_score(y, est.predict(X))


# ---- 4. inside meta-estimators -------------------------------------------------------------


def test_which_callbacks_propagate_from_meta_estimators():
    assert isinstance(callback.ProgressBar(), callback.AutoPropagatedCallback)
    assert not isinstance(callback.ScoringMonitor(scoring="r2"), callback.AutoPropagatedCallback)
    assert isinstance(AutoRecorder(), callback.AutoPropagatedCallback)
    assert not isinstance(Recorder(), callback.AutoPropagatedCallback)
    assert isinstance(Recorder(), callback.FitCallback)


def test_pipeline_callbacks_see_the_epochs_of_the_network():
    pytest.importorskip("rich")
    X, y = _data(FNNRegressor)
    params = _params("adam", max_iter=4)
    recorder = AutoRecorder()
    monitor = callback.ScoringMonitor(scoring="r2")  # not propagated: set on the network
    pipe = make_pipeline(StandardScaler(), FNNRegressor(**params).set_callbacks(monitor))
    pipe.set_callbacks(recorder, callback.ProgressBar()).fit(X, y)
    net = pipe[-1]
    # set up and torn down once, by the outermost estimator
    assert [e for e in recorder.events if e[0] in ("setup", "teardown")] == [
        ("setup", "Pipeline"), ("teardown", "Pipeline")]
    assert recorder.subtasks("FNNRegressor") == [
        ev for i in range(net.n_iter_) for ev in (("begin", "epoch", i), ("end", "epoch", i))]
    Xs = StandardScaler().fit_transform(X)
    scores = [row["r2"] for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    assert len(recorder.fitted) == len(scores) == net.n_iter_ == 4
    for e, fitted in enumerate(recorder.fitted, start=1):
        oracle = _trained(FNNRegressor, params, Xs, y, e)
        _assert_same_model(fitted, oracle, Xs)
        assert scores[e - 1] == r2_score(y, oracle.predict(Xs))
    # the propagated callbacks are taken off the network again; its own one stays
    assert net._skl_callbacks == [monitor]


def test_grid_search_callbacks_see_each_fit_and_do_not_change_the_search():
    pytest.importorskip("rich")
    X, y = _data(FNNRegressor)
    params = _params("adam", max_iter=4)
    grid = {"fnnregressor__alpha": [1e-4, 30.0]}

    def search():
        return GridSearchCV(make_pipeline(StandardScaler(), FNNRegressor(**params)), grid,
                            cv=2, n_jobs=1)

    plain = search().fit(X, y)
    recorder = AutoRecorder()
    watched = search().set_callbacks(recorder, callback.ProgressBar()).fit(X, y)
    assert watched.best_params_ == plain.best_params_
    np.testing.assert_array_equal(watched.cv_results_["mean_test_score"],
                                  plain.cv_results_["mean_test_score"])
    _assert_same_model(watched.best_estimator_[-1], plain.best_estimator_[-1],
                       watched.best_estimator_[:-1].transform(X))
    np.testing.assert_array_equal(watched.predict(X), plain.predict(X))
    # 2 candidates x 2 folds + the refit: 5 fits of the network of 4 epochs each
    fits = [e for e in recorder.events if e[:3] == ("begin", "FNNRegressor", "fit")]
    assert len(fits) == 5
    one_fit = [ev for i in range(4) for ev in (("begin", "epoch", i), ("end", "epoch", i))]
    assert recorder.subtasks("FNNRegressor") == one_fit * 5
    # the last epoch seen is the refit's end: the best model
    _assert_same_model(recorder.fitted[-1], watched.best_estimator_[-1],
                       watched.best_estimator_[:-1].transform(X))
    assert [e for e in recorder.events if e[0] in ("setup", "teardown")] == [
        ("setup", "GridSearchCV"), ("teardown", "GridSearchCV")]


# ---- 5. callbacks never change training ----------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_callbacks_leave_training_bit_identical(estimator_class, solver):
    X, y = _data(estimator_class)
    params = _params(solver, max_iter=4)
    plain = estimator_class(**params).fit(X, y)
    for callbacks in [(NoOp(),), (Recorder(),), (NoOp(), Recorder())]:
        est = estimator_class(**params).set_callbacks(*callbacks).fit(X, y)
        _assert_same_model(est, plain, X)
        assert est.n_iter_ == plain.n_iter_ and est.loss_ == plain.loss_
        if solver != "lbfgs":
            assert est.loss_curve_ == plain.loss_curve_


def test_no_observer_is_made_without_callbacks(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an observer was made for a fit without callbacks")

    monkeypatch.setattr(_callbacks, "CallbackObserver", refuse)
    X, y = _data(FNNRegressor)
    for solver in SOLVERS:
        est = FNNRegressor(**_params(solver, max_iter=2)).fit(X, y)
        if solver != "lbfgs":
            est.partial_fit(X, y)
        est.set_callbacks().fit(X, y)  # callbacks set, then removed
    with pytest.raises(AssertionError, match="an observer was made"):
        FNNRegressor(**_params("adam", max_iter=2)).set_callbacks(NoOp()).fit(X, y)


# ---- 6. a failing fit tears the callbacks down and changes nothing -------------------------


def _assert_torn_down(recorder, est):
    setups = [e for e in recorder.events if e[0] == "setup"]
    teardowns = [e for e in recorder.events if e[0] == "teardown"]
    assert len(teardowns) == len(setups) <= 1
    if setups:
        assert recorder.events[-1] == teardowns[0]
    assert not hasattr(est, "_callback_fit_ctx")
    assert not hasattr(est, "_skl_callbacks_to_teardown")
    assert est._skl_callbacks == [recorder]


def test_nan_on_a_warm_partial_fit_changes_nothing_and_the_next_fit_works():
    X, y = _data(FNNRegressor)
    est = FNNRegressor(**_params("adam", max_iter=3)).fit(X, y)
    recorder = Recorder()
    est.set_callbacks(recorder)
    before = _state(est)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(X_nan, y)
    _assert_torn_down(recorder, est)
    assert _state(est) == before
    est.partial_fit(X, y)
    assert recorder.events == _expected_events("FNNRegressor", "epoch", 1)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_a_callback_raising_tears_down_and_leaves_the_model_as_it_was(estimator_class, solver):
    X, y = _data(estimator_class)
    params = _params(solver, max_iter=4)
    est = estimator_class(**params).fit(X, y)
    failing = FailingRecorder(fail_at=2)
    est.set_callbacks(failing)
    before = _state(est)
    with pytest.raises(CallbackFailed):
        est.fit(X, y)
    name = estimator_class.__name__
    assert failing.events == _expected_events(name, SUBTASK[solver], 2)[:-2] + [
        ("teardown", name)]
    _assert_torn_down(failing, est)
    assert _state(est) == before
    # an unfitted estimator stays unfitted
    fresh = estimator_class(**params).set_callbacks(FailingRecorder(fail_at=1))
    with pytest.raises(CallbackFailed):
        fresh.fit(X, y)
    assert not hasattr(fresh, "coefs_")
    # and a fit after the failure trains as if it had not happened
    est.set_callbacks(Recorder()).fit(X, y)
    _assert_same_model(est, estimator_class(**params).fit(X, y), X)


def test_a_diverging_fit_tears_down_and_leaves_the_model_as_it_was():
    X, y = _data(FNNRegressor)
    est = FNNRegressor(**_params("sgd", max_iter=3, warm_start=True)).fit(X, y)
    recorder = Recorder()
    est.set_callbacks(recorder).set_params(learning_rate_init=1e8, max_iter=6)
    before = _state(est)
    with pytest.raises(ValueError, match="non-finite|diverged"):
        est.fit(X * 1e3, y * 1e6)
    _assert_torn_down(recorder, est)
    assert recorder.events[0] == ("setup", "FNNRegressor")
    assert _state(est) == before


# ---- what the callbacks see: labels, the caller's weights, the model a stop would leave --


def test_classifier_callbacks_see_the_class_labels():
    X, y = _data(FNNClassifier)
    recorder = Recorder()
    FNNClassifier(**_params("adam", max_iter=2)).set_callbacks(recorder).fit(X, y)
    for _, seen_y, _ in recorder.seen:
        np.testing.assert_array_equal(seen_y, y)


def test_scoring_monitor_records_the_accuracy_of_each_epoch():
    X, y = _data(FNNClassifier)
    params = _params("adam", max_iter=3)
    monitor = callback.ScoringMonitor(scoring="accuracy")
    FNNClassifier(**params).set_callbacks(monitor).fit(X, y)
    epochs = [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    assert [row["accuracy"] for row in epochs] == [
        accuracy_score(y, _trained(FNNClassifier, params, X, y, e).predict(X))
        for e in range(1, 4)]


def test_class_weight_is_not_passed_as_sample_weight():
    X, y = _data(FNNClassifier)
    recorder = Recorder()
    FNNClassifier(**_params("adam", max_iter=2), class_weight="balanced").set_callbacks(
        recorder).fit(X, y)
    assert [metadata for _, _, metadata in recorder.seen] == [None, None]


def test_early_stopping_copies_hold_the_validation_scores_so_far():
    X, y, params = _early_stopping_case()
    recorder = Recorder()
    est = FNNRegressor(**params).set_callbacks(recorder).fit(X, y)
    for e, fitted in enumerate(recorder.fitted, start=1):
        assert fitted.validation_scores_ == est.validation_scores_[:e]
        _assert_same_fitted_attributes(fitted, _trained(FNNRegressor, params, X, y, e))


def test_early_stopping_copies_are_the_model_stopped_there():
    X, y, params = _early_stopping_case()
    recorder = Recorder(stop_at=7)
    est = FNNRegressor(**params).set_callbacks(recorder).fit(X, y)
    # the copy handed over with the stop request is the model the stop leaves
    _assert_same_model(recorder.fitted[-1], est, X)


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_hook_is_handed_the_estimator_being_fitted(solver):
    """scikit-learn's contract: each hook gets "the estimator calling this callback hook", the
    same object from setup to teardown, as scikit-learn's own LogisticRegression hands it (the
    oracle); never the stand-in a fit trains on (a callback keyed by the estimator works)."""
    X, y = _data(FNNClassifier)
    theirs = Recorder()
    logistic = LogisticRegression(max_iter=3).set_callbacks(theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        logistic.fit(X, y)
    assert len(theirs.estimators) > 4 and all(e is logistic for e in theirs.estimators)
    ours = Recorder()
    est = FNNClassifier(**_params(solver)).set_callbacks(ours)
    est.fit(X, y)
    if solver != "lbfgs":
        est.partial_fit(X, y)
    assert len(ours.estimators) > 2 * MAX_ITER and all(e is est for e in ours.estimators)


class RootReader(Recorder):
    """The Recorder that also reads the estimator it is handed at the end of the root task
    (its ``n_iter_``), and may clear the estimator's callbacks at the end of subtask 1."""

    def __init__(self, clear=False):
        super().__init__()
        self.root_n_iter, self.clear = [], clear

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        if context.parent is None:
            self.root_n_iter.append(np.ravel(estimator.n_iter_).tolist())
        elif self.clear:
            estimator.set_callbacks()
        return super().on_fit_task_end(estimator, context, X=X, y=y, metadata=metadata,
                                       fitted_estimator=fitted_estimator)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_refits_copies_hold_nothing_of_the_model_before(solver):
    """After a fit on a frame with early stopping, a refit on an array: each fitted copy is the
    refit stopped there (the oracle: an independent fit with max_iter=e), its other attributes
    (the earlier history, feature names) None; at the root task's end the estimator itself
    holds the new model, as scikit-learn's LogisticRegression does there (the oracle)."""
    X, y = _data(FNNRegressor)
    est = FNNRegressor(**_params("adam", early_stopping=True))
    est.fit(pd.DataFrame(X, columns=list("abcd")), y)
    reader = RootReader()
    est.set_params(early_stopping=False, **_params(solver)).set_callbacks(reader).fit(X, y)
    own = ("_callback_fit_ctx", "_skl_callbacks", "_skl_callbacks_to_teardown")
    for e, fitted in enumerate(reader.fitted, 1):
        oracle = FNNRegressor(**_params(solver, max_iter=e)).fit(X, y)
        _assert_same_model(fitted, oracle, X)
        extra = set(vars(fitted)) - set(vars(oracle)) - set(own)
        assert extra and all(getattr(fitted, name) is None for name in extra), e
    theirs = RootReader()
    logistic = LogisticRegression(max_iter=3).set_callbacks(theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for max_iter in (3, 2):
            logistic.set_params(max_iter=max_iter).fit(X, y > 0)
    assert theirs.root_n_iter == [[3], [2]]
    assert reader.root_n_iter == [[est.n_iter_]] == [[len(reader.fitted)]]


def test_callbacks_cleared_during_a_fit_stay_cleared():
    """As on scikit-learn's LogisticRegression (the oracle): a callback that clears the
    estimator's callbacks during its fit leaves it without them."""
    X, y = _data(FNNClassifier)
    for est in (LogisticRegression(max_iter=3), FNNClassifier(**_params("adam"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.set_callbacks(RootReader(clear=True)).fit(X, y)
        assert not getattr(est, "_skl_callbacks", None), type(est).__name__


def test_the_root_task_copy_is_the_fitted_estimator():
    X, y = _data(FNNRegressor)
    recorder = Recorder()
    est = FNNRegressor(**_params("adam", max_iter=3)).set_callbacks(recorder).fit(X, y)
    fitted = recorder.root_fitted
    assert fitted.n_iter_ == est.n_iter_
    assert fitted.loss_ == est.loss_
    assert fitted.loss_curve_ == est.loss_curve_
