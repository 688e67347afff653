"""The machine's yardsticks: the GEMM peak (a large square matmul) and an epoch's GEMM floor."""

import time

import numpy as np


def _best_time(fn, reps):
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gemm_peak(dtype, threads, n=2048, reps=3):
    """GFLOP/s of a large square ``np.matmul`` (n x n) with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rs = np.random.RandomState(1)
    a = rs.standard_normal((n, n)).astype(dtype)
    b = rs.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)
        t = _best_time(lambda: np.matmul(a, b, out=c), reps)
    return 2.0 * n**3 / t / 1e9


def gemm_floor(config, dtype, threads, reps=3):
    """Seconds for one epoch's matrix products alone, at their real shapes (min of ``reps``).

    Per batch of m rows and per layer (fan_in -> fan_out): forward ``A @ W`` (m, fan_in) @
    (fan_in, fan_out); weight gradient ``A.T @ D`` (fan_in, m) @ (m, fan_out); and, above the
    first layer, delta backprop ``D @ W.T`` (m, fan_out) @ (fan_out, fan_in). Written into
    preallocated buffers with ``np.matmul(..., out=)``; the last, shorter batch uses views.
    """
    from threadpoolctl import threadpool_limits

    rs = np.random.RandomState(2)
    bs, n = config.batch_size, config.n_samples
    rows = [bs] * (n // bs) + ([n % bs] if n % bs else [])
    A = [rs.standard_normal((bs, s)).astype(dtype) for s in config.sizes]
    D = [rs.standard_normal((bs, s)).astype(dtype) for s in config.sizes[1:]]
    W = [(rs.standard_normal(p) / np.sqrt(p[0])).astype(dtype) for p in config.pairs]
    Z = [np.empty((bs, s), dtype) for s in config.sizes[1:]]  # forward outputs
    P = [np.empty((bs, s), dtype) for s in config.sizes[:-1]]  # backprop outputs
    dW = [np.empty(p, dtype) for p in config.pairs]
    L = len(W)
    matmul = np.matmul

    def epoch():
        for m in rows:
            for i in range(L):
                matmul(A[i][:m], W[i], out=Z[i][:m])  # (m, fan_out)
            for i in range(L - 1, -1, -1):
                matmul(A[i][:m].T, D[i][:m], out=dW[i])  # (fan_in, fan_out)
                if i > 0:
                    matmul(D[i][:m], W[i].T, out=P[i][:m])  # (m, fan_in)

    with threadpool_limits(limits=threads, user_api="blas"):
        epoch()
        return _best_time(epoch, reps)
