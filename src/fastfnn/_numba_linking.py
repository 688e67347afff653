"""fastfnn's loops compiled one library at a time: each callee optimised once, not again in
every caller.

Numba compiles each jitted function into a library of its own and, when a function calls
another, links a copy of the callee's optimised code into the caller's library, then optimises
the whole linked module again, so that callees can be inlined. fastfnn's training loop is a
call tree five levels deep (the epoch, a batch's parts, the backward pass, a product, the tile
kernel): every level optimised all the code below it again.

:func:`install` registers callers (the loops over batches, parts and rows, and the passes over
a part's layers) whose libraries optimise their own code, with the small functions of other
packages they call (Numba's ``min``, ``np.empty``: worth inlining in loops), before their
fastfnn callees are linked in as they are. Those callees run long enough per call (a product,
a pass, a step) that calling them rather than inlining them costs nothing measurable; the
products themselves keep Numba's way, as inlining the tile kernel into them pays on tiny
networks. The machine code of each callee is the one of its own library. Other packages'
functions in the same process compile as Numba does.

Every fastfnn kernel library also gets Numba's reference-count functions (``NRT_incref``,
``NRT_decref``) in a form its module passes can inline. Numba marks them ``noinline``, so that
its pass that prunes pairs of them finds them as calls; each one it cannot prune stays a call,
which may write memory the loop reads (so values are loaded again after it) and around which
the vector registers are saved, though most arrays of a fastfnn loop carry no count
(``_kernels.borrowed``) and for them the call only tests its pointer against NULL. In a tiny
network's fit the two functions took 7-9% of the samples (``perf``); inlined, each is a test
and a branch in place, and tiny fits ran 1.2-1.7x faster. The pruning still runs on each
function as it is lowered and on the module before its passes inline; the last one, after
them, no longer sees the calls they inlined, so a pair that only inlining a callee brings
together stays, as two atomic operations on a counted array (none on a borrowed one).
Inlining only the test, with Numba's function called where the pointer is not NULL, gained
less on tiny (measured): the call on that path still made the loop load its values again.
"""

import functools

_callers = set()  # mangled-name prefixes of the functions whose callees are linked as they are
_modules = set()  # those of the modules installed: their functions are the "fastfnn" ones here
PARFOR = "__numba_parfor_gufunc"  # in the names of a prange loop's body and of its wrappers


def _mangled(module, name=None):
    """How Numba's mangled name of ``module.name`` starts (a function at module level), or of
    every function of ``module``."""
    parts = module.split(".") + ([] if name is None else [name])
    return "_ZN" + "".join(f"{len(part)}{part}" for part in parts)


def _defines(library, prefixes):
    """Whether ``library`` defines a function whose mangled name starts with a prefix."""
    return any(not fn.is_declaration and fn.name.startswith(prefixes)
               for fn in library._final_module.functions)


def _parallel_part(library):
    """Whether ``library`` holds a piece of a ``prange`` loop that calls fastfnn: the loop's
    body (Numba's "parfor gufunc") or one of the wrappers that run it on the threads, with a
    fastfnn function among the libraries it links, at any depth. Each of these libraries
    optimised the whole call tree below the loop again (a split batch's loop 2.3 s apiece,
    four of them)."""
    if not any(not fn.is_declaration and PARFOR in fn.name
               for fn in library._final_module.functions):
        return False
    seen, todo = set(), list(library._linking_libraries)
    while todo:
        callee = todo.pop()
        if id(callee) in seen:
            continue
        seen.add(id(callee))
        if _defines(callee, tuple(_modules)):
            return True
        todo.extend(getattr(callee, "_linking_libraries", ()))
    return False


def _ours(library):
    """Whether ``library`` is fastfnn's: it defines a function of an installed module (the
    kernels; not the benchmark's reference loop, which compiles as Numba does), or is a piece
    of a ``prange`` loop that calls one (:func:`_parallel_part`)."""
    return _defines(library, tuple(_modules)) or _parallel_part(library)


@functools.cache
def _inlinable_refcounts():
    """An LLVM module (llvmlite.binding) defining ``NRT_incref`` and ``NRT_decref`` as Numba's
    runtime does (its own IR builders), ``linkonce_odr`` and without ``noinline``; None where
    this Numba builds them otherwise (its libraries then link Numba's own)."""
    try:
        import llvmlite.binding as llvm
        from llvmlite import ir
        from numba.core.runtime import nrtdynmod

        module = ir.Module("fastfnn_refcounts")
        increment = nrtdynmod._define_atomic_inc_dec(module, "add", ordering="monotonic")
        decrement = nrtdynmod._define_atomic_inc_dec(module, "sub", ordering="monotonic")
        nrtdynmod._define_nrt_incref(module, increment)
        nrtdynmod._define_nrt_decref(module, decrement)
        for function in module.functions:
            function.attributes.discard("noinline")
            if not function.is_declaration:
                function.linkage = "linkonce_odr"
        return llvm.parse_assembly(str(module))
    except Exception:  # pragma: no cover - another Numba: its refcounts, as Numba links them
        return None


def _link_inlinable_refcounts(library):
    """Link :func:`_inlinable_refcounts` into ``library``'s final module, before the libraries
    it links (Numba's runtime among them, whose ``noinline`` definitions then give way to
    these: a ``linkonce_odr`` function already defined is not linked again)."""
    refcounts = _inlinable_refcounts()
    if refcounts is not None:
        library._final_module.link_in(refcounts.clone())


def _nothing():
    """The module passes, already run."""


def _separately(finalize):
    """``finalize`` (Numba's ``CPUCodeLibrary.finalize``) for fastfnn's libraries: each with
    reference counting it can inline (:func:`_link_inlinable_refcounts`); that of a registered
    caller with its own code and the functions of other packages it calls (Numba's ``min``,
    ``np.empty``...: small, and worth inlining in loops) linked and optimised first, its
    fastfnn callees linked after, as they are."""

    @functools.wraps(finalize)
    def finalize_separately(library):
        if getattr(library, "_finalized", True) or not _ours(library):
            return finalize(library)
        _link_inlinable_refcounts(library)
        if not (_defines(library, tuple(_callers)) or _parallel_part(library)):
            return finalize(library)
        ours, others = [], []
        for callee in dict.fromkeys(library._linking_libraries):
            (ours if _ours(callee) else others).append(callee)
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


def install(module, callers):
    """Link the fastfnn callees of the functions ``callers`` (names in ``module``) into their
    libraries as they are, optimised once, and let every library of ``module`` inline Numba's
    reference counting (from now on, in this process)."""
    _modules.add(_mangled(module))
    _callers.update(_mangled(module, name) for name in callers)
    try:
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:  # pragma: no cover - another Numba layout: compiled as Numba does
        return
    if not hasattr(CPUCodeLibrary, "_optimize_final_module"):
        return  # pragma: no cover - another Numba: compiled as Numba does
    if not getattr(CPUCodeLibrary.finalize, "fastfnn_separate", False):
        CPUCodeLibrary.finalize = _separately(CPUCodeLibrary.finalize)
