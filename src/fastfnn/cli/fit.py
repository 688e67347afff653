"""The ``fastfnn fit`` command: train on a CSV file, report test metrics, save and plot."""

import os

from .data import DATASETS, DEFAULT_DATASET, DataError, dataset_path, read_csv, split_target
from .modelfile import save_model
from .options import CLIError, Staged, batch_size, check_writable, hidden_sizes, number
from .progress import Progress


def add_parser(sub):
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
    g.add_argument("--hidden", type=hidden_sizes, default=(64, 64), metavar="64,64",
                   help="hidden layer widths, comma-separated (hidden_layer_sizes; default 64,64)")
    g.add_argument("--activation", default="relu",
                   choices=["relu", "tanh", "logistic", "identity"], help="hidden activation")
    g.add_argument("--solver", default="adam", choices=["adam", "sgd", "lbfgs"])
    g.add_argument("--epochs", type=number(int, 1), default=200, metavar="N",
                   help="maximum epochs, or L-BFGS iterations (max_iter; default 200)")
    g.add_argument("--batch-size", type=batch_size, default="auto", metavar="N",
                   help="minibatch size, or 'auto' = min(200, rows) (default auto)")
    g.add_argument("--learning-rate", type=number(float, 0, low_open=True), default=0.001,
                   metavar="LR", help="initial learning rate (learning_rate_init; default 0.001)")
    g.add_argument("--schedule", default="constant",
                   choices=["constant", "invscaling", "adaptive"],
                   help="learning-rate schedule for sgd (learning_rate; default constant)")
    g.add_argument("--alpha", type=number(float, 0), default=0.0001,
                   help="L2 penalty (default 0.0001)")
    g.add_argument("--tol", type=number(float, 0), default=1e-4,
                   help="improvement tolerance for stopping (default 1e-4)")
    g.add_argument("--n-iter-no-change", type=number(int, 1), default=10, metavar="N",
                   help="stop after N epochs without tol improvement (default 10)")
    g.add_argument("--early-stopping", action="store_true",
                   help="hold out --validation-fraction of the training rows; stop when the "
                        "validation score stops improving and keep the best weights")
    g.add_argument("--validation-fraction", type=number(float, 0, True, 1), default=0.1,
                   metavar="F", help="validation share for --early-stopping (default 0.1)")
    g.add_argument("--loss", choices=["squared_error", "poisson"], default=None,
                   help="regression loss (default squared_error)")
    g.add_argument("--out-activation", choices=["identity", "logistic", "tanh", "relu"],
                   default=None, help="regression output activation (default identity)")
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="precision of training and prediction (default float64)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the test split, the initial weights and the shuffling (default 0)")
    g.add_argument("--test-size", type=number(float, 0, True, 1), default=0.2, metavar="F",
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

    with Staged() as staged:
        if args.plot:
            _plot(fnn, staged.path(args.plot), label, args)
        if args.save:
            save_model(staged.path(args.save), model, feature_names, target_name, args, label,
                       metrics)
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
    progress = Progress(args.epochs, args.quiet or not stochastic)
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
            check_writable(option, target)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError('--plot needs matplotlib: pip install "fastfnn[plot]"') from None
    if args.save and args.plot and os.path.abspath(args.save) == os.path.abspath(args.plot):
        raise CLIError("--save and --plot name the same file")


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

    from fastfnn import FNNClassifier, FNNRegressor

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
