"""The suite: :class:`Bench`, which runs the measurements and records them (tables in
``report``)."""

import dataclasses
import json
import os
import tempfile
import time
import warnings

import numpy as np

from .._env import usable_cpus
from .cases import (
    ALPHA, FLOOR_CONFIGS, LR, MEMORY_CONFIGS, MOMENTUM, TOLERANCE, estimator_class,
    estimator_params, make_data, sklearn_draws, thread_count,
)
from .children import MEMORY_CHILD, STARTUP_CHILD, _best_of, _child, command_seconds
from .gemm import gemm_floor, gemm_peak
from .latency import Latency
from .reference import reference_fit
from .report import Tables
from .torch_impl import torch_fit


class _Env:
    """Set (or with None, leave alone) environment variables inside a ``with`` block."""

    def __init__(self, **values):
        self.values = {k: v for k, v in values.items() if v is not None}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


SETTLE_SECONDS = 0.3


def settle():
    """Pause before a timed fit (untimed, the same for every implementation), so that worker
    threads the previous fit left spinning (OpenBLAS's, OpenMP's: they spin for up to about
    0.1 s after their last call before they sleep) do not take cores from the next one."""
    time.sleep(SETTLE_SECONDS)


def _loop(fn, rounds):
    for _ in range(rounds):
        fn()


def _rel(a, b):
    if a is None or b is None:
        return None
    return abs(a - b) / max(abs(b), 1e-300)


class Bench(Latency, Tables):
    """Measurements of one run, and the tables made from them.

    Each ``measure_*`` method measures and records; :meth:`report` formats what was recorded
    (the tables come from :class:`fastfnn.bench.report.Tables`, the predict measurements from
    :class:`fastfnn.bench.latency.Latency`).
    ``timer(fn, rounds)`` runs ``fn`` ``rounds`` times (pytest-benchmark's ``pedantic`` in the
    suite); every run also times itself, so the numbers do not depend on the timer.
    """

    def __init__(self, options, log=None):
        self.opts = options
        self.log = log or (lambda msg: None)
        self._data = {}
        self.peaks = {}  # dtype -> {threads: GFLOP/s}
        self.train = {}  # case key -> {impl: [seconds per fit]}
        self.cases = {}  # case key -> Case
        self.threads = {}  # case key -> threads
        self.losses = {}  # case key -> {implementation: epoch-1 loss}
        self._coefs = {}  # (case key, implementation) -> coefs_ after the last timed fit
        self.work = {}  # (case key, estimator) -> (epochs, samples seen) of the last timed fit
        self._models = {}  # impl -> predict function of the (64, 64) regressor (and its fit)
        self.floors = {}  # case key -> seconds per epoch
        self.predict = {}  # impl -> {rows: seconds per call}
        self.startup = {}  # dtype -> {measure: seconds}
        self.command = {}  # the `fastfnn fit` command: {"cold"/"warm": seconds, "argv": [...]}
        self.memory = []  # rows

    # ---- shared pieces ----

    def data(self, config, dtype):
        key = (config, dtype)
        if key not in self._data:
            self._data[key] = make_data(config, dtype)
        return self._data[key]

    def _threads(self, config, dtype):
        return thread_count(config, dtype, self.opts.threads)

    def _thread_env(self):
        """``FASTFNN_NUM_THREADS`` set to the override for fastfnn's own fits, if any."""
        return _Env(FASTFNN_NUM_THREADS=str(self.opts.threads) if self.opts.threads else None)

    # ---- GEMM peak ----

    def measure_peak(self, dtype, threads=None):
        threads = threads or usable_cpus()
        value = gemm_peak(dtype, threads, n=self.opts.peak_size)
        self.peaks.setdefault(dtype, {})[threads] = value
        self.log(f"GEMM peak {dtype} {threads} thread(s): {value:.1f} GFLOP/s")
        return value

    def peak(self, dtype, threads=None):
        """The GEMM peak (GFLOP/s) that ``threads`` threads (None: all cores) can reach: the best
        measured on at most that many (a busy moment can make more threads measure less than
        fewer, and more can always run as fewer), else the best measured; None if none was."""
        p = self.peaks.get(dtype)
        if not p:
            return None
        threads = threads or usable_cpus()
        return max((v for t, v in p.items() if t <= threads), default=max(p.values()))

    # ---- training ----

    def train_runner(self, case, impl):
        """Prepare one (case, implementation): data, warm-up and the same-work record; returns a
        callable that runs one timed fit of ``case.epochs`` epochs and records its time."""
        X, y = self.data(case.config, case.dtype)
        threads = self._threads(case.config, case.dtype)
        self.cases[case.key] = case
        self.threads[case.key] = threads
        times = self.train.setdefault(case.key, {}).setdefault(impl, [])
        losses = self.losses.setdefault(case.key, {})
        from threadpoolctl import threadpool_limits

        if impl == "torch":
            return self._torch_runner(case, X, y, threads, times, losses)
        if impl == "reference":
            return self._reference_runner(case, X, y, threads, times, losses)
        Est = estimator_class(impl)
        params = estimator_params(case)

        def fit():
            with warnings.catch_warnings(), self._thread_env(), \
                    threadpool_limits(limits=threads, user_api="blas"):
                warnings.simplefilter("ignore")
                est = Est(**params)
                settle()
                t = time.perf_counter()
                est.fit(X, y)
                times.append(time.perf_counter() - t)
            losses[impl] = est.loss_curve_[0]
            self._coefs[(case.key, impl)] = est.coefs_
            self.work[(case.key, impl)] = (len(est.loss_curve_), est.t_)

        if impl == "fastfnn":  # load (or compile) the kernels before timing
            with warnings.catch_warnings(), self._thread_env():
                warnings.simplefilter("ignore")
                Est(**estimator_params(case, epochs=1)).fit(X[:256], y[:256])
        return fit

    def _torch_runner(self, case, X, y, threads, times, losses):
        """PyTorch's timed fit (see :func:`train_runner`): scikit-learn's draws, ``threads``
        intra-op threads; one untimed epoch computes its first loss."""
        import torch

        torch.set_num_threads(threads)
        Xt = torch.from_numpy(X)
        Yt = torch.from_numpy(y.reshape(len(y), -1))

        def draws():
            init, orders = sklearn_draws(case.config, case.epochs)
            return [(W.astype(case.dtype), b.astype(case.dtype)) for W, b in init], orders

        init, orders = draws()
        _, curve = torch_fit(case, Xt, Yt, init, orders[:1], track_penalty=True)
        data_term, penalty = curve[0]
        n, k = case.config.n_samples, case.config.n_outputs
        losses["torch"] = (data_term + penalty) / n
        losses["torch (sklearn's loss)"] = (data_term / k + penalty) / n

        def fit():  # the draws (initial weights, batch orders) timed, as in a fit
            torch.set_num_threads(threads)
            settle()
            t = time.perf_counter()
            torch_fit(case, Xt, Yt, *draws())
            times.append(time.perf_counter() - t)

        return fit

    def _reference_runner(self, case, X, y, threads, times, losses):
        """The reference's timed fit (see :func:`train_runner`): scikit-learn's draws, its BLAS
        limited to ``threads``; compiled (or loaded from Numba's cache) by an untimed fit."""
        from threadpoolctl import threadpool_limits

        init, _ = sklearn_draws(case.config, case.epochs)
        Y = y.reshape(len(y), -1)  # (n, n_outputs)
        n, k, bs = case.config.n_samples, case.config.n_outputs, case.config.batch_size
        small = min(n, 256)
        reference_fit(X[:small], Y[:small], init, [np.arange(small)], bs, LR, MOMENTUM, ALPHA)

        def fit():  # scikit-learn's draws (initial weights, batch orders) timed, as in a fit
            with threadpool_limits(limits=threads, user_api="blas"):
                settle()
                t = time.perf_counter()
                init, orders = sklearn_draws(case.config, case.epochs)
                coefs, _, curve = reference_fit(X, Y, init, orders, bs, LR, MOMENTUM, ALPHA)
                times.append(time.perf_counter() - t)
            data_term, penalty = curve[0]
            losses["reference"] = (data_term + penalty) / n
            losses["reference (sklearn's loss)"] = (data_term / k + penalty) / n
            self._coefs[(case.key, "reference")] = coefs

        return fit

    def measure_train(self, case, impl, timer=None):
        fit = self.train_runner(case, impl)
        rounds = self.opts.rounds_for(impl)
        (timer or _loop)(fit, rounds)
        best = min(self.train[case.key][impl])
        self.log(f"train {case.key:22s} {impl:8s} {best / case.epochs:9.4f} s/epoch")
        return best

    def parameter_difference(self, key):
        """||W_fastfnn - W_sklearn|| / ||W_sklearn|| (Frobenius, all layers) after the timed fits.

        A norm, not a maximum: under adam a weight whose gradient is at rounding level moves by
        +-lr whatever its sign, so a few single weights may differ by 2 lr in float32."""
        a, b = self._coefs.get((key, "fastfnn")), self._coefs.get((key, "sklearn"))
        if a is None or b is None:
            return None
        num = sum(float(np.sum((p.astype(np.float64) - q) ** 2)) for p, q in zip(a, b))
        return np.sqrt(num / sum(float(np.sum(q.astype(np.float64) ** 2)) for q in b))

    def same_work(self, key):
        """(ok, detail): did the implementations do the same work? ok is None if nothing compared.

        First the amount: fastfnn and scikit-learn each ran every epoch asked for, over every sample
        (``len(loss_curve_)``, ``t_``; torch and the reference run the batch orders they are given,
        one per epoch). Then the math: fastfnn's epoch-1 loss against scikit-learn's and torch's
        (torch starts from the same weights and visits the batches in the same order), and the
        reference's (computed scikit-learn's way) against scikit-learn's, relative, to
        :data:`TOLERANCE` (x10 for adam). With several outputs scikit-learn reports the mean over
        outputs where fastfnn reports the sum it descends, so there the weights after the fit are
        compared ("sk W") and scikit-learn's loss is checked against torch's computed its way
        ("sk~torch").
        """
        case = self.cases[key]
        losses = self.losses.get(key, {})
        ff, sk = losses.get("fastfnn"), losses.get("sklearn")
        done = {impl: work for (k, impl), work in self.work.items() if k == key}
        short = [f"{impl} {epochs} epochs, {samples} samples FAIL"
                 for impl, (epochs, samples) in sorted(done.items())
                 if (epochs, samples) != (case.epochs, case.epochs * case.config.n_samples)]
        if short:  # the loss of a first epoch says nothing of a fit that stopped early
            return False, ", ".join(short)
        checks = [("reference", "ref", _rel(losses.get("reference (sklearn's loss)"), sk)),
                  ("torch", "torch", _rel(ff, losses.get("torch")))]
        if case.config.n_outputs == 1:
            checks.insert(0, ("sklearn", "sk", _rel(ff, sk)))
        else:
            checks.insert(0, ("sklearn", "sk W", self.parameter_difference(key)))
            checks.append(("torch", "sk~torch", _rel(sk, losses.get("torch (sklearn's loss)"))))
        ok, parts = None, []
        for impl, label, diff in checks:
            if diff is None:
                continue
            tol = TOLERANCE[(impl, case.dtype)] * (10 if case.solver == "adam" else 1)
            good = bool(diff <= tol)
            ok = good if ok is None else (ok and good)
            parts.append(f"{label} {diff:.0e}" + ("" if good else " FAIL"))
        return ok, ", ".join(parts)

    def all_same_work(self):
        """False if any compared case did different work; True otherwise."""
        return all(self.same_work(k)[0] is not False for k in self.train)

    # ---- GEMM floor ----

    def measure_floor(self, case):
        threads = self._threads(case.config, case.dtype)
        value = gemm_floor(case.config, case.dtype, threads, reps=3 if self.opts.full else 2)
        self.cases[case.key] = case
        self.floors[case.key] = value
        self.log(f"floor {case.key:22s} {value:.4f} s/epoch")
        return value

    # ---- start-up and memory (fresh subprocesses) ----

    def measure_startup(self, dtype, cold=True):
        """Import and first/second fit times in fresh processes, fastfnn and scikit-learn.

        ``cold``: fastfnn first runs with an empty Numba cache (a fresh temporary
        ``NUMBA_CACHE_DIR``), then warm from that cache; otherwise only warm, from the cache the
        user's installation already uses (primed by one unmeasured run). Warm and scikit-learn
        numbers are the best of two processes.
        """
        spec = dict(n=2000, f=10, dtype=dtype, hidden=[32], batch=32)
        ff, sk = dict(spec, impl="fastfnn"), dict(spec, impl="sklearn")
        out = {}
        with tempfile.TemporaryDirectory(prefix="fastfnn-numba-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache) if cold else None
            first = _child(STARTUP_CHILD, ff, env)
            if cold:
                out["cold"] = first
            out["warm"] = _best_of(lambda: _child(STARTUP_CHILD, ff, env))
        out["sklearn"] = _best_of(lambda: _child(STARTUP_CHILD, sk))
        self.startup[dtype] = out
        self.log(f"startup {dtype}: {json.dumps(out)}")
        return out

    def measure_fit_command(self):
        """Wall time of the first ``fastfnn fit`` on the bundled data in fresh processes:

        * with an empty Numba cache (an editable install, or a wheel built on another CPU:
          every kernel it needs is compiled);
        * after ``fastfnn precompile`` into an empty cache (timed too), which is what
          ``pip install .`` does at build time: the installed package then carries that cache;
        * a second run, from the cache the first one filled.
        """
        with tempfile.TemporaryDirectory(prefix="fastfnn-numba-") as cache:
            argv, cold = command_seconds(cache)
            _, warm = command_seconds(cache)
        with tempfile.TemporaryDirectory(prefix="fastfnn-numba-") as cache:
            _, precompile = command_seconds(cache, "precompile")
            _, prepared = command_seconds(cache)
        self.command = {"argv": argv, "cold": cold, "warm": warm, "precompile": precompile,
                        "prepared": prepared}
        self.log(f"`fastfnn fit`: first {cold:.2f} s with an empty cache, {prepared:.2f} s after "
                 f"`fastfnn precompile` ({precompile:.1f} s), second {warm:.2f} s")
        return self.command

    def measure_memory(self, config, dtype, impl):
        """Peak memory of a one-epoch fit, in a fresh process, against its data + parameters +
        workspace. See :func:`memory_child`."""
        spec = dict(config=dataclasses.asdict(config), dtype=dtype, impl=impl,
                    threads=self._threads(config, dtype))
        res = _child(MEMORY_CHILD, spec)
        item = np.dtype(dtype).itemsize
        X_bytes = config.n_samples * (config.n_features + config.n_outputs) * item
        res.update(
            config=config.name, dtype=dtype, impl=impl, data=X_bytes,
            params=config.n_params * item,
            workspace=config.batch_size * (2 * sum(config.sizes) - config.n_features
                                           + config.n_outputs + 1) * item,
        )
        self.memory.append(res)
        self.log(f"memory {config.name}/{dtype} {impl}: {res}")
        return res

    # ---- everything ----

    def run_all(self):
        """Run every selected section (the ``fastfnn bench`` path)."""
        o = self.opts
        if "train" in o.sections or "floor" in o.sections:
            for dtype in o.dtypes:
                self.measure_peak(dtype, 1)
                if usable_cpus() > 1:
                    self.measure_peak(dtype)
        if "train" in o.sections:
            for case in o.cases():
                for impl in o.impls(case.solver):
                    self.measure_train(case, impl)
        if "floor" in o.sections:
            for case in o.cases():
                if case.config.name in FLOOR_CONFIGS and case.solver == "sgd":
                    self.measure_floor(case)
        if "predict" in o.sections:
            for impl in o.impls():
                self.measure_predict(impl)
        if "startup" in o.sections:
            for dtype in (o.dtypes if o.full else o.dtypes[:1]):
                self.measure_startup(dtype, cold=o.full)
            if o.full:
                self.measure_fit_command()
        if "memory" in o.sections:
            for name in o.pick(MEMORY_CONFIGS):
                for impl in o.impls():
                    self.measure_memory(o.config(name), o.dtypes[0], impl)
        return self
