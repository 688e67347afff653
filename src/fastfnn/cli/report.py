"""``fastfnn fit --report FILE.json``: everything the run printed, for scripts.

The report holds the command's parameters, the network's parameters, the data (its path, a
SHA-256 fingerprint of the file, rows and columns), the split or the folds, the training (epochs,
seconds, how it stopped), the metrics of the network and of the two references (the linear model
and the trivial one; with ``--cv`` their mean, spread and per-fold values), the confusion matrix
of a classifier, and the versions of fastfnn, Python, NumPy, pandas and scikit-learn.
"""

import hashlib
import json
import os

#: Version of the report's layout.
REPORT_VERSION = 1


def fingerprint(path):
    """{'path', 'bytes', 'sha256'} of the data file ``path`` (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": os.fspath(path), "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def versions():
    """The versions of what trained the model."""
    import platform

    import numpy
    import pandas
    import sklearn

    from fastfnn import __version__

    return {"fastfnn": __version__, "python": platform.python_version(),
            "numpy": numpy.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__}


def options(args):
    """The command's options as JSON values (functions and other objects left out)."""
    plain = {}
    for key, value in sorted(vars(args).items()):
        if key in ("func",):
            continue
        if isinstance(value, tuple):
            value = list(value)
        if value is None or isinstance(value, (str, int, float, bool, list)):
            plain[key] = value
    return plain


def network_params(fnn):
    """The fitted network's parameters (get_params), JSON-friendly."""
    params = {}
    for key, value in fnn.get_params().items():
        if isinstance(value, tuple):
            value = list(value)
        if value is None or isinstance(value, (str, int, float, bool, list, dict)):
            params[key] = value
        else:
            params[key] = repr(value)
    return params


def write(path, report):
    """Write ``report`` (a dict) as indented JSON to the file ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_finite(report), f, indent=2, ensure_ascii=False)
        f.write("\n")


def _finite(value):
    """NaN and infinities (not JSON) as None, NumPy scalars as Python numbers."""
    import math

    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def model_record(args, data, label, path, fnn, run):
    """The model file's metadata and the --report's content (one dict, both written), from the
    run's ``data`` (fit's table), the fitted network and ``run`` (split or folds, training,
    metrics)."""
    from .training import imputed_kinds

    record = dict(kinds=data.kinds, imputed=imputed_kinds(data.features),
                  targets=data.targets, task="classification" if args.classify else "regression",
                  dtype=args.dtype, data=label, metrics=run["metrics"].get("network", {}),
                  extra={"id": args.id, "dropped": list(args.drop or []),
                         "reference_metrics": {k: v for k, v in run["metrics"].items()
                                               if k != "network"},
                         "parameters": network_params(fnn),
                         "data_file": fingerprint(path), "rows": data.rows,
                         "versions": versions(),
                         "training": run["training"], **{k: run[k] for k in run
                                                         if k not in ("metrics", "training")}})
    return record
