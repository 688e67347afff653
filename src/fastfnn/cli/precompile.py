"""The ``fastfnn precompile`` command: compile the kernels of common fits into Numba's cache."""

from .options import CLIError


def add_parser(sub):
    p = sub.add_parser(
        "precompile", help="compile the kernels of common fits now, so no first fit waits",
        description="Compile fastfnn's kernels for the common fits and predictions (every "
                    "solver, regressor and classifier, one thread and several) into Numba's "
                    "on-disk cache: next to fastfnn's sources, or in NUMBA_CACHE_DIR. "
                    "'pip install .' does this for float64 at build time; run it after an "
                    "editable install, in a container image, or for float32.")
    p.add_argument("--dtype", nargs="+", choices=("float64", "float32"), default=["float64"],
                   help="input dtypes to prepare (default float64; float32 input trains in "
                        "float32, with kernels of its own)")
    p.set_defaults(func=cmd_precompile)


def cmd_precompile(args):
    """``fastfnn precompile``: compile (or load) the kernels, then say how long it took."""
    from fastfnn.precompile import precompile

    try:
        seconds = precompile(tuple(args.dtype))
    except ValueError as exc:  # pragma: no cover - argparse's choices catch bad dtypes first
        raise CLIError(str(exc)) from exc
    print(f"fastfnn precompile: kernels for {', '.join(args.dtype)} ready in {seconds:.1f} s "
          "(a second or two when they were already cached)")
    return 0
