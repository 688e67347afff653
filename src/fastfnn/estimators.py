"""The scikit-learn face: FNNRegressor and FNNClassifier.

Drop-in replacements for scikit-learn 1.9's MLPRegressor / MLPClassifier: the same parameters
(names, defaults, order), fitted attributes and random draws, so the same ``random_state`` gives
the same weights to floating-point tolerance. One implementation (:class:`_BaseFNN`) serves
both; training itself is in trainer.py and the math in network.py.

Differences from scikit-learn 1.9.1, on purpose (see also shared/SKLEARN_MLP.md, "fastfnn:"):

* Multi-output squared error: ``loss_``/``loss_curve_``/``best_loss_`` are the loss the gradient
  descends, summed over the k outputs (k times scikit-learn's for ``alpha=0``; the L2 term is not
  scaled). The ``tol`` plateau rule compares scikit-learn's value (data term / k + L2), so
  training stops at the same epoch as scikit-learn's, with or without L2. With 'lbfgs', SciPy gets a value consistent with the gradient
  (scikit-learn passes the per-output mean with the gradient of the sum), so the optimum differs.
* ``partial_fit`` exists for 'sgd' and 'adam' only, on both estimators.
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

import copy
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._validation import (
    MLP_CONSTRAINTS,
    REGRESSOR_CONSTRAINTS,
    _check_partial_fit_first_call,
    _check_sample_weight,
    _fit_context,
    explained_errors,
)
from .network import DataSource, Network, init_params, layer_sizes
from .trainer import TrainState, fit_lbfgs, fit_stochastic

_STOCHASTIC_SOLVERS = ("sgd", "adam")


@contextmanager
def _rollback_on_error(estimator):
    """Restore the estimator's attributes if the block raises (nothing is half-updated).

    A fit replaces attributes rather than mutating them (training works on copies), so a
    shallow snapshot of ``__dict__`` suffices; the one object a fit advances in place, a
    ``RandomState`` passed as ``random_state``, has its state restored as well.
    """
    saved = dict(estimator.__dict__)
    rng = estimator.random_state
    rng_state = rng.get_state() if isinstance(rng, np.random.RandomState) else None
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        if rng_state is not None:
            rng.set_state(rng_state)
        raise


class _BaseFNN(BaseEstimator):
    """Shared implementation of the two estimators (not for direct use)."""

    _parameter_constraints: dict = dict(MLP_CONSTRAINTS)

    # ---- what the subclasses define -----------------------------------------------------------

    def _loss_name(self):
        """Loss of the network: 'squared_error', 'poisson', 'binary_log_loss' or 'log_loss'."""
        raise NotImplementedError

    def _fitted_loss(self):
        """The loss of the fitted network, told by its output activation."""
        raise NotImplementedError

    def _output_activation(self):
        raise NotImplementedError

    # ---- fitting ------------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(
                "hidden_layer_sizes must be > 0, got %s. Give every hidden layer at least one "
                "unit (an empty tuple () means no hidden layer)." % sizes
            )
        return [int(s) for s in sizes]

    def _fit(self, X, y, sample_weight=None, incremental=False):
        with _rollback_on_error(self), explained_errors():
            return self._fit_committing(X, y, sample_weight, incremental)

    def _fit_committing(self, X, y, sample_weight, incremental):
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        sizes = [X.shape[1]] + hidden + [Y.shape[1]]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, sizes, X.dtype)
        else:
            self._check_continuable(sizes)
        net = self._network(sizes, self.coefs_[0].dtype)
        net.set_params(self.coefs_, self.intercepts_)
        if self.solver in _STOCHASTIC_SOLVERS:
            state = self._train_state(net, incremental)
            fit_stochastic(state, self, X, Y, sample_weight, self._random_state, incremental,
                           stratify=is_classifier(self) and self.n_outputs_ == 1,
                           make_scorer=self._validation_scorer)
        else:
            state = TrainState(net)
            fit_lbfgs(state, self, X, Y, sample_weight)
        if not np.all(np.isfinite(net.theta)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain large "
                "values and need to be preprocessed (e.g. with "
                "sklearn.preprocessing.StandardScaler), or learning_rate_init may be too large."
            )
        self._commit(state)
        return self

    def _check_continuable(self, sizes):
        """warm_start / partial_fit continue the fitted network: its layout and output must not
        have changed (scikit-learn would train on silently, or fail deep inside backprop)."""
        fitted = layer_sizes(self.coefs_)
        if fitted != sizes:
            raise ValueError(
                f"The fitted network has layer sizes {fitted} but this call needs {sizes}: "
                "hidden_layer_sizes, the feature count and the output count must stay the same "
                "for warm_start and partial_fit. Set warm_start=False (or start a new "
                "estimator) to fit another layout."
            )
        if self._output_activation() != self.out_activation_:
            raise ValueError(
                f"The fitted network has the output activation {self.out_activation_!r} but "
                f"the current parameters give {self._output_activation()!r}: loss and "
                "out_activation must stay the same for warm_start and partial_fit. Set "
                "warm_start=False (or start a new estimator) to change them."
            )

    def _network(self, sizes, dtype):
        return Network(sizes, self.activation, self._output_activation(), self._loss_name(),
                       dtype)

    def _initialize(self, Y, sizes, dtype):
        """First pass: scikit-learn's ``_initialize`` (same random draws, same attributes)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._output_activation()
        self.coefs_, self.intercepts_ = init_params(sizes, self.activation, self._random_state,
                                                    dtype)
        # the early-stopping snapshot (scikit-learn keeps one always; fastfnn only when used)
        keep = self.early_stopping and self.solver in _STOCHASTIC_SOLVERS
        self._best_coefs = [c.copy() for c in self.coefs_] if keep else None
        self._best_intercepts = [b.copy() for b in self.intercepts_] if keep else None
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = self._best_stall_loss = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _train_state(self, net, incremental):
        """A TrainState holding copies of everything training may change.

        A warm start or partial_fit continues the history (loss curve, best loss or best
        validation score and weights, stall count) as scikit-learn does. Where that history
        was recorded in another mode (early_stopping switched, or a previous 'lbfgs' fit, for
        which scikit-learn fails with AttributeError/TypeError), the history of the current
        mode starts afresh as on a first fit, from the current weights.
        """
        keep_optimizer = incremental and hasattr(self, "_optimizer")
        state = TrainState(
            net,
            optimizer=copy.deepcopy(self._optimizer) if keep_optimizer else None,
            n_iter=self.n_iter_,
            t=self.t_,
            loss=getattr(self, "loss_", None),
            # new epochs only: appended on commit (no copy of a long partial_fit history)
            loss_curve=[],
            no_improvement_count=getattr(self, "_no_improvement_count", 0),
        )
        if self.early_stopping:
            state.best_theta = net.theta.copy()  # the early-stopping snapshot, packed as theta
            if getattr(self, "validation_scores_", None) is None:  # history of another mode
                state.validation_scores, state.best_validation_score = [], -np.inf
                state.no_improvement_count = 0
            else:
                state.validation_scores = list(self.validation_scores_)
                state.best_validation_score = self.best_validation_score_
                for dst, src in zip(net.coefs(state.best_theta) + net.intercepts(state.best_theta),
                                    self._best_coefs + self._best_intercepts):
                    dst[...] = src
            state.best_loss = None
        else:
            state.best_loss = getattr(self, "best_loss_", None)
            state.best_stall_loss = getattr(self, "_best_stall_loss", np.inf)
            if state.best_loss is None:  # history of another mode
                state.best_loss, state.no_improvement_count = np.inf, 0
                state.best_stall_loss = np.inf
        return state

    def _commit(self, state):
        """Publish a successful fit's results as the fitted attributes."""
        net = state.net
        # views into the trained theta, which no one else holds after the fit (no copy)
        self.coefs_ = net.coefs()
        self.intercepts_ = net.intercepts()
        self.n_iter_ = state.n_iter
        self.loss_ = state.loss
        if self.solver in _STOCHASTIC_SOLVERS:
            self.t_ = state.t
            if isinstance(getattr(self, "loss_curve_", None), list):
                self.loss_curve_.extend(state.loss_curve)  # after success only: rollback-safe
            else:  # first stochastic fit after an 'lbfgs' one
                self.loss_curve_ = state.loss_curve
            self.best_loss_ = state.best_loss
            self._best_stall_loss = state.best_stall_loss
            self._no_improvement_count = state.no_improvement_count
            self.validation_scores_ = state.validation_scores
            self.best_validation_score_ = state.best_validation_score
            self._optimizer = state.optimizer
            if self.early_stopping:
                self._best_coefs = [w.copy() for w in net.coefs(state.best_theta)]
                self._best_intercepts = [b.copy() for b in net.intercepts(state.best_theta)]

    def _validation_scorer(self, X_val, Y_val, sw_val):
        """``score(net)``: the early-stopping score (accuracy / R^2) of the network being
        trained on the held-out rows, as scikit-learn's ``_score`` (NaN where the predictions
        are floats and not all finite). Targets are decoded and X converted once per fit."""
        y_true = self._decode_targets(Y_val)
        sources = {}

        def score(net):
            if net.dtype not in sources:
                sources[net.dtype] = DataSource(X_val, net.dtype)
            y_pred = self._output_to_prediction(net.forward(sources[net.dtype]))
            if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
                return np.nan
            return self._score_function(y_true, y_pred, sample_weight=sw_val)

        return score

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32 end to end.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The fitted model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. %s is not "
                "stochastic. Use solver='sgd' or solver='adam' for partial_fit, or fit for "
                "%r." % (self.solver, self.solver)
            )
        return True

    # ---- prediction ---------------------------------------------------------------------------

    def _fitted_network(self, dtype):
        """A Network holding the fitted parameters, in ``dtype``, with the fitted model's loss
        (not the current ``loss`` parameter, which ``set_params`` may have changed since)."""
        net = Network(layer_sizes(self.coefs_), self.activation, self.out_activation_,
                      self._fitted_loss(), dtype)
        net.set_params(self.coefs_, self.intercepts_)
        return net

    def _forward(self, X):
        """Output activations (n_samples, n_outputs) for X, computed by the compiled forward.

        Computed in float32 when both X and the model are float32, else in float64 (NumPy's
        promotion of ``X @ coefs_``, as in scikit-learn).
        """
        check_is_fitted(self)
        with explained_errors():
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        float32 = X.dtype == np.float32 and self.coefs_[0].dtype == np.float32
        return self._fitted_network(np.float32 if float32 else np.float64).forward(X)

    def predict(self, X):
        """Predict using the network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predicted values (regressor) or class labels (classifier; (n_samples, n_classes)
            indicators for multilabel problems).
        """
        return self._output_to_prediction(self._forward(X))

    def _gradient_problem(self, X, y, sample_weight=None):
        """For check_gradients: a float64 copy of the fitted network and the targets it fits.

        Returns (network, Y (n, n_outputs) float64, sample_weight or None, alpha).
        """
        check_is_fitted(self)
        with explained_errors():
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=np.float64)
        Y = self._encode_targets(y)
        net = self._fitted_network(np.float64)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        return net, X, Y.astype(np.float64).reshape(X.shape[0], -1), sample_weight, self.alpha

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class FNNClassifier(ClassifierMixin, _BaseFNN):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, compiled.

    Optimizes the log-loss with L-BFGS, SGD (momentum, Nesterov) or Adam. Parameters, defaults,
    fitted attributes and random draws are those of ``sklearn.neural_network.MLPClassifier``
    (scikit-learn 1.9); see its documentation for each parameter. Binary and multilabel
    problems use a logistic output with binary log-loss, multiclass a softmax with log-loss.

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_layers_, n_outputs_, out_activation_,
    n_features_in_, feature_names_in_
        As MLPClassifier's. ``coefs_[i]`` has shape (fan_in, fan_out).
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

    def _loss_name(self):
        return "log_loss" if self._label_binarizer.y_type_ == "multiclass" else "binary_log_loss"

    def _fitted_loss(self):
        return "log_loss" if self.out_activation_ == "softmax" else "binary_log_loss"

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
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

    def _encode_targets(self, y):
        return self._label_binarizer.transform(column_or_1d(y) if np.ndim(y) == 2 and
                                               np.shape(y)[1] == 1 else y)

    _score_function = staticmethod(accuracy_score)

    def _decode_targets(self, Y):
        """Labels of the binarized targets Y (n, n_outputs)."""
        return self._label_binarizer.inverse_transform(Y)

    def _output_to_prediction(self, out):
        """Labels from the output activations (n, n_outputs), as ``predict``."""
        return self._label_binarizer.inverse_transform(out.ravel() if self.n_outputs_ == 1
                                                       else out)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data ('sgd' and 'adam' only).

        ``classes`` (all classes across calls) is required on the first call.
        """
        with _rollback_on_error(self), explained_errors():
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns ordered as ``classes_``."""
        check_is_fitted(self)
        out = self._forward(X)
        if self.n_outputs_ == 1:
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


class FNNRegressor(RegressorMixin, _BaseFNN):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, compiled.

    Parameters, defaults, fitted attributes and random draws are those of
    ``sklearn.neural_network.MLPRegressor`` (scikit-learn 1.9; ``loss`` is the first positional
    parameter), plus one:

    out_activation : {'identity', 'logistic', 'tanh', 'relu'}, default='identity'
        Output activation for ``loss='squared_error'`` (``'poisson'`` always uses 'exp').
        Non-identity outputs use the general delta ``(a - y) * act'(z)``, so the derivation's
        network, logistic everywhere with squared error, is
        ``FNNRegressor(activation='logistic', out_activation='logistic')``.

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

    def _loss_name(self):
        return self.loss

    def _fitted_loss(self):
        return "poisson" if self.out_activation_ == "exp" else "squared_error"

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
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "loss='poisson' needs non-negative targets y (counts, rates); use "
                "loss='squared_error' for targets that can be negative."
            )
        return X, y

    def _encode_targets(self, y):
        return np.asarray(y, dtype=np.float64)

    _score_function = staticmethod(r2_score)

    def _decode_targets(self, Y):
        return Y

    def _output_to_prediction(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data ('sgd' and 'adam' only)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


__all__ = ["FNNClassifier", "FNNRegressor"]
