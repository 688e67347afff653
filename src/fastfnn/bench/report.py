"""The report: Markdown tables of what a :class:`~fastfnn.bench.Bench` recorded, and the machine."""

import os
import platform
import sys
import time

import numpy as np

from .._env import usable_cpus
from .cases import (
    IMPLS, PREDICT_CALLS, PREDICT_CASE, PREDICT_REPEATS, TARGETS, TRAIN_COLUMNS, torch_available,
)

LIMIT_COLUMNS = ("case", "threads", "GFLOP/s", "1-core peak",
                 "all-core peak", "% of 1-core peak", "% of all-core peak")
PREDICT_COLUMNS = ("rows", "calls", "fastfnn us/call", "sklearn us/call", "torch us/call",
                   "fastfnn rows/s", "vs sklearn", "vs torch")
MEMORY_COLUMNS = ("config", "dtype", "impl", "data MB", "params MB", "workspace MB",
                  "traced peak MB", "RSS peak MB", "RSS / sklearn's", "traced/(data+params+ws)",
                  "RSS/(data+params+ws)")


def _ratio(a, b):
    return a / b if a and b else None


class Tables:
    """The tables half of :class:`~fastfnn.bench.Bench` (a mixin): made from what its
    ``measure_*`` methods recorded (``train``, ``floors``, ``predict``, ``startup``,
    ``command``, ``memory``, ``peaks``) and its ``same_work`` checks."""

    def _best_per_epoch(self, key):
        case = self.cases[key]
        return {impl: min(t) / case.epochs for impl, t in self.train.get(key, {}).items() if t}

    def train_rows(self):
        rows = []
        for key in self.train:
            case = self.cases[key]
            best = self._best_per_epoch(key)
            ff = best.get("fastfnn")
            row = {"config": case.config.name, "solver": case.solver, "dtype": case.dtype,
                   "epochs": case.epochs, "threads": self.threads.get(key),
                   "fastfnn samples/s": _ratio(case.config.n_samples, ff)}
            for impl in IMPLS:
                row[f"{impl} s/epoch"] = best.get(impl)
                if impl != "fastfnn":
                    row[f"vs {impl}"] = _ratio(best.get(impl), ff)
            floor = self.floors.get(key)
            row["epoch/floor"] = _ratio(ff, floor)
            ok, detail = self.same_work(key)
            row["same work"] = ("ok " if ok else "FAIL " if ok is False else "") + detail
            rows.append(row)
        return rows

    def limit_rows(self):
        """fastfnn's GFLOP/s per training case beside the GEMM peaks of 1 core and all cores."""
        rows = []
        for key in self.train:
            case = self.cases[key]
            ff = self._best_per_epoch(key).get("fastfnn")
            if not ff:
                continue
            gflops = case.config.flops_per_sample * case.config.n_samples / ff / 1e9
            one, every = self.peaks.get(case.dtype, {}).get(1), self.peak(case.dtype)
            rows.append({"case": key, "threads": self.threads.get(key), "GFLOP/s": gflops,
                         "1-core peak": one, "all-core peak": every,
                         "% of 1-core peak": _ratio(100 * gflops, one),
                         "% of all-core peak": _ratio(100 * gflops, every)})
        return rows

    def floor_rows(self):
        rows = []
        for key, floor in self.floors.items():
            best = self._best_per_epoch(key)
            rows.append({"case": key, "floor s/epoch": floor,
                         **{f"{i}/floor": _ratio(best.get(i), floor) for i in IMPLS}})
        return rows

    def predict_rows(self):
        rows = []
        for n, calls in PREDICT_CALLS.items():
            t = {i: r[n] for i, r in self.predict.items() if n in r}
            if not t:
                continue
            ff = t.get("fastfnn")
            rows.append({"rows": n, "calls": f"{calls} x {PREDICT_REPEATS}" if calls > 1
                         else f"best of {PREDICT_REPEATS}",
                         **{f"{i} us/call": 1e6 * t[i] if i in t else None
                            for i in ("fastfnn", "sklearn", "torch")},
                         "fastfnn rows/s": _ratio(n, ff),
                         "vs sklearn": _ratio(t.get("sklearn"), ff),
                         "vs torch": _ratio(t.get("torch"), ff)})
        return rows

    def memory_rows(self):
        sk = {(m["config"], m["dtype"]): m["rss_peak"] for m in self.memory
              if m["impl"] == "sklearn"}
        rows = []
        for m in self.memory:
            model = m["data"] + m["params"] + m["workspace"]
            rows.append({"config": m["config"], "dtype": m["dtype"], "impl": m["impl"],
                         "data MB": m["data"] / 2**20, "params MB": m["params"] / 2**20,
                         "workspace MB": m["workspace"] / 2**20,
                         "traced peak MB": m["traced_peak"] / 2**20,
                         "RSS peak MB": m["rss_peak"] / 2**20,
                         "RSS / sklearn's": _ratio(m["rss_peak"], sk.get((m["config"],
                                                                         m["dtype"]))),
                         "traced/(data+params+ws)": m["traced_peak"] / model,
                         "RSS/(data+params+ws)": m["rss_peak"] / model})
        return rows

    def measured(self):
        """{(measure, case): value} of every measure :data:`TARGETS` names that was measured."""
        out = {}
        for row in self.train_rows():
            if row["solver"] == "sgd":
                case = f"{row['config']}/{row['dtype']}"
                for what in ("vs sklearn", "vs reference", "vs torch"):
                    out[(what, case)] = row[what]
        for key in self.train:
            case = self.cases[key]
            ff = self._best_per_epoch(key).get("fastfnn")
            peak = self.peak(case.dtype, self.threads.get(key))
            if case.solver == "sgd" and ff and peak:
                gflops = case.config.flops_per_sample * case.config.n_samples / ff / 1e9
                out[("% of GEMM peak", f"{case.config.name}/{case.dtype}")] = 100 * gflops / peak
        row = {r["rows"]: r for r in self.predict_rows()}
        if 1 in row:
            out[("predict 1 row vs sklearn", PREDICT_CASE)] = row[1]["vs sklearn"]
            out[("predict 1 row", PREDICT_CASE)] = row[1]["fastfnn us/call"]
        for n in (1_000, 10_000, 100_000):
            if n in row:
                out[(f"predict {n // 1000}k rows vs sklearn", PREDICT_CASE)] = row[n]["vs sklearn"]
        if self.command:
            out[("first `fastfnn fit`", "after install")] = self.command["prepared"]
        for r in self.memory_rows():
            if r["impl"] == "fastfnn":
                out[("peak RSS / sklearn's", r["config"])] = r["RSS / sklearn's"]
        return {k: v for k, v in out.items() if v is not None}

    def target_rows(self):
        """Every target of :data:`TARGETS` with its measured value and met / MISSED."""
        measured = self.measured()
        rows = []
        for t in TARGETS:
            value = measured.get((t.measure, t.case))
            rows.append({"measure": t.measure, "case": t.case, "target": t.text, "value": value,
                         "met": "not measured" if value is None else
                         "met" if t.met(value) else "MISSED"})
        return rows

    def report(self):
        """All recorded measurements as Markdown tables (with a header on the machine), the
        targets last."""
        parts = [machine_header(self)]
        sections = (
            ("Training (best of rounds; ratios are samples/s, same run)", TRAIN_COLUMNS,
             self.train_rows()),
            ("Physical limits (fastfnn's training GFLOP/s against the GEMM peaks)",
             LIMIT_COLUMNS, self.limit_rows()),
            ("GEMM floor (the epoch's matrix products alone)",
             ("case", "floor s/epoch", *(f"{i}/floor" for i in IMPLS)), self.floor_rows()),
            (f"Predict, {PREDICT_CASE} regressor (best of 5 medians; plain ndarray)",
             PREDICT_COLUMNS, self.predict_rows()),
            ("Start-up (fresh processes, seconds)", *startup_table(self.startup, self.command)),
            ("Peak memory of a one-epoch fit (fresh process, increase over the state before "
             "the fit)", MEMORY_COLUMNS, self.memory_rows()),
        )
        for title, cols, rows in sections:
            if rows:
                parts += [f"### {title}\n", _table(cols, rows)]
        parts += ["### Targets\n",
                  _table(("measure", "case", "target", "value", "met"), self.target_rows())]
        return "\n".join(parts)

    def to_dict(self):
        """The raw measurements, JSON-ready."""
        return {
            "machine": machine_info(),
            "choices": machine_choices(),
            "peaks": self.peaks,
            "train": self.train,
            "epochs": {k: c.epochs for k, c in self.cases.items()},
            "threads": self.threads,
            "losses": self.losses,
            "parameter_difference": {k: self.parameter_difference(k) for k in self.train},
            "same_work": {k: self.same_work(k) for k in self.train},
            "floors": self.floors,
            "predict": self.predict,
            "startup": self.startup,
            "command": self.command,
            "memory": self.memory,
            "targets": self.target_rows(),
        }


def startup_table(startup, command=None):
    """(columns, rows) of the start-up measurements: import, first and second fit (fresh
    processes; the first with an empty Numba cache when measured), and the ``fastfnn fit``
    command."""
    cols = ("dtype", "measure", "fastfnn", "sklearn", "difference")
    rows = []
    for dtype, s in startup.items():
        warm, sk, cold = s["warm"], s["sklearn"], s.get("cold")
        rows += [
            {"dtype": dtype, "measure": "import", "fastfnn": warm["import"],
             "sklearn": sk["import"], "difference": warm["import"] - sk["import"]},
            {"dtype": dtype, "measure": "first fit, empty Numba cache",
             "fastfnn": cold["first_fit"] if cold else None, "sklearn": sk["first_fit"]},
            {"dtype": dtype, "measure": "import + first fit, empty Numba cache",
             "fastfnn": cold["import"] + cold["first_fit"] if cold else None,
             "sklearn": sk["import"] + sk["first_fit"]},
            {"dtype": dtype, "measure": "first fit, warm cache", "fastfnn": warm["first_fit"],
             "sklearn": sk["first_fit"], "difference": warm["first_fit"] - warm["second_fit"]},
            {"dtype": dtype, "measure": "second fit", "fastfnn": warm["second_fit"],
             "sklearn": sk["second_fit"]},
        ]
    if command:
        rows += [{"dtype": "", "measure": "first `fastfnn fit` (wall), empty Numba cache",
                  "fastfnn": command["cold"]},
                 {"dtype": "", "measure": "`fastfnn precompile` (wall, what `pip install .` "
                  "adds at build time), empty Numba cache", "fastfnn": command["precompile"]},
                 {"dtype": "", "measure": "first `fastfnn fit` (wall) after install: after "
                  "`fastfnn precompile`", "fastfnn": command["prepared"]},
                 {"dtype": "", "measure": "second `fastfnn fit` (wall), warm cache",
                  "fastfnn": command["warm"], "difference": command["cold"] - command["warm"]}]
    return cols, rows


def _fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(v)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}" if a >= 1e-3 else f"{v:.1e}"


def _table(columns, rows):
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def machine_info():
    from threadpoolctl import threadpool_info

    import numba
    import sklearn

    from .. import __version__

    info = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "usable_cpus": usable_cpus(),
        "fastfnn": __version__,
        "numpy": np.__version__, "numba": numba.__version__, "sklearn": sklearn.__version__,
        "blas": sorted({f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}"
                        .strip() for i in threadpool_info() if i.get("user_api") == "blas"}),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if torch_available() and "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].__version__
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_choices():
    """What fastfnn chose for this machine: the lines of ``_threads.describe_choices()``,
    ``_parts.describe()`` and ``network.describe()``, each where this version has it."""
    import importlib

    lines = []
    for module, name in (("_threads", "describe_choices"), ("_parts", "describe"),
                         ("network", "describe")):
        try:
            describe = getattr(importlib.import_module(f"fastfnn.{module}"), name, None)
        except ImportError:
            describe = None
        if callable(describe):
            lines += [str(line) for line in describe()]
    return lines


def _cores(info):
    """"2 cores", or "1 of 2 cores" where the process may run on fewer than the machine has."""
    usable, count = info["usable_cpus"], info["cpu_count"]
    return f"{usable} cores" if usable == count else f"{usable} of {count} cores"


def machine_header(bench):
    info = machine_info()
    lines = [
        f"fastfnn {info['fastfnn']} benchmark, {info['date']}: {info['cpu']}, "
        f"{_cores(info)}; numpy {info['numpy']}, numba {info['numba']}, "
        f"scikit-learn {info['sklearn']}" + (f", torch {info['torch']}" if "torch" in info
                                             else "") + f"; BLAS: {', '.join(info['blas'])}",
    ]
    for dtype, p in bench.peaks.items():
        lines.append(f"GEMM peak {dtype}: " + ", ".join(
            f"{v:.1f} GFLOP/s ({t} thread{'s' if t > 1 else ''})" for t, v in sorted(p.items())))
    choices = machine_choices()
    lines += ["", "Choices made on this machine:"]
    lines += [f"- {line}" for line in choices] or ["- (this fastfnn does not describe them)"]
    return "\n".join(lines) + "\n"
