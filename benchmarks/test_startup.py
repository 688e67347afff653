"""Start-up and memory, each measured in fresh subprocesses (not through pytest-benchmark's
timer, so ``--benchmark-only`` skips them)."""


def test_startup(bench, startup_dtype):
    """``import fastfnn`` vs ``import sklearn.neural_network``; first fit with an empty and a
    warm Numba cache, and a second fit, against scikit-learn's."""
    bench.measure_startup(startup_dtype, cold=bench.opts.full)


def test_fit_command(bench, fit_command):
    """Wall time of the first ``fastfnn fit`` (bundled data) with an empty Numba cache, as after
    a fresh install, and of a second one."""
    bench.measure_fit_command()


def test_fit_memory(bench, memory):
    """Peak memory of a one-epoch fit against data + parameters + workspace."""
    config, dtype, impl = memory
    bench.measure_memory(config, dtype, impl)
