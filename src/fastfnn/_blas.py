"""fastfnn's BLAS: the OpenBLAS of the ``scipy-openblas32`` package, a library of its own, held
at one thread.

The compiled kernels call ``fastfnn_dgemm`` / ``fastfnn_sgemm`` (CBLAS signatures, registered
here by name so that cached kernels stay valid across processes). They are bound to the OpenBLAS
that the declared dependency ``scipy-openblas32`` installs (wheels for Linux, macOS and Windows):
a library file of its own, apart from the copies SciPy and NumPy bundle, hence globals and a
thread count of its own. fastfnn sets it to one thread and holds it there
(:meth:`PrivateBLAS.prepare`, at every fit and prediction: threadpoolctl lists it like any BLAS,
and a ``threadpool_limits`` block may have raised it; a block that raises it in another thread
while a fit runs may make that fit's larger products use more threads until the next fit or
prediction); parallel work is split by fastfnn itself into parts of fixed
size (see ``_threads``). So

* a fit or a prediction never changes a thread count that other code relies on (SciPy's,
  NumPy's), and concurrent fits and predictions in several threads do not interfere;
* every product is computed by the same single-threaded kernel, whatever the host's thread
  count: the bits depend on the data, the parameters and the seed only.

The library is loaded from the installed package, never from a folder a user can write to, when
``_kernels`` is imported (a ``dlopen`` of an installed file: tens of microseconds; OpenBLAS
starts its idle worker threads then, as SciPy's does). Where it cannot be loaded (not installed,
a platform without a wheel, a file without the CBLAS symbols), where it is the very file another
package already uses (its thread count would not be fastfnn's to set), or where
``FASTFNN_BLAS=shared`` asks for it, the symbols are bound to compiled fallbacks that call
``np.dot`` (NumPy's BLAS as the host configured it: OpenBLAS, MKL, Accelerate); ``BLAS.private``
is then False: the results agree with the private library's within floating-point tolerance, and
are the same bits on any thread count only where that BLAS runs one thread.

``BLAS`` describes what was bound: ``private``, ``path`` (the library loaded), ``core`` (the
kernels OpenBLAS picked for this CPU, e.g. 'Haswell', 'SkylakeX', 'Zen'), ``host_threads()``
(the least thread count of the host's BLAS libraries, a limit the host set, which
``_threads.max_threads`` respects) and ``private_threads()`` (the private library's own: 1;
None without one).
"""

import ctypes
import glob
import importlib.util
import os

import numpy as np
from numba import carray, cfunc, types

from . import _env

# CBLAS constants.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
PACKAGE = "scipy_openblas32"  # the declared dependency that holds the library
PREFIXES = ("scipy_", "")  # its symbols' prefix (scipy_cblas_dgemm), else plain names

_GEMM_ARGS = (types.intc, types.intc, types.intc, types.intc, types.intc, types.intc)


def _gemm_signature(real, pointer=types.uintp):
    """``void cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)``
    with pointers passed as integers (``arr.ctypes.data`` in compiled code)."""
    return types.void(*_GEMM_ARGS, real, pointer, types.intc, pointer, types.intc, real,
                      pointer, types.intc)


DGEMM = _gemm_signature(types.float64)
SGEMM = _gemm_signature(types.float32)
# The fallbacks' own view of the same ABI: typed pointers, for ``carray``.
_DGEMM_POINTERS = _gemm_signature(types.float64, types.CPointer(types.float64))
_SGEMM_POINTERS = _gemm_signature(types.float32, types.CPointer(types.float32))


def _fallback():
    """A compiled row-major CBLAS gemm on ``np.dot``, for the calls the kernels make: alpha =
    1, beta = 0, every operand contiguous (leading dimension = its width)."""

    def gemm(order, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc):  # pragma: no cover
        C = carray(c, (M, N))
        if ta == TRANS and tb == TRANS:
            np.dot(carray(a, (K, M)).T, carray(b, (N, K)).T, C)
        elif ta == TRANS:
            np.dot(carray(a, (K, M)).T, carray(b, (K, N)), C)
        elif tb == TRANS:
            np.dot(carray(a, (M, K)), carray(b, (N, K)).T, C)
        else:
            np.dot(carray(a, (M, K)), carray(b, (K, N)), C)

    return gemm


def library_path():
    """The OpenBLAS file of the installed ``scipy-openblas32`` package, or None. Found from the
    package's location without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for pattern in ("libscipy_openblas*.so*", "libscipy_openblas*.dylib",
                        "libscipy_openblas*.dll", "scipy_openblas*.dll"):
            found = sorted(glob.glob(os.path.join(folder, "lib", pattern)))
            if found:
                return found[0]
    return None


def _symbol(dynlib, name, restype=ctypes.c_int, argtypes=()):
    """The function ``name`` (with the package's prefix, else plain) of ``dynlib``, or None."""
    for prefix in PREFIXES:
        f = getattr(dynlib, prefix + name, None)
        if f is not None:
            f.restype, f.argtypes = restype, list(argtypes)
            return f
    return None


def _host_blas():
    """threadpoolctl's controllers of the BLAS libraries loaded now (SciPy's, NumPy's, ...),
    through its public API; [] where threadpoolctl cannot tell."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's library first)
        from threadpoolctl import ThreadpoolController

        return list(ThreadpoolController().select(user_api="blas").lib_controllers)
    except Exception:  # noqa: BLE001 - no BLAS threadpoolctl knows: no host limit to read
        return []


class PrivateBLAS:
    """Loads ``scipy-openblas32``'s library, sets it to one thread and binds the kernels'
    ``fastfnn_dgemm`` / ``fastfnn_sgemm`` to it, else to the ``np.dot`` fallbacks (module
    docstring)."""

    def __init__(self, path=None):
        self.private, self.path, self.core, self.why = False, None, None, ""
        self.dgemm = self.sgemm = None
        self._set_threads = self._get_threads = None
        self.error = None  # a bad FASTFNN_BLAS: raised by check() at the first fit or predict
        self._host = _host_blas()
        try:
            mode = _env.choice("FASTFNN_BLAS", ("private", "shared"), "private")
        except ValueError as exc:
            self.error, mode = exc, "private"
        if mode == "shared":
            self.why = "FASTFNN_BLAS=shared"
            return
        self.path = library_path() if path is None else path
        if self.path is None:
            self.why = f"the {PACKAGE} package is not installed"
            return
        self._load()

    def _load(self):
        """Load the library, set it to one thread, take its gemm addresses; leaves ``private``
        False (and says ``why``) where any step is not possible."""
        real = os.path.realpath(self.path)
        if any(os.path.realpath(lib.filepath or "") == real for lib in self._host):
            self.why = f"{self.path} is already another package's BLAS"
            return
        try:
            dynlib = ctypes.CDLL(self.path, mode=getattr(ctypes, "RTLD_LOCAL", 0))
        except OSError as exc:
            self.why = f"{self.path} cannot be loaded ({exc})"
            return
        dgemm, sgemm = (_symbol(dynlib, f"cblas_{p}gemm", None) for p in "ds")
        set_threads = _symbol(dynlib, "openblas_set_num_threads", None, [ctypes.c_int])
        get_threads = _symbol(dynlib, "openblas_get_num_threads")
        if None in (dgemm, sgemm, set_threads, get_threads):
            self.why = f"{self.path} has no OpenBLAS CBLAS symbols"
            return
        set_threads(1)
        if get_threads() != 1:  # pragma: no cover - a build that cannot run one thread
            self.why = f"{self.path} does not run on one thread"
            return
        corename = _symbol(dynlib, "openblas_get_corename", ctypes.c_char_p)
        self.core = corename().decode() if corename is not None else None
        self._library = dynlib  # keeps it loaded
        self._set_threads, self._get_threads = set_threads, get_threads
        self.dgemm, self.sgemm = (ctypes.cast(f, ctypes.c_void_p).value for f in (dgemm, sgemm))
        self.private = True

    def prepare(self):
        """Before a fit or a prediction: raise the ``ValueError`` of a bad ``FASTFNN_BLAS``
        (kept from import, so that ``import fastfnn`` and ``fastfnn --version`` still work),
        and set the private library back to one thread where something (a
        ``threadpool_limits`` block) changed it: the cores' budget assumes one."""
        if self.error is not None:
            raise self.error
        if self.private and self._get_threads() != 1:
            self._set_threads(1)

    def private_threads(self):
        """The private library's thread count, or None without one."""
        return self._get_threads() if self.private else None

    def host_threads(self):
        """The least thread count of the host's BLAS libraries (a limit the host set, e.g.
        ``threadpool_limits(1)``), or None where none is known."""
        counts = []
        for lib in self._host:
            try:
                counts.append(int(lib.get_num_threads()))
            except Exception:  # noqa: BLE001 - a library that cannot say: no limit from it
                pass
        counts = [c for c in counts if c >= 1]
        return min(counts) if counts else None

    def register(self):
        """Bind ``fastfnn_dgemm`` / ``fastfnn_sgemm`` for compiled code: the private library's
        gemm, else the np.dot fallbacks."""
        import llvmlite.binding as ll

        dgemm, sgemm = self.dgemm, self.sgemm
        if not self.private:
            dgemm = cfunc(_DGEMM_POINTERS)(_fallback()).address
            sgemm = cfunc(_SGEMM_POINTERS)(_fallback()).address
        ll.add_symbol("fastfnn_dgemm", dgemm)
        ll.add_symbol("fastfnn_sgemm", sgemm)

    def describe(self):
        """One line: what computes the products, and why."""
        if self.private:
            return (f"products: {self.path} ({PACKAGE}), held at one thread; OpenBLAS kernels "
                    f"for this CPU: {self.core or 'unknown'}")
        return (f"products: np.dot on the host's BLAS as configured ({self.why}): the same "
                "results within floating-point tolerance, the same bits only on one BLAS "
                "thread")


BLAS = PrivateBLAS()
BLAS.register()
dgemm = types.ExternalFunction("fastfnn_dgemm", DGEMM)
sgemm = types.ExternalFunction("fastfnn_sgemm", SGEMM)

