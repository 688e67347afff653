"""The model file: written by ``fastfnn fit --save`` (and ``search --save``), read by
``predict``, ``info`` and ``export``.

It is a file of :func:`fastfnn.save_model` (a skops file with a checksum: loading it cannot run
code) holding the fitted pipeline, with what the commands need beside it as metadata: the
feature columns and their kinds, the target names, the task, the dtype and the test metrics.
The metadata is untrusted input like the rest of the file: each field the commands read is
checked on loading, and a bad one is an error naming it. Files of the earlier pickle-based
format are refused, never unpickled.
"""

import os
import stat

from .options import CLIError

#: Key of the command line's metadata in a model file, and its version.
METADATA_KEY = "fastfnn_cli"
METADATA_VERSION = 2  # 2: text cells as pandas reads them (NaN where missing); 1: stripped, ''

#: The first line of the earlier, pickle-based model files.
PICKLE_MAGIC = b"FASTFNN-MODEL 1\n"


def save(path, model, *, kinds, imputed, targets, task, dtype, data, metrics, extra=None):
    """Write ``model`` and its metadata to ``path`` (a temporary file of the caller).

    The metadata (``fastfnn.load_model(path, return_metadata=True)[1]["fastfnn_cli"]``):
    ``features`` (in model order) and ``feature_kinds`` ('numeric' or 'categorical'),
    ``imputed``, ``targets``, ``task``, ``dtype``, ``data``, ``test_metrics`` (the network's, as
    numbers), and from ``extra``: ``id`` (the --id column or None), ``dropped``,
    ``reference_metrics`` (the linear model's and the trivial one's), ``parameters`` (the
    network's), ``data_file`` (path, bytes, SHA-256), ``rows``, ``versions``, ``training``
    (with --cv its ``refit`` on every row), and what the metrics were measured on: ``split``
    (fit), ``cv`` (fit --cv), ``search`` (search: its kind, folds and best parameters; the
    metrics the best candidate's formatted mean) or ``validation`` (fit --stream: the held-out
    partitions' rows and the best epoch; the metrics formatted). :func:`load` checks each
    field against :data:`FIELDS`."""
    from fastfnn import __version__, save_model

    metadata = {METADATA_KEY: {
        "version": METADATA_VERSION,
        "fastfnn_version": __version__,
        "features": list(kinds),
        "feature_kinds": dict(kinds),
        "imputed": list(imputed),
        "targets": list(targets),
        "task": task,
        "dtype": dtype,
        "data": data,
        "test_metrics": dict(metrics),
        **(extra or {}),
    }}
    save_model(model, path, metadata=metadata)


def text_features(record):
    """The features a model's metadata ``record`` holds as text (every kind but 'numeric'),
    in model order."""
    kinds = record.get("feature_kinds") or {}
    return [name for name in record["features"] if kinds.get(name, "numeric") != "numeric"]


def prediction_columns(record, classes, proba=False):
    """The names of the columns ``predict`` writes for a model of metadata ``record`` whose
    classes are ``classes``: the targets'; with ``proba`` one per class, 'TARGET=CLASS' (several
    targets, multilabel: 'TARGET=1', the probability of each label)."""
    targets = record["targets"]
    if not proba:
        return list(targets)
    if len(targets) > 1:
        return [f"{name}=1" for name in targets]
    return [f"{targets[0]}={c}" for c in classes]


def load(path):
    """(model, metadata) of a model file written by ``fastfnn fit --save``; CLIError on a
    missing, unreadable, damaged, foreign or pickle-based file, and on metadata of which a
    field is missing, of the wrong type or shape, or at odds with the model (naming it)."""
    from fastfnn import load_model

    shown = os.fspath(path)
    _refuse_pickles(shown)
    try:
        model, metadata = load_model(path, return_metadata=True)
    except FileNotFoundError:
        raise CLIError(f"{shown}: no such file") from None
    except PermissionError:
        raise CLIError(f"{shown}: cannot read the file (permission denied)") from None
    except IsADirectoryError:
        raise CLIError(f"{shown}: is a directory, not a model file") from None
    except OSError as exc:
        raise CLIError(f"{shown}: cannot read the file ({exc.strerror or exc})") from None
    except ValueError as exc:  # fastfnn's ModelFileError: not a model file, damaged...
        raise CLIError(" ".join(str(exc).split()).rstrip(".")) from None
    record = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("features"), list):
        raise CLIError(f"{shown}: a fastfnn model file, but not one written by 'fastfnn fit "
                       "--save' (it lacks the feature columns); use it from Python with "
                       "fastfnn.load_model")
    problem = record_problem(record) or _model_problem(record, model)
    if problem is not None:
        field, what = problem
        raise CLIError(f"{shown}: the model file's command-line record: field {field!r} {what}")
    return model, record


def _refuse_pickles(shown):
    if os.path.isdir(shown):
        raise CLIError(f"{shown}: is a directory, not a model file")
    try:  # not blocking, and only a regular file is read (a FIFO, a device: load() says)
        fd = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return  # reported by load()
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return
        start = f.read(len(PICKLE_MAGIC))
    if start == PICKLE_MAGIC:
        raise CLIError(f"{shown}: a model file of an earlier fastfnn, stored as a pickle, which "
                       "is not loaded because unpickling can run code; retrain the model with "
                       "'fastfnn fit ... --save' to get a safe model file")


# ---- the record's schema ------------------------------------------------------------------------
# Each field the commands read, with what it must hold. Only 'features' and 'targets' are in
# every record: records of search, of fit --stream and of earlier versions lack some others.

KINDS = ("numeric", "categorical")
TASKS = ("regression", "classification")
DTYPES = ("float64", "float32")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _texts(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _held(value):
    """What a JSON ``value`` is, in words: 'null', 'a list', "the text 'x'"..."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object"


def _is(test, expected):
    """The check of a value that passes ``test``: None, or 'is not EXPECTED (it holds ...)'."""
    return lambda value: None if test(value) else f"is not {expected} (it holds {_held(value)})"


def _one_of(choices):
    """The check of a value that is one of ``choices``."""
    return lambda value: None if value in choices else (
        f"is {_held(value)}, not one of {', '.join(map(repr, choices))}")


def _names(value):
    """The check of a list of column names: not empty, none twice."""
    if not _texts(value):
        return f"is not a list of column names (it holds {_held(value)})"
    if not value:
        return "is an empty list"
    if len(set(value)) < len(value):
        return "names a column twice"
    return None


def _scores(strings):
    """The check of {metric: number or None}; with ``strings`` a metric may be its formatted
    number (records of metadata version 1, of search and of fit --stream)."""
    def check(value):
        if not isinstance(value, dict):
            return f"is not an object of metrics (it holds {_held(value)})"
        for key, score in value.items():
            if not (score is None or _number(score) or (strings and isinstance(score, str))):
                return f"holds {key!r}: {_held(score)}, not a number"
        return None
    return check


def _references(value):
    """The check of {model: {metric: number or None}}."""
    if not isinstance(value, dict):
        return f"is not an object of models' metrics (it holds {_held(value)})"
    for name, scores in value.items():
        problem = _scores(strings=False)(scores)
        if problem is not None:
            return f"of {name!r} {problem}"
    return None


def _object(**fields):
    """The check of an object whose ``fields`` ({name: check}), where present, pass."""
    def check(value):
        if not isinstance(value, dict):
            return f"is not an object (it holds {_held(value)})"
        for name, field_check in fields.items():
            problem = field_check(value[name]) if name in value else None
            if problem is not None:
                return f"has {name!r} that {problem}"
        return None
    return check


_COUNT = _is(_count, "a count")
_FOLDS = _is(lambda v: _count(v, 2), "a count of folds")
_NUMBER = _is(_number, "a number")
_TEXT = _is(lambda v: isinstance(v, str), "a text")
_OBJECT = _is(lambda v: isinstance(v, dict), "an object")

#: {field: check} of the record's fields: ``check(value)`` is None, or what is wrong with it.
FIELDS = {
    "features": _names,
    "targets": _names,
    "version": _is(lambda v: _count(v, 1), "a version number"),
    "fastfnn_version": _TEXT,
    "feature_kinds": _OBJECT,
    "imputed": _is(_texts, "a list of kinds"),
    "task": _one_of(TASKS),
    "dtype": _one_of(DTYPES),
    "data": _TEXT,
    "test_metrics": _scores(strings=True),
    "reference_metrics": _references,
    "id": _is(lambda v: v is None or isinstance(v, str), "a column name or null"),
    "dropped": _is(_texts, "a list of column names"),
    "parameters": _OBJECT,
    "data_file": _object(path=_TEXT, bytes=_COUNT, sha256=_TEXT),
    "rows": _COUNT,
    "versions": _is(lambda v: isinstance(v, dict) and all(isinstance(x, str)
                                                          for x in v.values()),
                    "an object of version texts"),
    "training": _object(iterations=_COUNT, unit=_TEXT, seconds=_NUMBER,
                        notes=_is(_texts, "a list of texts"),
                        refit=_object(iterations=_COUNT, unit=_TEXT, seconds=_NUMBER)),
    "split": _object(test_rows=_COUNT, train_rows=_COUNT),
    "cv": _object(folds=_FOLDS),
    "search": _object(kind=_TEXT, folds=_FOLDS, parameters=_OBJECT),
    "validation": _object(rows=_COUNT, partitions=_COUNT,
                          best_epoch=_is(lambda v: v is None or _count(v, 1),
                                         "an epoch or null")),
}
#: The fields every record holds.
REQUIRED = ("features", "targets")


def record_problem(record):
    """(field, what is wrong) of the first field of the command-line ``record`` that is
    missing, of the wrong type or shape, or at odds with another; None when every field the
    commands read is sound."""
    for field in REQUIRED:
        if field not in record:
            return field, "is missing"
    for field, check in FIELDS.items():
        problem = check(record[field]) if field in record else None
        if problem is not None:
            return field, problem
    features = record["features"]
    kinds = record.get("feature_kinds")
    if kinds is not None:
        if set(kinds) != set(features):
            return "feature_kinds", "does not give the kind of each feature, and only theirs"
        odd = next((k for k in kinds.values() if k not in KINDS), None)
        if odd is not None:
            return "feature_kinds", f"holds the kind {_held(odd)}, not one of " + ", ".join(
                map(repr, KINDS))
    if record.get("id") in features:
        return "id", f"is {record['id']!r}, one of the features"
    return None


def _model_problem(record, model):
    """(field, what is wrong) where the record disagrees with the ``model`` it came with (its
    feature columns, whether it classifies, its outputs); None when they agree."""
    from sklearn.base import is_classifier

    from .progress import fnn_estimators

    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != record["features"]:
        return "features", "does not name the model's feature columns in the model's order"
    classifier = is_classifier(model)
    task = record.get("task")
    if task is not None and classifier != (task == "classification"):
        return "task", (f"is {task!r}, but the model is a "
                        f"{'classifier' if classifier else 'regressor'}")
    fnn = next(reversed(list(fnn_estimators(model))), None)
    outputs = getattr(fnn, "n_outputs_", None)
    if outputs is None:
        return None
    if classifier:  # several targets (multilabel): one logistic output per label
        outputs = outputs if fnn.out_activation_ == "logistic" and outputs > 1 else 1
    targets = len(record["targets"])
    if outputs != targets:
        return "targets", (f"names {targets} target{'s' * (targets > 1)}, but the model "
                           f"predicts {outputs}")
    return None
