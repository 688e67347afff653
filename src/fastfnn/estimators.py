"""The scikit-learn face: FNNRegressor and FNNClassifier.

Drop-in replacements for scikit-learn 1.9's MLPRegressor / MLPClassifier: the same parameters
(names, defaults, order), fitted attributes and random draws, so the same ``random_state`` gives
the same weights to floating-point tolerance. One implementation (:class:`_BaseFNN`) serves
both (``_base.py``); training itself is in trainer.py and the math in network.py.

Differences from scikit-learn 1.9.1, on purpose (see also shared/SKLEARN_MLP.md, "fastfnn:"):

* Multi-output squared error: ``loss_``/``loss_curve_``/``best_loss_`` are the loss the gradient
  descends, summed over the k outputs (k times scikit-learn's for ``alpha=0``; the L2 term is not
  scaled). The ``tol`` plateau rule compares scikit-learn's value (data term / k + L2), so
  training stops at the same epoch as scikit-learn's, with or without L2. With 'lbfgs', SciPy gets a value consistent with the gradient
  (scikit-learn passes the per-output mean with the gradient of the sum), so the optimum differs.
* ``partial_fit`` exists for the stochastic solvers only ('sgd', 'adam', 'adamw'), on both
  estimators.
* float32 input trains in float32 end to end, 'lbfgs' included (scikit-learn's 'lbfgs' returns
  float64 ``coefs_``). Loss values are ``np.float64`` scalars (scikit-learn's type varies).
* A failed ``fit``/``partial_fit`` leaves the estimator exactly as it was, a ``RandomState``
  passed as ``random_state`` included: training works on copies, committed only on success.
* Early stopping with warm_start: the best weights are restored even when a warm fit never
  improves on the previous best (scikit-learn's ``coefs_`` alias ``_best_coefs`` after a
  restore, so it returns the last weights).
* A warm start or ``partial_fit`` with other hidden layers, outputs, loss or ``out_activation``
  raises ValueError (scikit-learn trains the old layout on, or fails inside backprop). Switching
  ``early_stopping`` or the solver between warm fits starts the new mode's history afresh
  (scikit-learn raises AttributeError/TypeError); ``partial_fit`` after a change of solver makes
  an optimizer of the new kind.
* Without early stopping, training stops at the first epoch whose weights are non-finite and
  raises the same ValueError as scikit-learn (which runs on to ``max_iter`` first).
* ``loss='poisson'`` with negative targets raises ValueError (scikit-learn trains on a NaN loss).
* KeyboardInterrupt during 'lbfgs' keeps the last accepted iterate with a warning, as the
  stochastic solvers do (scikit-learn lets it propagate, leaving half-updated weights).
* Input-validation errors keep scikit-learn's types and messages, plus a sentence on what to do.
"""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from ._base import BaseFNN, one_fit_at_a_time
from ._validation import (
    MLP_CONSTRAINTS,
    REGRESSOR_CONSTRAINTS,
    StrOptions,
    _check_partial_fit_first_call,
    _fit_context,
    explained_errors,
)
from .losses import LOSSES


def _validation_scoring(decode, metric):
    """``score(Y_val, outputs, sw_val)``: ``metric(decode(Y_val), decode(outputs), sw_val)``,
    NaN where the decoded predictions are floats and not all finite (scikit-learn's
    ``_score``). ``decode`` maps (n, n_outputs) arrays to targets as ``predict`` returns them."""

    def score(Y_val, outputs, sw_val):
        y_pred = decode(outputs)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return metric(decode(Y_val), y_pred, sample_weight=sw_val)

    return score


def _ravel_single(Y):
    """(n,) for a single column, else Y itself (n, k)."""
    return Y.ravel() if Y.shape[1] == 1 else Y


class FNNClassifier(ClassifierMixin, BaseFNN):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, compiled.

    Optimizes the log-loss with L-BFGS, SGD (momentum, Nesterov) or Adam. Parameters, defaults,
    fitted attributes and random draws are those of ``sklearn.neural_network.MLPClassifier``
    (scikit-learn 1.9); see its documentation for each parameter. Binary and multilabel
    problems use a logistic output with binary log-loss, multiclass a softmax with log-loss.
    fastfnn's additions:

    activation : also 'leaky_relu', 'elu', 'softplus', 'gelu', 'silu' (``HIDDEN_ACTIVATIONS``)
    class_weight : None, 'balanced' or dict {class: weight}, default=None
        Training equals training with ``sample_weight`` multiplied by
        ``sklearn.utils.class_weight.compute_sample_weight(class_weight, y)``, for every solver
        (multilabel: a list of dicts, one per label, as scikit-learn's). 'balanced' needs the
        whole training set, so ``partial_fit`` takes a dict only; it weighs validation rows
        given to ``fit`` by the training targets' class frequencies.
    solver : also 'adamw' (``SOLVERS``): scikit-learn's Adam step on the data gradient after
        the decoupled weight decay ``W <- W (1 - lr alpha)`` of the weights (not the
        intercepts); ``alpha`` is then no L2 term (not in the loss nor the gradient). With
        ``alpha=0``, Adam's bits.
    learning_rate : also 'cosine' (``SCHEDULES``), for 'sgd', 'adam' and 'adamw': epoch e
        (0-based within the fit) uses ``learning_rate_init (1 + cos(pi e / max_iter)) / 2``
        (PyTorch's ``CosineAnnealingLR(T_max=max_iter)`` stepped per epoch; 0 at e = max_iter,
        rising past it). ``partial_fit`` call k takes epoch k, the epochs the model trained
        before it (``len(loss_curve_)``), so max_iter calls make one cycle.
        The other values keep scikit-learn's meaning ('sgd' only).
    dropout : float in [0, 1) or tuple of one per hidden layer, default=0.0
        Inverted dropout of the hidden layers' outputs while training with 'sgd', 'adam' or
        'adamw' (kept units scaled by 1 / (1 - p)); none in ``predict``, validation scoring or
        ``check_gradients`` (unless asked). Masks come from a counter-based generator keyed by
        the seed (one draw from ``random_state``), the epoch, and the row's position in the
        epoch: the same bits on any thread count. ``loss_curve_`` is the dropped network's
        loss. 'lbfgs' with dropout is a ValueError.
    max_grad_norm : float > 0 or None, default=None
        Clip each minibatch's gradient (all weights and intercepts, L2 term included) to this
        global L2 norm: scaled by ``min(1, max_grad_norm / (norm + 1e-6))``, as
        ``torch.nn.utils.clip_grad_norm_``. ``gradient_norms_`` reports the norms before.
    scoring : None, 'loss', a scorer name or callable, default=None
        What early stopping scores on the validation rows: None, scikit-learn's (accuracy /
        R^2); 'loss', the validation loss, recorded as its negative in
        ``validation_scores_`` (higher is better, so ``best_validation_score_``, ``tol`` and
        ``n_iter_no_change`` keep their meaning); any scikit-learn scorer. Weighted
        validation rows are scored with their weights where the scorer takes
        ``sample_weight`` (a callable without it scores them unweighted, with a warning).

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_layers_, n_outputs_, out_activation_,
    n_features_in_, feature_names_in_
        As MLPClassifier's. ``coefs_[i]`` has shape (fan_in, fan_out).
    gradient_norms_ : ndarray (n_epochs, n_layers_ - 1), float64 (stochastic solvers)
        ``[e, l]``: the root mean square over epoch e's minibatches of the Frobenius norm of
        layer l's weight gradient (data term + L2: the gradient the update used). Rows
        accumulate across warm starts and ``partial_fit`` as ``loss_curve_`` does (NaN rows
        for epochs of a model file written before the norms were recorded).
    validation_loss_curve_ : list of float or None
        With early stopping, the held-out rows' loss after each epoch (data term, mean per
        sample: the training loss's units; NaN for epochs of a model file written before it
        was recorded); None without; not set by 'lbfgs' (as ``validation_scores_``).
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
    dropout=0.0,
        max_grad_norm=None,
        scoring=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.dropout = dropout
        self.max_grad_norm = max_grad_norm
        self.scoring = scoring

    _parameter_constraints: dict = {
        **MLP_CONSTRAINTS,
        "class_weight": [None, StrOptions({"balanced"}), dict, list],
    }

    @property
    def loss(self):
        """``"log_loss"``, as ``MLPClassifier.loss`` reads (an attribute there, not a
        parameter: ``get_params`` leaves it out, as here)."""
        return "log_loss"

    def _loss_name(self):
        return "log_loss" if self._label_binarizer.y_type_ == "multiclass" else "binary_log_loss"

    def _weighted(self, Y, sample_weight, incremental, frequencies=None):
        """``sample_weight`` times ``compute_sample_weight(class_weight, y)`` (Y binarized);
        'balanced' weighs by the class frequencies of ``frequencies`` (the training targets,
        binarized, for validation rows given apart) where given, else by those of Y."""
        if self.class_weight is None:
            return sample_weight
        if frequencies is not None and self.class_weight == "balanced":
            weights = self._class_weight_of(self._decode_labels(frequencies))
            return self._weighted_by(weights, Y, sample_weight)
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' needs the class frequencies of the whole training set, "
                "which partial_fit does not see: pass a dict {class: weight} (e.g. computed "
                "with sklearn.utils.class_weight.compute_class_weight on all labels), or fit."
            )
        if isinstance(self.class_weight, str):  # 'balanced': these rows' frequencies (fit)
            weights = compute_sample_weight(self.class_weight, self._decode_labels(Y))
            return weights if sample_weight is None else weights * sample_weight
        return self._weighted_by(self.class_weight, Y, sample_weight)

    def _weights_made_of(self, argument):
        return argument if self.class_weight is None else f"{argument} times class_weight"

    def _weighted_by(self, class_weight, Y, sample_weight):
        """``sample_weight`` times the weights of a ``{class: weight}`` dict (a list of them:
        per label) for the rows of Y (binarized)."""
        labels = self._decode_labels(Y)
        # a class's weight whatever else the rows hold (scikit-learn's check wants every
        # weighted class present where another is not, as a batch of partial_fit may not have
        # it): every class once more, left out
        every = (self.classes_ if labels.ndim == 1 else
                 np.vstack([np.zeros(labels.shape[1]), np.ones(labels.shape[1])]))
        weights = compute_sample_weight(
            class_weight, np.concatenate([labels, every.astype(labels.dtype)]))[:len(labels)]
        return weights if sample_weight is None else weights * sample_weight

    def _class_weight_of(self, labels):
        """'balanced' as a ``{class: weight}`` dict (a list of them per label for indicators
        (n, k)): ``n / (n_classes * count)`` over the classes ``labels`` (n,) hold."""
        columns = [labels] if labels.ndim == 1 else list(labels.T)
        weights = []
        for column in columns:
            classes = np.unique(column)
            weights.append(dict(zip(classes.tolist(), compute_class_weight(
                "balanced", classes=classes, y=column))))
        return weights[0] if labels.ndim == 1 else weights

    def _decode_labels(self, Y):
        """Labels (n,) or indicators (n, k) of binarized targets Y (n, n_outputs)."""
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return Y
        return self._label_binarizer.inverse_transform(_ravel_single(Y))

    def _loss_from_parameters(self, strict):
        return "log_loss" if self.out_activation_ == "softmax" else "binary_log_loss"

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._check_fit_data(X, y, reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}. Set warm_start=False to fit a new model to these classes."
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}. Declare every "
                    "class in the first partial_fit call (classes=np.unique(y_all)), or refit "
                    "with fit."
                )
        return X, self._label_binarizer.transform(y).astype(X.dtype)

    def _encode_targets(self, y, n_outputs=None):
        binarizer = self._label_binarizer  # (its classes set the outputs)
        if np.ndim(y) == 2 and np.shape(y)[1] == 1:
            y = column_or_1d(y)
        if binarizer.y_type_.startswith("multilabel"):
            if np.ndim(y) != 2 or np.shape(y)[1] != len(self.classes_):
                raise ValueError(f"y must hold {len(self.classes_)} label indicator columns "
                                 f"(one per class in classes_), got shape {np.shape(y)}.")
        else:
            if np.ndim(y) != 1:
                raise ValueError(f"y must be a 1-D array of class labels, got shape "
                                 f"{np.shape(y)}.")
            unknown = np.setdiff1d(unique_labels(y), self.classes_)
            if len(unknown):
                raise ValueError(f"y holds labels {unknown} that are not among the model's "
                                 f"classes_ {self.classes_}: pass labels it was fitted to.")
        return binarizer.transform(y)

    def _validation_scoring(self):
        binarizer = self._label_binarizer
        return _validation_scoring(lambda Y: binarizer.inverse_transform(_ravel_single(Y)),
                                   accuracy_score)

    def _output_to_prediction(self, out):
        """Labels from the output activations (n, n_outputs), as ``predict``."""
        return self._label_binarizer.inverse_transform(_ravel_single(out))

    def _start_incremental(self, y, classes):
        """The first ``partial_fit`` call fits the label binarizer to ``classes``."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)

    @available_if(lambda est: est._check_solver())
    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data (the stochastic solvers
        'sgd', 'adam', 'adamw' only).

        ``classes`` (all classes across calls) is required on the first call. Calls from
        several threads run one after another.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as ``classes_``."""
        model = self._published()  # one model throughout, whatever fits run meanwhile
        check_is_fitted(model)
        out = model._forward(X)
        if model.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class FNNRegressor(RegressorMixin, BaseFNN):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, compiled.

    Parameters, defaults, fitted attributes and random draws are those of
    ``sklearn.neural_network.MLPRegressor`` (scikit-learn 1.9; ``loss`` is the first positional
    parameter), plus one:

    out_activation : {'identity', 'logistic', 'tanh', 'relu'}, default='identity'
        Output activation for ``loss='squared_error'`` (``'poisson'`` always uses 'exp').
        Non-identity outputs use the general delta ``(a - y) * act'(z)``, so the derivation's
        network, logistic everywhere with squared error, is
        ``FNNRegressor(activation='logistic', out_activation='logistic')``.

    loss : also 'huber' (delta 1: ``r^2/2`` for ``|r| <= 1``, else ``|r| - 1/2``, r = a - y) and
        'absolute_error' (``|r|``), summed over outputs and averaged over samples, with the
        identity output (``REGRESSION_LOSSES``).
    activation : also 'leaky_relu', 'elu', 'softplus', 'gelu', 'silu' (``HIDDEN_ACTIVATIONS``)
    solver, learning_rate, dropout, max_grad_norm, scoring : as FNNClassifier's.

    ``fit`` takes ``X_val``, ``y_val``, ``sample_weight_val``: with ``early_stopping=True``,
    the rows early stopping scores instead of a split of X.

    Fitted attributes are MLPRegressor's, plus ``gradient_norms_`` and
    ``validation_loss_curve_`` (see FNNClassifier).

    ``loss_`` is the loss the gradient descends, ``1/2 ||a - y||^2`` summed over outputs (for
    one output this is scikit-learn's value; for k outputs scikit-learn reports the data term
    divided by k). ``tol`` applies to the per-output loss, as in scikit-learn, so training stops
    at the same epoch.
    """

    _parameter_constraints: dict = dict(REGRESSOR_CONSTRAINTS)

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        out_activation="identity",
    dropout=0.0,
        max_grad_norm=None,
        scoring=None,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.out_activation = out_activation
        self.dropout = dropout
        self.max_grad_norm = max_grad_norm
        self.scoring = scoring

    def _loss_name(self):
        return self.loss

    def _loss_from_parameters(self, strict):
        """The ``loss`` parameter where it goes with the fitted ``out_activation_`` (a model
        saved before fits recorded their loss); else, after ``set_params(loss=...)``,
        ValueError if ``strict``, or the loss that output implies (enough to build the
        network)."""
        out = self.out_activation_
        loss = self.loss
        if isinstance(loss, str) and loss in LOSSES and LOSSES[loss].regression \
                and out in LOSSES[loss].outputs:
            return loss
        if strict:
            raise ValueError(
                f"The model was fitted with the output activation {out!r}, which the 'loss' "
                f"parameter {loss!r} does not take, so the loss it was fitted with is unknown: "
                "set loss back to the value it was fitted with (set_params(loss=...))."
            )
        return "poisson" if out == "exp" else "squared_error"

    def _output_activation(self):
        if self.loss == "poisson":
            if self.out_activation != "identity":
                raise ValueError(
                    "loss='poisson' always uses the 'exp' output activation; leave "
                    f"out_activation at its default (got {self.out_activation!r})."
                )
            return "exp"
        return self.out_activation

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._check_fit_data(X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._check_target_values(y, "y")
        return X, y

    def _check_target_values(self, y, name):
        """ValueError where the loss cannot take the targets ``y`` (named ``name``):
        'poisson' takes non-negative ones only."""
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                f"loss='poisson' needs non-negative targets {name} (counts, rates); use "
                "loss='squared_error' for targets that can be negative."
            )

    def _encode_targets(self, y, n_outputs=None):
        n_outputs = self.n_outputs_ if n_outputs is None else n_outputs
        with explained_errors():
            Y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if (Y.ndim == 1 and n_outputs == 1) or Y.shape[1:] == (n_outputs,):
            return Y.reshape(len(Y), -1)
        raise ValueError(f"y has {Y.shape[1] if Y.ndim == 2 else 1} target column(s) but the "
                         f"model has {n_outputs} output(s): pass y shaped as for fit.")

    def _validation_scoring(self):
        return _validation_scoring(_ravel_single, r2_score)

    def _decode_labels(self, Y):
        """Targets as ``predict`` returns them, of encoded Y (n, n_outputs)."""
        return _ravel_single(Y)

    def _output_to_prediction(self, out):
        return _ravel_single(out)

    @available_if(lambda est: est._check_solver())
    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data (the stochastic solvers
        'sgd', 'adam', 'adamw' only).

        Calls from several threads run one after another."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


__all__ = ["FNNClassifier", "FNNRegressor"]
