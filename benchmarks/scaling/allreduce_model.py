"""Would synchronous data-parallel training of one network across machines pay? Per-step
communication (an allreduce of the gradient) against per-step compute, for the benchmark's
five networks.

    python benchmarks/scaling/allreduce_model.py [--networks 10:50,100:5] [--no-dask]

* Compute per step: ``6 * batch * sum(fan_in * fan_out)`` flops, at the GFLOP/s of a large
  ``np.matmul`` measured here (float64 and float32, all cores), and fastfnn's measured time per
  step (float64, training on this machine).
* Communication per step: the gradient, ``n_params * itemsize`` bytes, summed across ``p``
  machines by a ring allreduce (what NCCL/Gloo/MPI and Horovod use), for each network of
  ``--networks`` (Gb/s : latency in us; default 10 Gb/s Ethernet at 50 us, and 100 Gb/s RDMA
  at 5 us):
  ``T = 2 (p - 1) * latency + 2 (p - 1) / p * bytes / bandwidth``.
* Strong scaling (the global batch stays, each machine computes ``batch / p`` rows):
  ``speed-up = t_step / (t_step / p + T)``, with no overlap of compute and communication.
* Dask (measured on a local 2-worker cluster unless ``--no-dask``): the round trip of one
  no-op task, and one "allreduce" built from tasks (each worker makes a gradient, one task sums
  them, both workers fetch the sum).
Not a pytest file: run it by hand on an idle machine.
"""

import argparse
import os
import time
import warnings

import numpy as np

CONFIGS = {  # name: (layer sizes, batch)
    "tiny": ([10, 32, 1], 32),
    "small": ([20, 64, 64, 1], 64),
    "medium": ([100, 256, 256, 1], 128),
    "wide": ([784, 1024, 1024, 10], 256),
    "deep": ([32] + [64] * 8 + [1], 64),
}


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(dtype, n=2048, repeat=5):
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    b = a.T.copy()
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    return 2 * n**3 / best_of(lambda: np.matmul(a, b, out=out), repeat) / 1e9


def fastfnn_step_seconds(sizes, batch, flops, peak_gflops):
    """Seconds per minibatch step of fastfnn (sgd, float64): one epoch of 10 to 400 batches
    (about 0.3 s at the matmul peak), best of 3 after a warm-up."""
    from fastfnn import FNNRegressor

    steps = int(np.clip(0.3 * peak_gflops * 1e9 / flops, 10, 400))
    rng = np.random.default_rng(0)
    X = rng.random((batch * steps, sizes[0]))
    Y = rng.random((batch * steps, sizes[-1]))
    y = Y.ravel() if sizes[-1] == 1 else Y
    net = FNNRegressor(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", batch_size=batch,
                       max_iter=1, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(X[:batch * 4], y[:batch * 4])
        return best_of(lambda: net.fit(X, y), 3) / steps


def ring_allreduce_seconds(nbytes, p, gbps, latency):
    return 2 * (p - 1) * latency + 2 * (p - 1) / p * nbytes / (gbps * 1e9 / 8)


def dask_costs(sizes_bytes, repeat=20):
    """(no-op round trip, {bytes: seconds per task-built allreduce}) on 2 local workers."""
    from fastfnn.scaling import cluster_client

    def make(nbytes, seed):
        return np.full(nbytes // 8, float(seed))

    def total(a, b):
        return a + b

    def first(x):
        return x[0]

    with cluster_client("local", n_workers=2, threads_per_worker=1) as client:
        workers = sorted(client.nthreads())
        client.submit(int, 1).result()
        noop = best_of(lambda: client.submit(int, 1, pure=False).result(), repeat)
        rounds = {}
        for nbytes in sizes_bytes:
            def one_round():
                parts = [client.submit(make, nbytes, k, workers=[w], pure=False)
                         for k, w in enumerate(workers)]
                summed = client.submit(total, *parts, workers=[workers[0]], pure=False)
                back = [client.submit(first, summed, workers=[w], pure=False) for w in workers]
                client.gather(back)
            one_round()
            rounds[nbytes] = best_of(one_round, max(3, repeat // 4))
    return noop, rounds


def speedup(t_step, t_allreduce, p):
    """Strong scaling: the global batch split over ``p`` machines, no overlap."""
    return t_step / (t_step / p + t_allreduce)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="10:50,100:5",
                        help="bandwidth in Gb/s : latency in us, comma separated")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    networks = [tuple(float(v) for v in pair.split(":")) for pair in args.networks.split(",")]
    peak64, peak32 = matmul_gflops(np.float64), matmul_gflops(np.float32)
    print(f"np.matmul 2048x2048, {os.cpu_count()} cores: {peak64:.1f} GFLOP/s float64, "
          f"{peak32:.1f} GFLOP/s float32; load average {os.getloadavg()[0]:.2f}\n")
    print("| config | params | gradient (float64) | flops/step | compute at peak | fastfnn step "
          "| fastfnn % of peak |\n|---|---|---|---|---|---|---|")
    rows = {}
    for name, (sizes, batch) in CONFIGS.items():
        pairs = list(zip(sizes[:-1], sizes[1:]))
        n_params = sum(i * o + o for i, o in pairs)
        flops = 6 * batch * sum(i * o for i, o in pairs)
        t_peak = flops / (peak64 * 1e9)
        t_step = fastfnn_step_seconds(sizes, batch, flops, peak64)
        rows[name] = (n_params * 8, t_peak, t_step)
        print(f"| {name} | {n_params:,} | {n_params * 8 / 1e3:,.1f} kB | {flops / 1e6:.2f} M "
              f"| {t_peak * 1e6:,.1f} us | {t_step * 1e6:,.1f} us | {100 * t_peak / t_step:.0f}% |")
    for gbps, latency_us in networks:
        print(f"\nRing allreduce at {gbps:g} Gb/s, {latency_us:g} us per message; speed-up "
              f"= step / (step / p + allreduce), global batch fixed, no overlap:\n")
        print("| config | allreduce p=2 | p=8 | speed-up p=2 (fastfnn step) | p=8 "
              "| speed-up p=2 (compute at peak) | p=8 |\n|---|---|---|---|---|---|---|")
        for name, (nbytes, t_peak, t_step) in rows.items():
            t2, t8 = (ring_allreduce_seconds(nbytes, p, gbps, latency_us * 1e-6) for p in (2, 8))
            print(f"| {name} | {t2 * 1e6:,.0f} us | {t8 * 1e6:,.0f} us "
                  f"| {speedup(t_step, t2, 2):.2f}x | {speedup(t_step, t8, 8):.2f}x "
                  f"| {speedup(t_peak, t2, 2):.2f}x | {speedup(t_peak, t8, 8):.2f}x |")
    if not args.no_dask:
        noop, rounds = dask_costs(sorted({rows["tiny"][0], rows["medium"][0], rows["wide"][0]}))
        print(f"\nDask, 2 local worker processes: no-op task round trip {noop * 1e3:.2f} ms")
        for nbytes, t in rounds.items():
            print(f"  task-built allreduce of {nbytes / 1e3:,.1f} kB: {t * 1e3:.2f} ms")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
