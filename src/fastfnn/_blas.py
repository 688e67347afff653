"""fastfnn's own BLAS: a private, single-threaded instance of the OpenBLAS that SciPy ships.

The compiled kernels call ``fastfnn_dgemm`` / ``fastfnn_sgemm`` (CBLAS signatures, registered
here by name so that cached kernels stay valid across processes). They are bound to a *private
copy* of SciPy's OpenBLAS: the library file is copied (once, into fastfnn's cache folder; else
into an anonymous in-memory file) and loaded from there, so the dynamic loader gives it globals
of its own. fastfnn sets that copy to one thread once, at import, and never touches it again;
parallel work is split by fastfnn itself into parts of fixed size (see ``_threads``). So

* a fit or a prediction never changes a thread count that other code can see (SciPy's, NumPy's,
  threadpoolctl's view are left as they are), and concurrent fits and predictions in several
  threads do not interfere;
* every product is computed by the same single-threaded kernel, whatever the host's thread
  count: the bits depend on the data, the parameters and the seed only.

Where no private copy can be made (no OpenBLAS with CBLAS symbols behind SciPy, no anonymous
files: not Linux), or where ``FASTFNN_BLAS=shared`` asks for it, the symbols are bound to
compiled fallbacks that call ``np.dot`` through SciPy's BLAS as the host configured it;
``BLAS.private`` is then False, and the guarantees above hold only when that BLAS runs one
thread.

``BLAS`` describes what was bound: ``private``, ``path`` (the library copied), ``core`` (the
kernels OpenBLAS picked for this CPU, e.g. 'Haswell', 'SkylakeX', 'Zen') and ``get_threads()``
(the *shared* library's thread count: a limit the host set, which ``_threads.max_threads``
respects); ``private_threads()`` is the private copy's own (always 1), None without one.
"""

import ctypes
import hashlib
import os
import shutil
import tempfile

import numpy as np
from numba import carray, cfunc, types

# CBLAS constants.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

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


def _as_pointer_function(dynlib, name):
    """The address of ``name`` in ``dynlib`` (a ctypes library), or None."""
    try:
        return ctypes.cast(getattr(dynlib, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def _cache_dir():
    """Where the copy of the library is kept: ``FASTFNN_CACHE_DIR``, else fastfnn's folder in
    the user's cache (``XDG_CACHE_HOME`` or ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("FASTFNN_CACHE_DIR") or os.path.join(base, "fastfnn")


def _identity(path, stat, sample=1 << 20):
    """A name part for the library file at ``path``: its size and a digest of its first and
    last ``sample`` bytes. The same library installed in several environments (the same wheel,
    other modification times) gets the same name, so one copy serves them all."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(sample))
        f.seek(max(0, stat.st_size - sample))
        digest.update(f.read(sample))
    return f"{stat.st_size}-{digest.hexdigest()[:16]}"


def _remove_old_copies(folder):
    """Remove the copies an earlier version kept in ``folder`` (``openblas-<size>-<mtime>.so``:
    one per environment, 25 MB each). A process that has one loaded keeps its mapping; best
    effort."""
    for name in os.listdir(folder):
        if name.startswith("openblas-") and name.endswith(".so"):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _private_copy(path):
    """The library at ``path`` loaded from a file of its own (a different file, so the dynamic
    loader gives it globals of its own), or None.

    The copy is kept on disk in :func:`_cache_dir`, named after the original's contents
    (:func:`_identity`): made once (written under a temporary name, then renamed), then shared
    by every process, and every environment with the same library, through the page cache.
    An earlier version's copies (:func:`_remove_old_copies`) are removed when a copy is made.
    Where that folder cannot be written, the copy is an anonymous in-memory file of this
    process (``memfd_create``, Linux)."""
    try:
        stat = os.stat(path)
        folder = _cache_dir()
        # Not named like a BLAS (libopenblas*, openblas*, ...): threadpoolctl would list the copy
        # and let any threadpool_limits(n, "blas") set its threads (n BLAS threads under each
        # of fastfnn's part threads: oversubscribed cores, a fit several times slower).
        copy = os.path.join(folder, f"fastfnn-openblas-{_identity(path, stat)}.so")
        if not (os.path.exists(copy) and os.path.getsize(copy) == stat.st_size):
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, delete=False) as dst, \
                    open(path, "rb") as src:
                shutil.copyfileobj(src, dst)
            os.replace(dst.name, copy)
            _remove_old_copies(folder)
        return ctypes.CDLL(copy, mode=os.RTLD_LOCAL)
    except OSError:
        pass
    try:
        fd = os.memfd_create("fastfnn-openblas")
    except (AttributeError, OSError):  # not Linux
        return None
    try:
        with open(path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst)
        return ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_LOCAL)
    except OSError:
        return None
    finally:
        os.close(fd)  # the mapping keeps the file alive


class PrivateBLAS:
    """Finds SciPy's OpenBLAS, loads a private copy with one thread and binds the kernels'
    ``fastfnn_dgemm`` / ``fastfnn_sgemm`` to it (module docstring)."""

    def __init__(self):
        self.private, self.path, self.get_threads, self.core = False, None, None, None
        self.private_threads = None
        self.dgemm = self.sgemm = None
        shared = self._shared_openblas()
        if shared is not None:
            self.path = shared.filepath
            self.get_threads = self._function(shared.dynlib, shared, "openblas_get_num_threads")
            mode = os.environ.get("FASTFNN_BLAS", "private")
            if mode not in ("private", "shared"):
                raise ValueError(f"FASTFNN_BLAS must be 'private' or 'shared', got {mode!r}.")
            if mode == "private":
                self._load_private(shared)

    @staticmethod
    def _shared_openblas():
        """threadpoolctl's controller of the OpenBLAS behind scipy's cython_blas, or None."""
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (loads the library first)
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scipy is a dependency
            return None
        for lib in ThreadpoolController().lib_controllers:
            if lib.user_api == "blas" and lib.internal_api == "openblas" and \
                    "scipy_openblas64" not in lib.filepath and "numpy" not in lib.filepath:
                return lib
        return None

    @staticmethod
    def _function(dynlib, lib, name, takes_int=False):
        """``int name()`` (or ``int name(int)``) from the library, with its symbol prefix."""
        prefix = getattr(lib, "_symbol_prefix", "")
        suffix = getattr(lib, "_symbol_suffix", "")
        for symbol in (f"{prefix}{name}{suffix}", name):
            f = getattr(dynlib, symbol, None)
            if f is not None:
                f.restype, f.argtypes = ctypes.c_int, [ctypes.c_int] if takes_int else []
                return f
        return None

    def _load_private(self, shared):
        """Load a copy of the library (:func:`_private_copy`), set it to one thread, take its
        gemm addresses. Leaves ``private`` False where any step is not possible."""
        private = _private_copy(shared.filepath)
        if private is None:
            return
        prefix = getattr(shared, "_symbol_prefix", "")
        suffix = getattr(shared, "_symbol_suffix", "")
        dgemm = _as_pointer_function(private, f"{prefix}cblas_dgemm{suffix}")
        sgemm = _as_pointer_function(private, f"{prefix}cblas_sgemm{suffix}")
        set_threads = self._function(private, shared, "openblas_set_num_threads", takes_int=True)
        get_threads = self._function(private, shared, "openblas_get_num_threads")
        if None in (dgemm, sgemm, set_threads, get_threads):
            return
        set_threads(1)
        if get_threads() != 1:  # pragma: no cover - the copy shares the original's globals
            return
        corename = getattr(private, f"{prefix}openblas_get_corename{suffix}", None)
        if corename is not None:
            corename.restype, corename.argtypes = ctypes.c_char_p, []
            self.core = corename().decode()
        self._library = private  # keeps the copy loaded
        self.dgemm, self.sgemm, self.private = dgemm, sgemm, True
        self.private_threads = get_threads

    def register(self):
        """Bind ``fastfnn_dgemm`` / ``fastfnn_sgemm`` for compiled code: the private copy's
        gemm, else the np.dot fallbacks."""
        import llvmlite.binding as ll

        dgemm, sgemm = self.dgemm, self.sgemm
        if not self.private:
            dgemm = cfunc(_DGEMM_POINTERS)(_fallback()).address
            sgemm = cfunc(_SGEMM_POINTERS)(_fallback()).address
        ll.add_symbol("fastfnn_dgemm", dgemm)
        ll.add_symbol("fastfnn_sgemm", sgemm)


BLAS = PrivateBLAS()
BLAS.register()
dgemm = types.ExternalFunction("fastfnn_dgemm", DGEMM)
sgemm = types.ExternalFunction("fastfnn_sgemm", SGEMM)
