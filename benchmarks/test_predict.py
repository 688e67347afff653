"""Predict latency (1, 10, 100 rows) and throughput (1k, 10k, 100k rows) of a (64, 64) regressor:
fastfnn, scikit-learn with the same weights, torch eager."""


def test_predict(benchmark, bench, predict_impl):
    benchmark.group = "predict (64, 64)"
    benchmark.pedantic(bench.measure_predict, args=(predict_impl,), rounds=1, iterations=1)


def test_predict_proba_classifier(benchmark):
    """``predict_proba`` of a (64, 64) classifier of 3 classes (softmax), fitted briefly on
    2,000 rows, against scikit-learn's ``MLPClassifier`` holding the same weights, on 1, 1k and
    10k rows of a plain float64 array: per row count the best of 5 medians of interleaved
    calls. Printed (``-s``) and kept in extra_info; nothing is asserted about time."""
    import statistics
    import time
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier

    from fastfnn import FNNClassifier
    from fastfnn.bench.report import _cpu_name as cpu_name

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10_000, 20))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # 3 classes: all past the last whole vector
    params = dict(hidden_layer_sizes=(64, 64), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = FNNClassifier(**params).fit(X[:2000], y[:2000])
        theirs = MLPClassifier(**params).fit(X[:2000], y[:2000])
    theirs.coefs_ = [W.copy() for W in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    rows = {}
    for n, calls in ((1, 500), (1_000, 50), (10_000, 10)):
        x = X[:n]
        np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=1e-9,
                                   atol=1e-12)
        best = {"fastfnn": np.inf, "sklearn": np.inf}
        for _ in range(5):
            for name, est in (("fastfnn", ours), ("sklearn", theirs)):
                times = []
                for _ in range(calls):
                    start = time.perf_counter()
                    est.predict_proba(x)
                    times.append(time.perf_counter() - start)
                best[name] = min(best[name], statistics.median(times))
        rows[n] = {**{f"{k} us": 1e6 * v for k, v in best.items()},
                   "vs sklearn": best["sklearn"] / best["fastfnn"]}
    benchmark.group = "predict_proba (64, 64), 3 classes"
    benchmark.extra_info.update(cpu=cpu_name(), rows=rows)
    benchmark.pedantic(lambda: ours.predict_proba(X), rounds=1, iterations=1)
    print(f"\npredict_proba, (64, 64) classifier of 3 classes ({cpu_name()}):")
    for n, r in rows.items():
        print(f"  {n:6d} rows: fastfnn {r['fastfnn us']:9.1f} us, scikit-learn "
              f"{r['sklearn us']:9.1f} us, {r['vs sklearn']:.2f}x")
