"""Kernels compiled ahead of the first fit: ``fastfnn precompile`` and the build backend.

Oracle: Numba's own compile events, counted in fresh processes that share one empty cache
folder. The process that precompiles must compile (the cache was empty); a later process that
runs the newcomer's first command (``fastfnn fit`` on the bundled data) and default estimator
fits must compile nothing: every kernel it needs comes from the cache. A process whose target CPU
is another (``NUMBA_CPU_NAME``) must not take that cache: it compiles, and predicts alike.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastfnn import _threads

ROOT = Path(__file__).resolve().parents[1]

COUNT_COMPILES = textwrap.dedent("""
    import sys
    from numba.core import event

    compiled = []

    class Count(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)

        def on_end(self, ev):
            pass

    event.register("numba:compile", Count())
""")


def _run(tmp_path, body, **variables):
    """Run ``body`` after COUNT_COMPILES in a fresh process with its own Numba cache folder
    (and ``variables`` in its environment); returns the names of the functions it compiled."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               FASTFNN_CACHE_DIR=str(tmp_path / "fastfnn"), **variables)
    code = COUNT_COMPILES + textwrap.dedent(body) + "\nprint('COMPILED', ','.join(compiled))\n"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("COMPILED")][-1]
    return [name for name in line.split(" ", 1)[1].split(",") if name]


@pytest.mark.slow
def test_after_precompile_a_first_fit_compiles_nothing(tmp_path):
    compiled = _run(tmp_path, """
        from fastfnn.cli import main
        assert main(["precompile"]) == 0
    """)
    # the first loop and its products (the rest it may leave to the second process that
    # compiles ahead of it, into the same cache: the later process below loads them all)
    assert {"run_batches_", "tile_gemm_"} <= set(compiled)
    cached = {path.name.split("-")[0].split(".")[-1]
              for path in (tmp_path / "numba").rglob("*.nbi")}
    assert {"run_batches_", "loss_grad_", "tile_gemm_"} <= cached
    if _threads.max_threads() > 1 and _threads._can_run_parallel():
        # the full batch (164 MFLOP) is split by the rule, its parts on threads of their own
        assert "loss_grad_parallel_" in cached
        # batches run their parts on two threads where the precompiling process measured that
        # to pay (the wide network's, 82 MFLOP a batch)
        kept = json.loads((tmp_path / "fastfnn" / "kernel-choices.json").read_text())
        (entries,) = kept.values()
        if entries["training split float64"]["split_flops"] <= 6 * 200 * (10 * 256 + 256 * 257):
            assert "run_batches_parallel_" in cached

    compiled = _run(tmp_path, """
        import warnings
        import numpy as np
        from fastfnn import FNNClassifier, FNNEnsembleRegressor, FNNGridSearchCV, FNNRegressor
        from fastfnn.cli import main

        assert main(["fit", "--quiet", "--save", "model.skops"]) == 0
        X = np.random.default_rng(0).standard_normal((300, 5))
        y = X[:, 0] + X[:, 1] ** 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for solver in ("adam", "sgd", "lbfgs"):
                FNNRegressor(solver=solver, max_iter=3).fit(X, y).predict(X[:3])
            FNNClassifier(max_iter=3).fit(X, y > 1).predict_proba(X)
            # a search's candidates and an ensemble's members trained together
            FNNGridSearchCV(FNNRegressor(max_iter=3, random_state=0),
                            {"alpha": [1e-4, 1e-3, 1e-2, 0.1, 1.0]}, cv=3).fit(X, y)
            FNNEnsembleRegressor(FNNRegressor(max_iter=3), n_estimators=3,
                                 random_state=0).fit(X, y).predict(X)
            # read-only arrays, as joblib hands its workers a memory map of a large input
            np.save("X.npy", X)
            np.save("y.npy", y)
            X, y = np.load("X.npy", mmap_mode="r"), np.load("y.npy", mmap_mode="r")
            FNNRegressor(max_iter=3).fit(X, y).predict(X)
    """)
    assert compiled == []

    # Code compiled for this CPU serves only this CPU: as another (Numba's target CPU named
    # otherwise, as on a machine the wheel was not built on) a model fitted here compiles its
    # first prediction, and predicts as here. (A prediction, not a fit: the forward pass's
    # kernels alone, a third of the compile time of the smallest fit's loop.)
    here = _fit_here(tmp_path)
    compiled = _run(tmp_path, GENERIC_PREDICTION, NUMBA_CPU_NAME="generic",
                    FASTFNN_COMPILE_AHEAD="0")
    assert {"forward_layers_", "tile_gemm_"} <= set(compiled)
    np.testing.assert_allclose(np.load(tmp_path / "generic.npy"), np.load(here),
                               rtol=1e-9, atol=1e-12)


GENERIC_PREDICTION = """
    import pickle
    import numpy as np

    X = np.random.default_rng(0).standard_normal((300, 5))
    with open("model.pkl", "rb") as file:
        np.save("generic.npy", pickle.load(file).predict(X))
"""


def _fit_here(tmp_path):
    """A small model fitted in this process (this CPU's code), pickled to ``model.pkl``, and
    its predictions saved; returns the path of the predictions."""
    import pickle
    import warnings

    from fastfnn import FNNRegressor

    X = np.random.default_rng(0).standard_normal((300, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = FNNRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=3, random_state=0)
        est.fit(X, X[:, 0] + X[:, 1] ** 2)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(est))
    np.save(tmp_path / "here.npy", est.predict(X))
    return tmp_path / "here.npy"


def test_precompile_rejects_other_dtypes():
    from fastfnn.precompile import precompile

    with pytest.raises(ValueError, match="float32 or float64"):
        precompile(("float16",))


@pytest.fixture
def backend(monkeypatch):
    """The build backend module, imported from its folder, run from the project root, on a
    setuptools that reads this pyproject.toml (77 or later, as the build asks for; a venv's
    own may be older: pip builds with the version asked for, apart from it)."""
    monkeypatch.syspath_prepend(str(ROOT / "build_support"))
    monkeypatch.chdir(ROOT)
    pytest.importorskip("setuptools", minversion="77")
    import fastfnn_build

    return fastfnn_build


def _names(requirements):
    """The project names of requirement strings ("numba>=0.59" -> "numba")."""
    return {re.match(r"[A-Za-z0-9_.-]+", req.strip()).group(0).lower() for req in requirements}


def test_the_wheel_build_gets_what_compiling_the_kernels_imports(backend, monkeypatch):
    monkeypatch.delenv("FASTFNN_PRECOMPILE", raising=False)
    assert {"numba", "numpy", "scikit-learn", "scipy"} <= _names(
        backend.get_requires_for_build_wheel())
    monkeypatch.setenv("FASTFNN_PRECOMPILE", "0")
    assert not {"numba", "scikit-learn"} & _names(backend.get_requires_for_build_wheel())


@pytest.mark.parametrize("value, dtypes", [(None, ("float64",)), ("0", ()), ("", ()),
                                           ("float64,float32", ("float64", "float32"))])
def test_the_build_prepares_the_dtypes_asked_for(backend, monkeypatch, value, dtypes):
    if value is None:
        monkeypatch.delenv("FASTFNN_PRECOMPILE", raising=False)
    else:
        monkeypatch.setenv("FASTFNN_PRECOMPILE", value)
    assert backend._dtypes() == dtypes
