"""Predict latency (1, 10, 100 rows) and throughput (1k, 10k, 100k rows) of a (64, 64) regressor:
fastfnn, scikit-learn with the same weights, torch eager."""


def test_predict(benchmark, bench, predict_impl):
    benchmark.group = "predict (64, 64)"
    benchmark.pedantic(bench.measure_predict, args=(predict_impl,), rounds=1, iterations=1)
