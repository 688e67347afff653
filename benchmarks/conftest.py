"""The pytest-benchmark suite of fastfnn (see README.md): same harness as ``fastfnn bench``.

Every test records into one session-wide :class:`fastfnn.bench.Bench`; the paired comparison
tables (ratios, physical limits, GEMM floor, predict, start-up, memory, and the targets with
met / MISSED) are printed at the end of the run.
Options mirror ``fastfnn bench`` with a ``--bench-`` prefix; the default here is the full suite.
"""

import argparse
import json

import pytest

from fastfnn import bench as B

OPTIONS = pytest.StashKey()
BENCH = pytest.StashKey()


def pytest_addoption(parser):
    g = parser.getgroup("fastfnn-bench", "fastfnn benchmark suite")
    g.addoption("--bench-quick", action="store_true",
                help="the quick subset of `fastfnn bench` (tiny, small; 2 epochs) instead of "
                     "the full suite")
    g.addoption("--bench-configs", default=None, help=f"comma-separated from {list(B.CONFIGS)}")
    g.addoption("--bench-dtype", default="both", choices=("float64", "float32", "both"))
    g.addoption("--bench-epochs", type=int, default=None, help="epochs per timed fit")
    g.addoption("--bench-rounds", type=int, default=None, help="timed fits per implementation")
    g.addoption("--bench-samples", type=int, default=None, help="cap the samples of each config")
    g.addoption("--bench-threads", type=int, default=None,
                help="threads for every implementation (default: fastfnn's choice)")
    g.addoption("--bench-no-torch", action="store_true", help="leave PyTorch out")
    g.addoption("--bench-sections", default=None, help=f"comma-separated from {B.SECTIONS}")
    g.addoption("--bench-markdown", default=None, help="write the tables to this file")
    g.addoption("--bench-json", default=None, help="write the raw results to this file")


def options(config):
    if OPTIONS not in config.stash:
        get = config.getoption
        args = argparse.Namespace(
            full=not get("bench_quick"), configs=get("bench_configs"), dtype=get("bench_dtype"),
            epochs=get("bench_epochs"), rounds=get("bench_rounds"),
            samples=get("bench_samples"), threads=get("bench_threads"),
            no_torch=get("bench_no_torch"), sections=get("bench_sections"),
        )
        config.stash[OPTIONS] = B.options_from_args(args)
    return config.stash[OPTIONS]


def _params(opts, name):
    """(values, ids) of the parameter ``name`` for the selected options."""
    cases = opts.cases()
    on = set(opts.sections)
    cpus = [1] + ([B.usable_cpus()] if B.usable_cpus() > 1 else [])
    if name == "peak":
        vals = ([(d, t) for d in opts.dtypes for t in cpus] if on & {"train", "floor"} else [])
        return vals, [f"{d}-{t}thr" for d, t in vals]
    if name == "train":
        vals = [(c, i) for c in cases for i in opts.impls(c.solver)] if "train" in on else []
        return vals, [f"{c.key}-{i}" for c, i in vals]
    if name == "floor_case":
        vals = [c for c in cases if c.config.name in B.FLOOR_CONFIGS and c.solver == "sgd"]
        vals = vals if "floor" in on else []
        return vals, [c.key for c in vals]
    if name == "predict_impl":
        vals = list(opts.impls()) if "predict" in on else []
        return vals, vals
    if name == "startup_dtype":
        vals = list(opts.dtypes if opts.full else opts.dtypes[:1]) if "startup" in on else []
        return vals, vals
    if name == "fit_command":
        vals = ["cold"] if "startup" in on and opts.full else []
        return vals, vals
    if name == "memory":
        vals = [(opts.config(n), opts.dtypes[0], i) for n in opts.pick(B.MEMORY_CONFIGS)
                for i in opts.impls()] if "memory" in on else []
        return vals, [f"{c.name}/{d}-{i}" for c, d, i in vals]
    return None, None


def pytest_generate_tests(metafunc):
    opts = options(metafunc.config)
    for name in ("peak", "train", "floor_case", "predict_impl", "startup_dtype", "fit_command",
                 "memory"):
        if name in metafunc.fixturenames:
            vals, ids = _params(opts, name)
            metafunc.parametrize(name, vals, ids=ids)


@pytest.fixture(scope="session")
def bench(request):
    config = request.config
    if BENCH not in config.stash:
        # As ``fastfnn bench`` does: choices deferred under load are measured before any timing.
        B.measure_deferred(lambda m: print(m, flush=True))
        config.stash[BENCH] = B.Bench(options(config))
    return config.stash[BENCH]


@pytest.fixture
def timer(benchmark):
    """Runs ``fn`` ``rounds`` times under pytest-benchmark (one call per round)."""

    def run(fn, rounds):
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)

    return run


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    bench = config.stash.get(BENCH, None)
    if bench is None:
        return
    text = bench.report()
    terminalreporter.write_sep("=", "fastfnn benchmark comparison")
    terminalreporter.write_line(text)
    if config.getoption("bench_markdown"):
        with open(config.getoption("bench_markdown"), "w") as f:
            f.write(text)
    if config.getoption("bench_json"):
        with open(config.getoption("bench_json"), "w") as f:
            json.dump(bench.to_dict(), f, indent=1, default=float)
