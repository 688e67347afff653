"""The ``fastfnn predict`` command: predictions of a saved model for the rows of a CSV file."""

import sys

from .data import read_csv
from .modelfile import load_model
from .options import CLIError, Staged, check_writable


def add_parser(sub):
    p = sub.add_parser(
        "predict", help="predict with a model saved by 'fastfnn fit --save'",
        description="Write one prediction per data row as CSV (one column named after the "
                    "training target). The model's feature columns are taken from DATA by name, "
                    "in any order, other columns (the target, ids...) are ignored; a file whose "
                    "names differ must have exactly the model's feature count, in training order. "
                    "Model files are pickles: load only files you trust.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastfnn fit --save'")
    p.add_argument("data", metavar="DATA", help="CSV file with a header row")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args):
    """``fastfnn predict``: predictions of a saved model for the rows of a CSV file."""
    import csv
    import io

    import numpy as np

    if args.output:
        check_writable("--output", args.output)
    record = load_model(args.model)
    table = read_csv(args.data)
    columns, note = _feature_columns(table, record, args.data)
    X = table.floats(columns).astype(record["dtype"])
    pred = record["model"].predict(X)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([record["target_name"]])
    for value in pred:
        if isinstance(value, (float, np.floating)):
            value = repr(float(value))  # shortest text that reads back to the same float
        writer.writerow([value])
    if args.output:
        with Staged() as staged:
            with open(staged.path(args.output), "w", encoding="utf-8", newline="") as f:
                f.write(out.getvalue())
            staged.commit()
    else:
        sys.stdout.write(out.getvalue())
    if note:
        print(f"fastfnn predict: note: {note}", file=sys.stderr)
    return 0


def _feature_columns(table, record, path):
    """(column positions of the model's features in DATA, note or None): by name when every
    feature name is in the header; else, if DATA has exactly the model's feature count and no
    feature name at another position, in training order (with a note)."""
    names = record["feature_names"]
    if all(name in table.header for name in names):
        return [table.header.index(name) for name in names], None
    moved = [n for i, n in enumerate(table.header) if n in names and names.index(n) != i]
    if len(table.header) == len(names) and not moved:
        return list(range(len(names))), (f"{path}'s column names differ from the model's "
                                         "features; using its columns in training order")
    missing = [n for n in names if n not in table.header]
    raise CLIError(
        f"{path}: {len(table.header)} columns, but the model needs {len(names)} features "
        f"(missing by name: {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); give "
        f"the columns named as in training, or exactly {len(names)} columns in training order")
