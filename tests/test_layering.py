"""The package's modules import downward only, and never in a circle.

Rule. Every module of ``src/fastfnn`` belongs to a *unit*: a top-level module (``network``), a
top-level package with all its modules (``cli/``, ``bench/``), or ``__init__`` (the package
itself, i.e. the public API). Units sit on the layers of ``LAYERS`` below, top to bottom. A module
may import modules of its own unit and of units on *strictly lower* layers only; a unit named in
``ONLY`` may import nothing of the package but the units listed there. ``__init__`` is reached
by name only: ``from fastfnn import X`` / ``from .. import X`` must name something of
``fastfnn.__all__``. Every import counts, at any depth (inside functions too), absolute
(``fastfnn.x``) or relative. A module not placed in ``LAYERS`` fails the test: place it, on
purpose, where it belongs. Import cycles between modules fail as well.

    __main__                  ``python -m fastfnn``: runs the CLI
    cli                       the ``fastfnn`` command (package ``cli/``): the public API, the
                              optional public modules and, for ``fastfnn bench``, ``bench``
    bench, onnx, scaling,     the benchmark tool (package ``bench/``: the public API,
    precompile                ``_threads``, ``_parts``, ``_env``, ``_files``); optional
                              public modules (ONNX export; Dask): the public API only;
                              the kernels compiled ahead of a first fit: the public API and
                              ``_compile_ahead`` (whose second process it also has compile
                              every loop, and waits for)
    __init__                  the public API (``__all__``)
    model_io                  model files
    _modelcheck               a model file's fields checked against the network
    search, ensemble          searches and ensembles whose networks train together
    _fitmany                  many estimators' fits at once
    estimators, gradcheck
    _base                     the estimators' shared fit/predict walk
    trainer, _callbacks,      (_together: many fits' epochs in one compiled call)
    _together, _prefit        (_prefit: fits made ahead, taken by the fit that asks)
    _parts, settings, _lanes, the training split timed on this machine (runs the loop to time
    fitstate                  it); the frozen settings a fit hands down; fits that share their
                              minibatches trained as lanes of one call; a fit's state and
                              what it publishes
    network
    _threads, _validation     (thread budget, prediction chunks; the registries' names)
    optimizers, _tuning       the update-rule registry; the kernel choices timed on this
                              machine, cached on disk
    _cache, _guard            the cache folder: trusted or refused, JSON read and written safely;
                              the measurement guard (a busy machine's timings do not stick)
    losses                    (uses the activation registry)
    activations, _version,    (dropout: the rates, the masks' key and their NumPy twin;
    dropout, preprocessing,   preprocessing: missing text cells as one marker; _compile_ahead:
    _compile_ahead            the kernels a first fit reaches last, compiled by a second process)
    _kernels                  the compiled code: imports only the BLAS it calls
    _blas                     the private BLAS: imports only the environment's reader
    _env, _notice,            the FASTFNN_* variables; the first compile's notice; Numba's
    _numba_cache,             cache saves under a lock; each kernel's library optimised once;
    _numba_linking, _files    files written whole or not at all: nothing of the package

Oracle: the source itself, parsed with ``ast`` (nothing is imported).
"""

import ast
import graphlib
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = "fastfnn"
SRC = Path(__file__).resolve().parents[1] / "src"

# Units, top layer first. Adjust when modules move; every module must appear here.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["bench", "onnx", "scaling", "precompile"],
    ["__init__"],
    ["model_io"],
    ["_modelcheck"],
    ["search", "ensemble"],
    ["_fitmany"],
    ["estimators", "gradcheck"],
    ["_base"],
    ["trainer", "_callbacks", "_together", "_prefit"],
    ["_parts", "settings", "_lanes", "fitstate"],
    ["network"],
    ["_threads", "_validation"],
    ["optimizers", "_tuning"],
    ["_cache", "_guard"],
    ["losses"],
    ["activations", "_version", "dropout", "preprocessing", "_compile_ahead"],
    ["_kernels"],
    ["_blas"],
    ["_env", "_notice", "_numba_cache", "_numba_linking", "_files"],
]
# Units that may import only these units of the package (besides their own modules).
ONLY = {
    "__main__": {"cli"},
    "cli": {"__init__", "bench", "onnx", "scaling", "precompile"},
    "bench": {"__init__", "_threads", "_parts", "_env", "_files"},  # (_env: its CPUs)
    "onnx": {"__init__"},
    "scaling": {"__init__"},
    "precompile": {"__init__", "_compile_ahead"},
    "model_io": {"_version", "_modelcheck", "_files"},
    "_cache": {"_env", "_version"},
    "_guard": set(),
    "_numba_cache": set(),
    "_numba_linking": set(),
    "_files": set(),
}
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


class Edge(NamedTuple):
    """One import: ``source`` imports ``target`` (dotted module names); ``names`` are the
    imported names that are not modules (``from target import a, b``)."""

    source: str
    target: str
    names: tuple
    where: str  # file:line


def scan_package(src=SRC, package=PACKAGE):
    """{dotted module name: path} of every ``.py`` file of the package."""
    root = src / package
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def unit_of(module):
    """The unit of a dotted module name: its first component below the package."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def shown(path):
    """A path as the messages show it: from the repository root where it lies there."""
    return str(path.relative_to(SRC.parent) if path.is_relative_to(SRC.parent) else path)


def import_edges(module, path, modules, package=PACKAGE):
    """Every import of the package made anywhere in the module's source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    edges = []
    for node in ast.walk(tree):
        where = f"{shown(path)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    edges.append(Edge(module, alias.name, (), where))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(here) - 1:
                    continue  # beyond the top of the package: not ours
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]).strip(".")
            else:
                base = node.module or ""
            if base.split(".")[0] != package:
                continue
            names = []
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # a module: ``from . import network``
                    edges.append(Edge(module, f"{base}.{alias.name}", (), where))
                else:
                    names.append(alias.name)
            if names:
                edges.append(Edge(module, base, tuple(names), where))
    return edges


def all_edges(modules):
    return [e for module, path in modules.items() for e in import_edges(module, path, modules)]


def public_names(modules, package=PACKAGE):
    """``__all__`` of the package's ``__init__``, read from its source."""
    tree = ast.parse(modules[package].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{modules[package]} defines no literal __all__ list")


def unplaced_units(modules, edges):
    """Messages for units, of modules or of import targets, that LAYERS does not place."""
    found = {}
    for module, path in modules.items():
        found.setdefault(unit_of(module), shown(path))
    for e in edges:
        found.setdefault(unit_of(e.target), f"{e.target}, imported at {e.where}")
    return [f"{unit!r} ({seen}) has no place in LAYERS of tests/test_layering.py: add it to "
            f"the layer it belongs to (it may import only strictly lower layers)"
            for unit, seen in sorted(found.items()) if unit not in LAYER_OF]


def layer_violations(edges):
    """Messages for imports between placed units that break the layering."""
    out = []
    for e in edges:
        src, dst = unit_of(e.source), unit_of(e.target)
        if src == dst or src not in LAYER_OF or dst not in LAYER_OF:
            continue
        if src in ONLY and dst not in ONLY[src]:
            out.append(f"{e.where}: {e.source} imports {e.target}; {src!r} may import only "
                       f"{sorted(ONLY[src])} of the package")
        elif LAYER_OF[dst] <= LAYER_OF[src]:
            out.append(f"{e.where}: {e.source} imports {e.target}; {dst!r} is on layer "
                       f"{LAYER_OF[dst]}, not below {src!r} (layer {LAYER_OF[src]})")
    return out


def private_imports(edges, public, package=PACKAGE):
    """Messages for names taken from the package ``__init__`` that are not in ``__all__``."""
    return [f"{e.where}: {e.source} imports {name!r} from {package}, which is not in "
            f"{package}.__all__ (import it from its module, or make it public)"
            for e in edges if e.target == package for name in e.names if name not in public]


def import_cycle(modules, edges):
    """One import cycle between modules as a list of names, or None."""
    graph = {module: set() for module in modules}
    for e in edges:
        graph[e.source].add(e.target)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        return err.args[1]
    return None


@pytest.fixture(scope="module")
def package():
    modules = scan_package()
    return modules, all_edges(modules)


def test_every_module_is_placed(package):
    modules, edges = package
    problems = unplaced_units(modules, edges)
    assert not problems, "\n".join(problems)


def test_imports_point_down(package):
    modules, edges = package
    problems = layer_violations(edges)
    assert not problems, "upward or sideways imports:\n" + "\n".join(problems)


def test_package_names_come_from_all(package):
    modules, edges = package
    problems = private_imports(edges, public_names(modules))
    assert not problems, "\n".join(problems)


def test_no_import_cycles(package):
    modules, edges = package
    cycle = import_cycle(modules, edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layer_table_is_consistent():
    """Each unit on one layer; ONLY names placed units, each on a lower layer."""
    units = [u for layer in LAYERS for u in layer]
    assert len(units) == len(set(units))
    for src, allowed in ONLY.items():
        for dst in allowed:
            assert LAYER_OF[dst] > LAYER_OF[src], (src, dst)


# ----------------------------------------------------------------------------------------------
# The checker on a small made-up package, where every answer is known.
# ----------------------------------------------------------------------------------------------

SAMPLE = {
    "__init__.py": "__all__ = ['Est']\nfrom .estimators import Est\n",
    "estimators.py": ("from . import _kernels as K\nfrom .trainer import fit\n"
                      "def f():\n    from .onnx import to_onnx\n"),
    "trainer.py": "import fastfnn._kernels\nimport numpy\nfrom numpy import dot\n",
    "_kernels.py": "",
    "onnx.py": "",
    "newmod.py": "",
    "cli/__init__.py": ("from .fit import run\nfrom .. import Est, _private\n"
                        "from fastfnn import trainer\n"),
    "cli/fit.py": "from . import helper\nfrom ..estimators import Est\n",
}


@pytest.fixture
def sample(tmp_path):
    for name, text in SAMPLE.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    modules = scan_package(tmp_path)
    return modules, [e for m, p in modules.items() for e in import_edges(m, p, modules)]


def test_checker_resolves_imports(sample):
    modules, edges = sample
    assert set(modules) == {"fastfnn", "fastfnn.estimators", "fastfnn.trainer",
                            "fastfnn._kernels", "fastfnn.onnx", "fastfnn.newmod", "fastfnn.cli",
                            "fastfnn.cli.fit"}
    assert {(e.source, e.target, e.names) for e in edges} == {
        ("fastfnn", "fastfnn.estimators", ("Est",)),
        ("fastfnn.estimators", "fastfnn._kernels", ()),
        ("fastfnn.estimators", "fastfnn.trainer", ("fit",)),
        ("fastfnn.estimators", "fastfnn.onnx", ("to_onnx",)),  # inside a function
        ("fastfnn.trainer", "fastfnn._kernels", ()),
        ("fastfnn.cli", "fastfnn.cli.fit", ("run",)),
        ("fastfnn.cli", "fastfnn", ("Est", "_private")),
        ("fastfnn.cli", "fastfnn.trainer", ()),
        ("fastfnn.cli.fit", "fastfnn.cli", ("helper",)),
        ("fastfnn.cli.fit", "fastfnn.estimators", ("Est",)),
    }


def test_checker_flags_what_breaks_the_rule(sample):
    modules, edges = sample
    unplaced = unplaced_units(modules, edges)
    assert len(unplaced) == 1 and unplaced[0].startswith("'newmod'")
    flagged = {tuple(m.split(": ", 1)[1].split(";")[0].split(" imports ")) for m in
               layer_violations(edges)}
    assert flagged == {("fastfnn.estimators", "fastfnn.onnx"), ("fastfnn.cli", "fastfnn.trainer"),
                       ("fastfnn.cli.fit", "fastfnn.estimators")}
    private = private_imports(edges, public_names(modules))
    assert len(private) == 1 and "'_private'" in private[0]
    assert set(import_cycle(modules, edges)) == {"fastfnn.cli", "fastfnn.cli.fit"}
