"""The ``fastfnn fit`` command: train on a table, report test metrics, save and plot."""

import argparse
import time

from fastfnn import HIDDEN_ACTIVATIONS, REGRESSION_LOSSES, SCHEDULES, SOLVERS

from . import columns, metrics, modelfile, report, streaming, training
from .data import DATASETS, DEFAULT_DATASET, names_list, read_table, resolve_data
from .options import (CLIError, Staged, batch_size, check_outputs, column_names, dropout,
                      hidden_sizes, number, scorer_task, scoring)


def add_parser(sub):
    names = ", ".join(DATASETS)
    p = sub.add_parser(
        "fit", help="train a network on a CSV or Parquet file and report test metrics",
        description="Train an FNNRegressor (or FNNClassifier with --classify) on a table (CSV "
                    "with a header row, or Parquet; target = last column unless --target), hold "
                    "out a test split (or cross-validate with --cv), show progress, then print "
                    "the training time, throughput and test metrics of the network beside those "
                    "of a linear model on the same features (ridge / logistic regression) and "
                    "of the trivial one (the mean / the majority class). Numeric features are "
                    "standardised and text columns one-hot encoded (sparse, rare values "
                    "grouped), missing cells imputed (a ColumnTransformer in the saved "
                    "Pipeline, which takes what pandas.read_csv gives); for regression with the "
                    "identity output the target is standardised too (TransformedTargetRegressor) "
                    "and metrics are in its original units. By default the stochastic solvers "
                    "hold out --validation-fraction of the training rows (when that makes 50 "
                    "rows or more) and stop when the validation score stops improving.")
    p.add_argument("data", nargs="?", default=DEFAULT_DATASET, metavar="DATA",
                   help=f"CSV or .parquet file, or the name of a bundled dataset ({names}); "
                        f"default: {DEFAULT_DATASET}")
    p.add_argument("--target", type=column_names, metavar="COLUMN[,COLUMN...]",
                   help="target column(s) (default: the last one); several: multi-output "
                        "regression, or multilabel 0/1 columns with --classify")
    p.add_argument("--classify", action="store_true",
                   help="classification (FNNClassifier); the target holds class labels")
    add_column_options(p)
    _add_training_options(p.add_argument_group(
        "network and training (scikit-learn's MLP parameters)"))
    e = p.add_argument_group("evaluation")
    e.add_argument("--test-size", type=number(float, 0, True, 1), default=None, metavar="F",
                   help="share of rows held out for testing (default 0.2)")
    e.add_argument("--cv", type=number(int, 2), default=None, metavar="K",
                   help="K-fold cross-validation instead of one test split: every metric as "
                        "its mean and standard deviation over the K folds (stratified for "
                        "classes); --save then saves a model refitted on every row")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="MODEL",
                   help="save the fitted model to MODEL (a safe skops-based file)")
    o.add_argument("--plot", metavar="FILE.png",
                   help="draw a PNG (needs matplotlib): the loss per epoch, the training and "
                        "test error per epoch side by side (overfitting shows as the two "
                        "parting), the confusion matrix (classifiers) or predicted against "
                        "actual (regressors) on the test rows, and per-layer gradient norms")
    o.add_argument("--report", metavar="FILE.json",
                   help="write everything the run found as JSON, for scripts: the options, "
                        "the network's parameters, the data file's SHA-256, the split, the "
                        "training, the metrics of the network and of the references, the "
                        "confusion matrix and the versions")
    o.add_argument("--quiet", action="store_true", help="no progress bar; print results only")
    s = p.add_argument_group("data larger than memory (needs Dask: pip install \"fastfnn[dask]\")")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="train out of core: the table's partitions streamed through "
                        "partial_fit (a stochastic solver, numeric features), standardised with "
                        "the statistics of a first pass, --validation-fraction of the partitions "
                        "held out, the best epoch kept; no test split. Default: on when DATA "
                        "is a glob pattern ('dir/part-*.csv') or a file over 1 GiB")
    s.add_argument("--partition-size", default="16MB", metavar="SIZE",
                   help="bytes per partition of a CSV file with --stream (default 16MB: "
                        "the peak memory is about 300 MB of imports plus 6 partitions, "
                        "whatever the size of the data)")
    p.set_defaults(func=cmd_fit)


def add_column_options(p):
    """--drop and --id (fit and search)."""
    p.add_argument("--drop", type=column_names, metavar="COLUMN[,COLUMN...]",
                   help="columns left out of the features")
    p.add_argument("--id", metavar="COLUMN",
                   help="an identifier column: left out of the features, saved with the model "
                        "and written by 'fastfnn predict' beside each prediction")


def _add_training_options(g):
    """The estimator's parameters, the preparation of text columns and the precision."""
    g.add_argument("--hidden", type=hidden_sizes, default=(64, 64), metavar="64,64",
                   help="hidden layer widths, comma-separated (hidden_layer_sizes; default 64,64)")
    g.add_argument("--activation", default="relu", choices=HIDDEN_ACTIVATIONS,
                   help="hidden activation (default relu)")
    g.add_argument("--solver", default="adam", choices=SOLVERS,
                   help="update rule (solver; default adam)")
    g.add_argument("--epochs", type=number(int, 1), default=None, metavar="N",
                   help="maximum epochs, or L-BFGS iterations (max_iter; default 200; with "
                        "--stream: the epochs run, default 10)")
    g.add_argument("--batch-size", type=batch_size, default="auto", metavar="N",
                   help="minibatch size, or 'auto' = min(200, rows) (default auto)")
    g.add_argument("--learning-rate", type=number(float, 0, low_open=True), default=0.001,
                   metavar="LR", help="initial learning rate (learning_rate_init; default 0.001)")
    g.add_argument("--schedule", default="constant", choices=SCHEDULES,
                   help="learning-rate schedule (learning_rate; default constant)")
    g.add_argument("--alpha", type=number(float, 0), default=0.0001,
                   help="L2 penalty (default 0.0001)")
    g.add_argument("--tol", type=number(float, 0), default=None,
                   help="improvement tolerance for stopping (default 1e-4)")
    g.add_argument("--n-iter-no-change", type=number(int, 1), default=10, metavar="N",
                   help="stop after N epochs without tol improvement (default 10)")
    g.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=None,
                   help="hold out --validation-fraction of the training rows, stop when the "
                        "validation score stops improving and keep the best weights (default: "
                        "on for the stochastic solvers, sgd, adam and adamw, when the split has "
                        "enough rows)")
    g.add_argument("--validation-fraction", type=number(float, 0, True, 1), default=0.1,
                   metavar="F", help="validation share for early stopping (default 0.1)")
    g.add_argument("--dropout", type=dropout, default=None, metavar="P[,P...]",
                   help="dropout of the hidden layers' outputs while training (stochastic "
                        "solvers): one rate in [0, 1), or one per hidden layer (default 0)")
    g.add_argument("--max-grad-norm", type=number(float, 0, low_open=True), default=None,
                   metavar="NORM", help="clip each minibatch's gradient to this global L2 "
                   "norm (max_grad_norm; default: no clipping)")
    g.add_argument("--scoring", type=scoring, default=None, metavar="NAME",
                   help="what early stopping scores on the validation rows: 'loss' (the "
                        "validation loss) or a scikit-learn scorer name such as "
                        "balanced_accuracy or neg_mean_absolute_error (default: accuracy / R²)")
    g.add_argument("--loss", choices=REGRESSION_LOSSES, default=None,
                   help="regression loss (default squared_error)")
    g.add_argument("--out-activation", default=None, metavar="NAME",
                   help="regression output activation (identity, logistic, tanh, relu; "
                        "default identity)")
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="precision of the network and its training (default float64)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the splits, the initial weights and the shuffling (default 0)")
    g.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="classifiers: weigh each class inversely to its frequency "
                        "(class_weight='balanced'), for imbalanced tables")
    g.add_argument("--min-frequency", type=number(int, 1), default=5, metavar="N",
                   help="text columns: values seen in fewer than N training rows share one "
                        "'infrequent' column (default 5; 1 keeps every value)")
    g.add_argument("--max-categories", type=number(int, 2), default=5000, metavar="N",
                   help="text columns: at most N one-hot columns per text column, the rarest "
                        "values sharing the last one (default 5000)")


def cmd_fit(args):
    """``fastfnn fit``: train, report, optionally save the model, plot and write a report."""
    import numpy as np

    reason = streaming.stream_reason(args.data, getattr(args, "stream", False))
    if reason is not None:
        args.epochs = args.epochs or 10
        return streaming.fit_stream(args, reason, _describe, _write_outputs)
    args.epochs = args.epochs or 200
    args.tol = 1e-4 if args.tol is None else args.tol
    path, label, shown = resolve_data(args.data)
    _check_options(args, path)
    args.test_size = 0.2 if args.test_size is None else args.test_size
    say = (lambda *a: None) if args.quiet else print
    data = _read(args, path, shown)
    if args.cv:
        from . import crossval

        return crossval.run(args, data, path, label, shown, _describe, _write_outputs)
    ids = data.ids if data.ids is not None else np.arange(data.rows)
    X_train, X_test, y_train, y_test, _, id_test = _split(data.features.frame, data.y, args,
                                                          shown, ids)
    n_classes = len(np.unique(y_train)) if args.classify and data.y.ndim == 1 else 0
    if args.classify and data.y.ndim == 1 and n_classes < 2:
        raise CLIError(f"{shown}: the training rows hold a single class; need at least two")
    early_note = training.choose_early_stopping(args, len(X_train), n_classes)
    model, scaled_target = training.build_model(args, data.features, np.dtype(args.dtype))

    names = data.features.numeric + data.features.categorical
    target_text = (f"target {names_list(data.targets)}" + ("" if args.target else
                   " (the last column; --target to choose)"))
    say(f"data     {label}: {data.rows} rows, {len(names)} feature"
        f"{'s' if len(names) > 1 else ''}, {target_text}")
    for line in data.info + _preparation_notes(data.features) + [early_note] * bool(early_note):
        say(f"note     {line}")
    for line in data.warnings:
        print(f"note     {line}")
    say(f"split    {len(X_train)} train / {len(X_test)} test rows "
        f"(--test-size {args.test_size:g}, --seed {args.seed})")
    say(f"model    {_describe(args)}")
    say("         " + _prepared(data.features) + ("; target standardised, metrics in its units"
                                                  if scaled_target else ""))

    curves = None
    if args.plot:
        from .plot import Curves

        curves = Curves(model, X_train, y_train, X_test, y_test, args.classify)
    fnn, elapsed, startup, caught = training.train(model, X_train, y_train, args,
                                                   show_bar=not args.quiet, curves=curves)
    rows = len(X_train) - (int(np.ceil(args.validation_fraction * len(X_train)))
                           if args.early_stopping else 0)
    unit = "L-BFGS iterations" if args.solver == "lbfgs" else "epochs"
    print(f"trained  {fnn.n_iter_} {unit} in {elapsed:.2f} s: "
          f"{fnn.n_iter_ * rows / max(elapsed, 1e-9):,.0f} samples/s "
          f"({fnn.n_iter_} x {rows} rows; start-up {startup:.2f} s)")
    stops = training.stop_notes(fnn, caught, args)
    for line in stops:  # how training ended is a result: printed with --quiet too
        print(f"note     {line}")
    for column, (seen, rare) in training.grouped_categories(model).items():
        say(f"note     text column {column!r}: {rare} of its {seen} values seen in fewer than "
            f"{args.min_frequency} training rows (or beyond --max-categories "
            f"{args.max_categories}) are one 'infrequent' column")
    start = time.perf_counter()
    refs = metrics.fit_references(metrics.references(model, args), X_train, y_train)
    linear_seconds = time.perf_counter() - start
    scores = metrics.evaluate({"network": model, **refs}, X_test, y_test, args.classify)
    print(f"test     {metrics.headline(scores, args.classify)} ({len(X_test)} rows)")
    for line in metrics.table(scores, args.classify):
        print(f"         {line}")
    if "confusion" in scores:
        print("confusion matrix of the network on the test rows (rows: true class, columns: "
              "predicted)")
        for line in metrics.confusion_lines(scores["confusion"]):
            print(f"         {line}")
    for line in metrics.warnings_about(scores, args.classify):
        print(f"note     {line}")
    run = {"split": {"test_size": args.test_size, "seed": args.seed, "train_rows": len(X_train),
                     "test_rows": len(X_test)},
           "training": {"iterations": int(fnn.n_iter_), "unit": unit, "seconds": elapsed,
                        "startup_seconds": startup, "rows_per_iteration": rows,
                        "linear_seconds": linear_seconds, "notes": stops},
           "metrics": {k: v for k, v in scores.items() if k != "confusion"}}
    if "confusion" in scores:
        run["confusion_matrix"] = scores["confusion"]
    record = report.model_record(args, data, label, path, fnn, run)
    _write_outputs(args, model, fnn, label, record, curves=curves, scores=scores,
                   test=(X_test, y_test, id_test))
    return 0


def _read(args, path, shown):
    """The table's features and targets: a namespace with features (columns.Features), kinds
    ({column: kind}), y, targets (names), ids (the --id column, or None), rows, info (notes)
    and warnings (notes printed with --quiet too)."""
    from types import SimpleNamespace

    import numpy as np

    table = read_table(path, shown)
    targets = args.target or [table.header[-1]]
    table.require(targets, " (named by --target)")
    drop = list(getattr(args, "drop", None) or [])
    id_column = getattr(args, "id", None)
    table.require(drop, " (named by --drop)")
    if id_column is not None:
        table.require([id_column], " (named by --id)")
    for name in drop + [id_column] * (id_column is not None):
        if name in targets:
            raise CLIError(f"column {name!r} is the target; it cannot be "
                           f"{'--id' if name == id_column else 'dropped'} as well")
    names = [c for c in table.header if c not in targets and c not in drop and c != id_column]
    if not names:
        separator = next((c for c in ";\t|" if len(table.header) == 1 and c in table.header[0]),
                         None)
        raise CLIError(f"{shown}: needs at least one feature column besides the target "
                       f"{names_list(targets)}" + (" and the columns left out by --drop/--id"
                                                    if drop or id_column else "")
                       + (f" (its one column's name holds {separator!r}: fastfnn reads "
                          "comma-separated files)" if separator else ""))
    kinds = columns.feature_kinds(table, names)
    dtype = np.dtype(args.dtype)
    features = columns.features(table, kinds, dtype, check_scale=True)
    warnings = []
    for name in features.categorical:
        found = columns.identifier_like(table.frame, name)
        if found:
            distinct, present = found
            warnings.append(f"text column {name!r} holds {distinct} distinct values in {present} "
                            "rows: an identifier, which one-hot encoding cannot learn from; "
                            f"--id {name} keeps it out of the features (and in predict's "
                            f"output), --drop {name} leaves it out")
    if args.classify:
        y = columns.class_targets(table, targets)
    else:
        y, notes = columns.regression_targets(table, targets)
        warnings = notes + warnings
        for k, name in enumerate(targets):
            columns.check_magnitude(table, name, y.reshape(len(y), -1)[:, k], dtype, "target")
    ids = None if id_column is None else table.frame[id_column].to_numpy()
    info = [f"--drop: {names_list(drop)} left out"] * bool(drop)
    if id_column is not None:
        info.append(f"--id: {id_column!r} kept out of the features (predict writes it beside "
                    "each prediction)")
    return SimpleNamespace(features=features, kinds=kinds, y=y, targets=targets, ids=ids,
                           rows=len(table.frame), info=info, warnings=warnings)


def _check_options(args, path):
    """Fail before any work on option combinations and outputs that cannot work."""
    check_training_options(args)
    if args.plot and args.solver == "lbfgs":
        raise CLIError("--plot draws per-epoch curves, which --solver lbfgs does not keep; use "
                       "a stochastic solver")
    if args.cv:
        if args.plot:
            raise CLIError("--plot draws the curves of one training run; --cv trains one per "
                           "fold: drop --cv to plot, or --plot to cross-validate")
        if args.test_size is not None:
            raise CLIError("--test-size sets the one test split; --cv K tests on each of K "
                           "folds instead: give one of them")
    check_outputs([("--save", args.save), ("--plot", args.plot), ("--report", args.report)],
                  [("DATA", path)])
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError('--plot needs matplotlib: pip install "fastfnn[plot]"') from None


def check_training_options(args):
    """CLIError for network and training options that cannot work together (what ``fit`` and
    ``search`` share)."""
    if args.classify and (args.loss or args.out_activation):
        raise CLIError("--loss and --out-activation are for regression, not --classify")
    if args.class_weight and not args.classify:
        raise CLIError("--class-weight weighs classes: it needs --classify")
    if args.early_stopping and args.solver == "lbfgs":
        raise CLIError("--early-stopping needs a stochastic --solver (not lbfgs)")
    if args.solver == "lbfgs" and args.dropout:
        raise CLIError("--dropout needs a stochastic --solver (not lbfgs)")
    if args.scoring and args.early_stopping is False:
        raise CLIError("--scoring is what early stopping scores: it needs early stopping "
                       "(drop --no-early-stopping)")
    task = "classification" if args.classify else "regression"
    if args.scoring and scorer_task(args.scoring) not in (None, task):
        raise CLIError(f"--scoring {args.scoring} scores a {scorer_task(args.scoring)}, but "
                       f"this is a {task}" + ("" if args.classify else
                                              " (--classify to predict classes)"))


def _write_outputs(args, model, fnn, label, record, curves=None, scores=None, test=None):
    """Plot, save and write the report (``record``: the model file's metadata), all or
    nothing."""
    with Staged() as staged:
        if getattr(args, "plot", None):
            from .plot import plot_training

            plot_training(fnn, staged.path(args.plot, "--plot"), label, _describe(args, False),
                          args, curves=curves, model=model, test=test)
        if args.save:
            tmp = staged.path(args.save, "--save")
            try:
                modelfile.save(tmp, model, **record)
            except OSError as exc:
                raise CLIError(f"--save {args.save}: cannot write "
                               f"({exc.strerror or exc})") from None
        if getattr(args, "report", None):
            tmp = staged.path(args.report, "--report")
            try:
                report.write(tmp, _report(args, record))
            except OSError as exc:
                raise CLIError(f"--report {args.report}: cannot write "
                               f"({exc.strerror or exc})") from None
        staged.commit()
    say = (lambda *a: None) if args.quiet else print
    if args.save:
        say(f"saved    {args.save}  (fastfnn predict {args.save} DATA.csv)")
    if getattr(args, "plot", None):
        say(f"plot     {args.plot}")
    if getattr(args, "report", None):
        say(f"report   {args.report}")


def _report(args, record):
    extra = dict(record.get("extra") or {})
    out = {"report_version": report.REPORT_VERSION, "command": "fit",
           "options": report.options(args), "task": record["task"],
           "data": {**extra.pop("data_file", {}), "label": record["data"],
                    "rows": extra.pop("rows", None), "features": record["kinds"],
                    "targets": record["targets"], "id": extra.pop("id", None),
                    "dropped": extra.pop("dropped", [])},
           "parameters": extra.pop("parameters", {}),
           "metrics": {"network": record["metrics"], **extra.pop("reference_metrics", {})},
           "versions": extra.pop("versions", {})}
    out.update(extra)
    return out


def _split(X, y, args, shown, ids):
    """X_train, X_test, y_train, y_test, ids_train, ids_test (stratified where it can be)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    n_test = int(np.ceil(args.test_size * len(X)))
    if n_test < 2 or len(X) - n_test < 2:
        raise CLIError(f"{shown}: {len(X)} rows are too few for a train/test split "
                       f"with --test-size {args.test_size:g}")
    stratify = None
    if args.classify and y.ndim == 1:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and len(X) - n_test >= len(counts):
            stratify = y
    return train_test_split(X, y, ids, test_size=args.test_size, random_state=args.seed,
                            stratify=stratify)


def _preparation_notes(features):
    lines = []
    if features.categorical:
        lines.append(f"text column{'s' if len(features.categorical) > 1 else ''} "
                     f"{names_list(features.categorical)} one-hot encoded (at predict time a "
                     "value not seen in training counts as the column's rare values, or as "
                     "all-zero where it has none)")
    if features.missing:
        cells = sum(features.missing.values())
        lines.append(f"{cells} missing cell{'s' if cells > 1 else ''} in "
                     f"{names_list(list(features.missing))} imputed (numeric: the median; "
                     "text: the most frequent value)")
    return lines


def _prepared(features):
    parts = []
    if features.numeric:
        parts.append("numeric features standardised")
    if features.categorical:
        parts.append("text features one-hot encoded")
    return ", ".join(parts)


def _describe(args, hint=True):
    kind = "FNNClassifier" if args.classify else "FNNRegressor"
    extra = ""
    if not args.classify and (args.loss or args.out_activation):
        extra = f", loss {args.loss or 'squared_error'}, output {args.out_activation or 'identity'}"
    hidden = ",".join(map(str, args.hidden))
    text = (f"{kind}: hidden {hidden}, {args.activation}, {args.solver}{extra}, "
            f"alpha {args.alpha:g}")
    if args.solver != "lbfgs":
        text += f", lr {args.learning_rate:g}, batch {args.batch_size}"
    if getattr(args, "class_weight", None):
        text += f", class weight {args.class_weight}"
    if getattr(args, "dropout", None):
        text += f", dropout {args.dropout}"
    if getattr(args, "max_grad_norm", None):
        text += f", gradient norm clipped at {args.max_grad_norm:g}"
    if args.early_stopping:
        text += (f", early stopping on a {args.validation_fraction:g} validation split"
                 + (f" scored by {args.scoring}" if getattr(args, "scoring", None) else "")
                 + (" (--no-early-stopping: off)" if hint else ""))
    return text + f", {args.dtype}"
