"""The shared implementation of the two estimators: the walk from ``fit`` down to training.

``fit`` / ``partial_fit`` validate once (the wall between Python and the kernels), build the
network, resume the fit's state from the fitted attributes (``fitstate``), train (``trainer``)
and publish the state only when training succeeded: a failed call changes nothing. Nothing below
calls back up into the estimator: the validation score and the callbacks are handed down as
plain functions and objects.

Threads: the fits of one estimator run one at a time (a lock per estimator, held for the whole
``fit`` / ``partial_fit``), each on a staged copy of the estimator's attributes that is published
in one step, by replacing the estimator's attribute dict. Predictions take no lock: they read one
attribute dict from start to end, so they see the model before a fit or after it, never a mix.
"""

import functools
import inspect
import threading
import warnings
import weakref
from contextlib import contextmanager
from numbers import Integral
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.metrics import check_scoring
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _env, _prefit, fitstate
from ._callbacks import callback_observer
from ._blas import BLAS
from ._parts import prediction_threads
from ._validation import (
    MLP_CONSTRAINTS,
    CallbackSupportMixin,
    _check_sample_weight,
    _fit_context,
    check_prediction_activation,
    check_weight_sum,
    explained_errors,
)
from .network import (
    Network, check_memory, check_sparse, forward_direct, init_params, layer_sizes,
)
from .optimizers import RULES
from .settings import Settings
from .trainer import StochasticFit, fit_lbfgs, fit_stochastic
# Configuration scikit-learn's setters may store while a fit runs (set_output, set_*_request):
# kept from the live estimator when the fit publishes, as its parameters are.
_SET_ANY_TIME = {"_sklearn_output_config", "_metadata_request"}
# Attributes of scikit-learn's callback machinery: they live on the estimator being fitted (its
# callbacks set up, run and torn down there), never taken from a stand-in.
_CALLBACK_ATTRIBUTES = ("_callback_fit_ctx", "_skl_callbacks_to_teardown", "_parent_callback_ctx",
                        "_skl_callbacks")


def _takes_sample_weight(scorer):
    """Whether ``scorer(estimator, X, y, sample_weight=...)`` can be called: a scorer made by
    scikit-learn (its metric takes the weights), or a callable with that argument or
    ``**kwargs``."""
    func = getattr(scorer, "_score_func", scorer)
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): try the weights
        return True
    return any(p.name == "sample_weight" or p.kind is p.VAR_KEYWORD for p in parameters)


def _publish(estimator, fitted):
    """Make the attribute dict ``fitted`` the estimator's in one step, its own parameters,
    configuration and callback attributes as the live estimator holds them now (set, changed
    or cleared while the fit ran)."""
    current = estimator.__dict__
    own = set(type(estimator)._get_param_names()) | _SET_ANY_TIME | set(_CALLBACK_ATTRIBUTES)
    for key in own:
        if key in current:
            fitted[key] = current[key]
        else:
            fitted.pop(key, None)
    estimator.__dict__ = fitted


_VALIDATED = set()  # (class, tagged parameters) that scikit-learn's validation accepted
_VALIDATED_MAX = 256  # entries kept before the memo starts again
_PLAIN = (str, int, float, bool, type(None))


def _tagged(value):
    """``value`` with its exact type beside it, through tuples and lists, where it holds str,
    int, float, bool and None only (so that 1, 1.0 and True stay apart, and a list is read as
    it is now); None where anything else is in it."""
    kind = type(value)
    if kind in _PLAIN:
        return kind, value
    if kind is tuple or kind is list:
        items = tuple(map(_tagged, value))
        return None if any(item is None for item in items) else (kind, items)
    return None


def _finite(a):
    """Whether the float array ``a`` holds no NaN or infinity (its sum first: no temporary
    array unless the sum overflows)."""
    return bool(np.isfinite(a.sum()) or np.isfinite(a).all())


def _plain_training_arrays(estimator, X, y, reset):
    """Whether (X, y) pass ``validate_data``'s checks for ``fit`` as they are: X a float64 /
    float32 ndarray (n, n_features), n and n_features >= 1, finite; y a numeric ndarray (n,)
    or (n, k >= 1), finite where float; an estimator fitted without feature names, with X's
    feature count unless ``reset``."""
    if type(X) is not np.ndarray or type(y) is not np.ndarray:
        return False
    if X.ndim != 2 or X.dtype not in (np.float64, np.float32) or 0 in X.shape:
        return False
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0] or 0 in y.shape or \
            y.dtype.kind not in "biuf":
        return False
    fitted = estimator.__dict__
    if "feature_names_in_" in fitted or \
            (not reset and fitted.get("n_features_in_") != X.shape[1]):
        return False
    return _finite(X) and (y.dtype.kind != "f" or _finite(y))


# One lock per estimator, held by its fit / partial_fit for the whole call. Kept here rather
# than on the estimator, so that copies, pickles, clones, skops files and ``get_params`` never
# meet a lock (each copy gets its own on its first fit). Keyed by identity, not by hash (a
# subclass may define __eq__ without __hash__); an entry goes when its estimator does.
_FIT_LOCKS = {}
_FIT_LOCKS_GUARD = threading.Lock()


def fit_lock(estimator):
    """The re-entrant lock that serializes the fits of ``estimator`` (made on first use)."""
    with _FIT_LOCKS_GUARD:
        lock = _FIT_LOCKS.get(id(estimator))
        if lock is None:
            lock = _FIT_LOCKS[id(estimator)] = threading.RLock()
            weakref.finalize(estimator, _FIT_LOCKS.pop, id(estimator), None)
        return lock


def one_fit_at_a_time(method):
    """Decorate ``fit`` / ``partial_fit``: calls on one estimator from several threads run one
    after another, each whole (the last to run is the model left); predictions are not held."""

    @functools.wraps(method)
    def serialized(estimator, *args, **kwargs):
        with fit_lock(estimator):
            return method(estimator, *args, **kwargs)

    return serialized


@contextmanager
def staged(estimator):
    """Yield a stand-in for ``estimator`` holding a copy of its attributes, for a fit to change
    at will; when the block succeeds, publish the stand-in's attributes as the estimator's in one
    step (the attribute dict is replaced, so a reader sees the old model or the new one).

    When the block raises, the estimator keeps its attributes (nothing is half-updated); a
    ``RandomState`` passed as ``random_state``, the one object a fit advances in place, has its
    state restored. The fit must not mutate the values it finds (training works on copies); the
    lists among the fitted attributes, which ``fitstate.publish`` extends, are copied here.
    Parameters set with ``set_params`` while the fit ran are kept, and so is configuration set
    meanwhile with ``set_output`` or ``set_*_request``, and the state of scikit-learn's
    callback machinery, which lives on the estimator itself (the callbacks see the estimator
    being fitted, never the stand-in).
    """
    live = estimator.__dict__
    params = set(type(estimator)._get_param_names())
    work = object.__new__(type(estimator))
    work.__dict__.update({key: list(value) if type(value) is list and key not in params
                          else value for key, value in live.items()})
    rng = estimator.random_state
    rng_state = rng.get_state() if isinstance(rng, np.random.RandomState) else None
    try:
        yield work
    except BaseException:
        if rng_state is not None:
            rng.set_state(rng_state)
        raise
    _publish(estimator, work.__dict__)


class _Job(NamedTuple):
    """A fit between its set-up and its training: the network, the settings, the validated
    data (X, Y (n, n_outputs), sample weights), whether it is a partial_fit, the callbacks'
    observer (or None) and the given validation rows (or None)."""

    net: Network
    settings: Settings
    X: object
    Y: np.ndarray
    sample_weight: object
    incremental: bool
    observer: object
    validation: object


def _check_converged(state, net, stochastic):
    """Raise ValueError where training diverged: weights or the training loss non-finite (the
    estimator then stays as it was)."""
    if not np.all(np.isfinite(net.theta)):
        raise ValueError(
            "Solver produced non-finite parameter weights. The input data may contain large "
            "values and need to be preprocessed (e.g. with "
            "sklearn.preprocessing.StandardScaler), or learning_rate_init may be too large."
        )
    losses = [e.loss for e in state.epochs] if stochastic else [state.loss]
    bad = [i for i, loss in enumerate(losses) if loss is not None and not np.isfinite(loss)]
    if bad:
        where = f" at epoch {bad[0] + 1}" if stochastic else ""
        raise ValueError(
            f"Training diverged: the training loss became {losses[bad[0]]}{where}. Scale the "
            "inputs (e.g. sklearn.preprocessing.StandardScaler) and the targets, or lower "
            "learning_rate_init; the model was left as it was."
        )


class BaseFNN(CallbackSupportMixin, BaseEstimator):
    """Shared implementation of FNNRegressor and FNNClassifier (not for direct use)."""

    _parameter_constraints: dict = dict(MLP_CONSTRAINTS)
    _param_names = {}  # class -> its parameter names, read once from its __init__'s signature

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's parameter names of ``cls`` (sorted), read from ``__init__``'s
        signature once per class, not at every ``get_params`` (twice a fit, 0.1 ms each)."""
        names = BaseFNN._param_names.get(cls)
        if names is None:
            names = BaseFNN._param_names[cls] = tuple(super()._get_param_names())
        return list(names)

    def _validate_params(self):
        """scikit-learn's parameter validation, once per class and set of plain parameter
        values (``_tagged``): the same values pass or fail alike, and the check costs 0.1-0.4
        ms, a tenth of a small fit's Python. Any other value (an object, an array) is checked
        at every fit."""
        values = _tagged(tuple(self.get_params(deep=False).values()))
        key = None if values is None else (type(self), values)
        if key is not None and key in _VALIDATED:
            return
        super()._validate_params()
        if key is not None:
            if len(_VALIDATED) >= _VALIDATED_MAX:
                _VALIDATED.clear()
            _VALIDATED.add(key)

    # ---- what the subclasses define -----------------------------------------------------------

    def _loss_name(self):
        """Loss of the network to train: 'squared_error', 'poisson', 'binary_log_loss'..."""
        raise NotImplementedError

    def _fitted_loss(self, strict=False):
        """The loss the fitted network was trained with: recorded by the fit (``_loss``); for a
        model saved before fits recorded it, the subclass's reading of the parameters
        (``strict``: ValueError where they no longer tell it)."""
        loss = self.__dict__.get("_loss")
        return loss if loss is not None else self._loss_from_parameters(strict)

    def _loss_from_parameters(self, strict):
        """The fitted loss as the parameters and ``out_activation_`` tell it (no ``_loss``)."""
        raise NotImplementedError

    def _output_activation(self):
        """Output activation of the network to train."""
        raise NotImplementedError

    def _validate_input(self, X, y, incremental, reset):
        """Validated ``(X, Y)``: X float32/float64, Y the encoded targets (n,) or (n, k)."""
        raise NotImplementedError

    def _check_fit_data(self, X, y, reset, y_numeric=False):
        """``validate_data(self, X, y, ...)`` as scikit-learn's MLP calls it in ``fit``: X a
        float64/float32 array or CSR/CSC matrix, y (n,) or (n, k); sets ``n_features_in_``
        where ``reset``.

        Plain float arrays (the common case) take a shortcut that makes the same checks
        (2-D, at least one row and one column, finite, as many targets as rows, numeric y,
        the fitted feature count) without ``validate_data``'s dataframe machinery (about 1 ms
        of a fit); anything else, including every input a check rejects, goes through
        ``validate_data``, which gives scikit-learn's result or error.
        """
        if _plain_training_arrays(self, X, y, reset):
            if reset:
                self.n_features_in_ = X.shape[1]
            return X, y
        return validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=y_numeric, dtype=(np.float64, np.float32), reset=reset)

    def _weighted(self, Y, sample_weight, incremental, frequencies=None):
        """The sample weights training uses (the classifier multiplies in ``class_weight``,
        'balanced' by the class frequencies of the targets ``frequencies`` where given)."""
        return sample_weight

    def _weights_made_of(self, argument):
        """What the weights training uses are made of, for messages: ``argument`` (the
        classifier: times ``class_weight`` where set)."""
        return argument

    def _encode_targets(self, y, n_outputs=None):
        """The network's targets (n, n_outputs) for labels/values ``y`` (for check_gradients
        and given validation rows); ValueError, saying what to pass, for targets the model
        cannot have been fitted to (``n_outputs``: the fit's, where it is under way; else the
        fitted model's)."""
        raise NotImplementedError

    def _validation_scoring(self):
        """``score(Y_val, outputs, sw_val)``, the early-stopping score (accuracy / R^2) of
        output activations against encoded targets, as a function that holds no estimator."""
        raise NotImplementedError

    def _output_to_prediction(self, out):
        """``predict``'s result from the output activations (n, n_outputs)."""
        raise NotImplementedError

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given data (the stochastic solvers only)."""
        raise NotImplementedError

    # ---- fitting ------------------------------------------------------------------------------

    def _hidden_sizes(self):
        """The hidden layer widths as ints; ValueError unless each is an integer >= 1 (not a
        bool, not a float such as 2.9 or 0.5)."""
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") and not isinstance(sizes, str) \
            else [sizes]
        bad = [s for s in sizes if isinstance(s, (bool, np.bool_))
               or not isinstance(s, (Integral, np.integer)) or s <= 0]
        if bad:
            raise ValueError(
                "hidden_layer_sizes must hold positive integers (units per hidden layer), got "
                "%s. Give every hidden layer at least one unit, as a whole number (an empty "
                "tuple () means no hidden layer)." % (self.hidden_layer_sizes,)
            )
        return [int(s) for s in sizes]

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None, validation=None):
        """fit / partial_fit on a staged copy of the attributes, published on success.
        ``validation``: ``(X_val, y_val, sample_weight_val)`` given to fit, or None."""
        if (not incremental and validation is None and "coefs_" not in self.__dict__
                and not getattr(self, "_skl_callbacks", None)):
            made = _prefit.take(self, X, y, sample_weight)
            if made is not None:  # trained together with others, ahead of this call
                self._adopt(made)
                return self
        BLAS.prepare()
        _env.flag("FASTFNN_COMPILE_AHEAD", True)  # (a bad value: its ValueError, here)
        with staged(self) as work, explained_errors():
            observer = work._fit_and_publish(X, y, sample_weight, incremental, classes,
                                             validation, fitting=self)
        if observer is not None:  # the root task ends on the published model, as
            observer.finish()  # scikit-learn's estimators end it (a raise there keeps it)
        return self

    def _adopt(self, made):
        """Take the fitted attributes of ``made``, a fit of this estimator's parameters on
        this call's data made ahead (``_prefit``), in one step; this estimator's parameters,
        configuration and callback context stay its own."""
        _publish(self, dict(made.__dict__))

    def _start_incremental(self, y, classes):
        """What ``partial_fit`` sets up before validating (the classifier's labels)."""

    def _fit_and_publish(self, X, y, sample_weight, incremental, classes=None, validation=None,
                         fitting=None):
        """Fit and publish on this estimator (a stand-in of ``fitting``, the estimator whose
        callbacks see the fit, when given). Returns the callbacks' observer (or None), whose
        root task the caller ends once ``fitting`` holds the model."""
        job = self._begin_fit(X, y, sample_weight, incremental, classes, validation, fitting)
        try:
            state = self._train(job)
        finally:
            if job.observer is not None:
                job.observer.close()
        self._end_fit(job, state)
        return job.observer

    def _begin_fit(self, X, y, sample_weight, incremental, classes=None, validation=None,
                   fitting=None):
        """Everything a fit does before training: validate, set up the network (initial or
        continued weights) and the callbacks' observer (of ``fitting``, the estimator this one
        stands in for, or of this one). Returns the fit's :class:`_Job`."""
        if incremental:
            self._start_incremental(y, classes)
        hidden = self._hidden_sizes()
        self._check_validation_arguments(validation)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        labels = y
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        user_weight = sample_weight
        sample_weight = self._weighted(y, sample_weight, incremental)
        check_weight_sum(sample_weight, self._weights_made_of("sample_weight"))
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        sizes = [X.shape[1]] + hidden + [Y.shape[1]]
        settings = Settings.of(self, hidden, self._loss_name(), self._output_activation())
        if settings.dropping and not settings.stochastic:
            raise ValueError("dropout needs a stochastic solver ('sgd', 'adam', 'adamw'): "
                             "'lbfgs' minimizes one fixed loss, which random masks would "
                             "change at every evaluation. Set dropout=0.0 or another solver.")
        if settings.early_stopping and incremental and settings.stochastic:
            raise ValueError(
                "partial_fit does not support early_stopping=True: set early_stopping=False, or "
                "use fit for early stopping."
            )
        if validation is not None:
            validation = self._validation_rows(*validation, X.dtype, y)
        dtype = X.dtype if first_pass else self.coefs_[0].dtype
        check_memory(sizes, dtype, X.shape[0], self._batch_rows(X.shape[0]),
                     settings.stochastic)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, sizes, X.dtype)
        else:
            self._check_continuable(sizes)
        net = Network(sizes, self.activation, self._output_activation(), self._loss_name(),
                      self.coefs_[0].dtype)
        net.set_params(self.coefs_, self.intercepts_)
        observer = callback_observer(self if fitting is None else fitting, self, X, labels,
                                     user_weight, net, 1 if incremental else self.max_iter)
        return _Job(net, settings, X, Y, sample_weight, incremental, observer, validation)

    def _end_fit(self, job, state):
        """Publish a trained fit (ValueError, publishing nothing, where it diverged)."""
        stochastic = job.settings.stochastic
        _check_converged(state, job.net, stochastic)
        fitstate.publish(state, self, stochastic)
        self._loss = job.net.loss  # what the network was trained with, whatever set_params does

    def _train(self, job):
        """Train the job's network; returns the fit's TrainState (nothing published yet)."""
        if not job.settings.stochastic:
            state = fitstate.TrainState(job.net)
            fit_lbfgs(state, job.settings, job.X, job.Y, job.sample_weight, job.observer)
            return state
        state = self._stochastic_state(job)
        fit_stochastic(state, job.settings, job.X, job.Y, job.sample_weight, self._random_state,
                       job.incremental, stratify=is_classifier(self) and self.n_outputs_ == 1,
                       scoring=self._early_stopping_score(), observer=job.observer,
                       validation_set=job.validation)
        return state

    def _stochastic_state(self, job):
        """The TrainState a stochastic fit starts from: the history of its mode, continued
        (warm start, partial_fit) or fresh, and the optimizer partial_fit keeps."""
        mode = fitstate.VALIDATION if self.early_stopping else fitstate.LOSS
        keep_optimizer = job.incremental and hasattr(self, "_optimizer")
        state = fitstate.resume(self, job.net, mode, keep_optimizer,
                                fitstate.scoring_key(self.scoring))
        if job.observer is not None:
            job.observer.resume(state)
        return state

    def _stochastic_fit(self, job, threads):
        """The job as a ``trainer.StochasticFit`` whose epochs another loop runs (many fits
        together), its parts on ``threads`` threads."""
        return StochasticFit(self._stochastic_state(job), job.settings, job.X, job.Y,
                             job.sample_weight, self._random_state, job.incremental,
                             stratify=is_classifier(self) and self.n_outputs_ == 1,
                             scoring=self._early_stopping_score(), observer=job.observer,
                             validation_set=job.validation, threads=threads)

    # ---- early stopping: the given validation rows, the score ----------------------------------

    def _check_validation_arguments(self, validation):
        """ValueError unless the given validation rows come with their targets and with
        ``early_stopping=True`` (the only use fit has for them)."""
        if validation is None:
            return
        X_val, y_val, _ = validation
        if X_val is None or y_val is None:
            given, missing = ("X_val", "y_val") if y_val is None else ("y_val", "X_val")
            raise ValueError(f"{given} was given without {missing}: pass both, the validation "
                             "rows and their targets.")
        if not self.early_stopping:
            raise ValueError("X_val and y_val are the rows early stopping scores: set "
                             "early_stopping=True to use them (fit uses them for nothing else).")
        if self.solver not in RULES:
            raise ValueError(f"X_val and y_val are the rows early stopping scores, and "
                             f"solver={self.solver!r} does not stop early: use one of the "
                             f"stochastic solvers {tuple(RULES)} to score them.")

    def _validation_rows(self, X_val, y_val, sw_val, dtype, y):
        """The given validation rows as training sees them: ``(X_val (n_val, n_features) of
        ``dtype``, Y_val (n_val, n_outputs) encoded as the training targets ``y``, sw_val (with
        the classifier's ``class_weight``, 'balanced' by the class frequencies of ``y``, as
        the rows split off for validation) or None)``; ValueError where they do not fit the
        model being trained (features, ``n_outputs`` targets, labels) or hold fewer than 2 rows.
        Checked against this fit's targets, before any attribute of the model changes."""
        try:
            X_val = validate_data(self, X_val, accept_sparse=["csr", "csc"], reset=False,
                                  dtype=dtype)
        except ValueError as error:
            if "feature" not in str(error):
                raise ValueError(f"X_val: {error}") from None
            raise ValueError(f"X_val does not fit the model being trained ({error}): pass "
                             "validation rows with the training rows' columns.") from None
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        try:
            Y_val = np.asarray(self._encode_targets(y_val, n_outputs), dtype=dtype)
        except ValueError as error:
            raise ValueError(f"y_val does not fit the model being trained: {error}") from None
        Y_val = Y_val.reshape(-1, 1) if Y_val.ndim == 1 else Y_val
        self._check_target_values(Y_val, "y_val")
        if Y_val.shape[0] != X_val.shape[0]:
            raise ValueError(f"y_val has {Y_val.shape[0]} rows but X_val has {X_val.shape[0]}: "
                             "pass one target per validation row.")
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small: pass at least 2 rows in X_val.")
        if sw_val is not None:
            try:
                sw_val = _check_sample_weight(sw_val, X_val)
            except ValueError as error:
                raise ValueError(f"sample_weight_val: {error}") from None
        sw_val = self._weighted(Y_val, sw_val, incremental=False, frequencies=y)
        check_weight_sum(sw_val, self._weights_made_of("sample_weight_val"))
        return X_val, Y_val, sw_val

    def _check_target_values(self, y, name):
        """ValueError where the loss cannot take the encoded targets ``y`` (named ``name``):
        every value the encoding gives, unless an estimator's loss says otherwise."""

    def _early_stopping_score(self):
        """``score(validation, outputs, loss, net)``, the early-stopping score (higher is
        better) that ``scoring`` names: None, scikit-learn's (R^2 / accuracy); 'loss', minus
        the validation loss; a scorer name or callable, that scorer on a model holding the
        network's current weights. NaN where the outputs are not finite (scikit-learn's)."""
        scoring = self.scoring
        if scoring is None:
            builtin = self._validation_scoring()
            return lambda val, out, loss, net: builtin(val.Y, out, val.sw)
        if isinstance(scoring, str) and scoring == "loss":
            return lambda val, out, loss, net: -loss
        scorer = check_scoring(self, scoring=scoring)
        weighs = _takes_sample_weight(scorer)
        warned = []

        def score(val, out, loss, net):
            if not np.isfinite(out).all():
                return np.nan
            weights = {} if val.sw is None or not weighs else {"sample_weight": val.sw}
            if val.sw is not None and not weighs and not warned:
                warned.append(True)
                warnings.warn(f"scoring={scoring!r} takes no sample_weight: early stopping "
                              "scores the validation rows unweighted. Give it a "
                              "sample_weight argument to score them with their weights.",
                              UserWarning, stacklevel=2)
            return float(scorer(self._holding(net), val.X, self._decode_labels(val.Y),
                                **weights))

        return score

    def _holding(self, net):
        """A fitted model of this estimator's kind holding copies of ``net``'s weights (for a
        scorer during training; feature names left out: the rows it scores are arrays)."""
        model = object.__new__(type(self))
        model.__dict__ = {key: value for key, value in self.__dict__.items()
                          if key != "feature_names_in_"}
        model.coefs_ = [W.copy() for W in net.coefs()]
        model.intercepts_ = [b.copy() for b in net.intercepts()]
        return model

    def _batch_rows(self, n_samples):
        """Rows of a training batch ('auto': min(200, n)), for the memory estimate."""
        return min(200 if self.batch_size == "auto" else int(self.batch_size), n_samples)

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
        if self._loss_name() != self._fitted_loss():
            raise ValueError(
                f"The fitted network was trained with the loss {self._fitted_loss()!r} but the "
                f"current parameters give {self._loss_name()!r}: the loss must stay the same "
                "for warm_start and partial_fit (loss_curve_, best_loss_ and tol compare its "
                "values). Set warm_start=False (or start a new estimator) to change it."
            )

    def _initialize(self, Y, sizes, dtype):
        """First pass: scikit-learn's ``_initialize`` (the same random draws, the structural
        attributes); the training history starts afresh in ``fitstate.resume``."""
        for attribute in ("loss_curve_", "best_loss_", "validation_scores_",
                          "validation_loss_curve_", "gradient_norms_",
                          "best_validation_score_", "_optimizer", "_best_coefs",
                          "_best_intercepts", "_no_improvement_count", "_best_stall_loss",
                          "_validation_scored_by"):
            self.__dict__.pop(attribute, None)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._output_activation()
        self.coefs_, self.intercepts_ = init_params(sizes, self.activation, self._random_state,
                                                    dtype)

    @one_fit_at_a_time
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Fits of one estimator from several threads run one after another (the last one's
        model is left); predictions from other threads meanwhile use the previous model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32 end to end.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            With ``early_stopping=True``, the rows early stopping scores, instead of a
            ``validation_fraction`` of X (then every row of X trains, and no random number
            is drawn for a split). Needs ``y_val``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            The targets of ``X_val`` (classifier: labels among those of y).
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation rows.

        Returns
        -------
        self : object
            The fitted model.
        """
        validation = None
        if X_val is not None or y_val is not None or sample_weight_val is not None:
            if sample_weight_val is not None and X_val is None:
                raise ValueError("sample_weight_val was given without X_val and y_val.")
            validation = (X_val, y_val, sample_weight_val)
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=validation)

    def _check_solver(self):
        if self.solver not in RULES:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. %s is not "
                "stochastic. Use solver=%s for partial_fit, or fit for %r."
                % (self.solver, " or ".join(repr(name) for name in RULES), self.solver)
            )
        return True

    # ---- prediction ---------------------------------------------------------------------------

    def _published(self):
        """A stand-in sharing the estimator's current attribute dict: a prediction reads the
        model from it alone, so a fit published meanwhile (a new dict) does not reach into it."""
        view = object.__new__(type(self))
        view.__dict__ = self.__dict__
        return view

    def _fitted_network(self, dtype, loss=None):
        """A Network holding the fitted parameters, in ``dtype``, with ``loss`` (default: the
        fitted model's, see ``_fitted_loss``; not the current ``loss`` parameter as such, which
        ``set_params`` may have changed since)."""
        net = Network(layer_sizes(self.coefs_), self.activation, self.out_activation_,
                      loss or self._fitted_loss(), dtype)
        net.set_params(self.coefs_, self.intercepts_)
        return net

    def _forward(self, X):
        """Output activations (n_samples, n_outputs) for X, computed by the compiled forward.

        Computed in float32 for a float32 model where NumPy promotes X's dtype with float32 to
        float32 (float16, bool and small integers too), else in float64 (NumPy's promotion of
        ``X @ coefs_``, as in scikit-learn). The hidden layers use the
        ``activation`` parameter, as scikit-learn's MLP does; one that is not a hidden
        activation is the same ValueError for any number of rows. Call it on
        :meth:`_published` for a consistent model under concurrent fits.
        """
        if "coefs_" not in self.__dict__:
            check_is_fitted(self)
        check_prediction_activation(self)
        BLAS.prepare()
        out = self._forward_direct(X)
        if out is not None:
            return out
        check_is_fitted(self)
        with explained_errors():
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        float32 = (self.coefs_[0].dtype == np.float32
                   and np.result_type(X.dtype, np.float32) == np.float32)
        net = self._fitted_network(np.float32 if float32 else np.float64)
        return net.forward(X, prediction_threads(net.sizes, X.shape[0], net.dtype))

    def _forward_direct(self, X):
        """:meth:`_forward` for plain arrays: a float ndarray of the model's dtype, for a model
        fitted without feature names. Makes the checks ``validate_data`` would (fitted, 2-D,
        the number of features; finite values, in the kernel) without its dataframe machinery,
        and builds no network or workspace; returns None where any does not hold, and the
        general path then gives its result or its error."""
        if type(X) is not np.ndarray or X.ndim != 2 or X.dtype.kind != "f":
            return None
        coefs = self.__dict__.get("coefs_")
        if coefs is None or "feature_names_in_" in self.__dict__:
            return None
        if X.shape[0] == 0 or X.shape[1] != self.n_features_in_ or X.dtype != coefs[0].dtype:
            return None
        threads = prediction_threads(layer_sizes(coefs), X.shape[0], X.dtype)
        return forward_direct(np.ascontiguousarray(X), coefs, self.intercepts_, self.activation,
                              self.out_activation_, threads)

    def predict(self, X):
        """Predict using the network.

        Safe from several threads at once, also while another thread fits the estimator: a
        prediction uses the model as it was when it began, whole.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predicted values (regressor) or class labels (classifier; (n_samples, n_classes)
            indicators for multilabel problems).
        """
        model = self._published()
        return model._output_to_prediction(model._forward(X))

    def _gradient_problem(self, X, y, sample_weight=None):
        """For check_gradients: a float64 copy of the fitted network and the targets it fits.

        The network has the loss the model was fitted with (``_fitted_loss(strict=True)``).
        X and y are checked up front: one row of y per row of X, as many target columns as
        the model has outputs (classifier: labels among ``classes_``).

        Returns (network, X, Y (n, n_outputs) float64, sample_weight or None, Settings).
        """
        check_is_fitted(self)
        check_sparse(X)
        with explained_errors():
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=np.float64)
        if np.ndim(y) not in (1, 2):
            raise ValueError(f"y must be an array of targets, (n_samples,) or (n_samples, "
                             f"n_outputs), got {type(y).__name__} of shape {np.shape(y)}.")
        if np.shape(y)[0] != X.shape[0]:
            raise ValueError(f"y has {np.shape(y)[0]} rows but X has {X.shape[0]}: pass one "
                             "target (row of y) per sample (row of X).")
        Y = np.asarray(self._encode_targets(y), dtype=np.float64)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        if Y.shape != (X.shape[0], self.n_outputs_):
            raise ValueError(f"y gives {Y.shape[1]} target column(s) per sample but the model "
                             f"has {self.n_outputs_} output(s): pass y shaped as for fit.")
        net = self._fitted_network(np.float64, self._fitted_loss(strict=True))
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
            check_weight_sum(sample_weight)
        return net, X, Y, sample_weight, self._fitted_settings()

    def _fitted_settings(self):
        """The fitted model's Settings: its parameters, with the loss and output it was
        fitted with."""
        return Settings.of(self, layer_sizes(self.coefs_)[1:-1], self._fitted_loss(strict=True),
                           self.out_activation_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

