"""Peak RSS of ``fastfnn fit 'DIR/part-*.csv' --epochs 1`` against the size of the data: it
should stay flat.

    python benchmarks/scaling/cli_stream_memory.py [--gb 1,4] [--files 8] [--dir /tmp]
                                                   [--epochs 1] [--pythonpath SRC ...]
                                                   [-- EXTRA FIT OPTIONS]

For each size: writes ``--files`` CSV files of 21 float columns (20 uniform features and a
Friedman #1 target, as ``stream_memory.py``) adding up to about that many GB, runs the command
with default settings under ``/usr/bin/time -v`` (Debian's ``time`` package), reports its
"Maximum resident set size" and wall time, and deletes the files before the next size (check
``df -h`` first: the largest size must fit on the disk once).

Not a pytest file: run it by hand, one run at a time (the memory figures are not sensitive to
other load; the wall times are).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stream_memory import write_csv  # noqa: E402


def write_parts(folder, gb, files):
    """``files`` CSV files of about ``gb / files`` GB each in ``folder``; returns total bytes."""
    os.makedirs(folder, exist_ok=True)
    for k in range(files):
        write_csv(os.path.join(folder, f"part-{k}.csv"), gb / files, chunk=20_000)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def measure(pattern, epochs, extra, pythonpath=None):
    """(peak RSS in MB, wall seconds, exit status, last error line, stdout) of one CLI fit;
    ``pythonpath``: where to import fastfnn from (another checkout's src, to compare)."""
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "fastfnn", "fit", pattern, "--epochs",
           str(epochs), "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    peak = int(found.group(1)) / 1024 if found else float("nan")
    tail = [line for line in done.stderr.splitlines() if "error" in line.lower()][-1:]
    return peak, wall, done.returncode, (tail or [""])[0], done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", default="1,4", help="comma-separated sizes in GB")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--pythonpath", action="append", default=None, metavar="SRC",
                        help="measure with fastfnn imported from SRC (repeat to compare "
                             "checkouts on the same files; default: the installed one)")
    parser.add_argument("extra", nargs="*", help="more fastfnn fit options (after --)")
    args = parser.parse_args()
    if not os.path.exists("/usr/bin/time"):
        sys.exit("needs /usr/bin/time (Debian: apt-get install time)")
    for gb in [float(g) for g in args.gb.split(",")]:
        folder = os.path.join(args.dir, f"fastfnn-cli-memory-{os.getpid()}")
        try:
            size = write_parts(folder, gb, args.files)
            for src in args.pythonpath or [None]:
                peak, wall, code, error, out = measure(os.path.join(folder, "part-*.csv"),
                                                       args.epochs, args.extra, src)
                trained = next((line for line in out.splitlines()
                                if line.startswith("trained")), "")
                print(f"{size / 1e6:8.0f} MB of CSV{f' ({src})' if src else ''}: peak RSS "
                      f"{peak:6.0f} MB, {wall:6.0f} s, exit {code}  {error or trained}",
                      flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\ncommand: python benchmarks/scaling/cli_stream_memory.py {' '.join(sys.argv[1:])}; "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
