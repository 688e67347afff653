"""ONNX export of fitted fastfnn models, through skl2onnx.

Importing this module registers converters with skl2onnx for :class:`~fastfnn.FNNRegressor`,
:class:`~fastfnn.FNNClassifier`, their ensembles (the members' networks, then the mean of their
outputs or probabilities) and scikit-learn's ``TransformedTargetRegressor`` (the wrapper
``fastfnn fit`` saves regression models in), so ``skl2onnx.to_onnx(model, X_sample)`` works for a
bare estimator and inside a Pipeline. :func:`to_onnx` and :func:`save_onnx` are conveniences on
top.

Each layer becomes ``MatMul`` + ``Add`` + its activation, the activation's node(s) looked up in
:data:`ACTIVATION_NODES`; supporting another activation is one entry there. The network is
evaluated in float64 when the input or the fitted weights are float64 (as ``predict`` does) and
in float32 otherwise; outputs have the input's float type.

Two of scikit-learn's transformers get converters of fastfnn's here, which take over skl2onnx's
for the cases it cannot run and hand every other case back to it:

* ``SimpleImputer`` on float64 input (onnxruntime's ``Imputer`` is float32-only): ``IsNaN`` and
  ``Where`` in float64; on text input whose missing value is NaN or None (what pandas gives for
  an empty cell): an empty string is the missing cell in the ONNX string input (an imputer that
  fills such cells with '' is the identity there);
* ``OneHotEncoder`` on text input with rare values grouped (``min_frequency``,
  ``max_categories``: skl2onnx refuses them on one input), unknown values going to the rare
  values' column (``handle_unknown='infrequent_if_exist'``) or to none, its output in the
  encoder's dtype (float64 stays float64).

A model with a ``ColumnTransformer`` that selects columns by name, converted from an array
sample (not a DataFrame), gets one ``(N, F)`` input: the names are mapped to their positions in
the columns the model was fitted on.

Classifier outputs follow skl2onnx's MLPClassifier: a label and the probabilities (binary:
``[1 - p, p]`` of the logistic output; multiclass: the softmax; multilabel: one logistic per
label, and the label is the indicator ``p > 0.5``), with the options ``zipmap``, ``nocl`` and
``output_class_labels``.
"""

import functools
import importlib.util

_INSTALL = 'fastfnn.onnx needs skl2onnx and onnxruntime: pip install "fastfnn[onnx]"'
try:
    import skl2onnx
    from skl2onnx import get_model_alias, update_registered_converter
    from skl2onnx._parse import _parse_sklearn
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType, Int64TensorType,
                                            StringTensorType)
    from skl2onnx.common.utils import check_input_and_output_numbers
    from skl2onnx.common.utils_classifier import get_label_classes
    from skl2onnx.proto import onnx_proto

    if importlib.util.find_spec("onnxruntime") is None:
        raise ImportError("No module named 'onnxruntime'")
except ImportError as exc:
    raise ImportError(f"{_INSTALL} ({exc}).") from exc

import numpy as np
from skl2onnx.common._apply_operation import apply_concat
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from skl2onnx.shape_calculators.one_hot_encoder import (
    calculate_sklearn_one_hot_encoder_output_shapes)
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from . import (FNNClassifier, FNNEnsembleClassifier, FNNEnsembleRegressor, FNNRegressor,
               TextCells)

__all__ = ["ACTIVATION_NODES", "save_onnx", "to_onnx"]

_PROTO = {np.dtype(np.float32): onnx_proto.TensorProto.FLOAT,
          np.dtype(np.float64): onnx_proto.TensorProto.DOUBLE,
          np.dtype(np.int64): onnx_proto.TensorProto.INT64,
          np.dtype(np.bool_): onnx_proto.TensorProto.BOOL}
_TENSOR = {np.dtype(np.float32): FloatTensorType, np.dtype(np.float64): DoubleTensorType}


class _Graph:
    """Adds nodes and constants to skl2onnx's container, constants in one float dtype."""

    def __init__(self, scope, container, dtype):
        self.scope, self.container, self.dtype = scope, container, np.dtype(dtype)

    def node(self, op_type, *inputs, output=None, **attrs):
        """Append one ``op_type`` node; returns the name of its (single) output."""
        output = output or self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(op_type, list(inputs), output,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return output

    def const(self, value, keep_dtype=False):
        """An initializer holding ``value``, in the graph's float dtype unless ``keep_dtype``
        (int64 and str arrays)."""
        value = np.asarray(value) if keep_dtype else np.asarray(value, dtype=self.dtype)
        name = self.scope.get_unique_variable_name("const")
        if value.dtype.kind == "U":
            content = [v.encode("utf-8") for v in value.ravel()]
            proto = onnx_proto.TensorProto.STRING
        else:
            content, proto = value.ravel(), _PROTO[value.dtype]
        self.container.add_initializer(name, proto, list(value.shape), content)
        return name


# ---- activations: name -> function(graph, z) returning the name of act(z) ---------------------

@functools.cache
def _erfc_chebyshev(degree=28):
    """Chebyshev coefficients of ``P(s) = log(erfc(z) exp(z^2) / t)``, ``t = 2 / (2 + z)``,
    ``s = 2t - 1`` in (-1, 1], so that ``erfc(z) = t exp(P(s) - z^2)`` for z >= 0 (relative error
    ~1e-14 in float64, measured against scipy.special.erfc)."""
    from scipy.special import erfcx

    def P(s):
        t = (s + 1) / 2
        return np.log(erfcx(2 / t - 2) / t)

    return np.polynomial.chebyshev.chebinterpolate(P, degree)


def _erfc(g, z):
    """``erfc(z)`` for z >= 0 from float64 arithmetic (onnxruntime has no float64 Erf)."""
    t = g.node("Div", g.const(2.0), g.node("Add", z, g.const(2.0)))
    s = g.node("Sub", g.node("Mul", t, g.const(2.0)), g.const(1.0))
    two_s = g.node("Add", s, s)
    coef = _erfc_chebyshev()
    b1, b2 = g.const(coef[-1]), g.const(0.0)  # Clenshaw: b_k = 2s b_{k+1} - b_{k+2} + c_k
    for c in coef[-2:0:-1]:
        b1, b2 = g.node("Add", g.node("Sub", g.node("Mul", two_s, b1), b2), g.const(c)), b1
    p = g.node("Add", g.node("Sub", g.node("Mul", s, b1), b2), g.const(coef[0]))
    return g.node("Mul", t, g.node("Exp", g.node("Sub", p, g.node("Mul", z, z))))


def _gelu(g, x):
    """``0.5 x (1 + erf(x / sqrt 2))``: Erf in float32; in float64, ``x Phi(x)`` with
    ``Phi(x) = 0.5 erfc(|x| / sqrt 2)`` for x < 0 and ``1 - 0.5 erfc(|x| / sqrt 2)`` otherwise."""
    if g.dtype == np.float32:
        erf = g.node("Erf", g.node("Mul", x, g.const(np.sqrt(0.5))))
        return g.node("Mul", g.node("Mul", x, g.const(0.5)), g.node("Add", erf, g.const(1.0)))
    u = g.node("Mul", g.node("Abs", x), g.const(np.sqrt(0.5)))
    half_tail = g.node("Mul", _erfc(g, u), g.const(0.5))
    phi = g.node("Where", g.node("Less", x, g.const(0.0)), half_tail,
                 g.node("Sub", g.const(1.0), half_tail))
    return g.node("Mul", x, phi)


def _softplus(g, x):
    """``log(1 + exp(x)) = relu(x) + log(1 + exp(-|x|))`` (no overflow; float64 too)."""
    e = g.node("Exp", g.node("Neg", g.node("Abs", x)))
    return g.node("Add", g.node("Relu", x), g.node("Log", g.node("Add", g.const(1.0), e)))


def _elu(g, x):
    """``x`` for x > 0, ``exp(x) - 1`` otherwise (alpha 1), as ``relu(x) + exp(min(x, 0)) - 1``."""
    neg = g.node("Sub", g.node("Exp", g.node("Min", x, g.const(0.0))), g.const(1.0))
    return g.node("Add", g.node("Relu", x), neg)


# onnxruntime has no float64 LeakyRelu, Elu, Softplus or Erf kernels: those are written with
# elementary operators, so float64 graphs run as well as float32 ones.
ACTIVATION_NODES = {
    "identity": lambda g, x: x,
    "logistic": lambda g, x: g.node("Sigmoid", x),
    "tanh": lambda g, x: g.node("Tanh", x),
    "relu": lambda g, x: g.node("Relu", x),
    "exp": lambda g, x: g.node("Exp", x),
    "softmax": lambda g, x: g.node("Softmax", x, axis=1),
    "leaky_relu": lambda g, x: g.node("Max", x, g.node("Mul", x, g.const(0.01))),  # slope 0.01
    "elu": _elu,
    "softplus": _softplus,
    "gelu": _gelu,
    "silu": lambda g, x: g.node("Mul", x, g.node("Sigmoid", x)),  # x * logistic(x)
}
"""Activation name -> ``f(graph, z)`` adding the node(s) of ``act(z)``, returning its name."""


def _activation(name, where):
    try:
        return ACTIVATION_NODES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Cannot export the {where} activation {name!r} to ONNX: no ONNX form is known for "
            f"it. Known activations: {sorted(ACTIVATION_NODES)}; add an entry to "
            "fastfnn.onnx.ACTIVATION_NODES to export another."
        ) from None


# ---- the network ------------------------------------------------------------------------------

def _out_dtype(input_type):
    """Outputs are float64 for a float64 input, float32 otherwise (skl2onnx's convention)."""
    return np.dtype(np.float64 if isinstance(input_type, DoubleTensorType) else np.float32)


def _check_input(operator, n_outputs):
    """The input's type and row count, after checking it is one float or int64 tensor."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=n_outputs)
    inp = operator.inputs[0]
    if not isinstance(inp.type, (FloatTensorType, DoubleTensorType, Int64TensorType)):
        raise TypeError(f"{type(operator.raw_operator).__name__}'s ONNX input must be a float "
                        f"or int64 tensor, got {inp.type}.")
    return inp.type, inp.get_first_dimension()


_ENSEMBLES = (FNNEnsembleRegressor, FNNEnsembleClassifier)


def _network(est):
    """The network whose layout and outputs ``est`` has: itself, or an ensemble's first
    member (the members share them)."""
    return est.estimators_[0] if isinstance(est, _ENSEMBLES) else est


def _outputs(scope, operator, container, expand):
    """Add the model's networks; returns (graph, name of the outputs (n, width)): the network's
    output activations, through ``expand(g, a)`` (the classifier's probabilities), or for an
    ensemble the members' mean of them, added in order and divided by their count (NumPy's
    mean over the members)."""
    est = operator.raw_operator
    members = est.estimators_ if isinstance(est, _ENSEMBLES) else [est]
    total = None
    for member in members:
        g, a = _forward(scope, operator, container, member)
        a = expand(g, a)
        total = a if total is None else g.node("Add", total, a)
    if len(members) == 1:
        return g, total
    return g, g.node("Div", total, g.const(np.array(len(members), dtype=g.dtype)))


def _forward(scope, operator, container, est):
    """Add the network of ``est`` (an FNN estimator); returns (graph, name of the output
    activations (n, n_outputs)).

    Computed in float64 if the input or the fitted weights are float64 (``predict``'s rule)."""
    inp = operator.inputs[0]
    wide = isinstance(inp.type, DoubleTensorType) or est.coefs_[0].dtype == np.float64
    g = _Graph(scope, container, np.float64 if wide else np.float32)
    acts = [_activation(est.activation, "hidden")] * (len(est.coefs_) - 1)
    acts.append(_activation(est.out_activation_, "output"))
    x = inp.full_name
    if type(inp.type) is not _TENSOR[g.dtype]:
        x = g.node("Cast", x, to=_PROTO[g.dtype])
    for W, b, act in zip(est.coefs_, est.intercepts_, acts):
        x = act(g, g.node("Add", g.node("MatMul", x, g.const(W)), g.const(b)))  # (n, fan_out)
    return g, x


def _emit(g, name, output, input_type):
    """Write ``name`` to the graph output ``output``, in the output dtype for ``input_type``."""
    dtype = _out_dtype(input_type)
    if g.dtype == dtype:
        g.node("Identity", name, output=output)
    else:
        g.node("Cast", name, output=output, to=_PROTO[dtype])


def _regressor_shape(operator):
    inp, n = _check_input(operator, 1)
    operator.outputs[0].type = _TENSOR[_out_dtype(inp)](
        [n, _network(operator.raw_operator).n_outputs_])


def _convert_regressor(scope, operator, container):
    """FNNRegressor (an ensemble of them): predictions (n, n_outputs)."""
    g, y = _outputs(scope, operator, container, lambda g, a: a)
    _emit(g, y, operator.outputs[0].full_name, operator.inputs[0].type)


# ---- the classifier ---------------------------------------------------------------------------

def _class_labels(scope, est):
    """The labels ``predict`` returns, as int64 or str (``nocl``: the class indices)."""
    classes = np.asarray(get_label_classes(scope, est))
    if len(est.classes_) < 2:
        raise ValueError("Cannot export a classifier fitted on a single class to ONNX; fit it "
                         "on data with at least two classes.")
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        if not np.all(classes == np.round(classes)):
            raise ValueError(f"ONNX class labels must be integers or strings; got {classes}. "
                             "Encode the labels (e.g. as strings) before fitting.")
        return classes.astype(np.int64)
    if all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    raise ValueError(f"ONNX class labels must be all integers or all strings; got {classes}.")


def _is_multilabel(est):
    net = _network(est)
    return net.out_activation_ == "logistic" and net.n_outputs_ > 1


def _classifier_shape(operator):
    inp, n = _check_input(operator, 2)
    est = operator.raw_operator
    zipmap = operator.scope_inst.get_options(est, dict(zipmap=True))["zipmap"]
    if zipmap is True and isinstance(inp, DoubleTensorType):
        raise ValueError(
            "ONNX ZipMap takes float32 probabilities only, and this classifier's input is "
            f"float64: pass options={{{type(est).__name__}: {{'zipmap': False}}}} "
            "(fastfnn.onnx.to_onnx's default) or a float32 sample."
        )
    labels = _class_labels(operator.scope_inst, est)
    label_type = StringTensorType if labels.dtype.kind == "U" else Int64TensorType
    n_labels = _network(est).n_outputs_
    operator.outputs[0].type = label_type([n, n_labels] if _is_multilabel(est) else [n])
    operator.outputs[1].type = _TENSOR[_out_dtype(inp)]([n, len(est.classes_)])


def _convert_classifier(scope, operator, container):
    """FNNClassifier (an ensemble of them: the members' mean probabilities): label (n,)
    (multilabel: indicators (n, n_labels)) and probabilities."""
    est = operator.raw_operator

    def probabilities(g, a):
        if _network(est).n_outputs_ > 1:
            return a
        # binary: the logistic output is P(classes_[1])
        return g.node("Concat", g.node("Sub", g.const([[1.0]]), a), a, axis=1)  # (n, 2)

    g, p = _outputs(scope, operator, container, probabilities)
    label, proba = (v.full_name for v in operator.outputs)
    _emit(g, p, proba, operator.inputs[0].type)
    if _is_multilabel(est):
        g.node("Cast", g.node("Greater", p, g.const(0.5)), output=label,
               to=onnx_proto.TensorProto.INT64)
    else:
        if _network(est).n_outputs_ == 1:  # binary: P(classes_[1]) > 1/2, as predict decodes
            # it (an ensemble's mean of 1 - p could tie with its mean of p, within an ulp)
            column = g.node("Gather", p, g.const(np.array(1, dtype=np.int64), keep_dtype=True),
                            axis=1)  # (n,)
            best = g.node("Cast", g.node("Greater", column, g.const(0.5)),
                          to=onnx_proto.TensorProto.INT64)
        else:
            best = g.node("ArgMax", p, axis=1, keepdims=0)  # (n,), first maximum as numpy's
        g.node("Gather", g.const(_class_labels(scope, est), keep_dtype=True), best, output=label,
               axis=0)


_CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False],
                       "output_class_labels": [False, True]}


# ---- TransformedTargetRegressor: the regressor's graph, then the target transformer's inverse ---

_TARGET_ALIAS = "FastfnnTransformedTargetRegressor"


def _inverse_target(model):
    """(scale, offset) of the fitted target transformer's inverse ``y * scale + offset``
    (None: no such factor)."""
    t = model.transformer_
    if isinstance(t, StandardScaler):
        return t.scale_, t.mean_
    if isinstance(t, FunctionTransformer) and t.func is None and t.inverse_func is None:
        return None, None  # TransformedTargetRegressor's identity default
    raise ValueError(
        f"Cannot export a TransformedTargetRegressor whose target transformer is {t!r} to ONNX: "
        "only StandardScaler (and no transformer) are supported. Use "
        "transformer=StandardScaler(), or export the inner regressor."
    )


def _parse_target_regressor(scope, model, inputs, custom_parsers=None):
    check_is_fitted(model)
    _inverse_target(model)
    inner = _parse_sklearn(scope, model.regressor_, inputs, custom_parsers=custom_parsers)
    operator = scope.declare_local_operator(_TARGET_ALIAS, model)
    operator.inputs = inner[:1]
    operator.outputs.append(scope.declare_local_variable("variable", inner[0].type.__class__()))
    return operator.outputs


def _target_shape(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    inp = operator.inputs[0].type
    operator.outputs[0].type = inp.__class__(list(inp.shape))


def _convert_target(scope, operator, container):
    """``y * scale_ + mean_`` of the fitted StandardScaler, in the regressor output's type."""
    inp = operator.inputs[0]
    g = _Graph(scope, container, _out_dtype(inp.type))
    y = inp.full_name
    scale, offset = _inverse_target(operator.raw_operator)
    if scale is not None:
        y = g.node("Mul", y, g.const(np.reshape(scale, (1, -1))))
    if offset is not None:
        y = g.node("Add", y, g.const(np.reshape(offset, (1, -1))))
    g.node("Identity", y, output=operator.outputs[0].full_name)


def _joined(scope, inputs, container):
    """The name of the inputs' columns side by side, (N, sum of widths): the one input itself,
    else a ``Concat`` along the columns, which keeps their type (skl2onnx's
    ``concatenate_variables`` uses ``FeatureVectorizer``, whose output is float32 and which
    takes no strings)."""
    if len(inputs) == 1:
        return inputs[0].full_name
    joined = scope.get_unique_variable_name("joined")
    apply_concat(scope, [v.full_name for v in inputs], joined, container, axis=1)
    return joined


# ---- SimpleImputer: float64 input, and text whose missing value is not a string -----------------

def _is_nan(value):
    return isinstance(value, float) and value != value


def _convert_imputer(scope, operator, container):
    """float64 input, NaN missing: ``Where(IsNaN(x), statistics, x)`` in float64. Text input
    whose missing value is NaN, None or pandas' NA: the empty string is missing. Anything else:
    skl2onnx's converter."""
    op = operator.raw_operator
    inp = operator.inputs[0].type
    if (isinstance(inp, DoubleTensorType) and _is_nan(op.missing_values)
            and np.all(np.isfinite(op.statistics_.astype(np.float64)))):
        g = _Graph(scope, container, np.float64)
        x = _joined(scope, operator.inputs, container)
        fill = g.const(np.reshape(op.statistics_.astype(np.float64), (1, -1)))  # (1, F)
        g.node("Where", g.node("IsNaN", x), fill, x, output=operator.outputs[0].full_name)
        return
    if isinstance(inp, StringTensorType) and not isinstance(op.missing_values, str):
        if op.strategy == "constant" and op.fill_value == "" and len(operator.inputs) == 1:
            container.add_node("Identity", [operator.inputs[0].full_name],  # '' stays ''
                               [operator.outputs[0].full_name],
                               name=scope.get_unique_operator_name("Identity"))
            return
        import copy

        text = copy.copy(op)
        text.missing_values = ""
        operator.raw_operator = text
        try:
            convert_sklearn_imputer(scope, operator, container)
        finally:
            operator.raw_operator = op
        return
    convert_sklearn_imputer(scope, operator, container)


# ---- TextCells: a string tensor holds no missing marker but '': the cells pass unchanged -------

def _text_cells_shape(operator):
    """The output: the input's string tensor, (N, F)."""
    operator.outputs[0].type = StringTensorType([None, operator.raw_operator.n_features_in_])


def _parse_text_cells(scope, model, inputs, custom_parsers=None):
    """Declare the operator with a string output (skl2onnx would guess a float one, which
    the steps after it would then expect)."""
    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable(
        "text_cells", StringTensorType([None, model.n_features_in_])))
    return operator.outputs


def _convert_text_cells(scope, operator, container):
    """``Identity`` of the string input (its columns concatenated first where several)."""
    x = _joined(scope, operator.inputs, container)
    container.add_node("Identity", [x], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Identity"))


# ---- OneHotEncoder: text with rare values grouped, output in the encoder's dtype ----------------

def _onehot_blocks(op):
    """Per input column: (categories seen, {category: output position}, width, position of an
    unknown value or -1), or None when fastfnn's converter does not apply. ValueError where a
    column's categories hold a missing cell (None, NaN), which no string input can give."""
    for j, seen in enumerate(op.categories_):
        missing = [c for c in seen if c is None or _is_nan(c)]
        if missing:
            raise ValueError(
                f"This OneHotEncoder learned a missing cell ({missing[0]!r}) as a category of "
                f"its column {j}, which an ONNX string input cannot hold (its missing cells "
                "are ''): fill the missing cells before the encoder, e.g. with "
                "SimpleImputer(missing_values=None, strategy='constant', fill_value='') (after "
                "TextCells missing cells are None, which an imputer of NaN leaves as they are).")
    if op.drop is not None or op.handle_unknown not in ("ignore", "infrequent_if_exist"):
        return None
    if np.dtype(op.dtype) not in _TENSOR:
        return None
    try:
        rare = op.infrequent_categories_
    except AttributeError:
        rare = [None] * len(op.categories_)
    blocks = []
    for j, seen in enumerate(op.categories_):
        if not all(isinstance(c, str) for c in seen):
            return None
        grouped = set() if rare[j] is None else set(rare[j])
        frequent = [c for c in seen if c not in grouped]
        width = len(frequent) + bool(grouped)
        where = {c: i for i, c in enumerate(frequent)}
        where.update(dict.fromkeys(grouped, width - 1))
        unknown = width - 1 if grouped and op.handle_unknown == "infrequent_if_exist" else -1
        blocks.append((list(seen), where, width, unknown))
    return blocks


def _ours(operator):
    return (all(isinstance(v.type, StringTensorType) for v in operator.inputs)
            and _onehot_blocks(operator.raw_operator) is not None)


def _onehot_shape(operator):
    if not _ours(operator):
        return calculate_sklearn_one_hot_encoder_output_shapes(operator)
    op = operator.raw_operator
    width = sum(block[2] for block in _onehot_blocks(op))
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _TENSOR[np.dtype(op.dtype)]([n, width])


def _convert_onehot(scope, operator, container):
    """Each text column: ``LabelEncoder`` to its output position (rare values: their shared
    column; unknown values: that column or -1), then ``Equal`` with ``0..width-1`` cast to the
    encoder's dtype; the columns concatenated."""
    if not _ours(operator):
        return convert_sklearn_one_hot_encoder(scope, operator, container)
    op = operator.raw_operator
    g = _Graph(scope, container, np.dtype(op.dtype))
    blocks = _onehot_blocks(op)
    x = _joined(scope, operator.inputs, container)  # (N, n_columns) strings
    outputs = []
    for j, (seen, where, width, unknown) in enumerate(blocks):
        column = x if len(blocks) == 1 else g.node(
            "Gather", x, g.const(np.array([j], dtype=np.int64), keep_dtype=True), axis=1)
        index = g.node("LabelEncoder", column, op_domain="ai.onnx.ml", op_version=2,
                       keys_strings=seen, values_int64s=[where[c] for c in seen],
                       default_int64=unknown)  # (N, 1)
        positions = g.const(np.arange(width, dtype=np.int64).reshape(1, -1), keep_dtype=True)
        outputs.append(g.node("Cast", g.node("Equal", index, positions),
                              to=_PROTO[np.dtype(op.dtype)]))  # (N, width)
    if len(outputs) == 1:
        g.node("Identity", outputs[0], output=operator.outputs[0].full_name)
    else:
        apply_concat(scope, outputs, operator.outputs[0].full_name, container, axis=1)


# ---- a ColumnTransformer fed one (N, F) tensor ---------------------------------------------------

def _positional(model):
    """A copy of ``model`` whose ColumnTransformers select columns by position rather than by
    name (the names looked up in the columns each was fitted on); ``model`` itself when it
    holds none that selects by name."""
    import copy

    def by_name(ct):
        return hasattr(ct, "feature_names_in_") and any(
            isinstance(c, str) or (isinstance(c, (list, tuple, np.ndarray)) and len(c)
                                   and isinstance(c[0], str))
            for _, _, c in ct.transformers_)

    found = []

    def walk(obj):
        if isinstance(obj, ColumnTransformer):
            found.append(obj)
        elif isinstance(obj, Pipeline):
            for _, step in obj.steps:
                walk(step)
        elif isinstance(obj, TransformedTargetRegressor):
            walk(obj.regressor_)

    walk(model)
    if not any(by_name(ct) for ct in found):
        return model
    model = copy.deepcopy(model)
    found.clear()
    walk(model)
    for ct in found:
        if not by_name(ct):
            continue
        names = list(ct.feature_names_in_)
        transformers = []
        for name, step, cols in ct.transformers_:
            if not isinstance(cols, slice):
                cols = _positions(cols, names)
                if len(cols) == len(names) and cols != sorted(cols):
                    # skl2onnx takes a selection as wide as its input for the whole input
                    raise ValueError(
                        f"Cannot give {type(ct).__name__} step {name!r} one (N, F) input: it "
                        f"takes every column in another order ({', '.join(map(str, cols))}). "
                        "Pass a DataFrame sample (one input per column) instead.")
            transformers.append((name, step, cols))
        ct.transformers_ = transformers
    return model


def _positions(cols, names):
    """The positions of a ColumnTransformer's selection ``cols`` (names, positions, as scikit-
    learn keeps a remainder or an integer selection, or a boolean mask) among ``names``."""
    if isinstance(cols, str):
        cols = [cols]
    if np.asarray(cols).dtype == bool:
        return [int(i) for i in np.flatnonzero(cols)]
    return [names.index(c) if isinstance(c, str) else int(c) for c in cols]


def _columns_joined(model, frame):
    """``(model, frame)`` where every column of the sample ``frame`` is numeric and the model's
    first step is no ColumnTransformer: the model behind one that passes every column
    through (one input per column, joined by a ``Concat``), the integer columns of the sample
    in the network's float dtype (inputs of that type: predict reads them so, and an integer
    input would give a float32 output); else both as they are. (skl2onnx's converters would
    join the inputs with ``FeatureVectorizer``, in float32: a float64 model would lose 1e-2 on
    a column of timestamps.)"""
    import pandas as pd

    first = model
    while isinstance(first, (Pipeline, TransformedTargetRegressor)):
        first = first.steps[0][1] if isinstance(first, Pipeline) else first.regressor_
    numeric = all(pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype.kind in "iuf"
                  for c in frame.columns)
    fnn = _fnn_estimator(model)
    if isinstance(first, ColumnTransformer) or not numeric or fnn is None:
        return model, frame
    dtype = fnn.coefs_[0].dtype
    frame = frame.astype({c: dtype for c in frame.columns if frame[c].dtype.kind in "iu"})
    columns = ColumnTransformer([("columns", "passthrough", list(frame.columns))]).fit(frame)
    return Pipeline([("columns", columns), ("model", model)]), frame


# ---- public conveniences ----------------------------------------------------------------------

def _fnn_estimator(model):
    """The FNN estimator at the end of ``model`` (through Pipelines and the target wrapper; an
    ensemble's first member)."""
    while True:
        if isinstance(model, (FNNRegressor, FNNClassifier, *_ENSEMBLES)):
            return _network(model)
        if isinstance(model, TransformedTargetRegressor):
            model = model.regressor_
        elif isinstance(model, Pipeline):
            model = model.steps[-1][1]
        else:
            return None


def _zero_row(model):
    """One zero row with the model's input width: float64 for a float64 network, else float32."""
    first = model
    while isinstance(first, (Pipeline, TransformedTargetRegressor)):
        first = first.steps[0][1] if isinstance(first, Pipeline) else first.regressor_
    n_features = getattr(model, "n_features_in_", None) or getattr(first, "n_features_in_", None)
    if n_features is None or isinstance(first, ColumnTransformer):
        raise ValueError(
            f"Cannot tell the input of {type(model).__name__} without a sample: pass X_sample "
            "(e.g. the first row of the training data, a DataFrame for a ColumnTransformer)."
        )
    fnn = _fnn_estimator(model)
    wide = fnn is not None and fnn.coefs_[0].dtype == np.float64
    return np.zeros((1, n_features), np.float64 if wide else np.float32)


def to_onnx(model, X_sample, *, target_opset=None, options=None):
    """Convert a fitted model (a fastfnn estimator, or a Pipeline ending in one) to ONNX.

    Parameters
    ----------
    model : estimator
        Fitted FNNRegressor, FNNClassifier or ensemble of them, bare, in a scikit-learn
        Pipeline and/or in a TransformedTargetRegressor whose transformer is a StandardScaler.
    X_sample : array-like or DataFrame
        A sample of the input; its dtype (float32 -> FloatTensorType, float64 ->
        DoubleTensorType) and width define the ONNX input ``X``. A DataFrame gives one input
        per column, named after it (skl2onnx's rule: characters other than letters, digits
        and ``_`` become ``_``; a model of numeric columns that does not begin with a
        ColumnTransformer takes its integer columns in the network's float dtype, as
        ``predict`` reads them); an array gives one input ``X`` of shape (N, F), also for a
        ColumnTransformer that selects numeric columns by name (in the order it was fitted
        on).
    target_opset : int, optional
        ONNX opset; skl2onnx's latest by default.
    options : dict, optional
        skl2onnx converter options. By default classifiers return the probabilities as one
        tensor (``{FNNClassifier: {"zipmap": False}}``); pass ``{}`` for skl2onnx's defaults.

    Returns
    -------
    onnx.ModelProto
        Outputs ``variable`` (n, n_outputs) for regressors; ``label`` and ``probabilities``
        (n, n_classes) for classifiers.
    """
    check_is_fitted(model)
    if X_sample is None:
        raise ValueError("X_sample is required: pass a sample of the input (one row will do).")
    if options is None:
        options = {FNNClassifier: {"zipmap": False}, FNNEnsembleClassifier: {"zipmap": False}}
    import pandas as pd

    if not isinstance(X_sample, pd.DataFrame):
        model = _positional(model)
    else:  # pandas' string columns (pd.read_csv's default) as the object columns skl2onnx reads
        X_sample = X_sample.assign(**{
            name: X_sample[name].astype(object) for name in X_sample.columns
            if pd.api.types.is_string_dtype(X_sample[name])
            and not pd.api.types.is_object_dtype(X_sample[name])})
        model, X_sample = _columns_joined(model, X_sample)
    return skl2onnx.to_onnx(model, X_sample, target_opset=target_opset, options=options)


def save_onnx(model, path, X_sample=None, *, target_opset=None, options=None):
    """Convert ``model`` with :func:`to_onnx` and write it to ``path``.

    Parameters
    ----------
    model : estimator
        As for :func:`to_onnx`.
    path : str or path-like
        File to write (conventionally ``*.onnx``).
    X_sample : array-like or DataFrame, optional
        As for :func:`to_onnx`. By default one zero row with ``model.n_features_in_`` columns,
        float64 when the network's weights are float64 and float32 otherwise.
    target_opset, options
        As for :func:`to_onnx`.

    Returns
    -------
    onnx.ModelProto
        The model written.
    """
    check_is_fitted(model)
    if X_sample is None:
        X_sample = _zero_row(model)
    onx = to_onnx(model, X_sample, target_opset=target_opset, options=options)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    return onx


update_registered_converter(FNNRegressor, "FastfnnFNNRegressor", _regressor_shape,
                            _convert_regressor)
update_registered_converter(FNNClassifier, "FastfnnFNNClassifier", _classifier_shape,
                            _convert_classifier, options=_CLASSIFIER_OPTIONS)
update_registered_converter(FNNEnsembleRegressor, "FastfnnFNNEnsembleRegressor",
                            _regressor_shape, _convert_regressor)
update_registered_converter(FNNEnsembleClassifier, "FastfnnFNNEnsembleClassifier",
                            _classifier_shape, _convert_classifier, options=_CLASSIFIER_OPTIONS)
update_registered_converter(TransformedTargetRegressor, _TARGET_ALIAS, _target_shape,
                            _convert_target, parser=_parse_target_regressor)
update_registered_converter(SimpleImputer, "SklearnSimpleImputer",
                            calculate_sklearn_imputer_output_shapes, _convert_imputer)
update_registered_converter(OneHotEncoder, "SklearnOneHotEncoder", _onehot_shape,
                            _convert_onehot)
update_registered_converter(TextCells, "FastfnnTextCells", _text_cells_shape,
                            _convert_text_cells, parser=_parse_text_cells)
