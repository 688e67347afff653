"""Model files written by a hostile author: every field of a saved model mutated, random changes
to the file format, and zip bombs.

The checksums of a model file protect against damage, not against its author, so every
mutated file here carries freshly computed ones (:func:`_signed`, from the hashing rule of
model_io's docstring) and reaches the checks behind them. What a mutated file may do: be
refused with a ``ModelFileError`` (naming the field, where the mutation is invalid), or load
as a model that predicts and continues training safely. The loads of the mutation test run
in a child process, so a crash in compiled code (heap corruption, a segfault) fails the test
and names the file rather than ending the test run.
"""

import ast
import copy
import hashlib
import io
import json
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastfnn import FNNClassifier, FNNRegressor, load_model, save_model
from fastfnn.model_io import ModelFileError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

HEADER = "fastfnn-model.json"
TINY = dict(hidden_layer_sizes=(3,), max_iter=3, random_state=0, batch_size=10)


# ---- writing hostile files ----------------------------------------------------------------------


def _signed(members, header=None):
    """A model file of ``{name: bytes}`` (payload members) with a header whose checksums are
    computed afresh by the documented rule: what an author who changed the model writes."""
    header = dict(header or {"format": "fastfnn-model", "format_version": 1,
                             "written_by": {"fastfnn": "test"}, "metadata": {}})
    digest = hashlib.sha256()
    for name in sorted(members):
        digest.update(name.encode() + b"\0" + len(members[name]).to_bytes(8, "little"))
        digest.update(members[name])
    signed = json.dumps({"metadata": header["metadata"], "written_by": header["written_by"]},
                        sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    header["payload_sha256"] = digest.hexdigest()
    header["metadata_sha256"] = hashlib.sha256(signed.encode()).hexdigest()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        archive.writestr(HEADER, json.dumps(header))
    return out.getvalue()


def _members(data):
    """``({name: bytes} of the payload, header dict or None)`` of a model file's bytes (or of
    a skops file, which has no header)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = members.pop(HEADER, None)
    return members, None if header is None else json.loads(header)


def _rewritten(data, change):
    """The model file ``data`` with its payload members replaced by ``change(members)`` (a
    dict it may modify in place) and both checksums recomputed."""
    members, header = _members(data)
    change(members)
    return _signed(members, header)


def _mutated(model, field, mutate):
    """The bytes of a model file of ``model`` with ``field`` (a path such as
    ``'_optimizer.m'`` or ``'coefs_[1]'``) replaced by ``mutate(value)`` (or removed where it
    returns ``_REMOVE``), checksums recomputed."""
    clone = copy.deepcopy(model)
    *parents, last = _parse(field)
    owner = clone
    for part in parents:
        owner = owner[part] if isinstance(part, int) else getattr(owner, part)
    if isinstance(last, int):
        owner[last] = mutate(owner[last])
    else:
        value = mutate(getattr(owner, last))
        if value is _REMOVE:
            delattr(owner, last)
        else:
            vars(owner)[last] = value
    members, _ = _members(skops.io.dumps(clone, compression=zipfile.ZIP_DEFLATED))
    return _signed(members)


_REMOVE = object()


def _parse(field):
    """``'coefs_[1]'`` -> ``['coefs_', 1]``; ``'_optimizer.m'`` -> ``['_optimizer', 'm']``."""
    parts = []
    for piece in field.split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index.rstrip("]")))
    return parts


# ---- the models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 3)
    y = X @ [1.0, -2.0, 0.5]
    labels = np.array(["ant", "bee", "cat"])[np.digitize(y, [-1.0, 1.0])]
    return X, y, labels


@pytest.fixture(scope="module")
def models(data):
    """Fitted models of each solver, regressor and classifier: with early stopping, a frame's
    feature names, float32, binary and multiclass labels among them."""
    X, y, labels = data
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    return {
        "sgd-regressor": FNNRegressor(**TINY, solver="sgd", early_stopping=True).fit(X, y),
        "adam-regressor": FNNRegressor(**TINY, solver="adam").fit(frame, y),
        "lbfgs-regressor": FNNRegressor(**TINY, solver="lbfgs").fit(X, y),
        "sgd-classifier": FNNClassifier(**TINY, solver="sgd").fit(X.astype(np.float32),
                                                                   labels),
        "adam-classifier": FNNClassifier(**TINY, solver="adam").fit(X, labels == "bee"),
        "lbfgs-classifier": FNNClassifier(**TINY, solver="lbfgs").fit(X, labels),
    }


# ---- the child process that loads, predicts and trains ------------------------------------------


CHILD = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import pandas as pd
    warnings.simplefilter("ignore")
    from fastfnn import load_model
    from fastfnn.model_io import ModelFileError

    folder = sys.argv[1]
    X = np.load(folder + "/X.npy")
    cases = json.load(open(folder + "/cases.json"))
    for case in cases:
        print("START", case["file"], flush=True)
        try:
            model = load_model(folder + "/" + case["file"])
        except ModelFileError as exc:
            print(json.dumps({"file": case["file"], "outcome": "refused",
                              "message": str(exc)}), flush=True)
            continue
        except Exception as exc:
            print(json.dumps({"file": case["file"], "outcome": "load raised",
                              "message": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        Xc = X.astype(case["dtype"])
        if case["frame"]:
            Xc = pd.DataFrame(Xc, columns=["a", "b", "c"])
        outcome, message = "ok", ""
        try:
            prediction = model.predict(Xc)
            if hasattr(model, "classes_"):
                assert np.isin(prediction, model.classes_).all(), "labels outside classes_"
            else:
                assert np.isfinite(prediction).all(), "non-finite predictions"
        except Exception as exc:
            outcome, message = "predict raised", f"{type(exc).__name__}: {exc}"
        if outcome == "ok" and case["solver"] != "lbfgs":
            y = np.load(folder + "/" + case["targets"] + ".npy")
            if model.early_stopping is True:  # which partial_fit refuses: train the state on
                model.set_params(early_stopping=False)
            try:
                for _ in range(2):
                    model.partial_fit(Xc, y)
                    model.predict(Xc)
            except ValueError as exc:
                outcome, message = "partial_fit refused", f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                outcome, message = "partial_fit raised", f"{type(exc).__name__}: {exc}"
        print(json.dumps({"file": case["file"], "outcome": outcome, "message": message}),
              flush=True)
""")


def _run_child(folder, cases, data):
    """Write the cases' inputs, load every file in one child process; ``{file: result}``."""
    X, y, labels = data
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "bee.npy", labels == "bee")
    (folder / "cases.json").write_text(json.dumps(cases))
    run = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True,
                         text=True, timeout=300)
    lines = run.stdout.splitlines()
    started = [line.split(" ", 1)[1] for line in lines if line.startswith("START ")]
    assert run.returncode == 0, (
        f"the child process died (return code {run.returncode}) while loading/using "
        f"{started[-1] if started else '?'}:\n{run.stderr[-3000:]}")
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(results) == len(cases), run.stderr[-3000:]
    return {result["file"]: result for result in results}


def _case(name, model, mutation, field, expect):
    return {"file": f"{name}.skops", "solver": model.solver, "field": field, "expect": expect,
            "mutation": mutation, "dtype": model.coefs_[0].dtype.name,
            "frame": hasattr(model, "feature_names_in_"),
            "targets": ("y" if isinstance(model, FNNRegressor) else
                        "bee" if model.classes_.dtype == bool else "labels")}


# ---- the reproducers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reproducers(tmp_path_factory, models, data):
    """The hostile files found first, each loaded, used and trained in the child process."""
    folder = tmp_path_factory.mktemp("reproducers")
    adam, sgd = models["adam-regressor"], models["sgd-regressor"]
    files = {
        "adam-state": (adam, lambda m: (vars(m._optimizer).update(
            m=np.zeros(1), v=np.zeros(1), steps=np.zeros(0, np.int64)), m)[1]),
        "sgd-velocity": (sgd, lambda m: (vars(m._optimizer).update(velocity=np.zeros(3)),
                                         m)[1]),
    }
    results = {}
    for name, (model, change) in files.items():  # a child each: a crash fails only its own
        clone = change(copy.deepcopy(model))
        members, _ = _members(skops.io.dumps(clone))
        (folder / name).mkdir()
        (folder / name / f"{name}.skops").write_bytes(_signed(members))
        try:
            results.update(_run_child(folder / name,
                                      [_case(name, model, name, "_optimizer", "refuse")], data))
        except AssertionError as exc:
            results[f"{name}.skops"] = {"outcome": "crashed", "message": str(exc)}
    return results


def test_adam_state_shorter_than_the_network_is_refused(reproducers):
    """Adam's moments of one element and an empty step count: the first partial_fit corrupted
    the heap ("corrupted double-linked list") before these were checked."""
    result = reproducers["adam-state.skops"]
    assert result["outcome"] == "refused", result
    assert "field '_optimizer.m' has shape (1,), expected (16,)" in result["message"]


def test_sgd_velocity_shorter_than_the_network_is_refused(reproducers):
    """An SGD velocity of 3 values for a network of 16 parameters: the compiled step read and
    wrote past its end before this was checked."""
    result = reproducers["sgd-velocity.skops"]
    assert result["outcome"] == "refused", result
    assert "field '_optimizer.velocity' has shape (3,), expected (16,)" in result["message"]


# ---- every field mutated --------------------------------------------------------------------------


def _array_mutations(value):
    """(label, mutate, expectation) for an array field: all are invalid."""
    out = [("empty", lambda a: a[:0].copy()), ("extra-axis", lambda a: a[None].copy()),
           ("list", lambda a: a.tolist()), ("none", lambda a: None)]
    if value.size > 1:
        out += [("one-element", lambda a: a.ravel()[:1].copy())]
    if value.dtype.kind == "f":
        other = np.float32 if value.dtype == np.float64 else np.float64
        out += [("dtype", lambda a: a.astype(other)), ("int-dtype", lambda a: a.astype(int)),
                ("nan", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a)
                 .astype(a.dtype)),
                ("big-endian", lambda a: a.astype(a.dtype.newbyteorder(">")))]
    elif value.dtype.kind == "i":
        out += [("dtype", lambda a: a.astype(np.int32)), ("float", lambda a: a.astype(float)),
                ("negative", lambda a: a - a.max() - 1)]
    elif value.dtype.kind == "O":
        out += [("non-string", lambda a: np.array([1] + list(a[1:]), dtype=object))]
    else:
        out += [("reversed", lambda a: a[::-1].copy())]
    if value.ndim == 2 and min(value.shape) > 1:
        out += [("fortran-order", np.asfortranarray)]
    if value.ndim == 2 and value.shape[0] != value.shape[1]:
        out += [("transposed", lambda a: a.T.copy())]
    if value.ndim == 1 and value.size > 1:
        out += [("longer", lambda a: np.concatenate([a, a[:1]]))]
    return [(label, mutate, "refuse") for label, mutate in out]


def _scalar_mutations(field, value):
    """(label, mutate, expectation) for a scalar field; 'either' where the new value may be
    a valid one (a model that fastfnn could have saved)."""
    nan, text = (lambda v: float("nan")), (lambda v: "bogus")
    if isinstance(value, (bool, np.bool_)):
        return [("text", text, "refuse"), ("number", lambda v: 2.5, "refuse"),
                ("flipped", lambda v: not v, "either")]
    if isinstance(value, (int, np.integer)):
        return [("negative", lambda v: -1, "refuse"), ("huge", lambda v: 2**70, "refuse"),
                ("fraction", lambda v: v + 0.5, "refuse"), ("text", text, "refuse"),
                ("bool", lambda v: True, "refuse"), ("none", lambda v: None, "refuse"),
                ("plus-one", lambda v: v + 1, "either")]
    if isinstance(value, (float, np.floating)):
        return [("nan", nan, "either" if field.startswith("validation") else "refuse"),
                ("text", text, "refuse"), ("list", lambda v: [v], "refuse"),
                ("negative", lambda v: -abs(v) - 1, "either")]
    if isinstance(value, str):
        return [("unknown-name", text, "refuse"), ("number", lambda v: 3, "refuse"),
                ("none", lambda v: None, "refuse"),
                ("other-name", lambda v: "logistic" if v != "logistic" else "tanh", "either")]
    if value is None:
        return [("text", text, "refuse"), ("number", lambda v: 1.5, "either")]
    return []


# Constructor parameters: checked by the estimators' own constraints, the same for every
# model; mutated on two models only.
PARAMS_MUTATED_IN = ("adam-regressor", "sgd-classifier")


def _fields(model, name):
    """(field path, value) of every array and scalar a fitted model holds."""
    params = set(type(model)._get_param_names())
    for attribute, value in vars(model).items():
        if attribute in params and name not in PARAMS_MUTATED_IN:
            continue
        if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            yield attribute, value
            for i, item in enumerate(value):
                yield f"{attribute}[{i}]", item
        elif isinstance(value, list):
            yield attribute, value
            if value:
                yield f"{attribute}[0]", value[0]
        elif attribute in ("_optimizer", "_label_binarizer"):
            yield attribute, value
            for key, item in vars(value).items():
                yield f"{attribute}.{key}", item
        else:
            yield attribute, value


def _mutations(model, name):
    params = set(type(model)._get_param_names())
    for field, value in _fields(model, name):
        if isinstance(value, np.ndarray):
            found = _array_mutations(value)
            if field == "gradient_norms_":  # NaN: not recorded (files from before they were)
                found = [(label, m, "either" if label == "nan" else e) for label, m, e in found]
        elif isinstance(value, list):
            found = [("remove-item", lambda v: v[:-1], "either" if "curve" in field
                      or "scores" in field else "refuse"),
                     ("text", lambda v: "bogus", "refuse")]
        elif isinstance(value, (np.random.RandomState, np.dtype)) or hasattr(value, "__dict__"):
            found = [("text", lambda v: "bogus", "refuse"), ("none", lambda v: None, "refuse")]
        elif field == "_validation_scored_by":  # any text may name a scoring (a repr)
            found = [("text", lambda v: "bogus", "either"), ("number", lambda v: 3, "refuse")]
        else:
            found = _scalar_mutations(field, value)
        if "[" not in field and "." not in field:
            found = found + [("removed", lambda v: _REMOVE, "either" if field in (
                "_random_state", "feature_names_in_", "_loss", "_validation_scored_by",
                "gradient_norms_", "validation_loss_curve_")
                else "refuse")]  # files of earlier fits hold no _loss: the parameters tell
            # it; nor the norms and validation losses recorded since (not recorded: NaN);
            # nor the scoring of the validation scores: a warm start takes them as its
        for label, mutate, expect in found:
            # a parameter may take many values; the estimator's constraints decide, and a
            # refusal names the parameter
            yield field, label, mutate, "param" if field in params else expect


def test_every_field_mutated_is_refused_or_safe(tmp_path, models, data):
    """Every array and scalar of six fitted models, mutated one at a time (shape, length,
    dtype, byte order, NaN, order, type, range, removal): refused with a message naming the
    field where the value is invalid, and otherwise a model that predicts and trains on."""
    cases = []
    for name, model in models.items():
        for field, label, mutate, expect in _mutations(model, name):
            case = _case(f"{name}--{field}--{label}", model, label, field, expect)
            try:
                (tmp_path / case["file"]).write_bytes(_mutated(model, field, mutate))
            except (TypeError, ValueError, AttributeError):
                continue  # a value skops cannot write
            cases.append(case)
    assert len(cases) > 500
    results = _run_child(tmp_path, cases, data)
    problems = []
    for case in cases:
        result = results[case["file"]]
        outcome, message = result["outcome"], result["message"]
        named = f"'{case['field'].split('[')[0].split('.')[0]}" in message
        if case["expect"] == "refuse" and (outcome != "refused" or not named):
            problems.append(f"{case['file']}: {outcome} ({message[:300]})")
        elif case["expect"] == "param" and outcome == "refused" and not named:
            problems.append(f"{case['file']}: refused, not naming the field ({message[:300]})")
        elif outcome not in ("refused", "ok", "partial_fit refused"):
            problems.append(f"{case['file']}: {outcome} ({message[:300]})")
    assert not problems, "\n".join(problems)
    refused = sum(results[c["file"]]["outcome"] == "refused" for c in cases)
    assert refused > 0.8 * len(cases)


def test_messages_name_the_field_and_the_expectation(tmp_path, models):
    model = models["sgd-classifier"]
    checks = [
        ("coefs_[1]", lambda a: np.asfortranarray(np.vstack([a, a])), r"field 'coefs_\[1\]' "
         r"has shape \(6, 3\), expected \(3, 3\)"),
        ("intercepts_[0]", lambda a: a.astype(np.float64), r"field 'intercepts_\[0\]' has "
         r"dtype <f8 \(float64\), expected float32"),
        ("_optimizer.velocity", lambda a: np.full_like(a, np.inf), r"field "
         r"'_optimizer.velocity' holds NaN or infinite values"),
        ("n_outputs_", lambda v: 2, r"field 'coefs_\[1\]' has shape \(3, 3\), expected "
         r"\(3, 2\)"),
        ("_label_binarizer.y_type_", lambda v: "binary", r"field 'classes_' has 3 classes, "
         r"which a 'binary' target cannot have"),
        ("t_", lambda v: -1, r"field 't_' is -1, expected an integer in \[0, "),
        ("out_activation_", lambda v: "exp", r"field 'out_activation_' is 'exp', expected "
         r"'softmax'"),
        ("_optimizer", lambda o: copy.copy(models["adam-regressor"]._optimizer),
         r"field '_optimizer.dtype' is dtype\('float64'\), expected the network's dtype "
         r"float32"),
    ]
    for field, mutate, message in checks:
        (tmp_path / "m.skops").write_bytes(_mutated(model, field, mutate))
        with pytest.raises(ModelFileError, match=message):
            load_model(tmp_path / "m.skops")


def test_estimators_inside_pipelines_are_checked(tmp_path, models, data):
    """A meta-estimator's fastfnn estimators are checked too, the message saying where."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _ = data
    pipeline = make_pipeline(StandardScaler(), FNNRegressor(**TINY, solver="adam")).fit(X, y)
    save_model(pipeline, tmp_path / "ok.skops")
    np.testing.assert_array_equal(load_model(tmp_path / "ok.skops").predict(X),
                                  pipeline.predict(X))
    bad = copy.deepcopy(pipeline)
    bad[-1]._optimizer.v = -bad[-1]._optimizer.v - 1
    members, _ = _members(skops.io.dumps(bad))
    (tmp_path / "bad.skops").write_bytes(_signed(members))
    with pytest.raises(ModelFileError, match=r"field 'steps\[1\]\[1\]._optimizer.v' holds "
                                             "negative values"):
        load_model(tmp_path / "bad.skops")
    # an object array holds an estimator as a list does (and the pipeline predicts with it)
    bad.steps = np.array([None, None], dtype=object)
    bad.steps[:] = [tuple(step) for step in pipeline.steps]
    bad.steps[1] = ("fnnregressor", copy.deepcopy(pipeline[-1]))
    bad.steps[1][1].intercepts_[0][:] = np.nan
    members, _ = _members(skops.io.dumps(bad))
    (tmp_path / "bad.skops").write_bytes(_signed(members))
    with pytest.raises(ModelFileError, match=r"field 'steps\[1\]\[1\].intercepts_\[0\]' "
                                             "holds NaN"):
        load_model(tmp_path / "bad.skops")


# ---- random changes to the format -----------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "adam.skops"
    save_model(models["adam-classifier"], path)
    return path.read_bytes()


def _json_nodes(node, found):
    """The JSON leaves of a skops schema: dicts with a 'content' that is a JSON text."""
    if isinstance(node, dict):
        if node.get("is_json"):
            found.append(node)
        for value in node.values():
            _json_nodes(value, found)
    elif isinstance(node, list):
        for value in node:
            _json_nodes(value, found)
    return found


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=8), st.lists(st.integers(-3, 30), max_size=3))


@st.composite
def format_changes(draw):
    """A change to a member of the file: bytes overwritten, cut or added, a .npy header's
    shape or dtype, a value of the schema, a member's compression."""
    kind = draw(st.sampled_from(["bytes", "npy-shape", "npy-dtype", "schema", "cut"]))
    return kind, draw(st.integers(0, 10**6)), draw(st.binary(min_size=1, max_size=8)), \
        draw(JSON_VALUES), draw(st.lists(st.integers(0, 40), max_size=3).map(tuple)), \
        draw(st.sampled_from(["<f4", "<f8", ">f8", "<i8", "|u1", "<c16", "|b1"]))


def _apply(members, change):
    kind, position, blob, json_value, shape, dtype = change
    names = sorted(members)
    if kind == "schema":
        try:  # the schema as JSON (unless an earlier change broke it)
            schema = json.loads(members["schema.json"])
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return
        nodes = _json_nodes(schema, [])
        nodes[position % len(nodes)]["content"] = json.dumps(json_value)
        members["schema.json"] = json.dumps(schema).encode()
        return
    npys = [name for name in names if name.endswith(".npy")]
    name = npys[position % len(npys)] if kind.startswith("npy") else names[position % len(names)]
    content = members[name]
    at = position % len(content) if content else 0  # an earlier cut may have emptied it
    if kind == "bytes":
        members[name] = content[:at] + blob + content[at + len(blob):]
    elif kind == "cut":
        members[name] = content[:at]
    else:
        header_end = content.find(b"\n") + 1
        try:  # the .npy header: a dict literal (unless an earlier change broke it)
            fields = ast.literal_eval(content[10:header_end].decode("latin1"))
        except (SyntaxError, ValueError):
            return
        if not isinstance(fields, dict):
            return
        if kind == "npy-shape":
            fields["shape"] = shape
        else:
            fields["descr"] = dtype
        text = repr(fields)
        text += " " * (-(len(text) + 11) % 64) + "\n"
        members[name] = content[:8] + len(text).to_bytes(2, "little") + text.encode() + \
            content[header_end:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(format_changes(), min_size=1, max_size=3))
@example(changes=[("cut", 0, b"\x00", None, (), "<f4")] * 2)  # a member cut empty, then cut
def test_random_changes_to_the_format_are_refused_or_safe(tmp_path_factory, saved, data,
                                                          changes):
    """Random changes (checksums recomputed) give a ModelFileError or a model that predicts
    and trains on; nothing else escapes load_model."""
    path = tmp_path_factory.getbasetemp() / "fuzzed.skops"
    path.write_bytes(_rewritten(saved, lambda members: [_apply(members, c) for c in changes]))
    try:
        model = load_model(path)
    except ModelFileError:
        return
    X, _, labels = data
    assert np.isin(model.predict(X), model.classes_).all()
    try:
        model.partial_fit(X, labels == "bee")
    except ValueError:  # e.g. a changed parameter that partial_fit refuses to continue with
        pass


# ---- zip bombs --------------------------------------------------------------------------------------


def _peak_while_loading(path):
    """(what load_model raised or returned, peak bytes traced while it ran)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        try:
            outcome = load_model(path)
        except Exception as exc:  # noqa: BLE001 - the caller asserts what it was
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BOMB_BYTES = 256 * 2**20


def test_deflate_bomb_is_refused_before_decompressing(tmp_path, saved):
    """A member of 256 MiB of zeros deflated into a few hundred KiB: refused from the sizes
    the zip directory declares, with almost no memory (it used to be decompressed in full)."""
    out = io.BytesIO(saved)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive:
        header = b"\x93NUMPY\x01\x00" + b"v\x00" + (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % (BOMB_BYTES // 8)
        ).ljust(117).encode() + b"\n"
        with archive.open("0.npy", "w", force_zip64=True) as member:
            member.write(header)
            zeros = bytes(2**20)
            for _ in range(BOMB_BYTES // 2**20):
                member.write(zeros)
    (tmp_path / "bomb.skops").write_bytes(out.getvalue())
    assert len(out.getvalue()) < 2**20
    outcome, peak = _peak_while_loading(tmp_path / "bomb.skops")
    assert isinstance(outcome, ModelFileError), outcome
    assert "nothing was decompressed" in str(outcome)
    assert peak < 8 * 2**20, f"loading the bomb took {peak / 2**20:.0f} MiB"


def test_array_header_larger_than_its_data_is_refused(tmp_path, saved):
    """A .npy member whose header declares 2 GiB of float64 over a few bytes of data (NumPy
    allocates what the header says before reading): refused, nothing allocated."""

    def lie(members):
        name = next(n for n in sorted(members) if n.endswith(".npy"))
        text = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % 2**28
        members[name] = b"\x93NUMPY\x01\x00v\x00" + text.ljust(117).encode() + b"\n" + \
            bytes(64)

    (tmp_path / "lie.skops").write_bytes(_rewritten(saved, lie))
    outcome, peak = _peak_while_loading(tmp_path / "lie.skops")
    assert isinstance(outcome, ModelFileError), outcome
    assert "declares shape (268435456,)" in str(outcome)
    assert peak < 8 * 2**20, f"loading took {peak / 2**20:.0f} MiB"


def test_member_larger_than_its_directory_entry_is_not_decompressed(tmp_path, saved):
    """A member whose zip directory entry declares 1 KiB over 64 MiB of deflated zeros (CRC
    of the first KiB, so zip's own check passes): at most the declared size is decompressed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(saved)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("lie.bin", bytes(64 * 2**20))
    data = bytearray(out.getvalue())
    import zlib

    crc_small = zlib.crc32(bytes(1024)).to_bytes(4, "little")
    for signature, crc_at, size_at in ((b"PK\x01\x02", 16, 24), (b"PK\x03\x04", 14, 22)):
        start = data.rfind(signature + b"")  # the last entry of each kind: lie.bin's
        while data[start + (46 if signature == b"PK\x01\x02" else 30):][:7] != b"lie.bin":
            start = data.rfind(signature, 0, start)
        data[start + crc_at:start + crc_at + 4] = crc_small
        data[start + size_at:start + size_at + 4] = (1024).to_bytes(4, "little")
    (tmp_path / "liar.skops").write_bytes(bytes(data))
    outcome, peak = _peak_while_loading(tmp_path / "liar.skops")
    assert isinstance(outcome, ModelFileError), outcome
    assert peak < 8 * 2**20, f"loading took {peak / 2**20:.0f} MiB"


def test_loading_a_real_model_takes_a_small_multiple_of_its_size(tmp_path, data):
    """A model of 3 x 4 MB of arrays (weights, Adam's two moments): loading holds the file
    and at most twice what it holds, decompressed."""
    rng = np.random.RandomState(0)
    X = rng.randn(12, 2000)
    model = FNNRegressor(hidden_layer_sizes=(256,), solver="adam", max_iter=1,
                         random_state=0).fit(X, X[:, 0])
    save_model(model, tmp_path / "big.skops")
    with zipfile.ZipFile(tmp_path / "big.skops") as archive:
        content = sum(info.file_size for info in archive.infolist())
    assert content > 10 * 2**20
    outcome, peak = _peak_while_loading(tmp_path / "big.skops")
    np.testing.assert_array_equal(outcome.predict(X), model.predict(X))
    # the file, skops's buffers of the members and the arrays built from them
    size = (tmp_path / "big.skops").stat().st_size
    assert peak < size + 2.5 * content, \
        f"{peak / 2**20:.0f} MiB to load {content / 2**20:.0f} MiB from {size / 2**20:.0f} MiB"
