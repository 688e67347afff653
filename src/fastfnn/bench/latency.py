"""Predict latency and throughput of a (64, 64) regressor: fastfnn, scikit-learn holding the same
weights, and torch eager, timed the same way (the :class:`Latency` half of ``Bench``)."""

import statistics
import time
import warnings

import numpy as np

from .._parts import prediction_threads
from .cases import (
    PREDICT_CALLS, PREDICT_CONFIG, PREDICT_FIT_ROWS, PREDICT_REPEATS, Case,
    estimator_class, estimator_params,
)
from .torch_impl import torch_model


class Latency:
    """The predict measurements of :class:`~fastfnn.bench.Bench` (a mixin): it records into
    ``self.predict`` ({impl: {rows: seconds per call}}) and keeps its models in
    ``self._models``; ``data``, ``log``, ``opts`` and ``_thread_env`` are the Bench's."""

    def predict_model(self, impl):
        """A callable ``f(X)`` predicting with the (64, 64) regressor: fastfnn's, fitted briefly
        (2 epochs on the first rows), or scikit-learn's and torch's holding the same weights."""
        cfg = PREDICT_CONFIG
        if "fastfnn" not in self._models:
            X, y = self.data(cfg, "float64")
            rows = PREDICT_FIT_ROWS
            params = estimator_params(Case(cfg, "sgd", "float64", 2))
            with warnings.catch_warnings(), self._thread_env():
                warnings.simplefilter("ignore")
                ff = estimator_class("fastfnn")(**params).fit(X[:rows], y[:rows])
                sk = estimator_class("sklearn")(**params).fit(X[:rows], y[:rows])
            sk.coefs_ = [W.copy() for W in ff.coefs_]
            sk.intercepts_ = [b.copy() for b in ff.intercepts_]
            self._models.update(fastfnn=ff.predict, sklearn=sk.predict, estimator=ff)
        if impl == "torch" and "torch" not in self._models:
            import torch

            ff = self._models["estimator"]
            model = torch_model(list(zip(ff.coefs_, ff.intercepts_)), "float64")

            def predict(X):
                with torch.no_grad():
                    return model(torch.from_numpy(X)).numpy()

            self._models["torch"] = predict
        return self._models[impl]

    def measure_predict(self, impl):
        """Seconds per ``predict`` call of ``impl`` on 1, 10, 100, 1k, 10k and 100k rows (a
        plain float64 ndarray): per row count the best of :data:`PREDICT_REPEATS` medians of
        :data:`PREDICT_CALLS` calls, after a warm-up call. Threads: fastfnn's predict rule for
        that many rows (``_parts.prediction_threads``), given to scikit-learn's BLAS and to
        torch, set once per row count."""
        from threadpoolctl import threadpool_limits

        predict = self.predict_model(impl)
        X, _ = self.data(PREDICT_CONFIG, "float64")
        out = self.predict.setdefault(impl, {})
        for rows, calls in PREDICT_CALLS.items():
            x = np.ascontiguousarray(X[:rows])
            threads = (int(self.opts.threads) if self.opts.threads else
                       prediction_threads(PREDICT_CONFIG.sizes, rows, np.float64))
            if impl == "torch":
                import torch

                torch.set_num_threads(threads)
            limits = (self._thread_env() if impl == "fastfnn"
                      else threadpool_limits(limits=threads, user_api="blas"))
            best = np.inf
            with limits:
                predict(x)  # warm-up (compiled forward, torch's first call)
                for _ in range(PREDICT_REPEATS):
                    times = []
                    for _ in range(calls):
                        t = time.perf_counter()
                        predict(x)
                        times.append(time.perf_counter() - t)
                    best = min(best, statistics.median(times))
            out[rows] = best
            self.log(f"predict {impl:8s} {rows:7d} rows: {best * 1e6:10.1f} us/call")
        return out
