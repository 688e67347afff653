"""Predict throughput on small and wide: all rows of the training data, best of 5."""


def test_predict(benchmark, bench, timer, predict):
    config, dtype, impl = predict
    benchmark.group = f"predict {config.name}/{dtype}"
    bench.measure_predict(config, dtype, impl, timer=timer)
