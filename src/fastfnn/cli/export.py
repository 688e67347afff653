"""The ``fastfnn export`` command: a model saved by ``fastfnn fit --save`` as an ONNX file."""

import importlib.util

import numpy as np

from . import modelfile
from .options import CLIError, Staged, check_outputs

INSTALL = 'pip install "fastfnn[onnx]"'


def add_parser(sub):
    p = sub.add_parser(
        "export", help="write a saved model as ONNX (needs skl2onnx and onnxruntime)",
        description="Convert a model saved by 'fastfnn fit --save' (the whole pipeline: "
                    "imputers, scaling, one-hot encoding, the network, the target scaling) to "
                    "an ONNX file, for onnxruntime and other ONNX runtimes. Numeric inputs have "
                    "the model's --dtype (float64: double, float32: float); a missing number is "
                    "NaN, a missing text cell the empty string. A model of numeric columns only "
                    "takes one (N, F) input named X, its columns in training order; a model "
                    "with text columns takes one (N, 1) input per column. The names and types "
                    "are printed as the file holds them. Needs " + INSTALL + ".")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastfnn fit --save'")
    p.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--inputs", choices=["auto", "tensor", "columns"], default="auto",
                   help="tensor: one (N, F) input X (numeric columns only); columns: one "
                        "(N, 1) input per column, named after it (characters other than "
                        "letters, digits and _ become _, and a name taken twice gets a number: "
                        "the renamed ones are printed); auto (default): tensor when every "
                        "feature is numeric")
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
    sample = _sample(record, args.inputs, args.model)
    with Staged() as staged:
        tmp = staged.path(args.output, "OUT.onnx")
        try:
            onx = save_onnx(model, tmp, sample)
        except OSError as exc:
            raise CLIError(f"OUT.onnx {args.output}: cannot write ({exc.strerror or exc})") \
                from None
        except Exception as exc:  # noqa: BLE001 - skl2onnx: a step it cannot convert
            text = " ".join(str(exc).split())
            raise CLIError(f"{args.model}: cannot be converted to ONNX "
                           f"({type(exc).__name__}: {text[:300]})") from None
        staged.commit()
    inputs = [_describe(v) for v in onx.graph.input]
    outputs = [_describe(v) for v in onx.graph.output]
    print(f"exported {args.output}")
    print(f"inputs   {'; '.join(inputs)}")
    if isinstance(sample, np.ndarray):
        print(f"         X's columns: {', '.join(record['features'])}")
    else:
        renamed = [f"{v.name} <- {column!r}" for v, column in zip(onx.graph.input,
                                                                  record["features"])
                   if v.name != column]
        if renamed:
            print(f"         renamed: {', '.join(renamed)}")
    print(f"outputs  {'; '.join(outputs)}")
    return 0


def _sample(record, inputs, shown):
    """One row of the model's input: an (1, F) array (one tensor input) or a DataFrame (one
    input per column), numeric cells in the model's dtype."""
    import pandas as pd

    dtype = np.dtype(record.get("dtype", "float64"))
    text = modelfile.text_features(record)
    if inputs == "tensor" and text:
        raise CLIError(f"--inputs tensor needs numeric columns only; {shown} has the text "
                       f"column{'s' if len(text) > 1 else ''} {', '.join(map(repr, text))}: "
                       "use --inputs columns")
    if inputs == "tensor" or (inputs == "auto" and not text):
        return np.zeros((1, len(record["features"])), dtype)
    return pd.DataFrame({
        name: (np.array([""], dtype=object) if name in text else np.zeros(1, dtype))
        for name in record["features"]})


_ELEMENT = {1: "float", 11: "double", 7: "int64", 8: "string", 9: "bool"}


def _describe(value):
    """'name (type, shape)' of an ONNX graph input or output, as the file holds it."""
    tensor = value.type.tensor_type
    dims = ["N" if d.dim_param or not d.HasField("dim_value") else str(d.dim_value)
            for d in tensor.shape.dim]
    return f"{value.name} ({_ELEMENT.get(tensor.elem_type, tensor.elem_type)}, " \
           f"({', '.join(dims)}))"
