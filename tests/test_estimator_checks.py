"""scikit-learn's common estimator checks on both estimators and both ensembles (of two
members), with no expected failures.

Instances as scikit-learn's own test suite builds them for MLPRegressor / MLPClassifier
(``sklearn/utils/_test_common/instance_generator.py``): ``max_iter=100`` for every check
(``INIT_PARAMS``), and for ``check_sample_weight_equivalence_on_dense_data`` the parameter sets
of ``PER_ESTIMATOR_CHECK_PARAMS`` (which scikit-learn applies only to its own estimators, so
they are applied here by hand).
"""

import functools

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastfnn import FNNClassifier, FNNEnsembleClassifier, FNNEnsembleRegressor, FNNRegressor

# Mirrors PER_ESTIMATOR_CHECK_PARAMS for MLPClassifier / MLPRegressor in scikit-learn 1.9.
PER_CHECK_PARAMS = {
    FNNClassifier: {
        "check_sample_weight_equivalence_on_dense_data": [dict(solver="lbfgs")],
    },
    FNNRegressor: {
        "check_sample_weight_equivalence_on_dense_data": [
            dict(solver="sgd", tol=1e-2, random_state=42)
        ],
    },
}


def _check_name(check):
    return check.func.__name__ if isinstance(check, functools.partial) else check.__name__


def _instances_for_check(estimator, check):
    """scikit-learn's ``_yield_instances_for_check`` for the two fastfnn estimators."""
    param_sets = PER_CHECK_PARAMS.get(type(estimator), {}).get(_check_name(check))
    if param_sets is None:
        return [estimator]
    return [clone(estimator).set_params(**params) for params in param_sets]


@parametrize_with_checks([FNNRegressor(max_iter=100), FNNClassifier(max_iter=100),
                          FNNEnsembleRegressor(FNNRegressor(max_iter=100), n_estimators=2),
                          FNNEnsembleClassifier(FNNClassifier(max_iter=100), n_estimators=2)])
def test_sklearn_compatible_estimator(estimator, check):
    for instance in _instances_for_check(estimator, check):
        check(instance)


def test_per_check_params_reach_the_check():
    """The override above is not a no-op: the sample-weight check gets the sgd/lbfgs instances."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    check = functools.partial(check_sample_weight_equivalence_on_dense_data, "FNNRegressor")
    (reg,) = _instances_for_check(FNNRegressor(max_iter=100), check)
    assert (reg.solver, reg.tol, reg.random_state, reg.max_iter) == ("sgd", 1e-2, 42, 100)
    (clf,) = _instances_for_check(FNNClassifier(max_iter=100), check)
    assert clf.solver == "lbfgs"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
