"""The kernels compiled into a wheel are the ones its first fit uses (run by ``.ci/run``, not by
pytest: it builds the wheel, about 2 minutes on 2 cores).

    python tests/wheel_first_fit.py

Builds the wheel of this checkout (which precompiles the float64 kernels and times the
machine's thread choices), installs it, not editable, into a fresh virtual environment, and in
that environment runs the newcomer's first fit (``fastfnn fit`` on the bundled data) with an
empty fastfnn cache folder, counting Numba's compile events (the oracle: Numba's own
``numba:compile`` event, which fires on compiles, never on cache loads), then looks up the
float64 thread choices a larger fit would. Exits 1 unless the fit compiled nothing and nothing
was measured or probed: the shipped measurements were read instead.

A build on a busy machine ships *deferred* measurements (the safe defaults, with a retry time
long past by the time anyone installs the wheel). Such a deferral must not make every user's
first fit measure, at the worst moment: the same first fit runs again, in a fresh cache folder,
with the installed package's shipped entries rewritten as a busy build leaves them (deferred,
due): it must measure and probe nothing either, and keep them with a retry time from now.
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
import numpy as np
from fastfnn import _guard, _parts
measured = []
real = (_parts.measure, _parts.measure_prediction, _guard.probe)
_parts.measure = lambda name, e=None: measured.append(name) or real[0](name, e)
_parts.measure_prediction = lambda name, e=None: measured.append(name) or real[1](name, e)
_guard.probe = lambda threads: measured.append("probe") or real[2](threads)
from fastfnn.cli import main
start = time.perf_counter()
code = main(["fit", "--quiet"])
seconds = time.perf_counter() - start
_parts.parallel_flops(np.float64)  # what a fit of split batches and a large prediction read
_parts.prediction_flops(np.float64)
print(json.dumps({"code": code, "compiled": compiled, "measured": measured, "seconds": seconds,
                  "choices": [c.how for c in _parts._chosen.values()]}))
"""
# The installed package's shipped measurements as a build on a busy machine leaves them.
AS_BUSY_BUILD = """
import json, fastfnn
from fastfnn import _guard, _tuning
path = _tuning.SHIPPED
table = json.load(open(path))
for entries in table.values():
    for name, entry in entries.items():
        entry["evidence"] = dict(_guard.evidence([0.5], None, fastfnn.__version__),
                                 deferrals=1, retry_after=1.0)
        entry["timings"] = []
        entry["split_flops" if "split_flops" in entry else "chunk_flops"] = 8e6
json.dump(table, open(path, "w"))
print(path)
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
        results = []
        for case in ("as built", "as a busy build leaves it"):
            if case != "as built":
                run(python, "-c", AS_BUSY_BUILD, capture_output=True, cwd=folder, env=env)
            env["FASTFNN_CACHE_DIR"] = str(folder / f"cache {len(results)}")
            done = run(python, "-c", FIRST_FIT, capture_output=True, text=True, cwd=folder,
                       env=env)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"first fit from the installed wheel, shipped measurements {case}: "
                  f"{result['seconds']:.1f} s, compiled {result['compiled'] or 'nothing'}, "
                  f"measured {result['measured'] or 'nothing'}; the choices: "
                  + "; ".join(result["choices"]))
            results.append(result)
    return 0 if all(r["code"] == 0 and not r["compiled"] and not r["measured"]
                    for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
