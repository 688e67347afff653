"""The model file: written by ``fastfnn fit --save``, read by ``predict`` and ``export``.

It is a file of :func:`fastfnn.save_model` (a skops file with a checksum: loading it cannot run
code) holding the fitted pipeline, with what the commands need beside it as metadata: the
feature columns and their kinds, the target names, the task, the dtype and the test metrics.
Files of the earlier pickle-based format are refused, never unpickled.
"""

import os

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
    network's), ``data_file`` (path, bytes, SHA-256), ``rows``, ``versions``, ``training``,
    ``split`` or ``cv``."""
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


def load(path):
    """(model, metadata) of a model file written by ``fastfnn fit --save``; CLIError on a
    missing, unreadable, damaged, foreign or pickle-based file."""
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
    return model, record


def _refuse_pickles(shown):
    if os.path.isdir(shown):
        raise CLIError(f"{shown}: is a directory, not a model file")
    try:
        with open(shown, "rb") as f:
            start = f.read(len(PICKLE_MAGIC))
    except OSError:
        return  # reported by load()
    if start == PICKLE_MAGIC:
        raise CLIError(f"{shown}: a model file of an earlier fastfnn, stored as a pickle, which "
                       "is not loaded because unpickling can run code; retrain the model with "
                       "'fastfnn fit ... --save' to get a safe model file")
