"""The ``fastfnn`` command: ``fit``, ``predict``, ``gradcheck`` and ``bench``.

``python -m fastfnn`` is the same command. Heavy or optional imports (tqdm, joblib, matplotlib,
scikit-learn's pipeline pieces) happen inside the commands, so ``import fastfnn`` stays light.
A user error (bad file, bad cell, wrong model file...) is one line on stderr and exit code 1;
``FASTFNN_DEBUG=1`` shows the traceback of unexpected errors instead.
"""

import argparse
import os
import sys

from . import __version__
from .datasets import DATASETS, DEFAULT_DATASET, DataError, dataset_path, read_csv, split_target

MODEL_MAGIC = b"FASTFNN-MODEL 1\n"  # first line of a model file, checked before unpickling


class CLIError(Exception):
    """A user error: its message is printed as one line and the command exits with code 1."""


# ---- entry point ------------------------------------------------------------------------------


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (CLIError, DataError) as exc:
        _error(args.command, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return 130
    except ValueError as exc:  # scikit-learn's and the estimators' messages on bad settings
        if os.environ.get("FASTFNN_DEBUG"):
            raise
        _error(args.command, " ".join(str(exc).split()))
        return 1
    except BrokenPipeError:  # e.g. `fastfnn predict ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, unless debugging
        if os.environ.get("FASTFNN_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _error(args.command, f"{type(exc).__name__}: {message} (FASTFNN_DEBUG=1 shows where)")
        return 1


def _error(command, message):
    print(f"fastfnn {command}: error: {message}", file=sys.stderr)


def build_parser(argv=()):
    """The argument parser; ``fastfnn.bench`` is imported only when the command is ``bench``."""
    parser = argparse.ArgumentParser(
        prog="fastfnn",
        description="Train and use fast MLPs (scikit-learn's MLPRegressor/MLPClassifier, "
                    "compiled) from the command line.",
        epilog="Run 'fastfnn COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fastfnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_fit_parser(sub)
    _add_predict_parser(sub)
    _add_gradcheck_parser(sub)
    bench = sub.add_parser("bench", help="benchmark training throughput against scikit-learn",
                           description="Benchmark training throughput against scikit-learn.")
    if next((a for a in argv if not a.startswith("-")), None) == "bench":
        try:
            from . import bench as bench_module
        except ImportError as exc:
            bench.error(f"not available in this installation ({exc})")
        bench_module.add_arguments(bench)
        bench.set_defaults(func=bench_module.run)
    return parser


# ---- argument types ---------------------------------------------------------------------------


def _hidden_sizes(text):
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 64,64, got {text!r}")
    return sizes


def _number(kind, low, low_open=False, high=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        bad = value < low or (low_open and value == low) or (high is not None and value >= high)
        if bad or value != value:
            bounds = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}")
        return value
    return parse


def _batch_size(text):
    return "auto" if text == "auto" else _number(int, 1)(text)


# ---- fit --------------------------------------------------------------------------------------


def _add_fit_parser(sub):
    names = ", ".join(DATASETS)
    p = sub.add_parser(
        "fit", help="train a network on a CSV file and report test metrics",
        description="Train an FNNRegressor (or FNNClassifier with --classify) on a CSV file "
                    "(header row; target = last column unless --target), hold out a test split, "
                    "show progress, then print the training time, throughput and test metrics. "
                    "Features are standardised (StandardScaler in a Pipeline); for regression "
                    "with the identity output the target is standardised too "
                    "(TransformedTargetRegressor) and metrics are in its original units.")
    p.add_argument("data", nargs="?", default=DEFAULT_DATASET, metavar="DATA",
                   help=f"CSV file, or the name of a bundled dataset ({names}); "
                        f"default: {DEFAULT_DATASET}")
    p.add_argument("--target", metavar="COLUMN", help="target column (default: the last one)")
    p.add_argument("--classify", action="store_true",
                   help="classification (FNNClassifier); the target holds class labels")
    g = p.add_argument_group("network and training (scikit-learn's MLP parameters)")
    g.add_argument("--hidden", type=_hidden_sizes, default=(64, 64), metavar="64,64",
                   help="hidden layer widths, comma-separated (hidden_layer_sizes; default 64,64)")
    g.add_argument("--activation", default="relu",
                   choices=["relu", "tanh", "logistic", "identity"], help="hidden activation")
    g.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"])
    g.add_argument("--epochs", type=_number(int, 1), default=200, metavar="N",
                   help="maximum epochs, or L-BFGS iterations (max_iter; default 200)")
    g.add_argument("--batch-size", type=_batch_size, default="auto", metavar="N",
                   help="minibatch size, or 'auto' = min(200, rows) (default auto)")
    g.add_argument("--learning-rate", type=_number(float, 0, low_open=True), default=0.001,
                   metavar="LR", help="initial learning rate (learning_rate_init; default 0.001)")
    g.add_argument("--schedule", default="constant",
                   choices=["constant", "invscaling", "adaptive"],
                   help="learning-rate schedule for sgd (learning_rate; default constant)")
    g.add_argument("--alpha", type=_number(float, 0), default=0.0001,
                   help="L2 penalty (default 0.0001)")
    g.add_argument("--tol", type=_number(float, 0), default=1e-4,
                   help="improvement tolerance for stopping (default 1e-4)")
    g.add_argument("--n-iter-no-change", type=_number(int, 1), default=10, metavar="N",
                   help="stop after N epochs without tol improvement (default 10)")
    g.add_argument("--early-stopping", action="store_true",
                   help="hold out --validation-fraction of the training rows; stop when the "
                        "validation score stops improving and keep the best weights")
    g.add_argument("--validation-fraction", type=_number(float, 0, True, 1), default=0.1,
                   metavar="F", help="validation share for --early-stopping (default 0.1)")
    g.add_argument("--loss", choices=["squared_error", "poisson"], default=None,
                   help="regression loss (default squared_error)")
    g.add_argument("--out-activation", choices=["identity", "logistic", "tanh", "relu"],
                   default=None, help="regression output activation (default identity)")
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="precision of training and prediction (default float64)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the test split, the initial weights and the shuffling (default 0)")
    g.add_argument("--test-size", type=_number(float, 0, True, 1), default=0.2, metavar="F",
                   help="share of rows held out for testing (default 0.2)")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="MODEL", help="save the fitted model (joblib) to MODEL")
    o.add_argument("--plot", metavar="FILE.png",
                   help="plot the loss curve (and validation score) to a PNG; needs matplotlib")
    o.add_argument("--quiet", action="store_true", help="no progress bar; print results only")
    p.set_defaults(func=cmd_fit)


def cmd_fit(args):
    """``fastfnn fit``: train, report, optionally save the model and plot the loss curve."""
    import numpy as np

    stochastic = args.solver != "lbfgs"
    _check_fit_options(args, stochastic)
    path, label, shown = _resolve_data(args.data)
    X, y, feature_names, target_name = split_target(read_csv(path, shown), args.target,
                                                    args.classify)
    dtype = np.dtype(args.dtype)
    X = X.astype(dtype)
    if not args.classify:
        y = y.astype(dtype)
    X_train, X_test, y_train, y_test = _split(X, y, args, shown)
    model, scaled_target = _build_model(args, verbose=stochastic and not args.quiet)
    say = (lambda *a: None) if args.quiet else print
    say(f"data     {label}: {X.shape[0]} rows, {X.shape[1]} feature"
        f"{'s' if X.shape[1] > 1 else ''}, target {target_name!r}")
    say(f"split    {len(X_train)} train / {len(X_test)} test rows "
        f"(--test-size {args.test_size:g}, --seed {args.seed})")
    say(f"model    {_describe(args)}")
    say("         features standardised" + ("; target standardised, metrics in its units"
                                            if scaled_target else ""))
    if args.classify and len(np.unique(y_train)) < 2:
        raise CLIError(f"{shown}: the training rows hold a single class; need at least two")

    fnn, elapsed, startup, notes = _train(model, X_train, y_train, args)
    rows = len(X_train) - (int(np.ceil(args.validation_fraction * len(X_train)))
                           if args.early_stopping else 0)
    unit = "L-BFGS iterations" if args.solver == "lbfgs" else "epochs"
    print(f"trained  {fnn.n_iter_} {unit} in {elapsed:.2f} s: "
          f"{fnn.n_iter_ * rows / elapsed:,.0f} samples/s "
          f"({fnn.n_iter_} x {rows} rows; start-up {startup:.2f} s)")
    for line in notes:
        say(f"note     {line}")
    metrics = _test_metrics(model, X_test, y_test, args.classify)
    print("test     " + ", ".join(f"{k} {v}" for k, v in metrics.items())
          + f" ({len(X_test)} rows)")

    with _Staged() as staged:
        if args.plot:
            _plot(fnn, staged.path(args.plot), label, args)
        if args.save:
            _save(staged.path(args.save), model, feature_names, target_name, args, label, metrics)
        staged.commit()
    if args.save:
        say(f"saved    {args.save}  (fastfnn predict {args.save} DATA.csv)")
    if args.plot:
        say(f"plot     {args.plot}")
    return 0


def _train(model, X_train, y_train, args):
    """Fit ``model`` with a progress bar; returns (fitted FNN estimator, training seconds,
    start-up seconds, notes on how training ended).

    Start-up: one epoch of a clone first, so that loading (or, on the very first run,
    compiling) the kernels is not counted in the training time and throughput.
    """
    import time

    from sklearn.base import clone

    stochastic = args.solver != "lbfgs"
    start = time.perf_counter()
    _quietly_fit(clone(model).set_params(**{_fnn_param(model, "max_iter"): 1,
                                             _fnn_param(model, "verbose"): False}),
                 X_train, y_train)
    startup = time.perf_counter() - start
    if not stochastic and not args.quiet:
        print("training with L-BFGS (full batch; no per-iteration progress) ...", flush=True)
    progress = _Progress(args.epochs, args.quiet or not stochastic)
    start = time.perf_counter()
    with progress:
        caught = _quietly_fit(model, X_train, y_train, progress)
    elapsed = time.perf_counter() - start
    fnn = _fitted_fnn(model)
    fnn.set_params(verbose=False)  # the saved model prints nothing when refitted
    return fnn, elapsed, startup, progress.notes(caught, args)


def _check_fit_options(args, stochastic):
    """Fail before any work on option combinations and output paths that cannot work."""
    if args.classify and (args.loss or args.out_activation):
        raise CLIError("--loss and --out-activation are for regression, not --classify")
    if args.loss == "poisson" and args.out_activation not in (None, "identity"):
        raise CLIError("--loss poisson always uses the exp output; drop --out-activation")
    if args.plot and not stochastic:
        raise CLIError("--plot draws the per-epoch loss curve, which --solver lbfgs does not "
                       "keep; use adam or sgd")
    if args.early_stopping and not stochastic:
        raise CLIError("--early-stopping needs --solver adam or sgd")
    for option, target in (("--save", args.save), ("--plot", args.plot)):
        if target is not None:
            _check_writable(option, target)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError('--plot needs matplotlib: pip install "fastfnn[plot]"') from None
    if args.save and args.plot and os.path.abspath(args.save) == os.path.abspath(args.plot):
        raise CLIError("--save and --plot name the same file")


def _check_writable(option, target):
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise CLIError(f"{option} {target}: is a directory")
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {target}: the directory {directory} does not exist")


def _resolve_data(data):
    """(path, label, name in messages) of DATA: an existing path, else a bundled dataset."""
    if data in DATASETS and not os.path.exists(data):
        return dataset_path(data), f"{data} (bundled dataset)", f"{data}.csv (bundled)"
    if not os.path.exists(data):
        raise DataError(f"{data}: no such file (bundled datasets: {', '.join(DATASETS)})")
    return data, data, data


def _split(X, y, args, path):
    import numpy as np
    from sklearn.model_selection import train_test_split

    n_test = int(np.ceil(args.test_size * len(X)))
    if n_test < 2 or len(X) - n_test < 2:
        raise CLIError(f"{path}: {len(X)} rows are too few for a train/test split "
                       f"with --test-size {args.test_size:g}")
    stratify = None
    if args.classify:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and len(X) - n_test >= len(counts):
            stratify = y
    return train_test_split(X, y, test_size=args.test_size, random_state=args.seed,
                            stratify=stratify)


def _build_model(args, verbose):
    """(model, target_is_scaled): a Pipeline StandardScaler -> FNN*, inside a
    TransformedTargetRegressor that standardises y for identity-output squared-error regression."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .estimators import FNNClassifier, FNNRegressor

    params = dict(hidden_layer_sizes=args.hidden, activation=args.activation,
                  solver=args.solver, alpha=args.alpha, batch_size=args.batch_size,
                  learning_rate=args.schedule, learning_rate_init=args.learning_rate,
                  max_iter=args.epochs, random_state=args.seed, tol=args.tol,
                  n_iter_no_change=args.n_iter_no_change, early_stopping=args.early_stopping,
                  validation_fraction=args.validation_fraction, verbose=verbose)
    if args.classify:
        return Pipeline([("scale", StandardScaler()), ("fnn", FNNClassifier(**params))]), False
    loss, out = args.loss or "squared_error", args.out_activation or "identity"
    pipe = Pipeline([("scale", StandardScaler()),
                     ("fnn", FNNRegressor(loss=loss, out_activation=out, **params))])
    if _scales_target(args):
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler()), True
    return pipe, False


def _scales_target(args):
    """The target is standardised only where that cannot clash with the output's range."""
    return (not args.classify and args.loss in (None, "squared_error")
            and args.out_activation in (None, "identity"))


def _fitted_fnn(model):
    return model.regressor_[-1] if hasattr(model, "regressor_") else model[-1]


def _fnn_param(model, name):
    return f"regressor__fnn__{name}" if hasattr(model, "regressor") else f"fnn__{name}"


def _describe(args):
    kind = "FNNClassifier" if args.classify else "FNNRegressor"
    extra = ""
    if not args.classify and (args.loss or args.out_activation):
        extra = f", loss {args.loss or 'squared_error'}, output {args.out_activation or 'identity'}"
    hidden = ",".join(map(str, args.hidden))
    text = (f"{kind}: hidden {hidden}, {args.activation}, {args.solver}{extra}, "
            f"alpha {args.alpha:g}")
    if args.solver != "lbfgs":
        text += f", lr {args.learning_rate:g}, batch {args.batch_size}"
    return text + (", early stopping" if args.early_stopping else "") + f", {args.dtype}"


def _quietly_fit(model, X, y, progress=None):
    """Fit with warnings recorded (not printed) and, if given, the verbose epoch lines fed to
    ``progress``; returns the recorded warnings."""
    import warnings
    from contextlib import nullcontext, redirect_stdout

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with redirect_stdout(progress) if progress is not None else nullcontext():
            model.fit(X, y)
    return caught


class _Progress:
    """A tqdm bar fed by the estimator's verbose lines ("Iteration N, loss = L", "Validation
    score: S"), so the model trained is exactly the one a plain ``fit`` gives; used as the
    stdout of the fit. Other lines are kept and shown as notes."""

    def __init__(self, total, disable):
        self.total, self.disable = total, disable
        self.buffer, self.stop, self.other = "", None, []
        self.loss = self.score = None
        self.bar = None

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="training", unit="epoch", file=sys.stderr,
                        disable=self.disable, dynamic_ncols=True, leave=True)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def write(self, text):
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def flush(self):
        pass

    def _line(self, line):
        if line.startswith("Iteration ") and ", loss = " in line:
            self.loss = float(line.rsplit("= ", 1)[1])
            self.bar.update(1)
        elif line.startswith("Validation score: "):
            self.score = float(line.split(": ", 1)[1])
        elif line.endswith("Stopping."):
            self.stop = line
        elif line:
            self.other.append(line)
        if self.loss is not None:
            postfix = f"loss={self.loss:.4g}"
            if self.score is not None:
                postfix += f", val={self.score:.4f}"
            self.bar.set_postfix_str(postfix, refresh=False)

    def notes(self, caught, args):
        """One-line notes on how training ended, from the stop message and the warnings."""
        from sklearn.exceptions import ConvergenceWarning

        lines = [self.stop] if self.stop else []
        lines += self.other
        for w in caught:
            message = str(w.message).strip().splitlines()[0]
            if issubclass(w.category, ConvergenceWarning):
                lines.append(f"stopped at --epochs {args.epochs} with the training loss still "
                             "falling (scikit-learn's ConvergenceWarning)")
            elif "interrupted" in message:
                lines.append("training interrupted: the results are for the model so far")
            else:
                lines.append(f"{w.category.__name__}: {message}")
        return lines


def _test_metrics(model, X_test, y_test, classify):
    import numpy as np
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

    pred = model.predict(X_test)
    if classify:
        return {"accuracy": f"{accuracy_score(y_test, pred):.4f}"}
    rmse = float(np.sqrt(mean_squared_error(y_test, pred)))
    return {"R²": f"{r2_score(y_test, pred):.4f}", "RMSE": f"{rmse:.4g}"}


def _plot(fnn, path, label, args):
    import textwrap

    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    epochs = np.arange(1, len(fnn.loss_curve_) + 1)
    ax.plot(epochs, fnn.loss_curve_, color="C0", label="training loss")
    if min(fnn.loss_curve_) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss" + (" (standardised target)" if _scales_target(args) else ""))
    handles = ax.get_lines()
    if fnn.validation_scores_:
        ax2 = ax.twinx()
        name = "validation accuracy" if args.classify else "validation R²"
        ax2.plot(epochs, fnn.validation_scores_, color="C1", label=name)
        best = int(np.nanargmax(fnn.validation_scores_))
        ax2.plot(best + 1, fnn.validation_scores_[best], "o", color="C1",
                 label=f"best, epoch {best + 1} (weights kept)")
        ax2.set_ylabel(name)
        handles = handles + ax2.get_lines()
    ax.legend(handles=handles, loc="center right")
    ax.set_title(textwrap.fill(f"fastfnn fit {label}: {_describe(args)}", 90), fontsize=9)
    fig.savefig(path, format="png", dpi=100)


def _save(path, model, feature_names, target_name, args, label, metrics):
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


class _Staged:
    """Output files written to temporary names in their target directories, renamed into place
    only by ``commit()`` (os.replace), and removed if the block fails: nothing half-written."""

    def __init__(self):
        self.pending = []

    def path(self, target):
        import tempfile

        directory = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.",
                                   suffix=".part")
        os.close(fd)
        self.pending.append((tmp, target))
        return tmp

    def commit(self):
        umask = os.umask(0)
        os.umask(umask)
        for tmp, target in self.pending:
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        self.pending = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for tmp, _ in self.pending:
            try:
                os.remove(tmp)
            except OSError:
                pass


# ---- predict ----------------------------------------------------------------------------------


def _add_predict_parser(sub):
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


def cmd_predict(args):
    """``fastfnn predict``: predictions of a saved model for the rows of a CSV file."""
    import csv
    import io

    import numpy as np

    if args.output:
        _check_writable("--output", args.output)
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
        with _Staged() as staged:
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


# ---- gradcheck --------------------------------------------------------------------------------


def _add_gradcheck_parser(sub):
    p = sub.add_parser(
        "gradcheck", help="check the back-propagated gradients against finite differences",
        description="For each hidden activation, each (loss, output activation) pair and the "
                    "derivation's own network (logistic everywhere, squared error), compare the "
                    "delta-recursion gradients of a small random float64 network with central "
                    "finite differences. Prints the largest relative error ||g - g_fd|| / "
                    "(||g|| + ||g_fd||) per layer (over its W and b); exits 1 if any exceeds "
                    "--tol.")
    p.add_argument("--tol", type=_number(float, 0, low_open=True), default=1e-7,
                   help="largest relative error allowed (default 1e-7)")
    p.add_argument("--eps", type=_number(float, 0, low_open=True), default=1e-6,
                   help="finite-difference step (default 1e-6)")
    p.add_argument("--alpha", type=_number(float, 0), default=0.1,
                   help="L2 penalty included in the loss (default 0.1)")
    p.add_argument("--sizes", type=_hidden_sizes, default=(3, 5, 4, 2), metavar="3,5,4,2",
                   help="layer widths, input to output (default 3,5,4,2)")
    p.add_argument("--samples", type=_number(int, 1), default=8, metavar="N",
                   help="rows of random data (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random network and data")
    p.set_defaults(func=cmd_gradcheck)


def _gradcheck_targets(rng, loss, out, n, k):
    import numpy as np

    if loss == "poisson":
        return rng.poisson(1.0, (n, k)).astype(float)
    if loss == "binary_log_loss":
        return rng.randint(0, 2, (n, k)).astype(float)
    if loss == "log_loss":
        return np.eye(k)[rng.randint(0, k, n)]
    low, high = {"logistic": (0, 1), "tanh": (-1, 1), "relu": (0, 2), "exp": (0.5, 2)}.get(
        out, (-2, 2))
    return rng.uniform(low, high, (n, k))


def cmd_gradcheck(args):
    """``fastfnn gradcheck``: the per-layer gradient check table; exit 1 on any failure."""
    import numpy as np

    from .gradcheck import check_gradients, gradcheck_cases

    sizes = list(args.sizes)
    if len(sizes) < 2 or sizes[-1] < 2:
        raise CLIError("--sizes needs an input and an output layer, the output at least 2 wide "
                       "(softmax)")
    rng = np.random.RandomState(args.seed)
    n_layers = len(sizes) - 1
    print("fastfnn gradcheck: delta-recursion gradients vs central finite differences")
    print(f"network {'-'.join(map(str, sizes))}, {args.samples} samples, alpha {args.alpha:g}, "
          f"eps {args.eps:g}, float64, seed {args.seed}; tolerance {args.tol:g}")
    print("largest relative error ||g - g_fd|| / (||g|| + ||g_fd||) of each layer's W and b\n")
    width = 42
    print(f"{'case (hidden activation, loss + output)':<{width}}"
          + "".join(f"{'layer ' + str(i + 1):>10}" for i in range(n_layers)))
    failed = 0
    cases = gradcheck_cases()
    for i, (loss, hidden, out) in enumerate(cases):
        coefs = [rng.uniform(-1, 1, (a, b)) * np.sqrt(3.0 / a) for a, b in zip(sizes, sizes[1:])]
        intercepts = [rng.uniform(-0.5, 0.5, b) for b in sizes[1:]]
        X = rng.standard_normal((args.samples, sizes[0]))
        Y = _gradcheck_targets(rng, loss, out, args.samples, sizes[-1])
        errors = check_gradients((coefs, intercepts), X, Y, args.eps, loss=loss,
                                 activation=hidden, out_activation=out, alpha=args.alpha,
                                 per_layer=True)
        worst = [max(e) for e in errors]
        ok = all(e <= args.tol for e in worst)  # NaN fails
        failed += not ok
        name = f"{hidden}, {loss} + {out}" + (" *" if i == len(cases) - 1 else "")
        print(f"{name:<{width}}" + "".join(f"{e:>10.1e}" for e in worst)
              + ("   ok" if ok else "   FAIL"))
    print("* the derivation's network: logistic everywhere, squared error")
    print(f"\n{len(cases) - failed} of {len(cases)} checks within {args.tol:g}"
          + ("" if not failed else f"; {failed} FAILED"))
    return 1 if failed else 0
