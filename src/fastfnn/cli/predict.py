"""The ``fastfnn predict`` command: predictions of a saved model for the rows of a table."""

import argparse

from . import columns, modelfile, streaming
from .data import names_list, read_table
from .options import CLIError, Staged, check_outputs


def add_parser(sub):
    p = sub.add_parser(
        "predict", help="predict with a model saved by 'fastfnn fit --save'",
        description="Write one prediction per data row as CSV (one column per training target, "
                    "named after it; with --proba one column per class). The model's feature "
                    "columns are taken from DATA by name, in any order; other columns (the "
                    "target, ids...) are ignored. A file whose header names none of the "
                    "features but has exactly their number of columns is read in training "
                    "order. A model trained with --id writes that column first, as DATA has it. "
                    "Model files are skops files with a checksum: loading one cannot run "
                    "code.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastfnn fit --save'")
    p.add_argument("data", metavar="DATA", help="CSV file with a header row, or .parquet")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write to FILE (default, or '-': stdout); never an input file")
    p.add_argument("--proba", action="store_true",
                   help="classifiers: the probability of each class instead of the label")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="predict a table larger than memory partition by partition "
                        "(fastfnn.scaling, needs Dask: pip install \"fastfnn[dask]\"), in the "
                        "input's row order, to --output (required; '-': stdout). Default: on "
                        "when DATA is a glob pattern ('dir/part-*.csv') or a file over 1 GiB. "
                        "The columns are named as without --stream")
    p.add_argument("--partition-size", default="16MB", metavar="SIZE",
                   help="bytes per partition of a CSV file with --stream (default 16MB)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args):
    """``fastfnn predict``: predictions of a saved model for the rows of a table."""
    import numpy as np

    reason = streaming.stream_reason(args.data, args.stream)
    if reason is not None:
        return streaming.predict_stream(args, reason)
    check_outputs([("--output", args.output)], [("MODEL", args.model), ("DATA", args.data)],
                  allow_dash={"--output"})
    model, record = modelfile.load(args.model)
    if args.proba and record.get("task") != "classification":
        raise CLIError(f"--proba is for classifiers; {args.model} is a regression model")
    table = read_table(args.data, text=lambda header: _text_columns(header, record))
    kinds, note = _feature_kinds(table, record)
    legacy = record.get("version", 1) < 2  # text stripped, '' where missing
    X = columns.features(table, kinds, np.dtype(record.get("dtype", "float64")),
                         fills_numeric="numeric" in record.get("imputed", ["numeric"]),
                         missing_text=columns.LEGACY_MISSING_TEXT if legacy else np.nan,
                         strip_text=legacy).frame
    values = model.predict_proba(X) if args.proba else model.predict(X)
    header = modelfile.prediction_columns(record, getattr(model, "classes_", None), args.proba)
    id_column = record.get("id")
    ids = None
    if id_column is not None:
        if id_column in table.header:
            ids = table.frame[id_column].to_numpy()
            header = [id_column] + [name if name != id_column else f"predicted {name}"
                                    for name in header]
        else:
            note = (f"{table.shown} has no column {id_column!r} (the model's --id): "
                    "predictions written without it") + (f"; {note}" if note else "")
    with Staged() as staged:
        with open(staged.path(args.output or "-", "--output"), "w", encoding="utf-8",
                  newline="") as f:
            _write_csv(f, header, values, ids)
        staged.commit()
    if note:
        import sys

        print(f"fastfnn predict: note: {note}", file=sys.stderr)
    return 0


def _text_columns(header, record):
    """The columns of a DATA with ``header`` that are read as their cells' text: the model's
    text features, by name or, where :func:`_feature_kinds` takes DATA's columns in training
    order, by position; and the model's id."""
    names = record["features"]
    columns = dict(zip(names, header)) if _by_position(header, names) else {}
    text = [columns.get(name, name) for name in modelfile.text_features(record)]
    return text + ([record["id"]] if record.get("id") is not None else [])


def _by_position(header, names):
    """Whether DATA's columns are the features ``names`` in training order: its ``header``
    names none of them and has exactly their number of columns."""
    return len(header) == len(names) and not set(names) & set(header)


def _feature_kinds(table, record):
    """({DATA column: kind} in the model's feature order, note or None): by name when every
    feature is in the header; else, when the header names none of them and has exactly their
    number of columns, by position (with a note)."""
    names = record["features"]
    kinds = record.get("feature_kinds") or dict.fromkeys(names, "numeric")
    missing = [name for name in names if name not in table.header]
    if not missing:
        return {name: kinds[name] for name in names}, None
    if _by_position(table.header, names):
        numbers = [cell for cell in table.header if _is_number(cell)]
        if numbers:  # a first row of data where the names go: it would be lost
            raise CLIError(f"{table.shown}: its first row holds {numbers[0]!r} where a column "
                           "name goes: is there no header row? Add one naming the model's "
                           f"features ({names_list(names, quote=False)})")
        table.frame.columns = names  # read in training order
        return ({name: kinds[name] for name in names},
                f"{table.shown}'s column names differ from the model's features; using its "
                "columns in training order")
    raise CLIError(f"{table.shown}: missing column{'s' if len(missing) > 1 else ''} "
                   f"{names_list(missing, quote=False)} (the model's features are "
                   f"{names_list(names, quote=False)})")


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _write_csv(f, header, values, ids=None):
    import csv

    import numpy as np

    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    if values.dtype.kind == "f":  # shortest text that reads back to the same float
        rows = [[repr(float(v)) for v in row] for row in values.tolist()]
    else:
        rows = values.tolist()
    if ids is not None:
        rows = [["" if _missing(i) else i] + row for i, row in zip(ids.tolist(), rows)]
    writer.writerows(rows)


def _missing(value):
    return value is None or (isinstance(value, float) and value != value)
