"""Training throughput: fastfnn, scikit-learn and PyTorch eager side by side, per case.

The paired ratios, GFLOP/s and targets are in the table printed at the end of the session.
"""

import pytest


def test_train(benchmark, bench, timer, train):
    case, impl = train
    benchmark.group = f"train {case.key}"
    benchmark.extra_info.update(epochs=case.epochs, samples=case.config.n_samples)
    bench.measure_train(case, impl, timer=timer)


def test_same_work(bench):
    """The implementations trained the same network on the same batches (epoch-1 losses from
    the same seed agree; see Bench.same_work). Not a timing assertion."""
    if not bench.train:
        pytest.skip("no training measured in this session")
    failed = {k: bench.same_work(k)[1] for k in bench.train if bench.same_work(k)[0] is False}
    assert not failed, failed
