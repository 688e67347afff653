"""fastfnn's build backend: setuptools' own, plus the compiled kernels in the wheel.

A wheel built here carries Numba's cache of fastfnn's kernels for the machine that builds it
(``fastfnn/__pycache__/*.nbi``, ``*.nbc``), so the first fit after ``pip install .`` loads
machine code instead of compiling it: about 30 s of compiling on 2 cores for every common fit,
paid once at install, plus about 30 s for pip to prepare the build environment. Numba checks
each cache entry against the CPU, its own version and the source file's contents, and compiles
as usual where any differs: a wheel taken to another machine works, only without the head start.
The measurements timed on the way (``fastfnn/kernel-choices.json``: the threads of split
batches and of prediction's chunks, keyed by the machine and its BLAS, hence made with the same
``scipy-openblas32`` as at run time) travel in the wheel too, so the first fit reads them instead
of timing them; on another machine the key does not match and the first fit times its own.

* The compilation runs ``fastfnn.precompile`` from the freshly built package in a child
  process; the build environment gets the runtime dependencies that needs
  (``get_requires_for_build_wheel``). Should it fail, the wheel is built without the cache and
  a warning says why.
* ``FASTFNN_PRECOMPILE=0`` skips it (packagers building wheels for other machines);
  ``FASTFNN_PRECOMPILE=float64,float32`` also prepares float32. Editable installs skip it: the
  first fit compiles into the source tree's cache, or run ``fastfnn precompile``. So does
  Python 3.10, which has no TOML reader to take the dependencies' versions from.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: no TOML reader to take the versions from; no precompiling
    tomllib = None

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 - every PEP 517 hook not redefined here
from setuptools.command.build_py import build_py as _build_py

# Runtime dependencies the kernels' compilation imports (the rest are the CLI's).
COMPILE_NEEDS = ("numpy", "numba", "scikit-learn", "scipy", "threadpoolctl", "scipy-openblas32")
TIMEOUT_S = 1800


def _dtypes():
    """The dtypes to prepare, from ``FASTFNN_PRECOMPILE`` (default float64; "0": none)."""
    value = os.environ.get("FASTFNN_PRECOMPILE", "float64").strip()
    if value in ("", "0", "no", "false") or tomllib is None:
        return ()
    return tuple(d.strip() for d in value.split(",") if d.strip())


def _compile_requirements():
    """The project's own requirement strings for :data:`COMPILE_NEEDS` (one source of the
    versions: pyproject.toml)."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    name = re.compile(r"^\s*([A-Za-z0-9_.-]+)")
    return [req for req in project["dependencies"]
            if name.match(req).group(1).lower() in COMPILE_NEEDS]


def get_requires_for_build_wheel(config_settings=None):
    """setuptools' build requirements, plus what compiling the kernels imports."""
    needs = _compile_requirements() if _dtypes() else []
    return _setuptools.get_requires_for_build_wheel(config_settings) + needs


class BuildPy(_build_py):
    """setuptools' ``build_py``, then the kernels compiled into the built package's cache."""

    def run(self):
        super().run()
        dtypes = _dtypes()
        if dtypes and not self.editable_mode:
            self._precompile(Path(self.build_lib).resolve(), dtypes)

    def _precompile(self, build_lib, dtypes):
        # a build folder reused: the previous build's kernels and the choices it shipped (read
        # by this build's precompile, they would be shipped again without being measured)
        for stale in [*(build_lib / "fastfnn").rglob("*.nb[ic]"),
                      *(build_lib / "fastfnn").glob("kernel-choices.json")]:
            stale.unlink()
        with tempfile.TemporaryDirectory() as scratch:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", FASTFNN_CACHE_DIR=scratch,
                       PYTHONPATH=os.pathsep.join(
                           [str(build_lib)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
            env.pop("NUMBA_CACHE_DIR", None)  # the cache goes next to the built sources
            code = ("from fastfnn.precompile import precompile; "
                    f"print(round(precompile({dtypes!r})))")
            print(f"fastfnn: compiling the kernels for {', '.join(dtypes)} into the wheel "
                  "(about 30 s per dtype on 2 cores; FASTFNN_PRECOMPILE=0 skips it)",
                  file=sys.stderr)
            try:
                done = subprocess.run([sys.executable, "-c", code], env=env, cwd=scratch,
                                      capture_output=True, text=True, timeout=TIMEOUT_S)
            except (OSError, subprocess.SubprocessError) as exc:
                print(f"fastfnn: WARNING: kernels not precompiled ({exc}); the first fit "
                      "will compile them", file=sys.stderr)
                return
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"fastfnn: WARNING: kernels not precompiled ({last}); the first fit "
                      "will compile them", file=sys.stderr)
                return
            print(f"fastfnn: kernels compiled in {done.stdout.strip()} s", file=sys.stderr)
            for lock in (build_lib / "fastfnn").rglob("*.nbi.*"):  # the compiles' lock files
                lock.unlink()
            # the kernel choices timed on the way (keyed by this machine), read by the first fit
            choices = Path(scratch) / "kernel-choices.json"
            if choices.exists():
                shutil.copyfile(choices, build_lib / "fastfnn" / choices.name)
