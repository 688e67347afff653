"""The ``fastfnn export`` command: a model saved by ``fastfnn fit --save`` as an ONNX file."""

import importlib.util

from . import modelfile
from .options import CLIError, Staged, check_outputs

INSTALL = 'pip install "fastfnn[onnx]"'


def add_parser(sub):
    p = sub.add_parser(
        "export", help="write a saved model as ONNX (needs skl2onnx and onnxruntime)",
        description="Convert a model saved by 'fastfnn fit --save' (the whole pipeline: "
                    "imputers, scaling, one-hot encoding, the network, the target scaling) to "
                    "an ONNX file, for onnxruntime and other ONNX runtimes. The ONNX model has "
                    "one input per feature column, named after it, of shape (N, 1): float for "
                    "numeric columns, string for text columns. Needs " + INSTALL + ".")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastfnn fit --save'")
    p.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    p.set_defaults(func=cmd_export)


def cmd_export(args):
    """``fastfnn export``: write MODEL as an ONNX file."""
    check_outputs([("OUT.onnx", args.output)], [("MODEL", args.model)])
    missing = [name for name in ("skl2onnx", "onnxruntime") if importlib.util.find_spec(name)
               is None]
    if missing:
        raise CLIError(f"export needs {' and '.join(missing)}: {INSTALL}")
    try:
        from fastfnn.onnx import save_onnx
    except ImportError as exc:
        raise CLIError(f"export needs the ONNX packages ({exc}): {INSTALL}") from None
    model, record = modelfile.load(args.model)
    sample, note = _sample_row(record)
    with Staged() as staged:
        tmp = staged.path(args.output, "OUT.onnx")
        try:
            save_onnx(model, tmp, sample)
        except OSError as exc:
            raise CLIError(f"OUT.onnx {args.output}: cannot write ({exc.strerror or exc})") \
                from None
        except Exception as exc:  # noqa: BLE001 - skl2onnx: a step it cannot convert
            text = " ".join(str(exc).split())
            raise CLIError(f"{args.model}: cannot be converted to ONNX "
                           f"({type(exc).__name__}: {text[:300]})") from None
        staged.commit()
    print(f"exported {args.output}: inputs {', '.join(record['features'])}; "
          f"outputs {_outputs(record)}")
    if note:
        print(f"note     {note}")
    return 0


def _sample_row(record):
    """(one row with the model's feature columns and their types, note or None): a DataFrame,
    so that the ONNX model has one input per column. Numeric inputs have the model's dtype,
    except float64 models that impute numbers: onnxruntime's Imputer computes in float32."""
    import numpy as np
    import pandas as pd

    dtype = np.dtype(record.get("dtype", "float64"))
    note = None
    if dtype == np.float64 and "numeric" in record.get("imputed", []):
        dtype = np.dtype(np.float32)
        note = ("numeric inputs are float32: the model fills missing numbers, and onnxruntime "
                "imputes only float32")
    kinds = record.get("feature_kinds") or dict.fromkeys(record["features"], "numeric")
    return pd.DataFrame({
        name: (np.zeros(1, dtype) if kinds[name] == "numeric" else np.array([""], dtype=object))
        for name in record["features"]}), note


def _outputs(record):
    if record.get("task") == "classification":
        return "label, probabilities"
    return f"variable ({', '.join(record['targets'])})"
