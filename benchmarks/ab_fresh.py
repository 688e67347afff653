"""A/B of training speed in fresh processes: this checkout's fastfnn against another git revision.

    python benchmarks/ab_fresh.py REV [--pairs 7] [--epochs 3] [--configs tiny,small,...]

For changes that ``ab_compare.py`` cannot measure in one process: two versions whose compiled
kernels bind the same native symbol (another BLAS behind ``fastfnn_dgemm``), or whose parallel
code differs. The other revision's ``src`` is exported (``git archive``) once to a temporary
folder named after its commit (kept, with the Numba cache its kernels compile into, for the next
run); each timing runs in a fresh Python process that imports one version (``PYTHONPATH``),
fits the config once to warm up, then times ``--epochs`` epochs; the versions alternate, A then
B then B then A, so that a shared host's slow spells fall on both alike. Prints the CPU, and per
config and dtype the median seconds per epoch of each and the ratio B/A (above 1: B is
slower).
Environment variables (``FASTFNN_TILE``, ``FASTFNN_SPLIT_FLOPS``, ``FASTFNN_NUM_THREADS``) pass
through to both, to compare like with like.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # name: (n_samples, sizes, batch_size), as ab_compare.py
    "tiny": (20000, [10, 32, 1], 32),
    "small": (20000, [20, 64, 64, 1], 64),
    "deep": (20000, [32] + [64] * 8 + [1], 64),
    "medium": (20000, [100, 256, 256, 1], 128),
    "wide": (8000, [784, 1024, 1024, 10], 256),
}
CHILD = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from fastfnn import FNNRegressor
n, sizes, batch, dtype, epochs = json.loads(sys.argv[1])
rs = np.random.RandomState(0)
X = rs.standard_normal((n, sizes[0])).astype(dtype)
y = np.tanh(X @ rs.standard_normal(sizes[0])).astype(dtype)
params = dict(hidden_layer_sizes=tuple(sizes[1:-1]), solver="sgd", batch_size=batch,
              random_state=0, tol=0, n_iter_no_change=10**6, shuffle=True)
FNNRegressor(max_iter=1, **params).fit(X, y)
start = time.perf_counter()
FNNRegressor(max_iter=epochs, **params).fit(X, y)
print(json.dumps((time.perf_counter() - start) / epochs))
"""


def export(rev):
    """``src`` of ``rev``, exported once to a folder named after its commit (kept, with the
    Numba cache its kernels compile into, for the next run)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    folder = Path(tempfile.gettempdir()) / f"fastfnn-ab-{sha[:12]}"
    if not (folder / "src").is_dir():
        folder.mkdir(exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def timed(src, config, dtype, epochs):
    """Seconds per epoch of ``config`` in a fresh process importing fastfnn from ``src``."""
    n, sizes, batch = CONFIGS[config]
    env = dict(os.environ, PYTHONPATH=str(src))
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([n, sizes, batch, dtype,
                                                                    epochs])],
                          env=env, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the other revision (B)")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--configs", default="tiny,small,deep,medium,wide")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}; A = this checkout, B = {args.rev}; sgd, {args.epochs} epochs a timing, "
          f"{args.pairs} pairs, fresh processes alternating")
    sources = {"A": ROOT / "src", "B": export(args.rev)}
    for config in args.configs.split(","):
        for dtype in args.dtypes.split(","):
            times = {"A": [], "B": []}
            for pair in range(args.pairs):
                for side in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                    times[side].append(timed(sources[side], config, dtype, args.epochs))
            a, b = (statistics.median(times[s]) for s in "AB")
            print(f"{config:7s} {dtype}: A {a * 1e3:8.2f} ms/epoch  B {b * 1e3:8.2f} "
                  f"ms/epoch  B/A {b / a:.3f}", flush=True)


if __name__ == "__main__":
    main()
