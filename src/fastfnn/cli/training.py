"""What ``fastfnn fit`` trains: the scikit-learn pipeline around the network, and the training
run itself (progress bar, start-up time, notes on how training ended)."""

import sys

from .columns import MISSING_TEXT
from .progress import ProgressBar, attach, detach, fnn_estimators

#: Fewest validation rows for which early stopping is switched on by default (a smaller split
#: gives a score too coarse to stop on: 12 iris rows score in steps of 1/12).
MIN_VALIDATION_ROWS = 50


def build_model(args, features, dtype):
    """(model, target_is_scaled): ColumnTransformer (numeric: StandardScaler; text: one-hot;
    each after an imputer when its training cells have gaps) -> FNN*, inside a
    TransformedTargetRegressor that standardises y for identity-output squared-error regression."""
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from fastfnn import FNNClassifier, FNNRegressor

    imputed = imputed_kinds(features)
    parts = []
    if features.numeric:
        steps = [("scale", StandardScaler())]
        if "numeric" in imputed:
            steps.insert(0, ("impute", SimpleImputer(strategy="median")))
        parts.append(("numeric", Pipeline(steps), features.numeric))
    if features.categorical:
        steps = [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                          dtype=dtype))]
        if "text" in imputed:
            steps.insert(0, ("impute", SimpleImputer(missing_values=MISSING_TEXT,
                                                     strategy="most_frequent")))
        parts.append(("categorical", Pipeline(steps), features.categorical))
    prepare = ColumnTransformer(parts, sparse_threshold=0, verbose_feature_names_out=False)
    params = dict(hidden_layer_sizes=args.hidden, activation=args.activation,
                  solver=args.solver, alpha=args.alpha, batch_size=args.batch_size,
                  learning_rate=args.schedule, learning_rate_init=args.learning_rate,
                  max_iter=args.epochs, random_state=args.seed, tol=args.tol,
                  n_iter_no_change=args.n_iter_no_change, early_stopping=args.early_stopping,
                  validation_fraction=args.validation_fraction)
    if args.classify:
        return Pipeline([("prepare", prepare), ("fnn", FNNClassifier(**params))]), False
    loss, out = args.loss or "squared_error", args.out_activation or "identity"
    pipe = Pipeline([("prepare", prepare),
                     ("fnn", FNNRegressor(loss=loss, out_activation=out, **params))])
    if scales_target(args):
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler()), True
    return pipe, False


def imputed_kinds(features):
    """The kinds of column ('numeric', 'text') whose missing cells the model fills."""
    kinds = []
    if any(name in features.missing for name in features.numeric):
        kinds.append("numeric")
    if any(name in features.missing for name in features.categorical):
        kinds.append("text")
    return kinds


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
    return (f"{n_train} training rows leave fewer than {MIN_VALIDATION_ROWS} for a validation "
            "split: training on all of them, without early stopping (--early-stopping to force "
            "it)")


def fitted_fnn(model):
    """The fitted FNN estimator inside ``model``."""
    return model.regressor_[-1] if hasattr(model, "regressor_") else model[-1]


def train(model, X_train, y_train, args, show_bar):
    """Fit ``model`` with a progress bar; returns (fitted FNN estimator, training seconds,
    start-up seconds, warnings recorded during the fit).

    Start-up: one epoch of a clone first, so that loading (or, on the very first run,
    compiling) the kernels is not counted in the training time and throughput.
    """
    import time

    from sklearn.base import clone

    warm_up = clone(model)
    detach(warm_up)
    for fnn in fnn_estimators(warm_up):
        fnn.set_params(max_iter=1)
    start = time.perf_counter()
    _recording_warnings(warm_up.fit, X_train, y_train)
    startup = time.perf_counter() - start

    unit = "iteration" if args.solver == "lbfgs" else "epoch"
    if show_bar and not attach(model, ProgressBar(args.epochs, unit)):
        print("training (no progress bar: this scikit-learn has no callback API) ...",
              file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        caught = _recording_warnings(model.fit, X_train, y_train)
    finally:
        detach(model)
    elapsed = time.perf_counter() - start
    return fitted_fnn(model), elapsed, startup, caught


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
