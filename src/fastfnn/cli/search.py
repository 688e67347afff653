"""The ``fastfnn search`` command: a hyper-parameter search over a table held in memory, its
cross-validation fits spread over a Dask cluster (``fastfnn.scaling.search``)."""

import argparse

from . import training
from .data import DATASETS, DEFAULT_DATASET, names_list, resolve_data
from .options import CLIError, check_outputs, column_names

#: Candidates shown in the table of results.
SHOWN = 10


def parameter(text):
    """``NAME=V1,V2,...`` -> (name, [values]): numbers, true/false/none, layer sizes as
    ``64x64``, anything else as text."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... such as alpha=0.0001,0.01, "
                                         f"got {text!r}")
    return name, [_value(v.strip()) for v in values.split(",") if v.strip()]


def _value(text):
    import re

    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    if re.fullmatch(r"\d+(x\d+)*", text):
        return tuple(int(n) for n in text.split("x"))
    return text


def add_parser(sub):
    from .fit import _add_training_options, add_column_options

    p = sub.add_parser(
        "search", help="search hyper-parameters by cross-validation on a Dask cluster",
        description="Cross-validate every candidate of a parameter grid (or a random or "
                    "successive-halving search) on a table read into memory, the fits spread "
                    "over a Dask cluster (a local one by default), and print the best "
                    "parameters, their score and the leading candidates. The model is the "
                    "one 'fastfnn fit' trains (same preparation of the columns, same "
                    "options); --param names the network's parameters (scikit-learn's: "
                    "alpha, hidden_layer_sizes as 64x64, learning_rate_init...). Needs Dask: "
                    "pip install \"fastfnn[dask]\".")
    p.add_argument("data", nargs="?", default=DEFAULT_DATASET, metavar="DATA",
                   help=f"CSV or .parquet file, or a bundled dataset ({', '.join(DATASETS)})")
    p.add_argument("--target", type=column_names, metavar="COLUMN[,COLUMN...]",
                   help="target column(s) (default: the last one)")
    p.add_argument("--classify", action="store_true", help="classification (FNNClassifier)")
    add_column_options(p)
    s = p.add_argument_group("search")
    s.add_argument("--param", type=parameter, action="append", required=True,
                   metavar="NAME=V1,V2,...", help="candidate values of a parameter (repeat for "
                   "several parameters)")
    s.add_argument("--kind", default="grid", choices=["grid", "random", "halving",
                                                      "halving-random"],
                   help="grid, random (--n-iter draws), or successive halving over epochs "
                        "(default grid)")
    s.add_argument("--cv", type=int, default=5, metavar="K", help="folds (default 5)")
    s.add_argument("--n-iter", type=int, default=10, metavar="N",
                   help="candidates of the random searches (default 10)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://host:8786); default: a local cluster")
    s.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes of the local cluster (default 2)")
    _add_training_options(p.add_argument_group("network and training (fixed settings)"))
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="MODEL", help="save the best model, refitted on every "
                   "row, as 'fit --save' does")
    o.add_argument("--quiet", action="store_true", help="no progress bar; print results only")
    p.set_defaults(func=cmd_search, plot=None)


def cmd_search(args):
    """``fastfnn search``: run the search, print the best candidates, save the best model."""
    import numpy as np

    from .crossval import folds
    from .fit import _read, _write_outputs
    from .streaming import scaling_module

    _check_options(args)  # the options first, then Dask
    scaling = scaling_module("search")
    path, label, shown = resolve_data(args.data)
    check_outputs([("--save", args.save)], [("DATA", path)])
    args.epochs = args.epochs or 200
    args.tol = 1e-4 if args.tol is None else args.tol
    data = _read(args, path, shown)
    n_classes = len(np.unique(data.y)) if args.classify and data.y.ndim == 1 else 0
    if args.classify and data.y.ndim == 1 and n_classes < 2:
        raise CLIError(f"{shown}: the rows hold a single class; need at least two")
    training.choose_early_stopping(args, len(data.y) - len(data.y) // args.cv, n_classes)
    model, _ = training.build_model(args, data.features, np.dtype(args.dtype))
    model, grid = _model_and_grid(model, args)
    splitter = folds(args, data.y)  # as 'fit --cv' splits: shuffled with --seed
    print(f"data     {label}: {data.rows} rows, target {names_list(data.targets)}")
    where = args.scheduler or f"a local cluster of {args.workers} workers"
    print(f"search   {args.kind} over {', '.join(n for n, _ in args.param)}, {args.cv}-fold "
          f"cross-validation ({type(splitter).__name__}, --seed {args.seed}) on {where}")
    bar = None
    if not args.quiet:
        import sys

        from tqdm.auto import tqdm

        total = _n_candidates(grid, args) * args.cv if args.kind in ("grid", "random") else None
        bar = tqdm(total=total, desc="searching", unit="fit", file=sys.stderr,
                   dynamic_ncols=True)
    X, y = training.in_dtype(data.features.frame, data.y, args)
    try:
        found = _run(scaling, model, grid, X, y, splitter, args,
                     None if bar is None else (lambda done: bar.update(done - bar.n)))
    finally:
        if bar is not None:
            bar.close()
    metric = "accuracy" if args.classify else "R²"
    best = _short(found.best_params_)
    print(f"best     {_text(best)}: mean {metric} {found.best_score_:.4f}")
    _table(found, metric)
    if args.save:
        _write_outputs(args, found.best_estimator_, None, label,
                       _record(args, data, label, path, found, metric))
    return 0


def _run(scaling, model, grid, X, y, splitter, args, on_progress):
    """The fitted search; failed fits told as a note with their error (every fit failing: a
    CLIError), reaching --epochs not told (it is the budget)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("always", FitFailedWarning)
            warnings.filterwarnings("ignore", "One or more of the (test|train) scores are "
                                              "non-finite")
            found = scaling.search(
                model, grid, X, y, kind=args.kind, scheduler=args.scheduler,
                n_workers=args.workers, cv=splitter, n_iter=args.n_iter,
                random_state=args.seed, refit=bool(args.save), on_progress=on_progress)
    except ValueError as exc:
        if "fits failed" not in str(exc):
            raise
        raise CLIError(f"every fit of the search failed: {_errors(str(exc))}") from None
    for warning in caught:
        if issubclass(warning.category, FitFailedWarning):
            print(f"note     some fits failed, their candidates scored nan: "
                  f"{_errors(str(warning.message))}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    return found


def _record(args, data, label, path, found, metric):
    """The saved model's metadata: what 'fit --save' records, the metrics being the best
    candidate's mean over the folds, and the search (its kind, folds, best parameters)."""
    from . import report

    return dict(kinds=data.kinds, imputed=training.imputed_kinds(data.features),
                targets=data.targets, task="classification" if args.classify else "regression",
                dtype=args.dtype, data=label,
                metrics={f"cross-validated {metric}": f"{found.best_score_:.4f}"},
                extra={"id": args.id, "dropped": list(args.drop or []),
                       "search": {"kind": args.kind, "folds": args.cv,
                                  "parameters": _short(found.best_params_),
                                  "candidates": _n_searched(found)},
                       "parameters": report.network_params(
                           training.fitted_fnn(found.best_estimator_)),
                       "data_file": report.fingerprint(path), "rows": data.rows,
                       "versions": report.versions()})


def _model_and_grid(model, args):
    """``(model, grid)``: the grid of the ``--param`` values by their full path in ``model``
    (:func:`_grid`), each value checked against the network's own constraints. Where a
    regression searches its loss or output activation, the model is a
    TransformedTargetRegressor and the grid a list, split by the rule 'fit' builds its model
    with (``training.scales_target``): the candidates it would standardise the target for
    get a StandardScaler, the others none, so each candidate is the model 'fit' trains with
    its options."""
    from sklearn.compose import TransformedTargetRegressor

    searched = {name for name, _ in args.param}
    varies = not args.classify and searched & {"loss", "out_activation"}
    if varies and not isinstance(model, TransformedTargetRegressor):
        model = TransformedTargetRegressor(regressor=model, transformer=None)
    grid = _grid(model, args.param)
    _check_values(model, grid, args.param)
    return model, (_split_by_target_scaling(grid, args) if varies else grid)


def _grid(model, params):
    """{full parameter path in ``model``: values} for the network's parameters by name."""
    keys = model.get_params()
    grid = {}
    for name, values in params:
        path = next((k for k in (f"fnn__{name}", f"regressor__fnn__{name}", name)
                     if k in keys), None)
        if path is None:
            fnn = sorted(k.rsplit("__", 1)[1] for k in keys if k.split("__")[-2:-1] == ["fnn"])
            raise CLIError(f"--param {name}: not a parameter of the network; its parameters "
                           f"are: {', '.join(fnn)}")
        if path in grid:
            raise CLIError(f"--param {name} given twice; give its values once, "
                           "comma-separated")
        grid[path] = values
    return grid


def _check_values(model, grid, params):
    """CLIError naming the first ``--param`` value the network's constraints refuse (before
    any fit: scikit-learn would report it as every fit failing)."""
    from sklearn.base import clone

    fnn_path = next(iter(grid)).rsplit("__", 1)[0]
    for (name, _), (path, values) in zip(params, grid.items()):
        for value in values:
            fnn = clone(model).set_params(**{path: value}).get_params()[fnn_path]
            try:
                fnn._validate_params()
                fnn._hidden_sizes()
            except ValueError as exc:
                raise CLIError(f"--param {name}={_show(value)}: "
                               f"{' '.join(str(exc).split())}") from None


def _split_by_target_scaling(grid, args):
    """The grid as a list of grids, each with the target transformer 'fit' would build for
    its losses and output activations: a StandardScaler for squared error with the identity
    output, none otherwise."""
    from sklearn.preprocessing import StandardScaler

    loss_path, out_path = "regressor__fnn__loss", "regressor__fnn__out_activation"
    losses = grid.get(loss_path, [args.loss or "squared_error"])
    outs = grid.get(out_path, [args.out_activation or "identity"])
    rest = {k: v for k, v in grid.items() if k not in (loss_path, out_path)}
    scaled = ([v for v in losses if v == "squared_error"], [v for v in outs if v == "identity"])
    parts = [(scaled, [StandardScaler()]),
             (([v for v in losses if v != "squared_error"], outs), [None]),
             ((scaled[0], [v for v in outs if v != "identity"]), [None])]
    split = []
    for (part_losses, part_outs), transformer in parts:
        if part_losses and part_outs:
            part = dict(rest, transformer=transformer)
            if loss_path in grid:
                part[loss_path] = part_losses
            if out_path in grid:
                part[out_path] = part_outs
            split.append(part)
    return split


def _errors(text):
    """The distinct exception lines (``SomeError: message``) of scikit-learn's report of
    failed fits, joined; else its last line."""
    import re

    lines = [line.strip() for line in text.splitlines()]
    found = list(dict.fromkeys(line for line in lines
                               if re.match(r"\w+(Error|Exception): ", line)))
    return "; ".join(found[:3]) or next((line for line in reversed(lines) if line), "")


def _n_candidates(grid, args):
    import math

    grids = grid if isinstance(grid, list) else [grid]
    size = sum(math.prod(len(v) for v in part.values()) for part in grids)
    return size if args.kind == "grid" else min(size, args.n_iter)


def _short(params):
    """The parameters by their names in the network (the target's transformer left out: it
    follows from the loss and the output activation, as in 'fit')."""
    return {key.rsplit("__", 1)[-1]: value for key, value in params.items()
            if key != "transformer"}


def _show(value):
    """A parameter value as --param writes it (layer sizes as 64x64)."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _text(params):
    return ", ".join(f"{k}={_show(v)}" for k, v in params.items())


def _check_options(args):
    """CLIError for options the search cannot take together (and those 'fit' refuses)."""
    from .fit import check_training_options

    if args.cv < 2 or args.n_iter < 1 or args.workers < 1:
        raise CLIError("--cv needs 2 folds or more, --n-iter and --workers 1 or more")
    check_training_options(args)
    if args.kind.startswith("halving") and any(name == "max_iter" for name, _ in args.param):
        raise CLIError("successive halving gives out the epochs itself: remove --param "
                       "max_iter and set --epochs, the most epochs a candidate gets")


def _n_searched(found):
    """The candidates a fitted search tried (successive halving: those of its first round)."""
    rounds = getattr(found, "n_candidates_", None)
    return int(rounds[0]) if rounds else len(found.cv_results_["params"])


def _table(found, metric):
    import numpy as np

    results = found.cv_results_
    order = np.argsort(results["rank_test_score"], kind="stable")[:SHOWN]
    print(f"rank  mean {metric}  std     parameters")
    for i in order:
        print(f"{results['rank_test_score'][i]:>4}  {results['mean_test_score'][i]:>8.4f}  "
              f"{results['std_test_score'][i]:.4f}  {_text(_short(results['params'][i]))}")
    if len(results["params"]) > SHOWN:
        rounds = getattr(found, "n_candidates_", None)
        print(f"...   ({len(results['params'])} " + (
            f"rows in all: {_n_searched(found)} candidates over {len(rounds)} rounds)"
            if rounds else "candidates in all)"))
