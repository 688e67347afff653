"""Model files: round trips in one process and across processes, ``partial_fit`` after loading,
refusal of untrusted, pickled, foreign and damaged files, format versions and atomic writes.

Oracles: the model before saving (predictions compared bit for bit), a second Python process,
skops's own loader, and a model file written in this file by hand from the documented layout.
"""

import copy
import hashlib
import io
import json
import operator
import os
import pickle
import re
import subprocess
import sys
import textwrap
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import fastfnn
from fastfnn import (FNNClassifier, FNNEnsembleClassifier, FNNEnsembleRegressor,
                     FNNRegressor, load_model, save_model)
from fastfnn.model_io import ModelFileError, model_file_info

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(6,), max_iter=15)
HEADER = "fastfnn-model.json"


def _data(n=60, seed=0):
    """A frame with a missing value and a categorical column, a float target, string labels."""
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({"a": rng.randn(n), "b": rng.randn(n),
                          "c": rng.choice(["red", "green", "blue"], n)})
    y = 2 * frame["a"].to_numpy() + frame["b"].to_numpy() + 0.1 * rng.randn(n) + 5
    labels = np.array(["low", "mid", "high"])[np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))]
    frame.loc[3, "a"] = np.nan
    return frame, y, labels


def _preprocess():
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    return ColumnTransformer([("num", numeric, ["a", "b"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"])])


def _hand_written(payload, metadata=None, *, format_version=1, written_by=None):
    """A model file made from the layout that model_io's docstring documents, by hand."""
    metadata = {} if metadata is None else metadata
    written_by = {"fastfnn": fastfnn.__version__} if written_by is None else written_by
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    payload_hash = hashlib.sha256()
    for name in sorted(members):
        payload_hash.update(name.encode() + b"\0" + len(members[name]).to_bytes(8, "little"))
        payload_hash.update(members[name])
    signed = json.dumps({"metadata": metadata, "written_by": written_by}, sort_keys=True,
                        separators=(",", ":"), ensure_ascii=True)
    header = {"format": "fastfnn-model", "format_version": format_version,
              "written_by": written_by, "metadata": metadata,
              "payload_sha256": payload_hash.hexdigest(),
              "metadata_sha256": hashlib.sha256(signed.encode()).hexdigest()}
    buffer = io.BytesIO(payload)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(HEADER, json.dumps(header))
    return buffer.getvalue()


def _rewrite(data, replace):
    """The zip archive ``data`` with members replaced by ``replace(name, bytes)`` (fresh CRCs)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, replace(name, src.read(name)))
    return out.getvalue()


@pytest.fixture(scope="module")
def frame_data():
    return _data()


@pytest.fixture(scope="module")
def regression_pipeline(frame_data):
    """The CLI's regression model: imputer/scaler/one-hot, FNNRegressor, standardised target."""
    X, y, _ = frame_data
    net = FNNRegressor(**SMALL, random_state=np.random.RandomState(1), early_stopping=True,
                       n_iter_no_change=50)
    model = TransformedTargetRegressor(regressor=Pipeline([("pre", _preprocess()), ("fnn", net)]),
                                       transformer=StandardScaler())
    return model.fit(X, y)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory, regression_pipeline, frame_data):
    path = tmp_path_factory.mktemp("saved") / "model.skops"
    metadata = {"features": ["a", "b", "c"], "task": "regression", "r2": np.float64(0.5)}
    save_model(regression_pipeline, path, metadata=metadata)
    return path, regression_pipeline.predict(frame_data[0])


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_estimator_round_trip(tmp_path, frame_data, kind, dtype):
    X = frame_data[0][["a", "b"]].fillna(0).to_numpy(dtype)
    y = frame_data[1] if kind == "regressor" else frame_data[2]
    model = (FNNRegressor if kind == "regressor" else FNNClassifier)(**SMALL, random_state=0)
    model.fit(X, y)
    save_model(model, tmp_path / "m.skops", metadata={"dtype": np.dtype(dtype).name})
    loaded, metadata = load_model(tmp_path / "m.skops", return_metadata=True)
    assert type(loaded) is type(model) and loaded is not model
    assert metadata == {"dtype": np.dtype(dtype).name}
    assert all(w.dtype == dtype for w in loaded.coefs_ + loaded.intercepts_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if kind == "classifier":
        np.testing.assert_array_equal(loaded.classes_, ["high", "low", "mid"])
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_pipelines_round_trip(tmp_path, saved_pipeline, frame_data):
    X, _, labels = frame_data
    path, expected = saved_pipeline
    loaded, metadata = load_model(path, return_metadata=True)
    assert isinstance(loaded, TransformedTargetRegressor)
    assert metadata == {"features": ["a", "b", "c"], "task": "regression", "r2": 0.5}
    np.testing.assert_array_equal(loaded.predict(X), expected)

    classifier = Pipeline([("pre", _preprocess()), ("fnn", FNNClassifier(**SMALL, random_state=0))])
    classifier.fit(X, labels)
    save_model(classifier, tmp_path / "c.skops")
    loaded = load_model(tmp_path / "c.skops")
    np.testing.assert_array_equal(loaded.predict(X), classifier.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    assert load_model(tmp_path / "c.skops", return_metadata=True)[1] == {}


def test_file_is_a_skops_file_and_follows_the_documented_layout(tmp_path, saved_pipeline,
                                                                 frame_data):
    path, expected = saved_pipeline
    trusted = [name for name in skops.io.get_untrusted_types(file=path)
               if name.startswith("fastfnn.") or name == "numpy.dtype"]
    np.testing.assert_array_equal(skops.io.load(path, trusted=trusted).predict(frame_data[0]),
                                  expected)
    info = model_file_info(path)
    assert (info["format"], info["format_version"]) == ("fastfnn-model", 1)
    assert info["written_by"]["fastfnn"] == fastfnn.__version__
    assert info["written_by"]["scikit-learn"] == sklearn.__version__
    # a file written by hand from the docstring's layout loads
    stripped = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
        for name in src.namelist():
            if name != HEADER:
                dst.writestr(name, src.read(name))
    (tmp_path / "hand.skops").write_bytes(_hand_written(stripped.getvalue(), {"k": [1, 2]}))
    loaded, metadata = load_model(tmp_path / "hand.skops", return_metadata=True)
    assert metadata == {"k": [1, 2]}
    np.testing.assert_array_equal(loaded.predict(frame_data[0]), expected)


SUBPROCESS = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fastfnn import FNNClassifier, load_model, save_model
    out = sys.argv[1]
    X = np.load(out + "/X.npy")
    np.save(out + "/loaded_pred.npy", load_model(out + "/parent.skops").predict(X))
    labels = np.load(out + "/labels.npy")
    model = make_pipeline(StandardScaler(), FNNClassifier(hidden_layer_sizes=(6,), max_iter=15,
                                                          random_state=0)).fit(X, labels)
    save_model(model, out + "/child.skops", metadata={"n": len(X)})
    np.save(out + "/child_proba.npy", model.predict_proba(X))
    np.save(out + "/child_pred.npy", model.predict(X))
""")


def test_round_trip_across_processes(tmp_path, frame_data):
    """Saved here and loaded in a second Python process, and the other way round."""
    X = frame_data[0][["a", "b"]].fillna(0).to_numpy(np.float32)
    model = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), FNNRegressor(**SMALL, random_state=0)),
        transformer=StandardScaler()).fit(X, frame_data[1])
    save_model(model, tmp_path / "parent.skops")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "labels.npy", frame_data[2])
    run = subprocess.run([sys.executable, "-c", SUBPROCESS, str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "loaded_pred.npy"), model.predict(X))
    child, metadata = load_model(tmp_path / "child.skops", return_metadata=True)
    assert metadata == {"n": len(X)}
    np.testing.assert_array_equal(child.predict(X), np.load(tmp_path / "child_pred.npy"))
    np.testing.assert_array_equal(child.predict_proba(X), np.load(tmp_path / "child_proba.npy"))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_partial_fit_continues_after_loading(tmp_path, frame_data, solver, kind):
    """Continuing the loaded model is continuing the original: same optimizer state, same
    random stream, the same weights bit for bit."""
    X = frame_data[0][["a", "b"]].fillna(0).to_numpy(np.float32 if solver == "sgd" else None)
    y = frame_data[1] if kind == "regressor" else frame_data[2]
    cls, first = (FNNRegressor, {}) if kind == "regressor" else (FNNClassifier,
                                                                 {"classes": np.unique(y)})
    model = cls(hidden_layer_sizes=(6,), solver=solver, batch_size=16, learning_rate_init=0.01,
                random_state=np.random.RandomState(0))
    model.partial_fit(X, y, **first)
    model.partial_fit(X, y)
    save_model(model, tmp_path / "m.skops")
    loaded = load_model(tmp_path / "m.skops")
    for _ in range(3):
        model.partial_fit(X, y)
        loaded.partial_fit(X, y)
    for got, want in zip(loaded.coefs_ + loaded.intercepts_, model.coefs_ + model.intercepts_):
        np.testing.assert_array_equal(got, want)
    assert (loaded.t_, loaded.n_iter_, loaded.loss_curve_) == (model.t_, model.n_iter_,
                                                                model.loss_curve_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_file_whose_optimizer_keeps_no_schedule_loads_and_goes_on(tmp_path, frame_data):
    """A file saved before optimizers kept their schedule (no ``schedule``, ``power_t``,
    ``horizon``) loads, and partial_fit follows the estimator's settings: as the model whose
    optimizer kept them (made with the same settings) goes on."""
    X = frame_data[0][["a", "b"]].fillna(0).to_numpy()
    model = FNNRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate="invscaling",
                         batch_size=16, random_state=0)
    model.partial_fit(X, frame_data[1])
    older = pickle.loads(pickle.dumps(model))
    for name in ("schedule", "power_t", "horizon"):
        delattr(older._optimizer, name)
    save_model(older, tmp_path / "older.skops")
    loaded = load_model(tmp_path / "older.skops")
    for _ in range(2):
        model.partial_fit(X, frame_data[1])
        loaded.partial_fit(X, frame_data[1])
    for got, want in zip(loaded.coefs_ + loaded.intercepts_, model.coefs_ + model.intercepts_):
        np.testing.assert_array_equal(got, want)
    assert loaded._optimizer.learning_rate == model._optimizer.learning_rate < 0.001


# ---- what is refused, and nothing runs ----------------------------------------------------------


PROBE_MODULE = textwrap.dedent("""
    import pathlib
    HERE = pathlib.Path(__file__)
    HERE.with_suffix(".imported").touch()

    class Probe:
        def __init__(self):
            self.state = "set"

        def __setstate__(self, state):
            HERE.with_suffix(".constructed").touch()
""")


@pytest.fixture(scope="module")
def small_model(frame_data):
    X = frame_data[0][["a", "b"]].fillna(0).to_numpy()
    return FNNRegressor(**SMALL, random_state=0).fit(X, frame_data[1]), X


def test_untrusted_types_are_refused_before_anything_runs(tmp_path, monkeypatch, small_model):
    model = small_model[0]
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fastfnn_probe.py").write_text(PROBE_MODULE)
    import fastfnn_probe

    probe_dump = skops.io.dumps({"model": model, "probe": fastfnn_probe.Probe()})
    monkeypatch.delitem(sys.modules, "fastfnn_probe")
    (tmp_path / "fastfnn_probe.imported").unlink()
    future = type("FNNFromTheFuture", (), {"__module__": "fastfnn.estimators"})()
    cases = [  # (payload, what the message says)
        (probe_dump, r"trusted set \(fastfnn_probe\.Probe\)"),
        (skops.io.dumps([model, operator.attrgetter("coefs_")]), r"\(operator\.attrgetter\)"),
        (skops.io.dumps([model, future]), r"does not define \(fastfnn\.estimators\.FNNFromThe"),
    ]
    for payload, message in cases:
        (tmp_path / "evil.skops").write_bytes(_hand_written(payload))
        with pytest.raises(ModelFileError, match=message):
            load_model(tmp_path / "evil.skops")
    assert "fastfnn_probe" not in sys.modules
    assert not list(tmp_path.glob("fastfnn_probe.*ed")), "loading ran the probe's code"
    # what load_model would refuse, save_model does not write
    with pytest.raises(ValueError, match="operator.attrgetter"):
        save_model([model, operator.attrgetter("coefs_")], tmp_path / "never.skops")
    assert not (tmp_path / "never.skops").exists()


def test_ensembles_round_trip_and_an_inconsistent_one_is_refused(tmp_path, frame_data):
    X, y, labels = frame_data
    X = X[["a", "b"]].fillna(0)
    for ensemble, target in [(FNNEnsembleRegressor(FNNRegressor(**SMALL), n_estimators=2), y),
                             (FNNEnsembleClassifier(FNNClassifier(**SMALL), n_estimators=3),
                              labels)]:
        ensemble.set_params(random_state=0).fit(X, target)
        save_model(ensemble, tmp_path / "e.skops")
        loaded = load_model(tmp_path / "e.skops")
        assert type(loaded) is type(ensemble)
        np.testing.assert_array_equal(loaded.predict(X), ensemble.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    broken = copy.deepcopy(ensemble)
    broken.estimators_ = broken.estimators_[:2]  # fewer members than n_estimators
    (tmp_path / "broken.skops").write_bytes(_hand_written(skops.io.dumps(broken)))
    with pytest.raises(ModelFileError, match=r"field 'estimators_' has 2 items, expected 3"):
        load_model(tmp_path / "broken.skops")
    with pytest.raises(ValueError, match=r"Cannot save .* 'estimators_' has 2 items"):
        save_model(broken, tmp_path / "broken2.skops")  # refused at save time too
    assert not (tmp_path / "broken2.skops").exists()


@pytest.fixture(scope="module")
def fitted_ensemble(frame_data):
    X, _, labels = frame_data
    ensemble = FNNEnsembleClassifier(FNNClassifier(**SMALL), n_estimators=3, random_state=0)
    return ensemble.fit(X[["a", "b"]].fillna(0), labels)


@pytest.mark.parametrize("field, mutate", [
    ("estimators_", lambda e: setattr(e, "estimators_", e.estimators_ + [e.estimators_[0]])),
    ("estimators_[1]", lambda e: e.estimators_.__setitem__(1, FNNRegressor())),
    ("estimators_[2]", lambda e: e.estimators_.__setitem__(2, StandardScaler())),
    ("estimators_[1].n_outputs_", lambda e: delattr(e.estimators_[1], "n_outputs_")),
    ("estimators_[1].coefs_[0]", lambda e: e.estimators_[1].coefs_.__setitem__(
        0, e.estimators_[1].coefs_[0][:1])),
    ("estimators_[1].classes_", lambda e: setattr(e.estimators_[1], "classes_",
                                                  np.array(["a", "b", "c"], dtype=object))),
    ("seeds_", lambda e: setattr(e, "seeds_", e.seeds_[:1])),
    ("seeds_", lambda e: setattr(e, "seeds_", e.seeds_.astype(float))),
    ("n_estimators", lambda e: setattr(e, "n_estimators", 0)),
    ("n_estimators", lambda e: setattr(e, "n_estimators", "three")),
    ("n_jobs", lambda e: setattr(e, "n_jobs", 1.5)),
    ("estimator", lambda e: setattr(e, "estimator", FNNRegressor())),
    ("n_features_in_", lambda e: setattr(e, "n_features_in_", 7)),
    ("classes_", lambda e: setattr(e, "classes_", e.classes_[:2])),
    ("feature_names_in_", lambda e: setattr(e, "feature_names_in_", np.array(["x", "y"],
                                                                              dtype=object))),
    ("bogus", lambda e: setattr(e, "bogus", 1)),
    ("estimators_", lambda e: delattr(e, "estimators_")),
])
def test_an_ensemble_file_with_a_field_it_cannot_hold_is_refused(tmp_path, fitted_ensemble,
                                                                 field, mutate):
    """Each field of a fitted ensemble classifier, changed to what fastfnn never writes:
    refused at load, the message naming the field (its members are checked as estimators,
    before their fields are compared)."""
    ensemble = copy.deepcopy(fitted_ensemble)
    mutate(ensemble)
    (tmp_path / "e.skops").write_bytes(_hand_written(skops.io.dumps(ensemble)))
    with pytest.raises(ModelFileError, match=re.escape(f"field '{field}")):
        load_model(tmp_path / "e.skops")


def test_what_save_model_writes_load_model_takes(tmp_path):
    """Integer labels of another width than the label binarizer's (partial_fit's ``classes``
    of int32 labels) are the same classes."""
    X = np.random.RandomState(0).standard_normal((30, 3))
    for Y in ((X[:, :2] > 0).astype(np.int32), (X[:, 0] > 0).astype(np.int32)):
        model = FNNClassifier(**SMALL).partial_fit(X, Y, classes=np.unique(Y))
        save_model(model, tmp_path / "m.skops")
        np.testing.assert_array_equal(load_model(tmp_path / "m.skops").predict(X),
                                      model.predict(X))


def test_files_without_a_consistent_fastfnn_model_are_refused(tmp_path, small_model):
    model, X = small_model
    (tmp_path / "scaler.skops").write_bytes(
        _hand_written(skops.io.dumps(StandardScaler().fit(X))))
    with pytest.raises(ModelFileError, match="holds no fastfnn model"):
        load_model(tmp_path / "scaler.skops")
    with pytest.raises(TypeError, match="saves fastfnn models"):
        save_model(StandardScaler().fit(X), tmp_path / "scaler2.skops")
    broken = copy.deepcopy(model)
    broken.coefs_[0] = broken.coefs_[0][:1]  # fewer input rows than n_features_in_
    (tmp_path / "broken.skops").write_bytes(_hand_written(skops.io.dumps(broken)))
    with pytest.raises(ModelFileError,
                       match=r"field 'coefs_\[0\]' has shape \(1, 6\), expected \(2, any\)"):
        load_model(tmp_path / "broken.skops")


class _Bomb:
    """Unpickling it creates the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_and_joblib_files_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    bomb = _Bomb(str(marker))
    joblib.dump(bomb, tmp_path / "model.joblib")
    files = {"model.joblib": (tmp_path / "model.joblib").read_bytes(),
             "p5.pkl": pickle.dumps(bomb, protocol=5),
             "p0.pkl": pickle.dumps(bomb, protocol=0),
             "old.model": b"FASTFNN-MODEL 1\n" + pickle.dumps(bomb)}
    messages = {"model.joblib": "pickle or joblib", "p5.pkl": "pickle or joblib",
                "p0.pkl": "not a fastfnn model file", "old.model": "earlier fastfnn"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelFileError, match=messages[name]):
            load_model(tmp_path / name)
    assert not marker.exists()


def test_newer_format_version_says_to_upgrade(tmp_path, small_model):
    data = _hand_written(skops.io.dumps(small_model[0]), format_version=2,
                         written_by={"fastfnn": "9.0"})
    (tmp_path / "new.skops").write_bytes(data)
    with pytest.raises(ModelFileError, match=r"newer fastfnn \(9\.0.*Upgrade fastfnn"):
        load_model(tmp_path / "new.skops")


def test_files_from_before_the_norms_validation_losses_and_class_weight_load(tmp_path):
    """A file written before ``class_weight``, ``validation_loss_curve_`` and
    ``gradient_norms_`` existed (the layout made by hand from a model of today, the fields
    taken out) loads as not recorded (NaN) and the parameter's default, predicts to the bit
    and trains on as the model with them does (the oracle: the same model never saved)."""
    frame, y, labels = _data()
    X = frame[["a", "b"]].fillna(0).to_numpy()
    made = {"classifier": FNNClassifier(**SMALL, early_stopping=True, random_state=0,
                                        warm_start=True).fit(X, labels),
            "regressor": FNNRegressor(**SMALL, random_state=0, warm_start=True).fit(X, y)}
    for name, model in made.items():
        older = copy.deepcopy(model)
        for field in ("class_weight", "validation_loss_curve_", "gradient_norms_"):
            vars(older).pop(field, None)
        (tmp_path / f"{name}.skops").write_bytes(_hand_written(skops.io.dumps(older)))
        loaded = load_model(tmp_path / f"{name}.skops")
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        assert np.isnan(loaded.gradient_norms_).all()
        assert loaded.gradient_norms_.shape == model.gradient_norms_.shape
        if name == "classifier":
            assert loaded.class_weight is None
            assert len(loaded.validation_loss_curve_) == len(model.validation_scores_)
            assert np.isnan(loaded.validation_loss_curve_).all()
        else:
            assert loaded.validation_loss_curve_ is None
        target = labels if name == "classifier" else y
        for m in (loaded, model):
            m.fit(X, target)  # a warm start: the history goes on
        for a, b in zip(loaded.coefs_, model.coefs_):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.gradient_norms_[-3:], model.gradient_norms_[-3:])
        save_model(loaded, tmp_path / f"{name}-again.skops")  # what it loaded, it saves


def test_a_field_this_fastfnn_does_not_know_says_whether_a_newer_one_wrote_it(tmp_path,
                                                                              small_model):
    """A parameter added by a later release, in a file whose header names that release: the
    refusal names the field and says to upgrade; the same file from this release says it is no
    model fastfnn saved."""
    newer = copy.deepcopy(small_model[0])
    newer.label_smoothing = 0.0
    payload = skops.io.dumps(newer)
    (tmp_path / "newer.skops").write_bytes(_hand_written(payload, written_by={"fastfnn": "9.0"}))
    (tmp_path / "this.skops").write_bytes(_hand_written(payload))
    with pytest.raises(ModelFileError, match=r"'label_smoothing'.*newer fastfnn \(9\.0; this is "
                                             r".*upgrade fastfnn"):
        load_model(tmp_path / "newer.skops")
    with pytest.raises(ModelFileError, match=r"'label_smoothing'.*not a model that fastfnn saved"):
        load_model(tmp_path / "this.skops")


def test_what_a_model_file_cannot_hold_is_refused_at_saving_saying_what_to_save(tmp_path,
                                                                                 small_model):
    """A fitted search (its results hold scorers) and a scorer object as the early-stopping
    scoring: nothing written, and the message says what to save or pass instead."""
    from sklearn.metrics import get_scorer

    model, X = small_model
    search = fastfnn.FNNGridSearchCV(FNNRegressor(**SMALL, random_state=0),
                                     {"alpha": [1e-4, 1e-2]}, cv=2).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"FNNGridSearchCV, which fastfnn's model files do "
                                         r"not hold: save the estimator it fitted"):
        save_model(search, tmp_path / "search.skops")
    scored = FNNRegressor(**SMALL, early_stopping=True, scoring=get_scorer("r2"),
                          random_state=0).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"load_model does not trust .*_Scorer.*give a "
                                         r"scoring by name"):
        save_model(scored, tmp_path / "scored.skops")
    from sklearn.callback import ProgressBar

    watched = FNNRegressor(**SMALL, random_state=0).set_callbacks(ProgressBar())
    watched.fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"ProgressBar.*remove callbacks"):
        save_model(watched, tmp_path / "watched.skops")
    assert not list(tmp_path.iterdir())


# ---- damaged files ------------------------------------------------------------------------------


def test_every_flipped_bit_is_detected_or_harmless(tmp_path, saved_pipeline, frame_data):
    path, expected = saved_pipeline
    data = path.read_bytes()
    rng = np.random.RandomState(42)
    bad = tmp_path / "flipped.skops"
    outcomes = {"refused": 0, "harmless": 0}
    for position in rng.randint(0, 8 * len(data), size=300):
        flipped = bytearray(data)
        flipped[position // 8] ^= 1 << (position % 8)
        bad.write_bytes(bytes(flipped))
        try:
            model, metadata = load_model(bad, return_metadata=True)
        except ModelFileError as exc:
            assert "damaged" in str(exc) or "not a fastfnn model file" in str(exc), str(exc)
            outcomes["refused"] += 1
            continue
        np.testing.assert_array_equal(model.predict(frame_data[0]), expected)
        assert metadata["features"] == ["a", "b", "c"]
        outcomes["harmless"] += 1
    assert outcomes["refused"] > 250, outcomes


def test_tampered_contents_fail_the_checksums(tmp_path, saved_pipeline):
    """Changes that keep zip's CRC-32 valid are caught by the SHA-256 of the header."""
    data = saved_pipeline[0].read_bytes()

    def weight(name, content):  # one byte of the largest array
        if name.endswith(".npy") and len(content) > 1000:
            content = content[:-1] + bytes([content[-1] ^ 0x01])
        return content

    def metadata(name, content):
        return content.replace(b'"regression"', b'"classification"') if name == HEADER else content

    for change, what in [(weight, "model's checksum"), (metadata, "metadata checksum")]:
        (tmp_path / "t.skops").write_bytes(_rewrite(data, change))
        with pytest.raises(ModelFileError, match=what):
            load_model(tmp_path / "t.skops")


def test_truncated_empty_foreign_and_missing_files(tmp_path, saved_pipeline, small_model):
    data = saved_pipeline[0].read_bytes()
    for size in [1, 4, 30, len(data) // 2, len(data) - 22, len(data) - 1]:
        (tmp_path / "cut.skops").write_bytes(data[:size])
        with pytest.raises(ModelFileError, match="damaged|not a fastfnn model file"):
            load_model(tmp_path / "cut.skops")
    (tmp_path / "empty.skops").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty file"):
        load_model(tmp_path / "empty.skops")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.skops")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    skops.io.dump(small_model[0], tmp_path / "plain.skops")  # a skops file, without our header
    for name in ["other.zip", "plain.skops"]:
        with pytest.raises(ModelFileError, match="not a fastfnn model file"):
            load_model(tmp_path / name)


def test_unreadable_file_raises_permission_error(tmp_path, saved_pipeline):
    path = tmp_path / "locked.skops"
    path.write_bytes(saved_pipeline[0].read_bytes())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user whom file permissions do not stop (root)")
        with pytest.raises(PermissionError):
            load_model(path)
    finally:
        path.chmod(0o600)


# ---- saving -------------------------------------------------------------------------------------


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, small_model):
    model = small_model[0]
    path = tmp_path / "m.skops"
    save_model(model, path, metadata={"version": 1})
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_model(model, path, metadata={"version": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.skops"]
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_model(model, path, metadata={"when": object()})
    with pytest.raises(TypeError, match="must be a dict"):
        save_model(model, path, metadata=[("a", 1)])
    with pytest.raises(IsADirectoryError):
        save_model(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="No such folder for the model file: .*missing"):
        save_model(model, tmp_path / "missing" / "m.skops")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.skops"]
    save_model(model, path, metadata={"version": 3})
    assert load_model(path, return_metadata=True)[1] == {"version": 3}
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
