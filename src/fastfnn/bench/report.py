"""The report: Markdown tables of what a :class:`~fastfnn.bench.Bench` recorded, and the machine."""

import os
import platform
import sys
import time

import numpy as np

from .cases import (
    ADAM_TARGET, FLOOR_TARGET, IMPLS, IMPORT_TARGET, TARGETS, TRAIN_COLUMNS, WARM_START_TARGET,
    torch_available,
)


class Tables:
    """The tables half of :class:`~fastfnn.bench.Bench` (a mixin): made from what its
    ``measure_*`` methods recorded (``train``, ``floors``, ``predict``, ``startup``, ``memory``,
    ``peaks``) and its ``same_work`` checks."""

    def train_rows(self):
        rows = []
        for key, times in self.train.items():
            case = self.cases[key]
            cfg = case.config
            best = {impl: min(t) for impl, t in times.items() if t}
            ff = best.get("fastfnn")
            per_epoch = {impl: t / case.epochs for impl, t in best.items()}
            row = {
                "config": cfg.name, "solver": case.solver, "dtype": case.dtype,
                "epochs": case.epochs, "threads": self.threads.get(key),
            }
            for impl in IMPLS:
                row[f"{impl} s/epoch"] = per_epoch.get(impl)
            row["fastfnn samples/s"] = cfg.n_samples / per_epoch["fastfnn"] if ff else None
            row["vs sklearn"] = best["sklearn"] / ff if ff and "sklearn" in best else None
            row["vs torch"] = best["torch"] / ff if ff and "torch" in best else None
            gflops = cfg.flops_per_sample * cfg.n_samples / per_epoch["fastfnn"] / 1e9 if ff \
                else None
            row["GFLOP/s"] = gflops
            peak = self.peak(case.dtype)
            row["% peak"] = 100 * gflops / peak if gflops and peak else None
            floor = self.floors.get(f"{cfg.name}/sgd/{case.dtype}") if case.solver == "sgd" \
                else None
            row["epoch/floor"] = per_epoch["fastfnn"] / floor if ff and floor else None
            ok, detail = self.same_work(key)
            row["same work"] = ("ok " if ok else "FAIL " if ok is False else "") + detail
            row["_targets"] = self._targets(case, row)
            rows.append(row)
        return rows

    def _targets(self, case, row):
        """Issue 4's targets for this row: [(what, target, value, met)]."""
        out = []
        if case.solver == "sgd" and row["vs sklearn"] is not None:
            t = TARGETS[case.config.name]
            out.append(("vs sklearn", f">= {t:g}x", row["vs sklearn"], row["vs sklearn"] >= t))
        if row["vs torch"] is not None:
            out.append(("vs torch", "> 1x", row["vs torch"], row["vs torch"] > 1))
        if row["epoch/floor"] is not None:
            out.append(("epoch/floor", f"<= {FLOOR_TARGET}", row["epoch/floor"],
                        row["epoch/floor"] <= FLOOR_TARGET))
        if case.solver == "adam":
            sgd = self.train.get(f"{case.config.name}/sgd/{case.dtype}", {}).get("fastfnn")
            mine = self.train[case.key].get("fastfnn")
            if sgd and mine:
                ratio = min(sgd) / min(mine)
                out.append(("adam/sgd samples/s", f">= {ADAM_TARGET}", ratio,
                            ratio >= ADAM_TARGET))
        return out

    def report(self):
        """All recorded measurements as Markdown tables (with a header on the machine)."""
        parts = [machine_header(self)]
        if self.train:
            rows = self.train_rows()
            parts.append("### Training (best of rounds; ratios are samples/s, paired)\n")
            parts.append(_table(TRAIN_COLUMNS, rows))
            targets = [{"case": f"{r['config']}/{r['solver']}/{r['dtype']}", "measure": what,
                        "target": target, "value": value, "met": "yes" if met else "MISSED"}
                       for r in rows for what, target, value, met in r["_targets"]]
            if targets:
                parts.append("### Targets (issue 4)\n")
                parts.append(_table(("case", "measure", "target", "value", "met"), targets))
        if self.floors:
            cols = ("case", "floor s/epoch", "fastfnn/floor", "sklearn/floor", "torch/floor")
            rows = []
            for key, floor in self.floors.items():
                case = self.cases.get(key)
                best = {i: min(t) / case.epochs for i, t in self.train.get(key, {}).items() if t}
                rows.append({"case": key, "floor s/epoch": floor,
                             **{f"{i}/floor": best[i] / floor if i in best else None
                                for i in IMPLS}})
            parts.append("### GEMM floor (the epoch's matrix products alone)\n")
            parts.append(_table(cols, rows))
        if self.predict:
            cols = ("config", "dtype", "fastfnn rows/s", "sklearn rows/s", "torch rows/s",
                    "vs sklearn", "vs torch")
            rows = []
            for key, times in self.predict.items():
                name, dtype = key.split("/")
                n = self.opts.config(name).n_samples
                best = {i: min(t) for i, t in times.items() if t}
                ff = best.get("fastfnn")
                rows.append({"config": name, "dtype": dtype,
                             **{f"{i} rows/s": n / best[i] if i in best else None for i in IMPLS},
                             "vs sklearn": best["sklearn"] / ff if ff and "sklearn" in best
                             else None,
                             "vs torch": best["torch"] / ff if ff and "torch" in best else None})
            parts.append("### Predict throughput (all rows, best of 5)\n")
            parts.append(_table(cols, rows))
        if self.startup:
            parts.append("### Start-up (fresh processes, seconds)\n")
            parts.append(_table(*startup_table(self.startup)))
        if self.memory:
            cols = ("config", "dtype", "impl", "data MB", "params MB", "workspace MB",
                    "traced peak MB", "RSS peak MB", "traced/(data+params+ws)",
                    "RSS/(data+params+ws)")
            rows = []
            for m in self.memory:
                model = m["data"] + m["params"] + m["workspace"]
                rows.append({"config": m["config"], "dtype": m["dtype"], "impl": m["impl"],
                             "data MB": m["data"] / 2**20, "params MB": m["params"] / 2**20,
                             "workspace MB": m["workspace"] / 2**20,
                             "traced peak MB": m["traced_peak"] / 2**20,
                             "RSS peak MB": m["rss_peak"] / 2**20,
                             "traced/(data+params+ws)": m["traced_peak"] / model,
                             "RSS/(data+params+ws)": m["rss_peak"] / model})
            parts.append("### Peak memory of a one-epoch fit (fresh process, increase over the "
                         "state before the fit)\n")
            parts.append(_table(cols, rows))
        return "\n".join(parts)

    def to_dict(self):
        """The raw measurements, JSON-ready."""
        return {
            "machine": machine_info(),
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
            "memory": self.memory,
        }


def startup_table(startup):
    """(columns, rows) of the start-up measurements, with the differences the targets name."""
    cols = ("dtype", "measure", "fastfnn", "sklearn", "difference", "target")
    rows = []
    for dtype, s in startup.items():
        warm, sk, cold = s["warm"], s["sklearn"], s.get("cold")
        d_import = warm["import"] - sk["import"]
        d_warm = warm["first_fit"] - warm["second_fit"]
        rows += [
            {"dtype": dtype, "measure": "import", "fastfnn": warm["import"],
             "sklearn": sk["import"], "difference": d_import,
             "target": f"<= +{IMPORT_TARGET} ({'met' if d_import <= IMPORT_TARGET else 'MISSED'})"},
            {"dtype": dtype, "measure": "first fit, empty Numba cache",
             "fastfnn": cold["first_fit"] if cold else None, "sklearn": sk["first_fit"],
             "difference": None, "target": ""},
            {"dtype": dtype, "measure": "first fit, warm cache", "fastfnn": warm["first_fit"],
             "sklearn": sk["first_fit"], "difference": d_warm,
             "target": f"first - second <= {WARM_START_TARGET} "
                       f"({'met' if d_warm <= WARM_START_TARGET else 'MISSED'})"},
            {"dtype": dtype, "measure": "second fit", "fastfnn": warm["second_fit"],
             "sklearn": sk["second_fit"], "difference": None, "target": ""},
        ]
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
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "fastfnn": __version__,
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


def machine_header(bench):
    info = machine_info()
    lines = [
        f"fastfnn {info['fastfnn']} benchmark, {info['date']}: {info['cpu']}, "
        f"{info['cpu_count']} cores; numpy {info['numpy']}, numba {info['numba']}, "
        f"scikit-learn {info['sklearn']}" + (f", torch {info['torch']}" if "torch" in info
                                             else "") + f"; BLAS: {', '.join(info['blas'])}",
    ]
    for dtype, p in bench.peaks.items():
        lines.append(f"GEMM peak {dtype}: " + ", ".join(
            f"{v:.1f} GFLOP/s ({t} thread{'s' if t > 1 else ''})" for t, v in sorted(p.items())))
    return "\n".join(lines) + "\n"
