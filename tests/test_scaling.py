"""fastfnn.scaling on a real local Dask cluster: streaming training against an in-memory fit,
predictions against in-memory predictions, searches against the same scikit-learn search on
joblib's default backend.

Oracles: scikit-learn (StandardScaler.fit, r2_score, accuracy_score, GridSearchCV /
RandomizedSearchCV / HalvingGridSearchCV run in this process), the estimator's own in-memory
``fit``/``predict``, pandas reading the written CSV back, a second Python process.
"""

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("dask_ml")

from sklearn.datasets import make_classification, make_friedman1  # noqa: E402
from sklearn.experimental import enable_halving_search_cv  # noqa: E402,F401
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    HalvingGridSearchCV,
    KFold,
    RandomizedSearchCV,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastfnn import FNNClassifier, FNNRegressor, load_model, save_model  # noqa: E402
from fastfnn.scaling import (  # noqa: E402
    cluster_client,
    fit_streaming,
    predict_dask,
    predict_streaming,
    search,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FEATURES = [f"x{i}" for i in range(10)]
BLOCK = 40_000  # bytes per CSV partition: about 200 rows of the Friedman table


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, started once for the module."""
    with cluster_client("local", n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture(scope="module")
def friedman(tmp_path_factory):
    """A 2,000-row Friedman #1 CSV (the table), plus 1,000 test rows kept in memory."""
    X, y = make_friedman1(n_samples=3000, noise=0.5, random_state=0)
    table = pd.DataFrame(X[:2000], columns=FEATURES).assign(y=y[:2000])
    path = tmp_path_factory.mktemp("scaling") / "friedman.csv"
    table.to_csv(path, index=False)
    test = pd.DataFrame(X[2000:], columns=FEATURES)
    return path, table, test, y[2000:]


def regressor(**kw):
    return FNNRegressor(hidden_layer_sizes=(32, 32), solver="adam", learning_rate_init=0.01,
                        batch_size=50, random_state=0, **kw)


def partition_rows(path, blocksize):
    """The rows of each partition as dask cuts the file (pandas frames, in order)."""
    frame = dd.read_csv(path, blocksize=blocksize)
    return [frame.get_partition(i).compute() for i in range(frame.npartitions)]


# --- out-of-core training -------------------------------------------------------------------

@pytest.fixture(scope="module")
def streamed(friedman):
    path, *_ = friedman
    records, progress = [], []
    fit = fit_streaming(regressor(), path, "y", epochs=12, blocksize=BLOCK, random_state=0,
                        on_epoch=records.append,
                        on_partition=lambda e, done, total: progress.append((e, done, total)))
    return fit, records, progress


def test_streaming_fit_reaches_in_memory_accuracy(friedman, streamed):
    path, table, X_test, y_test = friedman
    fit, _, _ = streamed
    train_rows = pd.concat([p for i, p in enumerate(partition_rows(path, BLOCK))
                            if i in fit.train_partitions])
    in_memory = make_pipeline(StandardScaler(), regressor(max_iter=12))
    in_memory.fit(train_rows[FEATURES], train_rows["y"])
    ours = r2_score(y_test, fit.model.predict(X_test))
    theirs = r2_score(y_test, in_memory.predict(X_test))
    assert ours > 0.7 and ours >= theirs - 0.05, (ours, theirs)


def test_streaming_scaler_is_the_training_rows_scaler(friedman, streamed):
    path, *_ = friedman
    fit, _, _ = streamed
    parts = partition_rows(path, BLOCK)
    assert len(fit.validation_partitions) == round(0.1 * len(parts)) >= 1
    assert sorted(fit.train_partitions + fit.validation_partitions) == list(range(len(parts)))
    train = pd.concat([parts[i] for i in fit.train_partitions])
    oracle = StandardScaler().fit(train[FEATURES])
    scaler = fit.model[0]
    np.testing.assert_allclose(scaler.mean_, oracle.mean_, rtol=1e-12)
    np.testing.assert_allclose(scaler.var_, oracle.var_, rtol=1e-10)
    assert list(scaler.feature_names_in_) == FEATURES
    assert fit.n_train_rows == len(train)
    assert fit.n_validation_rows == sum(len(parts[i]) for i in fit.validation_partitions)


def test_streaming_history_tracks_the_best_validation_epoch(friedman, streamed):
    path, *_ = friedman
    fit, records, progress = streamed
    assert records == fit.history and [r.epoch for r in records] == list(range(1, 13))
    scores = [r.validation_score for r in records]
    assert fit.best_epoch == 1 + int(np.argmax(scores)) and fit.best_score == max(scores)
    parts = partition_rows(path, BLOCK)
    val = pd.concat([parts[i] for i in fit.validation_partitions])
    # The returned model is the best epoch's: its R^2 on the held-out rows is the best score.
    assert r2_score(val["y"], fit.model.predict(val[FEATURES])) == pytest.approx(
        fit.best_score, rel=1e-9)
    n_train = len(fit.train_partitions)
    assert progress[:n_train] == [(1, k, n_train) for k in range(1, n_train + 1)]
    assert records[-1].train_loss < records[0].train_loss


def test_streaming_fit_is_seeded_and_leaves_the_estimator_alone(friedman):
    path, *_ = friedman
    est = regressor()
    a = fit_streaming(est, path, epochs=2, blocksize=BLOCK, random_state=1, prefetch=False)
    b = fit_streaming(est, path, epochs=2, blocksize=BLOCK, random_state=1)
    c = fit_streaming(est, path, epochs=2, blocksize=BLOCK, random_state=2)
    assert not hasattr(est, "coefs_")
    for w, v in zip(a.model[-1].coefs_, b.model[-1].coefs_):
        np.testing.assert_array_equal(w, v)
    assert a.validation_partitions != c.validation_partitions or not np.array_equal(
        a.model[-1].coefs_[0], c.model[-1].coefs_[0])


def test_streaming_classifier_from_a_parquet_glob(tmp_path):
    pytest.importorskip("pyarrow")
    X, y = make_classification(n_samples=2400, n_features=8, n_informative=6, n_classes=3,
                               random_state=0)
    labels = np.array(["ash", "birch", "cedar"])[y]
    names = [f"f{i}" for i in range(8)]
    frame = pd.DataFrame(X, columns=names).assign(tree=labels)
    for k in range(6):  # six files of 300 rows; the last 600 rows are the test set
        frame.iloc[300 * k:300 * (k + 1)].to_parquet(tmp_path / f"part-{k}.parquet")
    test = frame.iloc[1800:]
    est = FNNClassifier(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.05,
                        momentum=0.9, batch_size=50, random_state=0)
    fit = fit_streaming(est, str(tmp_path / "part-*.parquet"), "tree", epochs=15,
                        validation_fraction=0.2, random_state=0)
    assert list(fit.classes) == ["ash", "birch", "cedar"] and len(fit.validation_partitions) == 1
    train = frame.iloc[:1800]
    in_memory = make_pipeline(StandardScaler(), est.set_params(max_iter=15))
    in_memory.fit(train[names], train["tree"])
    ours = accuracy_score(test["tree"], fit.model.predict(test[names]))
    theirs = accuracy_score(test["tree"], in_memory.predict(test[names]))
    assert ours >= theirs - 0.06 and ours > 0.7, (ours, theirs)


def test_streamed_labels_are_typed_as_the_whole_column_and_a_missing_one_is_refused(tmp_path):
    """Labels read block by block: a block of numbers beside one holding a word still reads
    every label as pandas reads the whole column ('1', '2', 'x': text); numbers alone stay
    numbers. A missing label is refused at its file and line (at its partition and row in
    Parquet)."""
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.randn(300, 2), columns=["a", "b"])
    est = FNNClassifier(hidden_layer_sizes=(4,), solver="adam", random_state=0)
    for labels in (np.where(frame.a > 0, "1", "2"), np.where(frame.a > 0, 1, 2)):
        labels = labels.astype(object)
        labels[250:] = "x" if isinstance(labels[0], str) else 3  # only in the last blocks
        frame.assign(y=labels).to_csv(tmp_path / "t.csv", index=False)
        whole = pd.read_csv(tmp_path / "t.csv")["y"]
        fit = fit_streaming(est, tmp_path / "t.csv", "y", epochs=1, blocksize=1500,
                            random_state=0)
        np.testing.assert_array_equal(fit.classes, np.unique(whole))
        assert fit.classes.dtype == whole.to_numpy().dtype
        np.testing.assert_array_equal(fit.model.classes_, np.unique(whole))
    frame.assign(y=np.where(frame.a > 0, "yes", None)).to_csv(tmp_path / "gap.csv",
                                                              index=False)
    first_gap = int(np.argmax(frame.a <= 0)) + 2  # its line: the header is line 1
    with pytest.raises(ValueError, match=rf"gap\.csv, line {first_gap}: a missing class label"):
        fit_streaming(est, tmp_path / "gap.csv", "y", epochs=1, blocksize=1500)
    pytest.importorskip("pyarrow")
    frame.assign(y=np.where(frame.a > 0, "yes", None)).to_parquet(tmp_path / "gap.parquet")
    with pytest.raises(ValueError, match="a missing class label"):
        fit_streaming(est, tmp_path / "gap.parquet", "y", epochs=1, validation_fraction=0)


def test_empty_files_make_no_partition_in_either_format(tmp_path):
    """The same rows as CSV and as Parquet files, one of them empty: the same partitions
    (the empty file skipped in both, with a warning), so the same split and the same model."""
    pytest.importorskip("pyarrow")
    from fastfnn.scaling import EmptyFileWarning

    rng = np.random.RandomState(0)
    for k, n in enumerate([40, 0, 60, 30, 50]):
        part = pd.DataFrame(rng.randn(n, 2), columns=["a", "b"]).assign(y=lambda f: f.a - f.b)
        part.to_csv(tmp_path / f"p{k}.csv", index=False)
        part.to_parquet(tmp_path / f"p{k}.parquet", index=False)
    fits = []
    for suffix in ("csv", "parquet"):
        with pytest.warns(EmptyFileWarning, match=f"p1.{suffix}"):
            fits.append(fit_streaming(regressor(), str(tmp_path / f"p*.{suffix}"), "y",
                                      epochs=2, validation_fraction=0.4, random_state=1))
    assert fits[0].validation_partitions == fits[1].validation_partitions
    for a, b in zip(fits[0].model[-1].coefs_, fits[1].model[-1].coefs_):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "p5.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"p5\.parquet: not a readable Parquet file"):
        fit_streaming(regressor(), str(tmp_path / "p*.parquet"), "y", epochs=1)


def test_streaming_from_dask_arrays_in_float32():
    X, y = make_friedman1(n_samples=3000, noise=0.5, random_state=1)
    Xd, yd = da.from_array(X[:2000], chunks=250), da.from_array(y[:2000], chunks=500)
    fit = fit_streaming(regressor(), Xd, yd, epochs=12, validation_fraction=0,
                        dtype=np.float32, random_state=0)
    assert fit.best_epoch is None and fit.validation_partitions == ()
    assert fit.model[-1].coefs_[0].dtype == np.float32
    in_memory = make_pipeline(StandardScaler(), regressor(max_iter=12)).fit(X[:2000], y[:2000])
    ours = r2_score(y[2000:], fit.model.predict(X[2000:].astype(np.float32)))
    assert ours >= r2_score(y[2000:], in_memory.predict(X[2000:])) - 0.05


def test_streaming_schedules_run_over_the_partitions():
    """'adaptive' trains at the constant rate (its stall rule, which partial_fit applies
    between calls, would compare different partitions' losses): the same bits as 'constant';
    'cosine' makes one cycle over the run's partial_fit calls (epochs x partitions with
    rows)."""
    X, y = make_friedman1(n_samples=1200, noise=0.5, random_state=1)
    rows = (100,) * 6 + (0, 0) + (100,) * 6  # twelve partitions of rows, two without
    Xd, yd = da.from_array(X, chunks=(rows, 10)), da.from_array(y, chunks=(rows,))
    fits = {schedule: fit_streaming(
        FNNRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate=schedule,
                     learning_rate_init=0.01, batch_size=50, tol=1.0, n_iter_no_change=1,
                     random_state=0), Xd, yd, epochs=3, validation_fraction=0,
        random_state=0).model[-1] for schedule in ("adaptive", "constant", "cosine")}
    assert fits["adaptive"]._optimizer.learning_rate == 0.01
    for got, want in zip(fits["adaptive"].coefs_, fits["constant"].coefs_):
        np.testing.assert_array_equal(got, want)
    cosine, n = fits["cosine"], 3 * 12
    assert len(cosine.loss_curve_) == n
    assert cosine._optimizer.learning_rate == pytest.approx(
        0.01 * (1 + np.cos(np.pi * (n - 1) / n)) / 2, rel=1e-12)


def test_streamed_model_survives_a_model_file(friedman, streamed, tmp_path):
    _, _, X_test, _ = friedman
    fit, _, _ = streamed
    save_model(fit.model, tmp_path / "streamed.skops")
    loaded = load_model(tmp_path / "streamed.skops")
    np.testing.assert_array_equal(loaded.predict(X_test), fit.model.predict(X_test))


@pytest.mark.parametrize("case, error, words", [
    ("lbfgs", ValueError, "solver='sgd', 'adam' or 'adamw'"),
    ("pipeline", TypeError, "no partial_fit"),
    ("one partition", ValueError, "smaller blocksize"),
    ("no file", FileNotFoundError, "no file matches"),
    ("text column", ValueError, "not numeric"),
    ("nan", ValueError, r"t\.csv, line 302, column 'a': a missing"),
    ("target", ValueError, "not in the table"),
])
def test_streaming_errors_say_what_to_do(tmp_path, case, error, words):
    frame = pd.DataFrame({"a": np.arange(400.0), "b": np.ones(400), "y": np.arange(400.0)})
    if case == "text column":
        frame["b"] = "x"
    if case == "nan":
        frame.loc[300, "a"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    est, kw = FNNRegressor(solver="adam"), dict(blocksize=2000)
    if case == "lbfgs":
        est = FNNRegressor(solver="lbfgs")
    elif case == "pipeline":
        est = make_pipeline(StandardScaler(), est)
    elif case == "one partition":
        kw = dict(blocksize=None)
    elif case == "no file":
        path = tmp_path / "missing-*.csv"
    elif case == "target":
        kw["target"] = "z"
    with pytest.raises(error, match=words):
        fit_streaming(est, path, epochs=1, validation_fraction=0.2 if case != "nan" else 0,
                      **kw)


def test_import_without_dask_names_the_extra():
    code = textwrap.dedent("""
        import sys
        sys.modules["dask"] = None
        try:
            import fastfnn.scaling
        except ImportError as err:
            print(err)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, FASTFNN_NUM_THREADS="1"))
    assert 'pip install "fastfnn[dask]"' in out.stdout, out.stderr


# --- prediction at scale --------------------------------------------------------------------

def read_back(path):
    return pd.read_csv(path)  # pandas writes and reads float64 exactly


def per_partition(model, path, blocksize, method="predict"):
    """In-memory predictions of each partition as dask cuts the file, concatenated.

    fastfnn's predict may differ in the last bit between a block of rows and the same rows
    inside a larger block (small products take compiled loops, large ones BLAS), so the exact
    oracle predicts the same blocks; the whole table agrees to rounding."""
    names = list(model.feature_names_in_)
    return np.concatenate([getattr(model, method)(p[names])
                           for p in partition_rows(path, blocksize)])


def test_predict_streaming_writes_in_memory_predictions_in_order(friedman, streamed, tmp_path):
    path, table, _, _ = friedman
    fit, _, _ = streamed
    shuffled = table[["y"] + FEATURES[::-1]].assign(extra=1.0)  # other column order, extras
    src = tmp_path / "to_predict.csv"
    shuffled.to_csv(src, index=False)
    done = []
    rows = predict_streaming(fit.model, src, tmp_path / "out.csv", name="y_hat",
                             blocksize=BLOCK, on_partition=lambda d, t: done.append((d, t)))
    out = read_back(tmp_path / "out.csv")
    assert rows == len(table) and list(out.columns) == ["y_hat"]
    np.testing.assert_array_equal(out["y_hat"], per_partition(fit.model, src, BLOCK))
    np.testing.assert_allclose(out["y_hat"], fit.model.predict(table[FEATURES]), rtol=1e-13)
    assert done[-1][0] == done[-1][1] > 5
    assert sorted(os.listdir(tmp_path)) == ["out.csv", "to_predict.csv"]  # no temporary left
    text = io.StringIO()  # a text stream (the command line's stdout) gets the same CSV
    predict_streaming(fit.model, src, text, columns=["y_hat"], blocksize=BLOCK, prefetch=False)
    assert text.getvalue() == (tmp_path / "out.csv").read_text()
    with pytest.raises(ValueError, match="columns gives 2 name"):
        predict_streaming(fit.model, src, tmp_path / "bad.csv", columns=["a", "b"],
                          blocksize=BLOCK)
    assert sorted(os.listdir(tmp_path)) == ["out.csv", "to_predict.csv"]


def test_predict_streaming_on_the_cluster_matches_in_memory(client, friedman, streamed,
                                                            tmp_path):
    path, table, _, _ = friedman
    fit, _, _ = streamed
    out = tmp_path / "cluster.csv"
    rows = predict_streaming(fit.model, path, out, scheduler=client, blocksize=BLOCK, window=3)
    assert rows == len(table)
    np.testing.assert_array_equal(read_back(out)["prediction"],
                                  per_partition(fit.model, path, BLOCK))


def test_partitions_without_rows_predict_none(client, friedman, tmp_path):
    """A dask DataFrame with an empty partition: no rows for it, the others' predictions in
    order, on every path (lazy, local, the cluster), as the in-memory prediction."""
    _, table, _, _ = friedman
    X = table[FEATURES].iloc[:90]
    model = regressor(max_iter=3).fit(X, table["y"].iloc[:90])
    frame = dd.from_pandas(X, npartitions=3)
    frame = frame.map_partitions(lambda part: part.iloc[:0] if part.index[0] == 30 else part,
                                 meta=frame._meta)
    keep = np.r_[0:30, 60:90]
    expected = model.predict(X.iloc[keep])
    np.testing.assert_array_equal(predict_dask(model, frame).compute(scheduler="sync"),
                                  expected)
    for scheduler in (None, client):
        out, done = tmp_path / f"{scheduler is None}.csv", []
        assert predict_streaming(model, frame, out, scheduler=scheduler,
                                 on_partition=lambda *counts: done.append(counts)) == 60
        np.testing.assert_array_equal(read_back(out)["prediction"], expected)
        assert done == [(1, 3), (2, 3), (3, 3)]  # every partition, the empty one too
    with pytest.raises(AttributeError, match="FNNRegressor has no predict_proba method"):
        predict_dask(model, frame, method="predict_proba")


def test_predict_dask_parallel_post_fit_on_the_cluster(client, friedman):
    path, table, _, _ = friedman
    X, y = table[FEATURES], table["y"]
    model = make_pipeline(StandardScaler(), regressor(max_iter=5)).fit(X, y)
    lazy = predict_dask(model, path, blocksize=BLOCK)
    np.testing.assert_array_equal(client.compute(lazy).result(),
                                  per_partition(model, path, BLOCK))
    np.testing.assert_allclose(client.compute(lazy).result(), model.predict(X), rtol=1e-13)
    labels = (y > y.median()).map({True: "high", False: "low"})
    Xa = X.to_numpy()
    clf = FNNClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(Xa, labels)
    proba = client.compute(predict_dask(clf, da.from_array(Xa, chunks=300),
                                        method="predict_proba")).result()
    np.testing.assert_array_equal(
        proba, np.concatenate([clf.predict_proba(Xa[i:i + 300]) for i in range(0, 2000, 300)]))


# --- searches on the cluster ----------------------------------------------------------------

@pytest.fixture(scope="module")
def small(friedman):
    _, table, _, _ = friedman
    return table[FEATURES].to_numpy()[:300], table["y"].to_numpy()[:300]


def small_net():
    return FNNRegressor(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=0.01,
                        max_iter=20, random_state=0)


def test_a_local_cluster_leaves_this_process_its_thread_variables():
    """Its nannies set OMP_NUM_THREADS=1 (and more) in this process to start their workers:
    put back when they have, so this process's own fits keep their threads."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    before = {name: os.environ.get(name) for name in names}
    with cluster_client("local", n_workers=1) as c:
        assert {name: os.environ.get(name) for name in names} == before
        assert set(c.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}
    assert {name: os.environ.get(name) for name in names} == before


def test_workers_run_single_threaded(client):
    assert sorted(client.nthreads().values()) == [1, 1]
    assert set(client.run(os.getenv, "FASTFNN_NUM_THREADS").values()) == {"1"}


def test_grid_search_on_the_cluster_equals_the_in_process_search(client, small):
    """A network, and a Pipeline in a TransformedTargetRegressor around one (the command
    line's model for a regression): scikit-learn's search, its candidates trained on the
    workers in groups."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    X, y = small
    ttr = TransformedTargetRegressor(Pipeline([("scale", StandardScaler()),
                                               ("fnn", small_net())]),
                                     transformer=StandardScaler())
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (8,)]}
    cv = KFold(3, shuffle=True, random_state=0)
    for model, prefix in ((small_net(), ""), (ttr, "regressor__fnn__")):
        done = []
        grid = {prefix + name.rsplit("__", 1)[-1]: values for name, values in grid.items()}
        ours = search(model, grid, X, y, scheduler=client, cv=cv, on_progress=done.append)
        oracle = GridSearchCV(model, grid, cv=cv).fit(X, y)
        assert ours.best_params_ == oracle.best_params_
        np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                                   oracle.cv_results_["mean_test_score"], rtol=1e-12)
        np.testing.assert_array_equal(ours.predict(X), oracle.predict(X))
        # 4 candidates x 3 folds, which the workers trained in groups of one kind (2 hidden
        # sizes) per fold
        assert type(ours).__name__ == "FNNGridSearchCV" and done == [2, 4, 6, 8, 10, 12]


def test_networks_trained_ahead_run_on_a_one_thread_cluster_and_count_their_own_fits(small):
    """On a cluster of one worker thread (where joblib's ``Parallel`` would run every task in
    this process), 'lbfgs' networks and stochastic ones train as tasks there (the oracle: the
    cluster's own task stream), with GridSearchCV's results in this process."""
    X, y = small
    grid = {"alpha": [1e-4, 1e-2, 1e-1]}
    cv = KFold(3, shuffle=True, random_state=0)
    with cluster_client("local", n_workers=1) as one:
        for solver in ("lbfgs", "adam"):
            net = small_net().set_params(solver=solver)
            with distributed.get_task_stream(one) as tasks:
                ours = search(net, grid, X, y, scheduler=one, cv=cv)
            oracle = GridSearchCV(net, grid, cv=cv).fit(X, y)
            np.testing.assert_array_equal(ours.cv_results_["mean_test_score"],
                                          oracle.cv_results_["mean_test_score"])
            assert len(tasks.data) == 3, solver  # a task per fold, on the worker



def test_searches_sharing_a_cluster_each_count_their_own_fits(client, small):
    """Three searches at once on one cluster, each through a client of its own: two of
    scikit-learn's estimator (joblib's batches) and one of networks trained in groups. Each
    one's progress rises to its own total (the oracle: its cv_results_) and never past it."""
    import threading

    from sklearn.linear_model import Ridge

    X, y = small
    searches = {"ridge a": (Ridge(), {"alpha": list(np.logspace(-3, 3, 8))}),
                "ridge b": (Ridge(), {"alpha": list(np.logspace(-2, 2, 8))}),
                "networks": (small_net(), {"alpha": [1e-4, 1e-2, 1e-1]})}
    counts, totals = {name: [] for name in searches}, {}

    def run(name):
        estimator, grid = searches[name]
        with distributed.Client(client.scheduler.address, set_as_default=False) as own:
            found = search(estimator, grid, X, y, scheduler=own, cv=3,
                           on_progress=counts[name].append)
        totals[name] = len(found.cv_results_["params"]) * found.n_splits_

    users = [threading.Thread(target=run, args=(name,)) for name in searches]
    for user in users:
        user.start()
    for user in users:
        user.join()
    for name in searches:
        assert counts[name][-1] == totals[name] and max(counts[name]) == totals[name], (
            name, counts[name])
        assert counts[name] == sorted(counts[name]), (name, counts[name])


def test_random_search_through_a_scheduler_address(client, small):
    X, y = small
    dists = {"alpha": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1], "learning_rate_init": [3e-3, 1e-2, 3e-2]}
    ours = search(small_net(), dists, X, y, kind="random", n_iter=4, random_state=0, cv=3,
                  scheduler=client.scheduler.address)
    oracle = RandomizedSearchCV(small_net(), dists, n_iter=4, random_state=0, cv=3).fit(X, y)
    assert ours.best_params_ == oracle.best_params_
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               oracle.cv_results_["mean_test_score"], rtol=1e-12)


def test_the_workers_train_under_the_callers_warning_filters(client, small):
    """As scikit-learn's loop hands its workers the caller's warning filters, the groups
    trained together on the workers run under them: with ConvergenceWarning an error there,
    the fits that stop at max_iter fail, and the scores are GridSearchCV's under that filter
    (the oracle, in this process)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = small
    grid = {"alpha": [1e-4, 1e-1], "max_iter": [2, 400]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = search(small_net(), grid, X, y, scheduler=client, cv=3, refit=False,
                      error_score=np.nan)
        oracle = GridSearchCV(small_net(), grid, cv=3, refit=False, error_score=np.nan).fit(X, y)
    assert type(ours).__name__ == "FNNGridSearchCV"
    scores = ours.cv_results_["mean_test_score"]
    np.testing.assert_array_equal(scores, oracle.cv_results_["mean_test_score"])
    assert np.isnan(scores).sum() == 2


def test_progress_counts_the_fits_of_every_batch_joblib_sends():
    """The keys of the tasks joblib sends to dask name their batch (the oracle: joblib's own
    naming, one call or several, which it calls a "mixed" batch when scikit-learn's
    ``delayed`` wraps each call anew): the progress counts each batch's fits."""
    from joblib._dask import Batch
    from sklearn.model_selection._validation import _fit_and_score
    from sklearn.utils.parallel import delayed

    from fastfnn.scaling._search import _FIT_BATCH

    for n in (1, 3):
        key = f"{Batch([delayed(_fit_and_score)(i) for i in range(n)])!r}-0123abcd"
        assert int(_FIT_BATCH.match(key).group(1)) == n, key


def test_successive_halving_over_epochs_on_the_cluster(client, small):
    X, y = small
    grid = {"alpha": [1e-4, 1e-2, 1e-1], "learning_rate_init": [1e-3, 1e-2, 3e-2]}
    ours = search(small_net(), grid, X, y, kind="halving", scheduler=client, cv=3,
                  max_resources=27)
    oracle = HalvingGridSearchCV(small_net(), grid, resource="max_iter", max_resources=27,
                                 min_resources="exhaust", factor=3, cv=3).fit(X, y)
    assert ours.best_params_ == oracle.best_params_
    assert ours.n_resources_ == oracle.n_resources_ == [3, 9, 27]
    assert ours.n_candidates_ == oracle.n_candidates_ == [9, 3, 1]
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               oracle.cv_results_["mean_test_score"], rtol=1e-12)


def test_successive_halving_spends_the_epochs_of_a_network_inside_a_model(small):
    """A Pipeline in a TransformedTargetRegressor (the command line's model): the resource is
    the network's ``regressor__fnn__max_iter``, and the search is scikit-learn's with it."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    from fastfnn.scaling import make_search

    X, y = small
    model = TransformedTargetRegressor(Pipeline([("scale", StandardScaler()),
                                                 ("fnn", small_net())]),
                                       transformer=StandardScaler())
    grid = {"regressor__fnn__alpha": [1e-4, 1e-1]}
    ours = make_search(model, grid, kind="halving", cv=3, max_resources=9, n_jobs=1)
    assert ours.resource == "regressor__fnn__max_iter"
    oracle = HalvingGridSearchCV(model, grid, resource="regressor__fnn__max_iter",
                                 max_resources=9, min_resources="exhaust", factor=3, cv=3)
    ours.fit(X, y)
    oracle.fit(X, y)
    assert ours.best_params_ == oracle.best_params_
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               oracle.cv_results_["mean_test_score"], rtol=1e-12)
    with pytest.raises(ValueError, match="regressor__fnn__max_iter is the resource"):
        make_search(model, {"regressor__fnn__max_iter": [3, 9]}, kind="halving")
    from sklearn.ensemble import VotingRegressor

    with pytest.raises(ValueError, match="holds 2 .a__max_iter, b__max_iter."):
        make_search(VotingRegressor([("a", small_net()), ("b", small_net())]), grid,
                    kind="halving")


def test_search_errors_say_what_to_do(small):
    X, y = small
    with pytest.raises(ValueError, match="kind must be one of"):
        search(small_net(), {"alpha": [1.0]}, X, y, kind="bayes")
    with pytest.raises(ValueError, match="max_resources"):
        search(small_net(), {"max_iter": [5, 10]}, X, y, kind="halving")
    with pytest.raises(ValueError, match="n_workers must be a positive integer"):
        search(small_net(), {"alpha": [1.0]}, X, y, n_workers=0)
