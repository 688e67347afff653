"""``fastfnn fit --cv K``: K-fold cross-validation of the network and of the references.

The folds are scikit-learn's (``StratifiedKFold`` for one class label per row, ``KFold``
otherwise, shuffled with ``--seed``). On each fold the network, the linear model and the trivial
one train on the other folds and are scored on it; every metric is shown as its mean ± standard
deviation over the folds. ``--save`` then saves a network refitted on every row (its epochs and
seconds recorded as the training's ``refit``).
"""

import time

import numpy as np

from . import metrics, training


def folds(args, y):
    """The fold splitter for ``y``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if args.classify and np.ndim(y) == 1:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= args.cv:
            return StratifiedKFold(args.cv, shuffle=True, random_state=args.seed)
    return KFold(args.cv, shuffle=True, random_state=args.seed)


def run(args, data, path, label, shown, describe, write_outputs):
    """Cross-validate, print the table, save a model refitted on every row; returns 0."""
    from sklearn.base import clone

    from .data import names_list
    from .options import CLIError

    say = (lambda *a: None) if args.quiet else print
    X, y = data.features.frame, data.y
    if len(y) < 2 * args.cv:
        raise CLIError(f"{shown}: {len(y)} rows are too few for --cv {args.cv}")
    n_classes = len(np.unique(y)) if args.classify and np.ndim(y) == 1 else 0
    early_note = training.choose_early_stopping(args, len(y) - len(y) // args.cv, n_classes)
    model, _ = training.build_model(args, data.features, np.dtype(args.dtype))
    say(f"data     {label}: {data.rows} rows, {len(X.columns)} features, target "
        f"{names_list(data.targets)}")
    for line in data.info + [early_note] * bool(early_note):
        say(f"note     {line}")
    for line in data.warnings:
        print(f"note     {line}")
    splitter = folds(args, y)
    say(f"cv       {args.cv} folds ({type(splitter).__name__}, --seed {args.seed})")
    say(f"model    {describe(args)}")
    per_fold, notes, seconds = [], {}, 0.0
    for k, (train, test) in enumerate(splitter.split(X, y if np.ndim(y) == 1 else None)):
        net = clone(model)
        start = time.perf_counter()
        fnn, _, _, caught = training.train(net, X.iloc[train], y[train], args, show_bar=False)
        seconds += time.perf_counter() - start
        for note in training.stop_notes(fnn, caught, args):
            notes[note] = notes.get(note, 0) + 1
        refs = metrics.fit_references(metrics.references(model, args), X.iloc[train], y[train])
        scores = metrics.evaluate({"network": net, **refs}, X.iloc[test], y[test],
                                  args.classify)
        scores.pop("confusion", None)
        per_fold.append(scores)
        say(f"fold {k + 1}/{args.cv} {metrics.headline(scores, args.classify)} "
            f"({len(test)} rows, {fnn.n_iter_} epochs)")
    mean, spread = _summary(per_fold)
    print(f"cv       {metrics.headline(mean, args.classify)} (mean of {args.cv} folds; "
          f"training {seconds:.2f} s in all)")
    for line in metrics.table(mean, args.classify, spread=spread):
        print(f"         {line}")
    for line, count in notes.items():
        print(f"note     {line} (in {count} of {args.cv} folds)")
    for line in metrics.warnings_about(mean, args.classify):
        print(f"note     {line}")
    run_info = {"cv": {"folds": args.cv, "splitter": type(splitter).__name__, "seed": args.seed,
                       "per_fold": per_fold, "std": spread},
                "training": {"seconds": seconds,
                             "notes": [f"{n} (in {c} of {args.cv} folds)"
                                       for n, c in notes.items()]},
                "metrics": mean}
    fnn = None
    if args.save:
        say("refit    on every row, for --save")
        fnn, elapsed, _, _ = training.train(model, X, y, args, show_bar=not args.quiet)
        unit = "L-BFGS iterations" if args.solver == "lbfgs" else "epochs"
        run_info["training"]["refit"] = {"iterations": int(fnn.n_iter_), "unit": unit,
                                         "seconds": elapsed}
    else:
        fnn = training.fitted_fnn(net)
    from .report import model_record

    record = model_record(args, data, label, path, fnn, run_info)
    write_outputs(args, model, fnn, label, record)
    return 0


def _summary(per_fold):
    """(mean, std): {model: {metric: value}} over the folds (None where any fold has None)."""
    mean, spread = {}, {}
    for name in per_fold[0]:
        mean[name], spread[name] = {}, {}
        for key in per_fold[0][name]:
            values = [fold[name][key] for fold in per_fold]
            if any(v is None for v in values):
                mean[name][key] = spread[name][key] = None
            else:
                mean[name][key] = float(np.mean(values))
                spread[name][key] = float(np.std(values))
    return mean, spread
