"""The ``fastfnn info`` command: what a model file holds, without predicting anything."""

from . import metrics, modelfile
from .data import names_list


def add_parser(sub):
    p = sub.add_parser(
        "info", help="show what a model file holds (columns, parameters, metrics, versions)",
        description="Print what a model file written by 'fastfnn fit --save' holds: the "
                    "model's steps, the task, the feature columns and their kinds, the "
                    "target(s) and classes, the --id column, the network's parameters, the "
                    "data it was trained on (rows, SHA-256), the metrics at training time "
                    "(the network's and the references') and the versions that wrote it. "
                    "The file is checked and loaded (which cannot run code), never run. From "
                    "Python: fastfnn.load_model(MODEL, return_metadata=True) returns the model "
                    "and this metadata, under the key 'fastfnn_cli'.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastfnn fit --save'")
    p.add_argument("--json", action="store_true",
                   help="print the metadata as JSON instead")
    p.set_defaults(func=cmd_info)


def cmd_info(args):
    """``fastfnn info``: describe MODEL."""
    import json

    model, record = modelfile.load(args.model)
    fnn = _network(model)
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return 0
    task = record.get("task", "?")
    print(f"model    {args.model}: {_steps(model)}")
    line = (f"task     {task}, {record.get('dtype', 'float64')}, target "
            f"{names_list(record['targets'])}")
    classes = getattr(fnn, "classes_", None)
    if classes is not None and len(record["targets"]) == 1:
        line += f"; classes {names_list([str(c) for c in classes], quote=False)}"
    print(line)
    kinds = record.get("feature_kinds") or {}
    features = record["features"]
    print(f"features {len(features)}: " + ", ".join(
        f"{name} ({'text' if kinds.get(name) == 'categorical' else 'numeric'})"
        for name in features))
    if record.get("id") is not None:
        print(f"id       {record['id']} (written by predict beside each prediction)")
    if record.get("dropped"):
        print(f"dropped  {', '.join(record['dropped'])}")
    params = record.get("parameters") or (fnn.get_params() if fnn is not None else {})
    print("network  " + ", ".join(f"{k}={_value(v)}" for k, v in sorted(params.items())
                                  if k not in ("verbose", "warm_start")))
    if fnn is not None:
        print(f"weights  {sum(w.size for w in fnn.coefs_) + sum(b.size for b in fnn.intercepts_)}"
              f" parameters, layers {' -> '.join(str(w.shape[0]) for w in fnn.coefs_)} -> "
              f"{fnn.coefs_[-1].shape[1]}")
    data = record.get("data_file") or {}
    text = f"data     {record.get('data', '?')}"
    if record.get("rows"):
        text += f": {record['rows']} rows"
    if data.get("sha256"):
        text += f", {data.get('bytes')} bytes, sha256 {data['sha256']}"
    print(text)
    search = record.get("search")
    if search is not None:
        print(f"search   {search.get('kind', '?')}, {search.get('folds', '?')}-fold "
              "cross-validation; best " + ", ".join(
                  f"{k}={_value(v)}" for k, v in (search.get("parameters") or {}).items()))
    training = record.get("training") or {}
    trained = _trained(training, record)
    if trained:
        print(f"trained  {trained}")
    for note in training.get("notes", []):
        print(f"note     {note}")
    scores = {"network": record.get("test_metrics") or {},
              **(record.get("reference_metrics") or {})}
    if scores["network"]:
        print(f"metrics  {_measured_on(record)}")
        if all(isinstance(v, (int, float)) or v is None for v in scores["network"].values()):
            for line in metrics.table(scores, task == "classification"):
                print(f"         {line}")
        else:  # files of metadata version 1: formatted strings
            print("         " + ", ".join(f"{k} {v}" for k, v in scores["network"].items()))
    versions = record.get("versions") or {"fastfnn": record.get("fastfnn_version", "?")}
    print("versions " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return 0


def _trained(training, record):
    """The 'trained' line of a record's ``training``: the iterations and seconds of the saved
    network (with --cv, of the refit on every row, after the folds'); '' when not recorded."""
    refit = training.get("refit") or {}
    if "iterations" in training:
        return (f"{training['iterations']} {training.get('unit', 'epochs')} in "
                f"{training.get('seconds', 0):.2f} s")
    if "iterations" in refit:
        folds = (record.get("cv") or {}).get("folds", "?")
        return (f"{refit['iterations']} {refit.get('unit', 'epochs')} in "
                f"{refit.get('seconds', 0):.2f} s on every row (the saved network), after "
                f"{folds} folds in {training.get('seconds', 0):.2f} s")
    return ""


def _measured_on(record):
    """What the metrics of ``record`` were measured on, for the 'metrics' line. Records of
    search and of fit --stream written before they said so are known by their metrics'
    names."""
    names = list(record.get("test_metrics") or {})
    search, validation = record.get("search"), record.get("validation")
    if search is not None or any(k.startswith("cross-validated ") for k in names):
        folds = (search or {}).get("folds")
        return ("cross-validated by the search: the best candidate's mean score"
                + (f" over {folds} folds" if folds else " over the folds"))
    if validation is not None or any(k.startswith("validation ") for k in names):
        validation = validation or {}
        text = "on the validation partitions held out of the streamed training"
        if "rows" in validation:
            text += f" ({validation['rows']} rows)"
        if validation.get("best_epoch"):
            text += f", at the best epoch ({validation['best_epoch']}: the model kept)"
        return text
    if record.get("cv") is not None:
        return f"at training time (mean of {record['cv'].get('folds', '?')} folds)"
    test_rows = (record.get("split") or {}).get("test_rows")
    return "at training time" + (f" ({test_rows} test rows)" if test_rows is not None else "")


def _network(model):
    from .progress import fnn_estimators

    found = list(fnn_estimators(model))
    return found[-1] if found else None


def _steps(model):
    """'TransformedTargetRegressor(Pipeline(ColumnTransformer -> FNNRegressor))'."""
    if hasattr(model, "regressor_"):
        return f"{type(model).__name__}({_steps(model.regressor_)})"
    if hasattr(model, "steps"):
        return "Pipeline(" + " -> ".join(type(step).__name__ for _, step in model.steps) + ")"
    return type(model).__name__


def _value(v):
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)
