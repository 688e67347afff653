"""Many FNN fits at once (``fit_together``): each staged, set up and published as its own
``fit`` would be, their stochastic epochs trained together (``_together``)."""

from contextlib import ExitStack

from ._base import fit_lock, staged
from ._blas import BLAS
from ._together import train_together
from ._validation import explained_errors
from .optimizers import RULES


def fit_together(jobs, *, n_jobs=None, lanes=False):
    """``estimator.fit(X, y, sample_weight)`` for every ``(estimator, X, y, sample_weight)`` of
    ``jobs`` (FNN estimators), their stochastic fits trained together
    (``_together.train_together``: one compiled call per epoch and group, the networks on
    ``n_jobs`` threads); each ends as its own ``fit`` would, to the bit. With ``lanes``, fits
    that share their minibatches (one seed, equal rows: a search's candidates on a fold) may
    train as lanes of one call (``_lanes``), each then its own fit to rounding (about 1e-15
    relative), not to the bit.

    A fit that fails (bad parameters, a diverging fit) leaves its estimator as it was and does
    not stop the others; returns one item per job: None where the estimator was fitted, else
    the exception its ``fit`` would have raised. An estimator with callbacks, or an 'lbfgs'
    one, is fitted on its own.
    """
    BLAS.prepare()
    errors = [None] * len(jobs)
    together = []  # (index, its staging, staged copy, set-up, StochasticFit)
    with ExitStack() as held:
        for i, (est, X, y, sample_weight) in enumerate(jobs):
            if getattr(est, "_skl_callbacks", None) or est.solver not in RULES:
                errors[i] = _error_of(est.fit, X, y, sample_weight)
                continue
            held.enter_context(fit_lock(est))
            stage = ExitStack()  # the fit's own staging, left open until it is published
            try:
                est._validate_params()
                work = stage.enter_context(staged(est))
                stage.enter_context(explained_errors())
                job = work._begin_fit(X, y, sample_weight, False)
                fit = work._stochastic_fit(job, threads=1)
            except Exception as exc:  # noqa: BLE001 - reported per estimator, as its fit would
                errors[i] = _closed_with(stage, exc)
                continue
            together.append((i, stage, work, job, fit))
        train_together([item[4] for item in together], n_jobs, lanes)
        for i, stage, work, job, fit in together:
            if fit.error is not None:  # its epochs raised: rolled back, as its fit would be
                errors[i] = _closed_with(stage, fit.error)
                continue
            try:
                with stage:
                    work._end_fit(job, fit.state)
            except Exception as exc:  # noqa: BLE001
                errors[i] = exc
    return errors


def _closed_with(stage, exc):
    """Close ``stage`` (an ExitStack) on the exception ``exc`` (a staged fit rolls back);
    returns the exception as the contexts leave it (with its explanation added)."""
    try:
        if not stage.__exit__(type(exc), exc, exc.__traceback__):
            return exc
    except Exception as raised:  # noqa: BLE001
        return raised
    return None


def _error_of(fit, *args):
    """None where ``fit(*args)`` succeeds, else its exception."""
    try:
        fit(*args)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None
