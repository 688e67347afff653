"""fastfnn's kernels compiled one library at a time: each optimised once, not again in every
caller.

Numba compiles each jitted function into a library of its own and, when a function calls
another, links a copy of the callee's optimised code into the caller's library, then optimises
the whole linked module again, so that callees can be inlined. fastfnn's training loop is a
call tree five levels deep (the epoch, a batch's parts, the backward pass, a product, the tile
kernel): every level optimised all the code below it again, and the first fit with an empty
cache spent most of its time (46 s of 48 s on a 2-core Xeon) re-optimising code that was
already optimised.

:func:`install` makes the libraries of fastfnn's own functions (those whose symbols Numba
names after the ``fastfnn`` package) optimise their own code only, before the callees are
linked in: each function is then optimised once, in its own library, and a caller calls its
callees' copies as they are (the machine code of each function is the same as in its own
library). What this gives up is the inlining of one non-inlined jitted function into another;
fastfnn inlines its small helpers at Numba's level (``inline="always"``), and the functions it
leaves out of line (products, passes, steps) run long enough per call that the call costs
nothing measurable. Other packages' functions in the same process compile as Numba does.
"""

import functools

_OWN_SYMBOLS = "_ZN7fastfnn"  # how Numba's mangled names of fastfnn.* functions start


def _is_fastfnns(library):
    """Whether ``library`` defines a function of the fastfnn package."""
    return any(fn.name.startswith(_OWN_SYMBOLS) and not fn.is_declaration
               for fn in library._final_module.functions)


def _nothing():
    """The module passes, already run."""


def _separately(finalize):
    """``finalize`` (Numba's ``CPUCodeLibrary.finalize``) for a fastfnn library: its own code
    and the other packages' functions it calls (Numba's ``min``, ``np.empty``...: small, and
    worth inlining in loops) linked and optimised first, fastfnn's callees linked after, as
    they are."""

    @functools.wraps(finalize)
    def finalize_separately(library):
        if getattr(library, "_finalized", True) or not _is_fastfnns(library):
            return finalize(library)
        ours, others = [], []
        for callee in dict.fromkeys(library._linking_libraries):
            (ours if _is_fastfnns(callee) else others).append(callee)
        for callee in others:
            library._reload_init.update(callee._reload_init)
            library._final_module.link_in(callee._get_module_for_linking(), preserve=True)
        library._optimize_final_module()  # at Numba's full optimisation
        library._linking_libraries = ours
        library._optimize_final_module = _nothing  # finalize's pass after linking: done
        try:
            return finalize(library)
        finally:
            del library._optimize_final_module

    finalize_separately.fastfnn_separate = True
    return finalize_separately


def install():
    """Compile fastfnn's libraries one at a time (once per process)."""
    try:
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:  # pragma: no cover - another Numba layout: compiled as Numba does
        return
    if not hasattr(CPUCodeLibrary, "_optimize_final_module"):
        return  # pragma: no cover - another Numba: compiled as Numba does
    if not getattr(CPUCodeLibrary.finalize, "fastfnn_separate", False):
        CPUCodeLibrary.finalize = _separately(CPUCodeLibrary.finalize)
