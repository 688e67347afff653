"""The metrics ``fastfnn fit`` reports, for the network and beside it two references on the same
features and split: a linear model (ridge regression / logistic regression, a fraction of a
second) and the trivial model (the training mean / the class frequencies of the training rows).

Every number is scikit-learn's metric function applied to the model's predictions; a metric
that is undefined on the rows at hand (ROC AUC with a class absent from the test rows) is None.
"""

import warnings

#: The order of the metrics in tables (a model file's JSON comes back with sorted keys).
ORDER = ("R²", "RMSE", "MAE", "accuracy", "accuracy (every label right)", "balanced accuracy",
         "precision (macro)", "recall (macro)", "F1 (macro)", "ROC AUC", "log-loss")
#: Columns of the table: the network, then the two references.
MODELS = ("network", "linear", "baseline")


def references(model, args):
    """{'linear': unfitted pipeline, 'baseline': unfitted estimator}: the linear model on the
    same preparation as ``model`` (the network's pipeline), and the trivial one."""
    from sklearn.base import clone
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    pipe = model.regressor if hasattr(model, "regressor") else model
    prepare = clone(pipe[0])
    if args.classify:
        logistic = LogisticRegression(max_iter=1000, class_weight=args.class_weight)
        multilabel = len(args.target or []) > 1
        linear = OneVsRestClassifier(logistic) if multilabel else logistic
        baseline = DummyClassifier(strategy="prior")
    else:
        linear, baseline = Ridge(alpha=1.0), DummyRegressor(strategy="mean")
    return {"linear": Pipeline([("prepare", prepare), ("linear", linear)]), "baseline": baseline}


def fit_references(refs, X_train, y_train):
    """Fit each reference (their convergence warnings are not the network's: silenced)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for ref in refs.values():
            ref.fit(X_train, y_train)
    return refs


def evaluate(models, X, y, classify):
    """{model name: {metric: value}} of each fitted model of ``models`` on (X, y); for
    classifiers also 'confusion' of the network: {'labels': [...], 'matrix': [[...]]}."""
    out = {}
    for name, model in models.items():
        out[name] = classification(model, X, y) if classify else regression(model, X, y)
    if classify and getattr(y, "ndim", 1) == 1:
        labels, matrix = confusion(models["network"], X, y)
        out["confusion"] = {"labels": [_plain(c) for c in labels], "matrix": matrix.tolist()}
    return out


def confusion(model, X, y):
    """(labels, matrix): the confusion matrix of ``model`` on (X, y), rows the true class;
    its labels are the model's classes and every other label of y or of the predictions (a
    class the network never saw is a row too: no test row is left out)."""
    from sklearn.metrics import confusion_matrix
    from sklearn.utils.multiclass import unique_labels

    pred = model.predict(X)
    labels = unique_labels(model.classes_, y, pred)
    return labels, confusion_matrix(y, pred, labels=labels)


def regression(model, X, y):
    """R², RMSE and MAE (uniform averages over several targets: scikit-learn's, the RMSE the
    mean of each target's)."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    pred = model.predict(X)
    return {"R²": float(r2_score(y, pred)),
            "RMSE": float(root_mean_squared_error(y, pred)),
            "MAE": float(mean_absolute_error(y, pred))}


def classification(model, X, y):
    """Accuracy, balanced accuracy, macro precision, recall and F1, ROC AUC (binary, or
    one-vs-rest macro), log-loss; multilabel: subset accuracy and the macro scores."""
    import numpy as np
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, log_loss,
                                 precision_score, recall_score)

    pred = model.predict(X)
    proba = _proba(model, X)
    multilabel = getattr(y, "ndim", 1) == 2
    scores = {}
    if multilabel:
        scores["accuracy (every label right)"] = float(accuracy_score(y, pred))
    else:
        scores["accuracy"] = float(accuracy_score(y, pred))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class absent from the test rows
            scores["balanced accuracy"] = float(balanced_accuracy_score(y, pred))
    for name, metric in (("precision (macro)", precision_score),
                         ("recall (macro)", recall_score), ("F1 (macro)", f1_score)):
        scores[name] = float(metric(y, pred, average="macro", zero_division=0))
    classes = getattr(model, "classes_", None)
    scores["ROC AUC"] = _defined(lambda: _auc(y, proba, classes, multilabel))
    if not multilabel:
        scores["log-loss"] = _defined(lambda: float(log_loss(y, proba, labels=classes)))
    return {k: (None if v is None or not np.isfinite(v) else v) for k, v in scores.items()}


def _auc(y, proba, classes, multilabel):
    from sklearn.metrics import roc_auc_score

    if multilabel:
        return float(roc_auc_score(y, proba, average="macro"))
    if len(classes) == 2:
        return float(roc_auc_score(y, proba[:, 1], labels=classes))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def _proba(model, X):
    """predict_proba as one (n, k) array (a list of per-label (n, 2) arrays: P(label = 1))."""
    import numpy as np

    proba = model.predict_proba(X)
    if isinstance(proba, list):
        proba = np.column_stack([p[:, -1] for p in proba])
    return np.asarray(proba)


def _defined(compute):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compute()
    except ValueError:  # e.g. only one class present in the test rows
        return None


def _plain(value):
    """A NumPy scalar label as a JSON-friendly Python value."""
    return value.item() if hasattr(value, "item") else value


# ---- display ------------------------------------------------------------------------------------


def headline(metrics, classify):
    """The first two metrics of the network, 'R² 0.81, RMSE 0.43'."""
    network = metrics["network"]
    keys = _ordered(network)[:2]
    return ", ".join(f"{k} {show(network[k])}" for k in keys)


def table(metrics, classify, spread=None):
    """Lines of the table: a row per metric, a column per model; ``spread`` ({model: {metric:
    std}}) adds '± std' to each cell (cross-validation)."""
    baseline = "majority" if classify else "mean"
    names = [m for m in MODELS if m in metrics]
    header = {"network": "network", "linear": "linear", "baseline": baseline}
    keys = _ordered(metrics["network"])
    cells = {}
    for m in names:
        for key in keys:
            value = metrics[m].get(key)
            text = show(value)
            if spread and value is not None:
                text += f" ± {show(spread[m][key])}"
            cells[m, key] = text
    width = max(len(k) for k in keys) + 2
    column = {m: max([len(header[m])] + [len(cells[m, k]) for k in keys]) + 2 for m in names}
    lines = [f"{'':<{width}}" + "".join(f"{header[m]:>{column[m]}}" for m in names)]
    for key in keys:
        lines.append(f"{key:<{width}}" + "".join(f"{cells[m, key]:>{column[m]}}"
                                                  for m in names))
    return lines


def _ordered(scores):
    return sorted(scores, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))


def confusion_lines(confusion):
    """The confusion matrix: rows the true class, columns the predicted one."""
    labels = [str(c) for c in confusion["labels"]]
    matrix = confusion["matrix"]
    width = max(len(s) for s in labels + ["true"]) + 2
    cell = max(max(len(s) for s in labels), max(len(str(v)) for r in matrix for v in r)) + 2
    lines = [f"{'true':<{width}}" + "".join(f"{s:>{cell}}" for s in labels)]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
    return lines


def show(value):
    return "-" if value is None else f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def warnings_about(metrics, classify):
    """Notes when the network does no better than a reference on the main metric."""
    key = "balanced accuracy" if classify and "balanced accuracy" in metrics["network"] else \
        "accuracy (every label right)" if classify else "R²"
    net = metrics["network"].get(key)
    notes = []
    if net is None:
        return notes
    base = metrics.get("baseline", {}).get(key)
    linear = metrics.get("linear", {}).get(key)
    what = "the majority class" if classify else "the training mean"
    if base is not None and net <= base + 1e-12:
        notes.append(f"the network's {key} {show(net)} is no better than always predicting "
                     f"{what} ({show(base)})")
    elif linear is not None and net < linear:
        model = "logistic regression" if classify else "ridge regression"
        notes.append(f"the network's {key} {show(net)} is below the linear model's "
                     f"({model} on the same features: {show(linear)}); on this table a network "
                     "may not be worth it")
    return notes
