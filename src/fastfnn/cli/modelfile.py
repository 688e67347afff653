"""The model file: written by ``fastfnn fit --save``, checked and loaded by ``fastfnn predict``."""

import os

from fastfnn import __version__

from .options import CLIError

MODEL_MAGIC = b"FASTFNN-MODEL 1\n"  # first line of a model file, checked before unpickling


def save_model(path, model, feature_names, target_name, args, label, metrics):
    """Write the marker line, then the record (the fitted ``model`` and what ``predict`` needs)."""
    import joblib
    import sklearn

    record = {
        "format": "fastfnn-model",
        "format_version": 1,
        "fastfnn_version": __version__,
        "sklearn_version": sklearn.__version__,
        "task": "classification" if args.classify else "regression",
        "feature_names": list(feature_names),
        "target_name": target_name,
        "dtype": args.dtype,
        "data": label,
        "test_metrics": metrics,
        "model": model,
    }
    with open(path, "wb") as f:
        f.write(MODEL_MAGIC)
        joblib.dump(record, f)


def load_model(path):
    """The record saved by ``fastfnn fit --save`` (a dict; the estimator is ``record['model']``).

    The first line must be fastfnn's marker, checked before anything is unpickled."""
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            if f.read(len(MODEL_MAGIC)) != MODEL_MAGIC:
                raise CLIError(f"{path}: not a fastfnn model file (write one with "
                               "'fastfnn fit --save')")
            import joblib

            record = joblib.load(f)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except CLIError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt pickle
        raise CLIError(f"{path}: damaged fastfnn model file ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != "fastfnn-model":
        raise CLIError(f"{path}: not a fastfnn model file")
    return record
