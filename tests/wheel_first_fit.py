"""The kernels compiled into a wheel are the ones its first fit uses (run by ``.ci/run``, not by
pytest: it builds the wheel, about 2 minutes on 2 cores).

    python tests/wheel_first_fit.py

Builds the wheel of this checkout (which precompiles the float64 kernels and times the
machine's thread choices), installs it, not editable, into a fresh virtual environment, and in
that environment runs the newcomer's first fit (``fastfnn fit`` on the bundled data) with an
empty fastfnn cache folder, counting Numba's compile events (the oracle: Numba's own
``numba:compile`` event, which fires on compiles, never on cache loads). Exits 1 unless the fit
compiled nothing and read the shipped measurements instead of timing them.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_precompile import COUNT_COMPILES  # noqa: E402  (the compile counter, one copy)

ROOT = Path(__file__).resolve().parents[1]
FIRST_FIT = COUNT_COMPILES + """
import json, time
from fastfnn import _parts
measured = []
real = (_parts.measure, _parts.measure_prediction)
_parts.measure = lambda name: measured.append(name) or real[0](name)
_parts.measure_prediction = lambda name: measured.append(name) or real[1](name)
from fastfnn.cli import main
start = time.perf_counter()
code = main(["fit", "--quiet"])
print(json.dumps({"code": code, "compiled": compiled, "measured": measured,
                  "seconds": time.perf_counter() - start}))
"""


def run(*command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)


def main():
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
            str(folder / "wheel"), str(ROOT))
        (wheel,) = (folder / "wheel").glob("fastfnn-*.whl")
        run(sys.executable, "-m", "venv", str(folder / "venv"))
        python = str(folder / "venv" / "bin" / "python")
        run(python, "-m", "pip", "install", "--quiet", str(wheel))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTFNN_", "NUMBA_"))}
        env["FASTFNN_CACHE_DIR"] = str(folder / "cache")
        done = run(python, "-c", FIRST_FIT, capture_output=True, text=True, cwd=folder, env=env)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"first fit from the installed wheel: {result['seconds']:.1f} s, compiled "
          f"{result['compiled'] or 'nothing'}, measured {result['measured'] or 'nothing'}")
    return 0 if result["code"] == 0 and not result["compiled"] and not result["measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
