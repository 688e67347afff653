"""What ``fastfnn fit`` trains: the scikit-learn pipeline around the network, and the training
run itself (progress bar, start-up time, notes on how training ended)."""

import sys

from .progress import EpochRecorder, ProgressBar, attach, detach, fnn_estimators

#: Fewest validation rows for which early stopping is switched on by default (a smaller split
#: gives a score too coarse to stop on: 12 iris rows score in steps of 1/12).
MIN_VALIDATION_ROWS = 50
#: Rows of the one-epoch fit that loads the kernels before the timed training.
WARM_UP_ROWS = 1000


def build_model(args, features, dtype):
    """(model, target_is_scaled): ColumnTransformer (numeric: median imputer, StandardScaler;
    text: most-frequent imputer, sparse one-hot with rare values grouped) -> FNN*, inside a
    TransformedTargetRegressor that standardises y for identity-output squared-error regression.

    The imputers are always there, so a model trained on complete cells still fills a gap at
    predict time. A missing text cell may come as NaN (``pd.read_csv``, object or string
    columns), None or '' (ONNX string inputs): the first two become '' (constant imputers),
    then '' the most frequent value. The one-hot output stays sparse (CSR) through the
    ColumnTransformer into the network's first layer whenever it is mostly zeros.
    """
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    from fastfnn import FNNClassifier, FNNRegressor

    prepare = ColumnTransformer(preparation(args, features, dtype),
                                verbose_feature_names_out=False)
    params = estimator_params(args)
    if args.classify:
        if args.class_weight:
            params["class_weight"] = args.class_weight
        return Pipeline([("prepare", prepare), ("fnn", FNNClassifier(**params))]), False
    loss, out = args.loss or "squared_error", args.out_activation or "identity"
    pipe = Pipeline([("prepare", prepare),
                     ("fnn", FNNRegressor(loss=loss, out_activation=out, **params))])
    if scales_target(args):
        from sklearn.preprocessing import StandardScaler

        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler()), True
    return pipe, False


def preparation(args, features, dtype):
    """The ColumnTransformer's (name, pipeline, columns) parts for ``features``."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fastfnn import TextCells

    parts = []
    if features.numeric:
        parts.append(("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                                           ("scale", StandardScaler())]), features.numeric))
    if features.categorical:
        onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=True,
                               dtype=dtype, min_frequency=args.min_frequency,
                               max_categories=args.max_categories)
        parts.append(("categorical", Pipeline([
            ("cells", TextCells()),  # pandas' NA and NaT as None too
            ("nan", SimpleImputer(missing_values=np.nan, strategy="constant", fill_value="")),
            ("none", SimpleImputer(missing_values=None, strategy="constant", fill_value="")),
            ("impute", SimpleImputer(missing_values="", strategy="most_frequent")),
            ("onehot", onehot)]), features.categorical))
    return parts


def estimator_params(args):
    """The network's parameters from the command's options (both estimators)."""
    params = dict(hidden_layer_sizes=args.hidden, activation=args.activation,
                  solver=args.solver, alpha=args.alpha, batch_size=args.batch_size,
                  learning_rate=args.schedule, learning_rate_init=args.learning_rate,
                  max_iter=args.epochs, random_state=args.seed, tol=args.tol,
                  n_iter_no_change=args.n_iter_no_change, early_stopping=args.early_stopping,
                  validation_fraction=args.validation_fraction)
    return {**params, **extra_params(args)}


def extra_params(args):
    """--dropout, --max-grad-norm and --scoring, where given (the estimators' defaults
    otherwise)."""
    given = {"dropout": getattr(args, "dropout", None),
             "max_grad_norm": getattr(args, "max_grad_norm", None),
             "scoring": getattr(args, "scoring", None)}
    return {k: v for k, v in given.items() if v is not None}


def grouped_categories(model):
    """{text column: (values seen in training, values grouped as one 'infrequent' column)}
    for the columns whose rare values the fitted one-hot encoder grouped."""
    pipe = model.regressor_ if hasattr(model, "regressor_") else model
    prepare = pipe[0]
    if "categorical" not in getattr(prepare, "named_transformers_", {}):
        return {}
    encoder = prepare.named_transformers_["categorical"][-1]
    columns = [c for name, _, c in prepare.transformers_ if name == "categorical"][0]
    try:
        infrequent = encoder.infrequent_categories_
    except AttributeError:  # no rare values grouped (min_frequency and max_categories off)
        return {}
    grouped = {}
    for name, seen, rare in zip(columns, encoder.categories_, infrequent):
        if rare is not None and len(rare):
            grouped[name] = (len(seen), len(rare))
    return grouped


def imputed_kinds(features):
    """The kinds of column ('numeric', 'text') whose missing cells the model fills: every kind
    the model has (its imputers are always there)."""
    return ["numeric"] * bool(features.numeric) + ["text"] * bool(features.categorical)


def scales_target(args):
    """The target is standardised only where that cannot clash with the output's range."""
    return (not args.classify and args.loss in (None, "squared_error")
            and args.out_activation in (None, "identity"))


def choose_early_stopping(args, n_train, n_classes):
    """Settle ``args.early_stopping`` (None: on for adam/sgd when the validation split has
    enough rows); returns a note when the default was turned off, else None."""
    import math

    if args.early_stopping is not None or args.solver == "lbfgs":
        args.early_stopping = bool(args.early_stopping)
        return None
    n_val = math.ceil(args.validation_fraction * n_train)
    args.early_stopping = n_val >= max(MIN_VALIDATION_ROWS, 2 * n_classes)
    if args.early_stopping:
        return None
    if getattr(args, "scoring", None):
        from .options import CLIError

        raise CLIError(f"--scoring is what early stopping scores, but {n_train} training rows "
                       f"leave fewer than {MIN_VALIDATION_ROWS} for a validation split: "
                       "--early-stopping to force it, or drop --scoring")
    return (f"{n_train} training rows leave fewer than {MIN_VALIDATION_ROWS} for a validation "
            "split: training on all of them, without early stopping (--early-stopping to force "
            "it)")


def fitted_fnn(model):
    """The fitted FNN estimator inside ``model``."""
    return model.regressor_[-1] if hasattr(model, "regressor_") else model[-1]


def train(model, X_train, y_train, args, show_bar, curves=None):
    """Fit ``model`` with a progress bar (and ``curves``, an object with a ``record(fnn)``
    method called after each epoch); returns (fitted FNN estimator, training seconds,
    start-up seconds, warnings recorded during the fit). The rows are trained on in --dtype
    (:func:`in_dtype`).

    Start-up: one epoch of a clone first, on a sample of at most :data:`WARM_UP_ROWS` rows
    (all of them if the sample cannot train, e.g. a single class), so that loading (or, on
    the very first run, compiling) the kernels is not counted in the training time and
    throughput.
    """
    import time

    import numpy as np
    from sklearn.base import clone

    X_train, y_train = in_dtype(X_train, y_train, args)
    warm_up = clone(model)
    detach(warm_up)
    for fnn in fnn_estimators(warm_up):
        fnn.set_params(max_iter=1)
    start = time.perf_counter()
    rows = np.arange(len(y_train))
    if len(rows) > WARM_UP_ROWS:
        rows = np.sort(np.random.RandomState(0).choice(rows, WARM_UP_ROWS, replace=False))
    try:
        _recording_warnings(warm_up.fit, X_train.iloc[rows], y_train[rows])
    except ValueError:  # the sample cannot train (one class, a class of one row...)
        _recording_warnings(clone(warm_up).fit, X_train, y_train)
    startup = time.perf_counter() - start

    unit = "iteration" if args.solver == "lbfgs" else "epoch"
    callbacks = [ProgressBar(args.epochs, unit, disable=not show_bar)]
    if curves is not None:
        callbacks.append(EpochRecorder(curves.record))
    if not attach(model, *callbacks) and show_bar:
        print("training (no progress bar: this scikit-learn has no callback API) ...",
              file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        caught = _recording_warnings(model.fit, X_train, y_train)
    finally:
        detach(model)
    elapsed = time.perf_counter() - start
    return fitted_fnn(model), elapsed, startup, caught


def in_dtype(X, y, args):
    """(X, y) for training: X's numeric columns, and a regression target, in --dtype, so that
    the pipeline and its network train in it (float32 stays float32 end to end). Elsewhere
    the command hands the saved pipeline float64 numbers, as ``pd.read_csv`` does."""
    import numpy as np

    dtype = np.dtype(args.dtype)
    if dtype == np.float64:
        return X, y
    X = X.astype(dict.fromkeys(X.select_dtypes("number").columns, dtype))
    return X, (y if args.classify else np.asarray(y).astype(dtype))


def _recording_warnings(fit, X, y):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(X, y)
    return caught


def stop_notes(fnn, caught, args):
    """One-line notes on how training ended: from the estimator's attributes (n_iter_,
    loss_curve_, validation_scores_) and the warnings of the fit."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    lines = []
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if args.solver != "lbfgs" and fnn.n_iter_ < args.epochs and converged:
        if args.early_stopping and getattr(fnn, "validation_scores_", None):
            best = int(np.nanargmax(fnn.validation_scores_)) + 1
            lines.append(f"stopped early at epoch {fnn.n_iter_}: the validation score did not "
                         f"improve by --tol {args.tol:g} for {args.n_iter_no_change} epochs; "
                         f"kept the weights of epoch {best}")
        else:
            lines.append(f"stopped at epoch {fnn.n_iter_}: the training loss did not improve "
                         f"by --tol {args.tol:g} for {args.n_iter_no_change} epochs")
    for w in caught:
        message = " ".join(str(w.message).split())
        if issubclass(w.category, ConvergenceWarning):
            unit = " (L-BFGS iterations)" if args.solver == "lbfgs" else ""
            lines.append(f"stopped at --epochs {args.epochs}{unit} with the loss still "
                         "falling (scikit-learn's ConvergenceWarning)")
        elif "interrupted" in message:
            lines.append("training interrupted: the results are for the model so far")
        else:
            lines.append(f"{w.category.__name__}: {message}")
    return list(dict.fromkeys(lines))
