"""``fastfnn fit --stream`` and ``fastfnn predict --stream``: tables larger than memory, read
partition by partition through ``fastfnn.scaling`` (Dask), which is imported only here, inside
the commands.

A DATA that is a glob pattern (``*``, ``?``, ``[``) or a file larger than :data:`LARGE_FILE`
streams without ``--stream`` (``--no-stream`` reads a large file into memory instead).
"""

import argparse
import glob
import os
import sys
import warnings

from . import modelfile
from .data import names_list
from .options import CLIError, check_outputs

#: Files larger than this stream by default.
LARGE_FILE = 1 << 30
GLOB_CHARACTERS = "*?["


def scaling_module(what):
    """``fastfnn.scaling``, or a CLIError saying how to install Dask."""
    try:
        import fastfnn.scaling as scaling
    except ImportError:
        raise CLIError(f'{what} needs Dask, which is not installed: pip install '
                       f'"fastfnn[dask]"') from None
    return scaling


def stream_reason(data, stream):
    """Why DATA streams (a note line), '' when asked with --stream, None when it does not."""
    if stream is False:
        return None
    if stream:
        return ""
    if any(c in data for c in GLOB_CHARACTERS) and not os.path.exists(data):
        return f"{data} is a glob pattern: streaming it partition by partition (out of core)"
    try:
        size = os.path.getsize(data)
    except OSError:
        return None
    if os.path.isfile(data) and size > LARGE_FILE:
        return (f"{data} is {size / 2**30:.1f} GiB (over {LARGE_FILE / 2**30:g} GiB): streaming "
                "it partition by partition (--no-stream reads it into memory)")
    return None


def matching_files(data):
    """The files DATA names (a file, or every match of a glob); CLIError when none."""
    files = sorted(glob.glob(data)) if not os.path.exists(data) else [data]
    if not files:
        raise CLIError(f"{data}: no file matches (a glob such as 'data/part-*.csv' names many "
                       "files; quote it so that the shell does not expand it)")
    return files


def _header(path):
    import pandas as pd

    if path.lower().endswith((".parquet", ".parq", ".pq")) or os.path.isdir(path):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]


# ---- fit --stream -------------------------------------------------------------------------------


def check_fit_options(args):
    """The fit options that partition-by-partition training cannot honour: one-line errors."""
    if args.solver == "lbfgs":
        raise CLIError("--stream trains with partial_fit, one partition at a time: --solver "
                       "lbfgs needs all the rows at once; use a stochastic solver")
    if args.schedule == "adaptive":
        raise CLIError("--schedule adaptive is not available with --stream (partial_fit keeps "
                       "no epoch loss to adapt on); use constant or invscaling")
    if args.plot:
        raise CLIError("--plot is not available with --stream; the per-epoch scores are printed")
    refused = {"--test-size": (args.test_size, "there is no test split: the held-out "
                               "partitions (--validation-fraction) score the model"),
               "--tol": (args.tol, "the epochs run are --epochs, with --n-iter-no-change as "
                         "the patience on the validation score"),
               "--cv": (args.cv, "the table is streamed, never held for folds"),
               "--report": (args.report, "the per-epoch scores are printed"),
               "--drop": (args.drop, "every column but the target is a feature"),
               "--id": (args.id, "every column but the target is a feature"),
               "--class-weight": (args.class_weight, "partial_fit cannot weigh classes it "
                                  "has not counted"),
               "--scoring": (args.scoring, "the held-out partitions are scored by accuracy "
                             "or R²")}
    for option, (value, why) in refused.items():
        if value is not None:
            raise CLIError(f"{option} is not available with --stream ({why})")


def fit_stream(args, reason, describe, write_outputs):
    """``fastfnn fit --stream``: train with ``fastfnn.scaling.fit_streaming``; returns 0.
    ``describe`` and ``write_outputs`` are fit's (the model line, the staged --save)."""
    check_fit_options(args)  # what the options ask for first, with or without Dask
    scaling = scaling_module("fit --stream")
    files = matching_files(args.data)
    check_outputs([("--save", args.save)], [("DATA", f) for f in files])
    say = (lambda *a: None) if args.quiet else print
    header = _header(files[0])
    targets = args.target or [header[-1]]
    missing = [t for t in targets if t not in header]
    if missing:
        raise CLIError(f"{files[0]}: missing column{'s' if len(missing) > 1 else ''} "
                       f"{names_list(missing, quote=False)} (named by --target; the columns "
                       f"are: {names_list(header)})")
    n_features = len(header) - len(targets)
    say(f"data     {args.data}: {len(files)} file{'s' if len(files) > 1 else ''}, "
        f"{n_features} features, target {names_list(targets)}"
        + ("" if args.target else " (the last column; --target to choose)"))
    if reason:
        say(f"note     {reason}")
    validation = 0.0 if args.early_stopping is False else args.validation_fraction
    patience = args.n_iter_no_change if args.early_stopping else None
    plain = argparse.Namespace(**{**vars(args), "early_stopping": False})
    say(f"model    {describe(plain, False)}; partitions of "
        f"{args.partition_size}, {validation:g} of them held out for validation"
        + (f", patience {patience}" if patience else ""))
    notes = _Notes(say)
    bar = _Bar(args.epochs, disable=args.quiet, before=notes.flush)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # each distinct warning once, not every repeat
            notes.caught = caught
            result = _fit(scaling, args, targets, validation, patience, bar)
    finally:
        bar.close()
        notes.flush()
    metric = "accuracy" if args.classify else "R²"
    rows = sum(r.n_rows for r in result.history)
    seconds = sum(r.seconds for r in result.history)
    print(f"trained  {len(result.history)} epochs in {seconds:.2f} s: "
          f"{rows / max(seconds, 1e-9):,.0f} samples/s ({result.n_train_rows} training rows in "
          f"{len(result.train_partitions)} partitions, {result.n_validation_rows} validation "
          f"rows in {len(result.validation_partitions)})")
    if result.interrupted:
        say("note     training interrupted: the results are for the model so far")
    metrics = {}
    if result.best_epoch is not None:
        metrics[f"validation {metric}"] = f"{result.best_score:.4f}"
        print(f"best     epoch {result.best_epoch}: validation {metric} {result.best_score:.4f} "
              f"({result.n_validation_rows} rows; the model kept)")
    features = list(result.model.feature_names_in_)
    from .report import network_params, versions

    record = dict(kinds=dict.fromkeys(features, "numeric"), imputed=[], targets=targets,
                  task="classification" if args.classify else "regression", dtype=args.dtype,
                  data=args.data, metrics=metrics,
                  extra={"validation": {"rows": result.n_validation_rows,
                                        "partitions": len(result.validation_partitions),
                                        "best_epoch": result.best_epoch},
                         "training": {"iterations": len(result.history), "unit": "epochs",
                                      "seconds": seconds},
                         "parameters": network_params(result.model[-1]),
                         "rows": result.n_train_rows + result.n_validation_rows,
                         "versions": versions()})
    write_outputs(args, result.model, None, args.data, record)
    return 0


def _fit(scaling, args, targets, validation, patience, bar):
    import numpy as np

    from fastfnn import FNNClassifier, FNNRegressor

    from .training import extra_params

    params = dict(hidden_layer_sizes=args.hidden, activation=args.activation,
                  solver=args.solver, alpha=args.alpha, batch_size=args.batch_size,
                  learning_rate=args.schedule, learning_rate_init=args.learning_rate,
                  random_state=args.seed, **extra_params(args))
    if args.classify:
        estimator = FNNClassifier(**params)
    else:
        estimator = FNNRegressor(loss=args.loss or "squared_error",
                                 out_activation=args.out_activation or "identity", **params)
    metric = "accuracy" if args.classify else "R²"

    def on_epoch(record):
        line = f"epoch    {record.epoch}: loss {record.train_loss:.4g}"
        if record.validation_score is not None:
            line += f", validation {metric} {record.validation_score:.4f}"
            if record.best_epoch == record.epoch:
                line += " (best so far)"
        bar.write(line, record)

    try:
        return scaling.fit_streaming(
            estimator, args.data, targets[0] if len(targets) == 1 else targets,
            epochs=args.epochs, blocksize=args.partition_size,
            validation_fraction=validation, patience=patience, random_state=args.seed,
            dtype=np.dtype(args.dtype), on_epoch=None if args.quiet else on_epoch,
            on_partition=bar.partition)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except scaling.TooFewPartitionsError as exc:  # in this command's options
        raise CLIError(f"{args.data}: the table has {exc.n_partitions} partition(s) of "
                       f"--partition-size {args.partition_size}; the validation held out of "
                       "streamed training takes whole partitions, so it needs at least 2: give "
                       "a smaller --partition-size (CSV), more files or row groups (Parquet), "
                       "or --no-early-stopping") from None
    except ValueError as exc:
        text = " ".join(str(exc).split())
        if "not numeric" in text:
            raise CLIError(f"{text} (--stream takes numeric features only: it does not one-hot "
                           "encode text columns; encode them, or train in memory without "
                           "--stream)") from None
        raise


class _Notes:
    """The warnings of the streaming fit (files skipped for want of rows), printed as notes as
    soon as the training reports progress, and at its end."""

    def __init__(self, say):
        self.say, self.caught, self.shown = say, [], 0

    def flush(self):
        for w in self.caught[self.shown:]:
            message = " ".join(str(w.message).split())
            if w.category.__name__ != "EmptyFileWarning":
                message = f"{w.category.__name__}: {message}"
            self.say(f"note     {message}")
        self.shown = len(self.caught)


class _Bar:
    """fit's tqdm bar on stderr, one step per epoch, the partition within the epoch shown
    beside it; created at the first partition. Only on a terminal: elsewhere (a log, a pipe)
    the per-epoch lines say it all, without carriage-return frames. ``before()`` runs before
    each line and the bar's first step (the notes so far)."""

    def __init__(self, epochs, disable, before=lambda: None, stream=None):
        self.epochs, self.bar, self.before = epochs, None, before
        self.stream = sys.stderr if stream is None else stream
        self.disable = disable or not _is_terminal(self.stream)
        self.started = False
        self.epoch = 0

    def partition(self, epoch, done, total):
        if not self.started:
            self.before()
            self.started = True
        if self.disable:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.epochs, desc="training", unit="epoch",
                            file=self.stream, dynamic_ncols=True, leave=True)
        self.bar.set_description(f"epoch {epoch}/{self.epochs}, partition {done}/{total}",
                                 refresh=False)
        if done == total and epoch > self.epoch:
            self.epoch = epoch
            self.bar.update(1)
        else:
            self.bar.refresh()

    def write(self, line, record):
        self.before()
        if self.bar is not None:
            postfix = f"loss={record.train_loss:.4g}"
            if record.validation_score is not None:
                postfix += f", val={record.validation_score:.4f}"
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.clear()
        print(line, flush=True)
        if self.bar is not None:
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---- predict --stream ---------------------------------------------------------------------------


def predict_stream(args, reason):
    """``fastfnn predict --stream``: ``fastfnn.scaling.predict_streaming``; returns 0."""
    if args.output is None:  # what the options ask for first, with or without Dask
        raise CLIError("streaming predictions need --output FILE (or --output - for stdout)"
                       + (f"; {reason}" if reason else ""))
    scaling = scaling_module("predict --stream")
    files = matching_files(args.data)
    check_outputs([("--output", args.output)],
                  [("MODEL", args.model)] + [("DATA", f) for f in files],
                  allow_dash={"--output"})
    model, record = modelfile.load(args.model)
    if args.proba and record.get("task") != "classification":
        raise CLIError(f"--proba is for classifiers; {args.model} is a regression model")
    text = modelfile.text_features(record)
    if text:
        raise CLIError(f"{args.model} was trained with text columns ({', '.join(text)}); "
                       "streamed predictions take numeric columns only: predict with "
                       "--no-stream, which reads DATA into memory"
                       + (f" ({reason})" if reason else ""))
    if reason:
        print(f"fastfnn predict: note: {reason}", file=sys.stderr)
    if record.get("id") is not None:
        print(f"fastfnn predict: note: streamed predictions are written without the model's "
              f"--id column {record['id']!r}, in the input's row order", file=sys.stderr)
    header = modelfile.prediction_columns(record, getattr(model, "classes_", None), args.proba)
    output = sys.stdout if args.output == "-" else args.output
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", scaling.EmptyFileWarning)
            rows = scaling.predict_streaming(
                model, args.data, output, columns=header,
                method="predict_proba" if args.proba else "predict",
                blocksize=args.partition_size)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    for w in caught:
        if issubclass(w.category, scaling.EmptyFileWarning):
            print(f"fastfnn predict: note: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.output != "-":
        print(f"fastfnn predict: wrote {rows} rows to {args.output}", file=sys.stderr)
    return 0
