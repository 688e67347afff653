"""The checks a loaded model passes before :func:`fastfnn.load_model` returns it.

A model file is untrusted input: skops rebuilds fastfnn's objects from their attributes
without calling ``__init__``, so every attribute of a fitted estimator is whatever the file
says. The compiled kernels trust their arrays (an optimizer state shorter than the network is
a write past its end: heap corruption, not an exception), and several scalars select a kernel
or are used as an index. :func:`check_estimator` therefore checks everything a fastfnn
estimator holds, against the schema of the attributes this release writes and against each
other:

* the attribute names: the constructor's parameters, the fitted attributes, and the few that
  scikit-learn itself sets (no others: an instance attribute named like a method would shadow
  it);
* the parameters, with the estimator's own ``_parameter_constraints``;
* every array: its exact type (``numpy.ndarray``), dtype (the network's, native byte order),
  shape (consistent with the network's layer sizes), C order, alignment and finiteness;
* every scalar: its type, its range, and its agreement with the arrays (``n_features_in_``,
  ``n_outputs_``, ``n_layers_``, the output activation and the loss it implies, the classes
  and the label binarizer's encoding);
* the optimizer: the face of a registered update rule (``optimizers.RULES``) with exactly
  its attributes, its state of the network's size and dtype, its hyper-parameters in their
  ranges.

A failure raises :class:`FieldError` naming the field as a path from the estimator
(``_optimizer.m``, ``coefs_[1]``, ``_label_binarizer.classes_``); :mod:`fastfnn.model_io`
turns it into a ``ModelFileError`` with the file's name.
"""

import math
from numbers import Integral, Real

import numpy as np

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .fitstate import HISTORY
from .losses import LOSSES, REGRESSOR_OUTPUTS, check_pair
from . import optimizers as opt_kinds
from .dropout import hidden_rates
from .optimizers import RULES
from .preprocessing import TextCells

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Counters (n_iter_, t_, Adam's step count...) beyond this are not counts a fit produces, and
# arithmetic on them (``(t + 1) ** power_t``, int64 in compiled code) would overflow.
MAX_COUNT = 2**62

# Attributes that scikit-learn sets on an estimator itself (metadata routing, set_output, the
# callbacks given to set_callbacks); not read by fastfnn's code.
SKLEARN_ATTRIBUTES = ("_metadata_request", "_sklearn_output_config", "_skl_callbacks")
# Fitted attributes of every fitted estimator; ``_random_state`` (replaced by every fit) and
# ``feature_names_in_`` (only when fitted on a frame) may be missing.
FITTED = ("n_features_in_", "n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_",
          "coefs_", "intercepts_", "loss_")
OPTIONAL_FITTED = ("_random_state", "feature_names_in_", "_loss", "_validation_scored_by")
CLASSIFIER_FITTED = ("classes_", "_label_binarizer")
# Set together by every stochastic fit ('sgd', 'adam', 'adamw'), removed together by a fresh fit.
STOCHASTIC = tuple(name for name, _, _, _ in HISTORY if name not in ("t_", "loss_")) + (
    "loss_curve_", "gradient_norms_", "_optimizer")
BEST_WEIGHTS = ("_best_coefs", "_best_intercepts")  # the early-stopping snapshot
# Parameters added after the first model files: a file without one gets the default.
ADDED_PARAMETERS = {"dropout": 0.0, "max_grad_norm": None, "scoring": None,
                    "class_weight": None}
# Stochastic history added after the first model files: a file without it gets it as not
# recorded (NaN norms, NaN validation losses where there are validation scores).
ADDED_HISTORY = ("validation_loss_curve_", "gradient_norms_")
LABEL_BINARIZER_ATTRIBUTES = ("neg_label", "pos_label", "sparse_output", "y_type_",
                              "sparse_input_", "classes_")
CLASSIFIER_OUTPUTS = {"multiclass": "softmax", "binary": "logistic",
                      "multilabel-indicator": "logistic"}


class FieldError(ValueError):
    """A field of a loaded estimator that a model fastfnn saved cannot hold.

    Parameters
    ----------
    field : str
        The field's path from the estimator, e.g. ``'_optimizer.m'`` or ``'coefs_[1]'``.
    problem : str
        What is wrong, completing "field '...' ...", e.g. "has shape (1,), expected (64,)".
    """

    def __init__(self, field, problem):
        super().__init__(f"field {field!r} {problem}")
        self.field, self.problem = field, problem


# ---- scalars ----------------------------------------------------------------------------------


def _describe(value):
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_int(value, field, low=0, high=MAX_COUNT):
    """``value`` as an int in ``[low, high]`` (a Python or NumPy integer, not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, np.integer)):
        raise FieldError(field, f"is {_describe(value)}, expected an integer")
    if not low <= int(value) <= high:
        raise FieldError(field, f"is {int(value)}, expected an integer in [{low}, {high}]")
    return int(value)


def check_real(value, field, *, none=False, nan=False, infinite=False, low=-math.inf,
               high=math.inf, open_low=False):
    """``value`` as a float: a real number (not a bool), or None where ``none``; NaN and
    infinities only where allowed; within ``[low, high]`` (``(low, high]`` if ``open_low``)."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.floating,
                                                                       np.integer)):
        raise FieldError(field, f"is {_describe(value)}, expected a real number"
                                + (" or None" if none else ""))
    number = float(value)
    if math.isnan(number):
        if nan:
            return number
        raise FieldError(field, "is NaN, expected a number")
    if math.isinf(number) and not infinite:
        raise FieldError(field, f"is {number}, expected a finite number")
    if not (low < number if open_low else low <= number) or not number <= high:
        interval = f"{'(' if open_low else '['}{low}, {high}]"
        raise FieldError(field, f"is {number}, expected a number in {interval}")
    return number


def check_bool(value, field):
    if not isinstance(value, (bool, np.bool_)):
        raise FieldError(field, f"is {_describe(value)}, expected True or False")
    return bool(value)


def check_str(value, field, choices):
    if type(value) is not str or value not in choices:
        raise FieldError(field, f"is {_describe(value)}, expected one of {sorted(choices)}")
    return value


def check_list(value, field, length=None):
    if type(value) is not list:
        raise FieldError(field, f"is {_describe(value)}, expected a list")
    if length is not None and len(value) != length:
        raise FieldError(field, f"has {len(value)} items, expected {length}")
    return value


# ---- arrays -----------------------------------------------------------------------------------


def check_array(value, field, dtype, shape, *, finite=True, nonnegative=False):
    """``value`` as an array that compiled code may take: exactly a ``numpy.ndarray`` of
    ``dtype`` (native byte order), of ``shape`` (a tuple; None leaves an axis free),
    C-contiguous and aligned, and (``finite``) with no NaN or infinity, (``nonnegative``) no
    negative value."""
    if type(value) is not np.ndarray:
        raise FieldError(field, f"is {_describe(value)}, expected a numpy array")
    if value.dtype != dtype:
        raise FieldError(field, f"has dtype {value.dtype.str} ({value.dtype}), expected "
                                f"{np.dtype(dtype)}")
    if value.ndim != len(shape) or any(want is not None and got != want
                                       for got, want in zip(value.shape, shape)):
        expected = "(" + ", ".join("any" if n is None else str(n) for n in shape) + \
                   ("," if len(shape) == 1 else "") + ")"
        raise FieldError(field, f"has shape {value.shape}, expected {expected}")
    if not (value.flags.c_contiguous and value.flags.aligned):
        raise FieldError(field, "is not a C-ordered (row-major), aligned array")
    if finite and value.dtype.kind == "f" and not np.isfinite(value).all():
        raise FieldError(field, "holds NaN or infinite values")
    if nonnegative and (value < 0).any():
        raise FieldError(field, "holds negative values")
    return value


# ---- the estimator ------------------------------------------------------------------------------


def check_estimator(est):
    """Raise :class:`FieldError` unless the fastfnn estimator ``est`` is one this release
    could have fitted and saved (see the module docstring); returns None."""
    from .estimators import FNNClassifier, FNNRegressor

    from .ensemble import FNNEnsembleClassifier, FNNEnsembleRegressor

    if type(est) is TextCells:
        return _check_text_cells(est)
    if type(est) in (FNNEnsembleRegressor, FNNEnsembleClassifier):
        return _check_ensemble(est)
    if type(est) not in (FNNRegressor, FNNClassifier):
        raise FieldError("", f"is a {type(est).__module__}.{type(est).__qualname__}, which "
                             "is not a model fastfnn saves (FNNRegressor, FNNClassifier or an "
                             "ensemble of them)")
    attributes = vars(est)
    params = _check_params(est, attributes)
    fitted = "coefs_" in attributes
    allowed = set(params) | set(SKLEARN_ATTRIBUTES)
    fitted_only = set(FITTED) | set(OPTIONAL_FITTED) | set(CLASSIFIER_FITTED) | \
        set(STOCHASTIC) | set(BEST_WEIGHTS)
    if not fitted and fitted_only & set(attributes):
        there = sorted(fitted_only & set(attributes))[0]
        raise FieldError("coefs_", f"is missing, but the fitted attribute {there!r} is there")
    if fitted:
        required = FITTED + (CLASSIFIER_FITTED if type(est) is FNNClassifier else ())
        missing = [name for name in required if name not in attributes]
        if missing:
            raise FieldError(missing[0], "is missing: a fitted model holds it")
        allowed |= fitted_only
    unknown = sorted(set(attributes) - allowed)
    if unknown:
        state = "a fitted" if fitted else "an unfitted"
        raise FieldError(unknown[0], f"is not an attribute of {state} {type(est).__name__}")
    if fitted:
        _check_fitted(est, attributes, type(est) is FNNClassifier)


def _check_ensemble(est):
    """An ensemble: its parameters and, fitted, ``n_estimators`` fitted members of its kind
    (each checked here as the estimator it is, before their fields are compared) that agree
    on what their predictions are averaged over: features, outputs, classes."""
    from .estimators import FNNClassifier

    a = vars(est)
    classifier = est._kind is FNNClassifier  # (a class attribute: a file cannot set it)
    names = type(est)._get_param_names()
    fitted = ("estimators_", "seeds_", "n_features_in_") + (("classes_",) if classifier else ())
    unknown = sorted(set(a) - set(names) - set(SKLEARN_ATTRIBUTES) - set(fitted)
                     - {"feature_names_in_"})
    if unknown:
        raise FieldError(unknown[0], f"is not an attribute of a {type(est).__name__}")
    missing = [name for name in names if name not in a]
    if missing:
        raise FieldError(missing[0], "is missing: every estimator holds its parameters")
    if a["estimator"] is not None and type(a["estimator"]) is not est._kind:
        raise FieldError("estimator", f"is {_describe(a['estimator'])}, expected a "
                                      f"{est._kind.__name__} or None")
    n = check_int(a["n_estimators"], "n_estimators", low=1)
    if a["n_jobs"] is not None:
        check_int(a["n_jobs"], "n_jobs", low=-MAX_COUNT)
    if "estimators_" not in a:
        there = sorted(set(fitted + ("feature_names_in_",)) & set(a))
        if there:
            raise FieldError("estimators_", f"is missing, but the fitted attribute "
                                            f"{there[0]!r} is there")
        return
    missing = [name for name in fitted if name not in a]
    if missing:
        raise FieldError(missing[0], "is missing: a fitted ensemble holds it")
    members = check_list(a["estimators_"], "estimators_", n)
    seeds = a["seeds_"]
    if type(seeds) is not np.ndarray or seeds.dtype.kind not in "iu" or seeds.shape != (n,):
        raise FieldError("seeds_", f"is {_describe(seeds)}, expected {n} integer seeds")
    for k, member in enumerate(members):
        if type(member) is not est._kind or "coefs_" not in vars(member):
            raise FieldError(f"estimators_[{k}]", f"is {_describe(member)}, expected a fitted "
                                                  f"{est._kind.__name__}")
        try:
            check_estimator(member)
        except FieldError as exc:
            raise FieldError(".".join(part for part in (f"estimators_[{k}]", exc.field)
                                      if part), exc.problem) from None
    first = vars(members[0])
    agree = ["n_features_in_", "n_outputs_"] + (["classes_"] if classifier else [])
    for k, member in enumerate(members):
        for name in agree:
            mine, theirs = np.asarray(vars(member)[name]), np.asarray(first[name])
            if mine.dtype != theirs.dtype or not np.array_equal(mine, theirs):
                raise FieldError(f"estimators_[{k}].{name}", "differs from the first member's")
    if check_int(a["n_features_in_"], "n_features_in_") != first["n_features_in_"]:
        raise FieldError("n_features_in_", "differs from the members'")
    if classifier:
        classes = a["classes_"]
        if type(classes) is not np.ndarray or classes.dtype != first["classes_"].dtype or \
                not np.array_equal(classes, first["classes_"]):
            raise FieldError("classes_", "differs from the members'")
    if "feature_names_in_" in a:
        names_in = a["feature_names_in_"]
        if type(names_in) is not np.ndarray or "feature_names_in_" not in first or \
                not np.array_equal(names_in, first["feature_names_in_"]):
            raise FieldError("feature_names_in_", "differs from the members'")


def _check_text_cells(est):
    """A TextCells holds no parameter, and when fitted its column count (and names) and
    whether it gives dates as text (True; absent in one fitted before)."""
    attributes = vars(est)
    unknown = sorted(set(attributes) - {"n_features_in_", "feature_names_in_", "dates_as_text_"}
                     - set(SKLEARN_ATTRIBUTES))
    if unknown:
        raise FieldError(unknown[0], "is not an attribute of a TextCells")
    if "dates_as_text_" in attributes and attributes["dates_as_text_"] is not True:
        raise FieldError("dates_as_text_", f"is {_describe(attributes['dates_as_text_'])}, "
                                           "expected True")
    if "n_features_in_" in attributes:
        n = check_int(attributes["n_features_in_"], "n_features_in_", low=1)
        if "feature_names_in_" in attributes:
            names = check_array(attributes["feature_names_in_"], "feature_names_in_",
                                np.dtype(object), (n,), finite=False)
            if not all(type(name) is str for name in names):
                raise FieldError("feature_names_in_", "holds items that are not strings")
    elif "feature_names_in_" in attributes:
        raise FieldError("n_features_in_", "is missing, but 'feature_names_in_' is there")


def _check_params(est, attributes):
    """The constructor's parameters: all present, each within the estimator's constraints."""
    from sklearn.utils._param_validation import validate_parameter_constraints

    names = type(est)._get_param_names()
    for name in names:
        if name not in attributes and name in ADDED_PARAMETERS:
            attributes[name] = ADDED_PARAMETERS[name]  # the estimator's own dict
        if name not in attributes:
            raise FieldError(name, "is missing: every estimator holds its parameters")
        try:
            validate_parameter_constraints(est._parameter_constraints,
                                           {name: attributes[name]},
                                           caller_name=type(est).__name__)
        except ValueError as exc:
            raise FieldError(name, f"is not a valid parameter value ({exc})") from None
    try:
        est._hidden_sizes()
    except ValueError:
        raise FieldError("hidden_layer_sizes", f"is {est.hidden_layer_sizes!r}, expected "
                                               "positive integers") from None
    check_str(attributes["activation"], "activation", HIDDEN_ACTIVATIONS)
    try:
        hidden_rates(attributes["dropout"], len(est._hidden_sizes()))
    except ValueError as exc:
        raise FieldError("dropout", str(exc)) from None
    return names


def _check_fitted(est, a, classifier):
    sizes, dtype = _check_network(a)
    n_weights = len(sizes) - 1
    check_int(a["n_iter_"], "n_iter_")
    check_int(a["t_"], "t_")
    check_real(a["loss_"], "loss_", none=True)
    out = check_str(a["out_activation_"], "out_activation_", OUTPUT_ACTIVATIONS)
    if classifier:
        _check_classes(a, sizes[-1])
    else:
        check_str(out, "out_activation_", REGRESSOR_OUTPUTS + ("exp",))
    if "_loss" in a:
        check_str(a["_loss"], "_loss", tuple(LOSSES))
    scored_by = a.get("_validation_scored_by")
    if scored_by is not None and type(scored_by) is not str:
        raise FieldError("_validation_scored_by", f"is {_describe(scored_by)}, expected a "
                                                  "string or None")
    try:
        check_pair(est._fitted_loss(), out)
    except ValueError as exc:
        raise FieldError("out_activation_", str(exc)) from None
    if "_random_state" in a and type(a["_random_state"]) is not np.random.RandomState:
        raise FieldError("_random_state", f"is {_describe(a['_random_state'])}, expected a "
                                          "numpy RandomState")
    if "feature_names_in_" in a:
        names = check_array(a["feature_names_in_"], "feature_names_in_", np.dtype(object),
                            (sizes[0],), finite=False)
        if not all(type(name) is str for name in names):
            raise FieldError("feature_names_in_", "holds items that are not strings")
    present = [name for name in STOCHASTIC if name in a]
    missing = [name for name in STOCHASTIC if name not in a and name not in ADDED_HISTORY]
    if present and missing:
        raise FieldError(missing[0], f"is missing, but {present[0]!r} is there: a stochastic "
                                     "fit sets both")
    if present:
        _check_history(a, n_weights)
        _check_optimizer(a["_optimizer"], sizes, dtype)
        _add_history(a, n_weights)
    best = [name for name in BEST_WEIGHTS if name in a]
    if present and a["validation_scores_"] is not None and len(best) != 2:
        missing = next(name for name in BEST_WEIGHTS if name not in a)
        raise FieldError(missing, "is missing: a model fitted with early stopping holds the "
                                  "best weights")
    if len(best) == 1:
        raise FieldError(next(name for name in BEST_WEIGHTS if name not in a),
                         f"is missing, but {best[0]!r} is there")
    if best:
        _check_weights(a["_best_coefs"], a["_best_intercepts"], sizes, dtype, "_best_coefs",
                       "_best_intercepts")


def _check_network(a):
    """The layer sizes and dtype of ``coefs_``/``intercepts_``, checked (with n_features_in_,
    n_outputs_)."""
    n_layers = check_int(a["n_layers_"], "n_layers_", 2)
    coefs = check_list(a["coefs_"], "coefs_", n_layers - 1)
    n_features = check_int(a["n_features_in_"], "n_features_in_", 1)
    n_outputs = check_int(a["n_outputs_"], "n_outputs_", 1)
    first = coefs[0]
    if type(first) is not np.ndarray or first.dtype not in FLOAT_DTYPES:
        dtype = getattr(first, "dtype", None)
        raise FieldError("coefs_[0]", f"has dtype {dtype.str} ({dtype}), expected float32 or "
                         "float64" if type(first) is np.ndarray else
                         f"is {_describe(first)}, expected a numpy array")
    dtype = first.dtype
    sizes = [n_features]
    for i, W in enumerate(coefs):
        last = i == len(coefs) - 1
        check_array(W, f"coefs_[{i}]", dtype, (sizes[-1], n_outputs if last else None))
        if W.shape[1] < 1:
            raise FieldError(f"coefs_[{i}]", f"has shape {W.shape}, a layer of no units")
        sizes.append(W.shape[1])
    _check_weights(coefs, a["intercepts_"], sizes, dtype, "coefs_", "intercepts_")
    return sizes, dtype


def _check_weights(coefs, intercepts, sizes, dtype, coefs_name, intercepts_name):
    check_list(coefs, coefs_name, len(sizes) - 1)
    check_list(intercepts, intercepts_name, len(sizes) - 1)
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        check_array(coefs[i], f"{coefs_name}[{i}]", dtype, (fan_in, fan_out))
        check_array(intercepts[i], f"{intercepts_name}[{i}]", dtype, (fan_out,))


def _check_history(a, n_weights):
    """The training history of the stochastic solvers (fitstate.HISTORY and the curves)."""
    check_int(a["_no_improvement_count"], "_no_improvement_count")
    for name in ("best_loss_", "_best_stall_loss", "best_validation_score_"):
        check_real(a[name], name, none=True, infinite=True)
    curve = check_list(a["loss_curve_"], "loss_curve_")
    for i, value in enumerate(curve):
        check_real(value, f"loss_curve_[{i}]", infinite=True)
    lengths = {}
    for name in ("validation_scores_", "validation_loss_curve_"):
        if name not in a:  # (an added field, a file from before it)
            continue
        if a[name] is not None:
            for i, value in enumerate(check_list(a[name], name)):
                check_real(value, f"{name}[{i}]", nan=True, infinite=True)
            lengths[name] = len(a[name])
    if len(lengths) == 1 and "validation_loss_curve_" in a:
        present = next(iter(lengths))
        other = next(n for n in ("validation_scores_", "validation_loss_curve_") if n != present)
        raise FieldError(other, f"is None, but {present!r} is a list: early stopping sets both")
    if len(set(lengths.values())) > 1:
        raise FieldError("validation_loss_curve_", "has another length than "
                                                   "'validation_scores_' (one value per epoch)")
    if "gradient_norms_" in a:  # a row per epoch of loss_curve_; NaN: not recorded
        norms = check_array(a["gradient_norms_"], "gradient_norms_", np.dtype(np.float64),
                            (len(curve), n_weights), finite=False, nonnegative=True)
        if np.isinf(norms).any():
            raise FieldError("gradient_norms_", "holds infinite values")


def _add_history(a, n_weights):
    """The history a file written before it was recorded lacks (ADDED_HISTORY), as not
    recorded: NaN norms for each epoch of ``loss_curve_``, and NaN validation losses for each
    validation score (None without early stopping)."""
    if "gradient_norms_" not in a:
        a["gradient_norms_"] = np.full((len(a["loss_curve_"]), n_weights), np.nan)
    if "validation_loss_curve_" not in a:
        scores = a["validation_scores_"]
        a["validation_loss_curve_"] = None if scores is None else [np.nan] * len(scores)


def _check_optimizer(opt, sizes, dtype):
    """``_optimizer``: exactly the face of an update rule of the registry, with exactly its
    attributes (``FIELDS``; those marked optional may be missing), each of its kind: the
    state of the network's size and dtype, the hyper-parameters in their ranges."""
    faces = {entry.face: name for name, entry in RULES.items()}
    if type(opt) not in faces:
        raise FieldError("_optimizer", f"is {_describe(opt)}, expected the optimizer of one of "
                                       f"the solvers {tuple(RULES)}")
    fields = {name.rstrip("?"): kind for name, kind in type(opt).FIELDS.items()}
    optional = {name for name, kind in fields.items() if kind.endswith("?")}
    attributes = vars(opt)
    unknown = sorted(set(attributes) - set(fields))
    if unknown:
        raise FieldError(f"_optimizer.{unknown[0]}", f"is not an attribute of "
                                                     f"{type(opt).__name__}")
    missing = [name for name in fields if name not in attributes and name not in optional]
    if missing:
        raise FieldError(f"_optimizer.{missing[0]}", "is missing")
    n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    schedules = RULES[faces[type(opt)]].schedules
    for name, kind in fields.items():
        if name in attributes:
            _check_optimizer_field(attributes[name], f"_optimizer.{name}", kind.rstrip("?"),
                                   dtype, n_params, schedules)


def _check_optimizer_field(value, field, kind, dtype, n_params, schedules):
    """One field of an optimizer, by its kind (``optimizers.FIELDS``' vocabulary;
    ``schedules``: those its rule follows)."""
    if kind == opt_kinds.SCHEDULE:
        check_str(value, field, schedules)
    elif kind == opt_kinds.COUNT:
        check_int(value, field, low=1)
    elif kind == opt_kinds.RATE or kind == opt_kinds.POSITIVE:
        check_real(value, field, low=0, open_low=True)
    elif kind == opt_kinds.NON_NEGATIVE:
        check_real(value, field, low=0)
    elif kind in (opt_kinds.FRACTION, opt_kinds.FRACTION_OPEN):
        check_real(value, field, low=0, high=1)
        if kind == opt_kinds.FRACTION_OPEN and value == 1:
            raise FieldError(field, "is 1, expected a number in [0, 1)")
    elif kind == opt_kinds.FLAG:
        check_bool(value, field)
    elif kind == opt_kinds.DTYPE:
        if not isinstance(value, np.dtype) or value != dtype:
            raise FieldError(field, f"is {value!r}, expected the network's dtype {dtype}")
    elif kind in (opt_kinds.STATE, opt_kinds.STATE_NON_NEGATIVE):
        check_array(value, field, dtype, (n_params,),
                    nonnegative=kind == opt_kinds.STATE_NON_NEGATIVE)
    elif kind == opt_kinds.STEPS:
        steps = check_array(value, field, np.dtype(np.int64), (1,))
        check_int(steps[0], f"{field}[0]")
    else:  # pragma: no cover - a face declaring a kind this check does not know
        raise FieldError(field, f"has the unknown kind {kind!r}")


def _check_classes(a, n_outputs):
    """``classes_`` and the label binarizer that encodes the targets, against n_outputs_."""
    from sklearn.preprocessing import LabelBinarizer

    lb = a["_label_binarizer"]
    if type(lb) is not LabelBinarizer:
        raise FieldError("_label_binarizer", f"is {_describe(lb)}, expected a LabelBinarizer")
    attributes = vars(lb)
    for name in LABEL_BINARIZER_ATTRIBUTES:
        if name not in attributes:
            raise FieldError(f"_label_binarizer.{name}", "is missing")
    unknown = sorted(set(attributes) - set(LABEL_BINARIZER_ATTRIBUTES))
    if unknown:
        raise FieldError(f"_label_binarizer.{unknown[0]}", "is not an attribute of the "
                                                           "LabelBinarizer fastfnn fits")
    if type(lb.neg_label) is not int or lb.neg_label != 0:
        raise FieldError("_label_binarizer.neg_label", f"is {lb.neg_label!r}, expected 0")
    if type(lb.pos_label) is not int or lb.pos_label != 1:
        raise FieldError("_label_binarizer.pos_label", f"is {lb.pos_label!r}, expected 1")
    if lb.sparse_output is not False:
        raise FieldError("_label_binarizer.sparse_output", f"is {lb.sparse_output!r}, "
                                                           "expected False")
    y_type = check_str(lb.y_type_, "_label_binarizer.y_type_", CLASSIFIER_OUTPUTS)
    # sparse targets (multilabel only) make predict return a sparse matrix
    if check_bool(lb.sparse_input_, "_label_binarizer.sparse_input_") and \
            y_type != "multilabel-indicator":
        raise FieldError("_label_binarizer.sparse_input_", f"is True for a {y_type!r} target, "
                                                           "expected False")
    classes = _check_class_array(lb.classes_, "_label_binarizer.classes_")
    mine = _check_class_array(a["classes_"], "classes_")
    # the same labels; integers of another width too (partial_fit's ``classes`` of int32
    # labels, a multilabel binarizer's int64 columns)
    same_kind = mine.dtype == classes.dtype or {mine.dtype.kind, classes.dtype.kind} <= set("iu")
    if not same_kind or not np.array_equal(mine, classes):
        raise FieldError("classes_", "differs from '_label_binarizer.classes_'")
    k = len(classes)
    if y_type == "binary":
        expected, counts = 1, (1, 2)
    elif y_type == "multiclass":
        expected, counts = k, range(3, k + 1)
    else:
        expected, counts = k, range(1, k + 1)
        if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(k)):
            raise FieldError("classes_", "is not 0..k-1, the columns of a multilabel target")
    if k not in counts:
        raise FieldError("classes_", f"has {k} classes, which a {y_type!r} target cannot have")
    if n_outputs != expected:
        raise FieldError("n_outputs_", f"is {n_outputs}, expected {expected} for a {y_type!r} "
                                       f"target with {k} classes")
    if a["out_activation_"] != CLASSIFIER_OUTPUTS[y_type]:
        raise FieldError("out_activation_", f"is {a['out_activation_']!r}, expected "
                                            f"{CLASSIFIER_OUTPUTS[y_type]!r} for a {y_type!r} "
                                            "target")


def _check_class_array(classes, field):
    """Classes as LabelBinarizer finds them: a 1-D array of numbers, strings or bools (str
    objects where the labels were Python objects), sorted, without repeats, not empty."""
    if type(classes) is not np.ndarray or classes.ndim != 1 or classes.size == 0:
        raise FieldError(field, f"is {_describe(classes)}, expected a 1-D array of labels")
    kind = classes.dtype.kind
    if kind == "O":
        if not all(type(c) is str for c in classes):
            raise FieldError(field, "holds objects that are not strings")
    elif kind not in "biufUS" or classes.dtype.fields is not None:
        raise FieldError(field, f"has dtype {classes.dtype}, expected numbers or strings")
    if kind == "f" and not np.isfinite(classes).all():
        raise FieldError(field, "holds NaN or infinite values")
    if classes.size > 1 and not all(x < y for x, y in zip(classes[:-1], classes[1:])):
        raise FieldError(field, "is not sorted without repeats, as LabelBinarizer finds them")
    return classes
