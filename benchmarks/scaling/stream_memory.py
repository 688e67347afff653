"""Peak memory and accuracy of fastfnn.scaling.fit_streaming on a CSV larger than the memory
the process is given.

    python benchmarks/scaling/stream_memory.py [--gb 1.0] [--blocksize 16MB] [--epochs 3]
                                               [--limit-mb 512] [--dir /tmp]

1. Writes a CSV of about ``--gb`` GB (20 uniform features, a Friedman #1 target on the first
   five plus N(0, 1) noise, 6 decimals; seeded, written in chunks of 200,000 rows).
2. In child processes (each measured from its own start):
   * ``stream``: imports, warms up, then caps its address space (RLIMIT_AS) at what it holds
     plus ``--limit-mb`` MB and streams the file through ``fit_streaming``;
   * ``whole``: the same cap, then ``pandas.read_csv`` of the whole file (expected to fail: it
     shows the cap is smaller than the data);
   * ``incremental``: one epoch of ``dask_ml.wrappers.Incremental`` over the same partitions
     (no cap, dask's threaded scheduler), for its peak memory;
   * ``subset``: an in-memory fit (StandardScaler + the same network) on the first
     ``--subset`` rows, for the accuracy an in-memory fit reaches.
   Each reports its peak RSS (``ru_maxrss``), its RSS after the imports, wall time and the R^2
   on 100,000 fresh test rows.
3. Deletes the file and prints a Markdown table with the machine's CPU and load.

Not a pytest file: run it by hand on an idle machine (it reads the file 2 + 2 * epochs times).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

N_FEATURES = 20
COLUMNS = [f"x{i}" for i in range(N_FEATURES)] + ["y"]


def friedman(n, seed):
    """(X, y): Friedman #1 on the first five of 20 uniform features, plus N(0, 1) noise."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, N_FEATURES))
    y = (10 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20 * (X[:, 2] - 0.5) ** 2 + 10 * X[:, 3]
         + 5 * X[:, 4] + rng.normal(size=n))
    return X, y


def write_csv(path, gb, chunk=200_000):
    """Write about ``gb`` GB of rows (values rounded to 6 decimals, pyarrow's CSV writer);
    returns the row count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows, k = 0, 0
    with open(path, "wb") as out:
        out.write((",".join(COLUMNS) + "\n").encode())
        while out.tell() < gb * 1e9:
            X, y = friedman(chunk, seed=1000 + k)
            data = np.round(np.column_stack([X, y]), 6)
            table = pa.table({name: data[:, j] for j, name in enumerate(COLUMNS)})
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
            rows, k = rows + chunk, k + 1
    return rows


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))


def vms_bytes():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))


def network(max_iter=200):
    from fastfnn import FNNRegressor

    return FNNRegressor(hidden_layer_sizes=(64, 64), solver="adam", learning_rate_init=1e-3,
                        batch_size=200, max_iter=max_iter, random_state=0)


def warm_up():
    """A tiny fit so that Numba's kernels are loaded before memory is capped."""
    X, y = friedman(500, seed=7)
    network(max_iter=2).fit(X, y)


def cap_memory(extra_mb):
    """Cap the address space at what the process holds now plus ``extra_mb``."""
    limit = vms_bytes() + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit // 2**20


def child(mode, args):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score

    import fastfnn.scaling as scaling

    warnings.simplefilter("ignore", ConvergenceWarning)
    warm_up()
    out = {"mode": mode, "rss_after_imports_mb": rss_mb()}
    X_test, y_test = friedman(100_000, seed=1)
    start = time.perf_counter()
    if mode == "stream":
        out["address_space_cap_mb"] = cap_memory(args.limit_mb)
        fit = scaling.fit_streaming(network(), args.path, "y", epochs=args.epochs,
                                    blocksize=args.blocksize, random_state=0)
        model = fit.model
        out.update(epochs=[[r.epoch, round(r.validation_score, 4), round(r.seconds, 1)]
                           for r in fit.history],
                   train_rows=fit.n_train_rows, partitions=len(fit.train_partitions)
                   + len(fit.validation_partitions))
    elif mode == "whole":
        import pandas as pd

        out["address_space_cap_mb"] = cap_memory(args.limit_mb)
        try:
            pd.read_csv(args.path)
            out["result"] = "read the whole file"
        except (MemoryError, OSError) as err:  # OSError: ENOMEM from mmap
            out["result"] = f"{type(err).__name__}: {err}"
        model = None
    elif mode == "incremental":
        model = incremental_epoch(args)
    else:
        import pandas as pd
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        frame = pd.read_csv(args.path, nrows=args.subset)
        model = make_pipeline(StandardScaler(), network(max_iter=args.subset_epochs))
        model.fit(frame[COLUMNS[:-1]], frame["y"])
    out["seconds"] = round(time.perf_counter() - start, 1)
    if model is not None:
        import pandas as pd

        out["test_r2"] = round(r2_score(y_test, model.predict(
            pd.DataFrame(X_test, columns=COLUMNS[:-1]))), 4)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(out))


def incremental_epoch(args):
    """One pass of dask-ml's Incremental over the same partitions (features unscaled)."""
    import dask.dataframe as dd
    from dask_ml.wrappers import Incremental

    frame = dd.read_csv(args.path, blocksize=args.blocksize, dtype="float64")
    inc = Incremental(network(), shuffle_blocks=True, random_state=0)
    inc.fit(frame[COLUMNS[:-1]], frame["y"])
    return None


def run_child(mode, args):
    cmd = [sys.executable, __file__, "--child", mode, "--path", args.path, "--epochs",
           str(args.epochs), "--blocksize", args.blocksize, "--limit-mb", str(args.limit_mb),
           "--subset", str(args.subset), "--subset-epochs", str(args.subset_epochs)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"mode": mode, "error": done.stderr.strip().splitlines()[-3:]}
    return json.loads(lines[-1])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--blocksize", default="16MB")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-mb", type=int, default=512)
    parser.add_argument("--subset", type=int, default=250_000)
    parser.add_argument("--subset-epochs", type=int, default=20)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--modes", default="stream,whole,incremental,subset")
    parser.add_argument("--child")
    parser.add_argument("--path")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args)
    args.path = os.path.join(args.dir, f"fastfnn-stream-{os.getpid()}.csv")
    load_before = os.getloadavg()
    try:
        start = time.perf_counter()
        rows = write_csv(args.path, args.gb)
        size = os.path.getsize(args.path)
        print(f"wrote {args.path}: {size / 1e9:.2f} GB, {rows:,} rows, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        results = []
        for mode in args.modes.split(","):
            results.append(run_child(mode, args))
            print(json.dumps(results[-1]), flush=True)
    finally:
        if os.path.exists(args.path):
            os.unlink(args.path)
    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} cores; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/scaling/stream_memory.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
