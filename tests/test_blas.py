"""fastfnn's BLAS: scipy-openblas32's own library held at one thread, loaded from the installed
package only; the np.dot fallback where it cannot be had (no library, a library without CBLAS
symbols, no ``RTLD_*`` flags, a library another package already uses, ``FASTFNN_BLAS=shared``),
trained against the private library's results; ``FASTFNN_BLAS`` read like every variable.

Hosts are simulated in fresh processes (``sys.executable -c``), each fitting both dtypes once:
the oracle is this process's fit on the private library.
"""

import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from fastfnn import FNNRegressor, _blas

PARAMS = dict(hidden_layer_sizes=(24, 16), max_iter=3, random_state=0)
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
needs_private = pytest.mark.skipif(not _blas.BLAS.private,
                                   reason=f"no private BLAS here ({_blas.BLAS.why})")

# A child process: fit each dtype, print the parameters and what was bound, as JSON.
FIT = """
import json, warnings, numpy as np
warnings.simplefilter('ignore')
from fastfnn import FNNRegressor, _blas
X = np.random.RandomState(0).randn(300, 12); y = np.tanh(X[:, 0])
out = {'private': _blas.BLAS.private, 'why': _blas.BLAS.why}
for dt in ('float64', 'float32'):
    est = FNNRegressor(**%r).fit(X.astype(dt), y.astype(dt))
    out[dt] = [p.tolist() for p in est.coefs_ + est.intercepts_]
print(json.dumps(out))
""" % (PARAMS,)


def fitted(dtype):
    X = np.random.RandomState(0).randn(300, 12)
    y = np.tanh(X[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(**PARAMS).fit(X.astype(dtype), y.astype(dtype))
    return est.coefs_ + est.intercepts_


@pytest.fixture(scope="module")
def reference():
    return {dt: fitted(dt) for dt in TOLERANCE}


def child_env(**variables):
    keep = {k: v for k, v in os.environ.items() if not k.startswith("FASTFNN_")}
    return {**keep, **variables}


def run_child(code, tmp_path, **variables):
    env = child_env(FASTFNN_CACHE_DIR=str(tmp_path / "cache"), **variables)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def assert_trains_like(result, reference):
    for dt, tol in TOLERANCE.items():
        for got, want in zip(result[dt], reference[dt]):
            np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol)


@needs_private
def test_the_private_blas_is_the_installed_package_file_of_its_own():
    """scipy-openblas32's library, from its installed package: not SciPy's or NumPy's file,
    set to one thread, listed by threadpoolctl (visible, not hidden)."""
    import importlib.util

    package = importlib.util.find_spec(_blas.PACKAGE).submodule_search_locations[0]
    path = os.path.realpath(_blas.BLAS.path)
    assert path.startswith(os.path.realpath(package) + os.sep)
    others = [os.path.realpath(lib.filepath) for lib in _blas.BLAS._host]
    assert others and path not in others
    assert _blas.BLAS.private_threads() == 1
    assert path in [os.path.realpath(lib["filepath"]) for lib in threadpool_info()]


@needs_private
def test_a_threadpool_limits_block_changes_neither_the_bits_nor_the_threads(reference):
    """threadpoolctl may raise the private library's threads (it lists it); every fit sets it
    back to one thread first, so the products and their bits are those of one thread."""
    with threadpool_limits(limits=4, user_api="blas"):
        raised = _blas.BLAS.private_threads()
        params = fitted("float64")
        assert _blas.BLAS.private_threads() == 1
    for got, want in zip(params, reference["float64"]):
        assert np.array_equal(got, want)
    assert raised is not None


def test_a_library_already_used_by_another_package_is_not_taken():
    """Where scipy-openblas32's file is the very library SciPy loaded (a build linked to it),
    setting its threads would change SciPy's: fastfnn takes the fallback instead."""
    scipy_lib = next((lib for lib in _blas.BLAS._host if "scipy" in lib.filepath), None)
    if scipy_lib is None:
        pytest.skip("threadpoolctl lists no BLAS of SciPy's here")
    before = scipy_lib.get_num_threads()
    blas = _blas.PrivateBLAS(path=scipy_lib.filepath)
    assert not blas.private and "already another package's BLAS" in blas.why
    assert scipy_lib.get_num_threads() == before


def _old_copy_name():
    """The name an earlier fastfnn gave its copy of SciPy's OpenBLAS in the cache folder (size
    and a digest of the first and last MiB): the name a planted file took to be loaded."""
    scipy_lib = next(lib["filepath"] for lib in threadpool_info()
                     if lib["internal_api"] == "openblas" and "scipy.libs" in lib["filepath"])
    size = os.path.getsize(scipy_lib)
    digest = hashlib.sha256()
    with open(scipy_lib, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return f"fastfnn-openblas-{size}-{digest.hexdigest()[:16]}.so", size


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_nothing_in_the_cache_folder_is_ever_loaded_or_written_at_import(tmp_path, reference):
    """A file planted in a shared cache folder at the name an earlier fastfnn loaded its BLAS
    from (the right size, zeroed: a damaged or hostile library) is never mapped: import, the
    CLI's help and a fit run, and import writes nothing there."""
    try:
        name, size = _old_copy_name()
    except StopIteration:
        pytest.skip("SciPy's OpenBLAS is not where its wheels put it")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    with open(cache / name, "wb") as f:
        f.truncate(size)
    help_run = subprocess.run([sys.executable, "-m", "fastfnn", "--help"], capture_output=True,
                              env=child_env(FASTFNN_CACHE_DIR=str(cache)), timeout=300)
    assert help_run.returncode == 0, help_run.stderr[-2000:]
    assert sorted(os.listdir(cache)) == [name]
    code = FIT.replace("print(json.dumps(out))",
                       "out['maps'] = sorted({l.split(None, 5)[-1].strip() for l in "
                       "open('/proc/self/maps') if 'openblas' in l})\nprint(json.dumps(out))")
    result = run_child(code, tmp_path)
    assert not any(str(cache) in path for path in result["maps"]), result["maps"]
    assert result["private"] == _blas.BLAS.private
    assert_trains_like(result, reference)


BLOCK_PACKAGE = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name == 'scipy_openblas32':
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Blocked())
"""
NO_RTLD = """
import ctypes, os
for module in (os, ctypes):
    for name in [n for n in dir(module) if n.startswith('RTLD_')]:
        delattr(module, name)
"""


@pytest.mark.parametrize("host", ["no library", "no RTLD flags", "a foreign library",
                                  "FASTFNN_BLAS=' Shared '"])
def test_every_host_imports_and_trains_like_the_private_blas(tmp_path, reference, host):
    """Hosts without scipy-openblas32 (a platform without a wheel, a conda build), without
    ``os.RTLD_*`` (Windows), whose file has no CBLAS symbols (a foreign BLAS in its place), or
    that ask for the shared BLAS: ``import fastfnn`` works and trains like the private library
    within floating-point tolerance."""
    code, variables, private = FIT, {}, False
    if host == "no library":
        code = BLOCK_PACKAGE + FIT
    elif host == "no RTLD flags":
        code, private = NO_RTLD + FIT, _blas.BLAS.private
    elif host == "a foreign library":  # a shared object without OpenBLAS's symbols
        lib = tmp_path / "fake" / _blas.PACKAGE / "lib"
        lib.mkdir(parents=True)
        (lib.parent / "__init__.py").write_text("")
        (lib / "libscipy_openblas.so").write_bytes(open(np._core._multiarray_umath.__file__,
                                                        "rb").read())
        variables["PYTHONPATH"] = os.pathsep.join(
            [str(tmp_path / "fake"), os.path.dirname(os.path.dirname(_blas.__file__))])
    else:
        variables["FASTFNN_BLAS"] = " Shared "
    result = run_child(code, tmp_path, **variables)
    assert result["private"] == private, result["why"]
    if host == "a foreign library":
        assert "no OpenBLAS CBLAS symbols" in result["why"]
    assert_trains_like(result, reference)


def test_fastfnn_blas_empty_is_unset_and_a_bad_value_is_one_clear_error(tmp_path):
    """Empty means unset (the private library); a bad value leaves ``import fastfnn`` and
    ``fastfnn --version`` working, and the first fit says which variable is wrong: a
    ValueError from Python, one line from the command."""
    check = ("from fastfnn import FNNRegressor, _blas\n"
             "import numpy as np\n"
             "try:\n"
             "    FNNRegressor(max_iter=1).fit(np.ones((4, 2)), np.ones(4))\n"
             "    print('fitted', _blas.BLAS.private)\n"
             "except ValueError as exc:\n"
             "    print('ValueError', exc)\n")
    for value, expected in (("", f"fitted {_blas.BLAS.private}"),
                            ("mkl", "ValueError FASTFNN_BLAS must be one of")):
        env = child_env(FASTFNN_BLAS=value, FASTFNN_CACHE_DIR=str(tmp_path))
        run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                             env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip().startswith(expected), run.stdout
    env = child_env(FASTFNN_BLAS="mkl", FASTFNN_CACHE_DIR=str(tmp_path))
    version = subprocess.run([sys.executable, "-m", "fastfnn", "--version"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert version.returncode == 0 and version.stdout.startswith("fastfnn ")
    fit = subprocess.run([sys.executable, "-m", "fastfnn", "fit", "sine", "--epochs", "1",
                          "--quiet"], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert fit.returncode == 1
    assert fit.stderr.strip().count("\n") == 0 and "FASTFNN_BLAS" in fit.stderr, fit.stderr


@pytest.mark.parametrize("rows", [1, 300])
@pytest.mark.parametrize("form", ["array", "list"])
def test_a_bad_blas_choice_stops_every_prediction_path(monkeypatch, rows, form):
    """The direct path (a plain array, of any size) and the general one (a list) both report
    it."""
    X = np.random.RandomState(0).randn(rows, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FNNRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X, X[:, 0])
    monkeypatch.setattr(_blas.BLAS, "error", ValueError("FASTFNN_BLAS must be one of ..."))
    with pytest.raises(ValueError, match="FASTFNN_BLAS"):
        est.predict(X.tolist() if form == "list" else X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lbfgs_runs_small_evaluations_on_one_thread_beside_a_threaded_host_blas(monkeypatch):
    """SciPy's L-BFGS-B calls the host's BLAS between evaluations, on that BLAS's threads:
    an evaluation under LBFGS_THREAD_FLOPS then runs its parts on one thread, one above it on
    threads (the oracle: the thread count each evaluation is handed), the host's BLAS thread
    counts untouched (threadpoolctl's report), and the weights the same bits either way."""
    from fastfnn import _parts, _threads
    from fastfnn.network import Network

    if _threads.max_threads() < 2 or not _blas.BLAS._host:
        pytest.skip("needs two threads and a host BLAS threadpoolctl knows")
    handed = []
    evaluate = Network.loss_grad_data

    def recording(self, data, work, alpha, threads):
        handed.append(threads)
        return evaluate(self, data, work, alpha, threads)

    monkeypatch.setattr(Network, "loss_grad_data", recording)
    X = np.random.default_rng(0).standard_normal((9000, 5))  # 3 parts, 4.3 MFLOP
    fitted = {}
    with threadpool_limits(2, user_api="blas"):
        for least, threads in ((np.inf, 1), (0.0, 2)):
            monkeypatch.setattr(_parts, "LBFGS_THREAD_FLOPS", least, raising=False)
            handed.clear()
            fitted[threads] = FNNRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=3,
                                           random_state=0).fit(X, X[:, 0])
            assert set(handed) == {threads}
            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
                    and i["filepath"] != _blas.BLAS.path} == {2}
    for a, b in zip(fitted[1].coefs_, fitted[2].coefs_):
        np.testing.assert_array_equal(a, b)
