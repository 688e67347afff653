"""Benchmark harness: fastfnn against scikit-learn and PyTorch eager on identical training work.

Used by ``fastfnn bench`` (:func:`add_arguments`, :func:`run`) and by the pytest-benchmark suite in
``benchmarks/`` (which drives the same :class:`Bench`). What is measured, all in one process and run:

* training: ``FNNRegressor``, scikit-learn's ``MLPRegressor`` with the same parameters, and PyTorch
  eager (``nn.Sequential`` + ``torch.optim.SGD(nesterov=True)`` / ``Adam``, manual batching of a
  pre-permuted tensor) when torch is installed. Seconds per epoch, samples/s, paired ratios, GFLOP/s
  as a fraction of the machine's GEMM peak (a large ``np.matmul``, same run) at
  ``6 * sum(fan_in * fan_out)`` flops per sample;
* that they did the same work: epoch-1 losses from the same seed (fastfnn and scikit-learn draw the
  same random numbers; torch is given scikit-learn's initial weights and batch order);
* the "GEMM floor": the epoch's matrix products alone, at their real shapes;
* predict throughput; start-up (import, first fit with an empty and a warm Numba cache) and the peak
  memory of a fit, each in fresh subprocesses.

Choices (see benchmarks/README.md): every implementation runs with the same thread count, fastfnn's
own choice for the problem (``_threads.training_threads``), set by threadpoolctl for scikit-learn and
``torch.set_num_threads`` for torch. torch's L2 term is ``weight_decay = alpha / m`` on the weights
only (``m`` the rows of the batch, reset for the shorter last batch): exactly scikit-learn's
``(A.T @ D + alpha * W) / m`` gradient. torch is imported only when its benchmarks run.
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._threads import blas_threads, training_threads

SEED = 0
LR = 1e-3
MOMENTUM = 0.9
ALPHA = 1e-4
IMPLS = ("fastfnn", "sklearn", "torch")
DTYPES = ("float64", "float32")
SECTIONS = ("train", "predict", "floor", "startup", "memory")


@dataclass(frozen=True)
class Config:
    """One network and data shape of the suite."""

    name: str
    n_samples: int
    n_features: int
    hidden: tuple
    n_outputs: int
    batch_size: int

    @property
    def sizes(self):
        """Layer units ``[n_features, hidden..., n_outputs]``."""
        return (self.n_features, *self.hidden, self.n_outputs)

    @property
    def pairs(self):
        """``(fan_in, fan_out)`` of each weight layer."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def flops_per_sample(self):
        """Training flops per sample: forward, weight gradient and delta backprop GEMMs."""
        return 6 * sum(a * b for a, b in self.pairs)

    @property
    def n_params(self):
        return sum(a * b + b for a, b in self.pairs)


CONFIGS = {
    c.name: c
    for c in (
        Config("tiny", 20000, 10, (32,), 1, 32),
        Config("small", 20000, 20, (64, 64), 1, 64),
        Config("medium", 20000, 100, (256, 256), 1, 128),
        Config("wide", 8192, 784, (1024, 1024), 10, 256),
        Config("deep", 20000, 32, (64,) * 8, 1, 64),
    )
}
QUICK_CONFIGS = ("tiny", "small")
ADAM_CONFIGS = ("small", "wide")
PREDICT_CONFIGS = ("small", "wide")
FLOOR_CONFIGS = ("medium", "wide")
MEMORY_CONFIGS = ("small", "medium", "wide")
# Epochs per fit in the full suite (scikit-learn is slow on medium and wide).
FULL_EPOCHS = {"tiny": 3, "small": 3, "medium": 2, "wide": 2, "deep": 3}
QUICK_EPOCHS = 2
ROUNDS = {"fastfnn": 3, "sklearn": 2, "torch": 3}
# Issue 4's targets: samples/s ratio to scikit-learn (sgd); vs torch, floor, adam, start-up.
TARGETS = {"tiny": 35.0, "small": 7.0, "medium": 2.2, "wide": 2.0, "deep": 4.0}
FLOOR_TARGET = 1.25
ADAM_TARGET = 0.9
WARM_START_TARGET = 0.2
IMPORT_TARGET = 0.5
# Same-work tolerances on the epoch-1 loss (relative); torch runs its own GEMMs (and sums in
# another order), hence looser. x10 for adam, whose m / sqrt(v) amplifies rounding.
TOLERANCE = {
    ("sklearn", "float64"): 1e-6,
    ("sklearn", "float32"): 1e-3,
    ("torch", "float64"): 1e-5,
    ("torch", "float32"): 1e-3,
}
TRAIN_COLUMNS = (
    "config", "solver", "dtype", "epochs", "threads", "fastfnn s/epoch", "sklearn s/epoch",
    "torch s/epoch", "fastfnn samples/s", "vs sklearn", "vs torch", "GFLOP/s", "% peak",
    "epoch/floor", "same work",
)


@dataclass(frozen=True)
class Case:
    """A timed training problem: config, solver, dtype and epochs per fit."""

    config: Config
    solver: str
    dtype: str
    epochs: int

    @property
    def key(self):
        return f"{self.config.name}/{self.solver}/{self.dtype}"


# ---- options ------------------------------------------------------------------------------------


def add_arguments(parser):
    """Options of ``fastfnn bench`` (the same names as the pytest suite's ``--bench-*``)."""
    parser.add_argument("--full", action="store_true",
                        help="every config, adam, GEMM floor, cold start and memory "
                             "(about 10-15 minutes on 2 cores); default: a quick subset")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated configs from {','.join(CONFIGS)}")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per timed fit")
    parser.add_argument("--rounds", type=int, default=None, help="timed fits per implementation")
    parser.add_argument("--samples", type=int, default=None,
                        help="cap the number of samples of every config (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every implementation (default: fastfnn's choice)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--sections", default=None,
                        help=f"comma-separated from {','.join(SECTIONS)} (default: all with "
                             "--full, else train,predict,startup)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="side of the square matmul that measures the GEMM peak")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")


@dataclass
class Options:
    """What to run; built from the parsed arguments by :func:`options_from_args`."""

    configs: tuple
    dtypes: tuple
    sections: tuple
    full: bool = False
    epochs: int = None
    rounds: int = None
    samples: int = None
    threads: int = None
    torch: bool = True
    peak_size: int = 2048

    def config(self, name):
        cfg = CONFIGS[name]
        if self.samples:
            n = min(cfg.n_samples, self.samples)
            cfg = dataclasses.replace(cfg, n_samples=n, batch_size=min(cfg.batch_size, n))
        return cfg

    def epochs_for(self, name):
        if self.epochs:
            return self.epochs
        return FULL_EPOCHS[name] if self.full else QUICK_EPOCHS

    def rounds_for(self, impl):
        return self.rounds or (ROUNDS[impl] if self.full else min(2, ROUNDS[impl]))

    def impls(self):
        return IMPLS if self.torch and torch_available() else IMPLS[:2]

    def cases(self):
        """Training cases in run order: sgd for every config, adam on small and wide."""
        out = []
        for name in self.configs:
            solvers = ("sgd", "adam") if name in ADAM_CONFIGS else ("sgd",)
            for solver in solvers:
                for dtype in self.dtypes:
                    out.append(Case(self.config(name), solver, dtype, self.epochs_for(name)))
        return out

    def pick(self, names):
        return [n for n in self.configs if n in names]


def options_from_args(args):
    """:class:`Options` from an ``argparse.Namespace`` made by :func:`add_arguments`."""
    full = bool(getattr(args, "full", False))
    configs = getattr(args, "configs", None)
    configs = tuple(configs.split(",")) if configs else (tuple(CONFIGS) if full else QUICK_CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise ValueError(f"Unknown config(s) {unknown}; choose from {list(CONFIGS)}.")
    dtype = getattr(args, "dtype", "both") or "both"
    sections = getattr(args, "sections", None)
    sections = (tuple(sections.split(",")) if sections
                else SECTIONS if full else ("train", "predict", "startup"))
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"Unknown section(s) {unknown}; choose from {list(SECTIONS)}.")
    return Options(
        configs=configs,
        dtypes=DTYPES if dtype == "both" else (dtype,),
        sections=sections,
        full=full,
        epochs=getattr(args, "epochs", None),
        rounds=getattr(args, "rounds", None),
        samples=getattr(args, "samples", None),
        threads=getattr(args, "threads", None),
        torch=not getattr(args, "no_torch", False),
        peak_size=getattr(args, "peak_size", None) or 2048,
    )


def torch_available():
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


# ---- data, threads, estimators ------------------------------------------------------------------


def make_data(config, dtype, seed=SEED):
    """Synthetic regression: X ~ N(0, 1); Y from a random one-hidden-layer tanh teacher plus 10%
    noise, standardised per output. Returns X (n, n_features) and y (n,) or (n, n_outputs)."""
    rs = np.random.RandomState(seed)
    n, f, k = config.n_samples, config.n_features, config.n_outputs
    X = rs.standard_normal((n, f))
    W1 = rs.standard_normal((f, 16)) / np.sqrt(f)
    W2 = rs.standard_normal((16, k))
    Y = np.tanh(X @ W1) @ W2 + 0.1 * rs.standard_normal((n, k))
    Y = (Y - Y.mean(axis=0)) / Y.std(axis=0)
    return X.astype(dtype), (Y[:, 0] if k == 1 else Y).astype(dtype)


def thread_count(config, batch_size, override=None):
    """Threads for one problem: ``override``, else fastfnn's own choice
    (``_threads.training_threads``)."""
    if override:
        return int(override)
    return int(training_threads(np.asarray(config.sizes, dtype=np.int64), batch_size))


def estimator_params(case, epochs=None):
    """The shared MLPRegressor/FNNRegressor parameters: a fixed number of epochs, no stopping."""
    epochs = case.epochs if epochs is None else epochs
    return dict(
        hidden_layer_sizes=case.config.hidden, activation="relu", solver=case.solver,
        alpha=ALPHA, batch_size=case.config.batch_size, learning_rate="constant",
        learning_rate_init=LR, max_iter=epochs, shuffle=True, random_state=SEED, tol=0.0,
        momentum=MOMENTUM, nesterovs_momentum=True, early_stopping=False,
        n_iter_no_change=epochs + 1,
    )


def estimator_class(impl):
    if impl == "fastfnn":
        from .. import FNNRegressor

        return FNNRegressor
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor


def sklearn_draws(config, epochs, seed=SEED):
    """scikit-learn's random draws for a fit: initial ``[(W, b), ...]`` (float64, Glorot-uniform
    for relu) and each epoch's sample order (``shuffle`` composes one permutation per epoch)."""
    rs = np.random.RandomState(seed)
    init = []
    for fan_in, fan_out in config.pairs:
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out))
        init.append((W, rs.uniform(-bound, bound, fan_out)))
    n = config.n_samples
    order = np.arange(n, dtype=np.int64)
    orders = []
    for _ in range(epochs):
        ind = np.arange(n)
        rs.shuffle(ind)
        order = order[ind]
        orders.append(order)
    return init, orders


# ---- PyTorch eager --------------------------------------------------------------------------------


def torch_model(init, dtype):
    """``nn.Sequential`` of Linear + ReLU (identity output) holding the given ``[(W, b), ...]``."""
    import torch

    tdtype = getattr(torch, dtype)
    layers = []
    for i, (W, b) in enumerate(init):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))  # (fan_out, fan_in)
            lin.bias.copy_(torch.from_numpy(np.asarray(b)))
        layers.append(lin)
        if i < len(init) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_fit(case, Xt, Yt, init, orders, track_penalty=False):
    """Train a torch copy of the network for ``len(orders)`` epochs, scikit-learn's step for step.

    Loss per batch ``0.5 * sum((out - y)^2) / m`` (the sum over outputs, as fastfnn descends);
    L2 as ``weight_decay = alpha / m`` on weights only. Adam's ``eps`` is set each step to
    ``1e-8 / sqrt(1 - beta_2^t)``, so that torch's ``m_hat / (sqrt(v_hat) + eps)`` equals
    scikit-learn's ``lr_t * m / (sqrt(v) + 1e-8)``. Returns per epoch ``(sum over batches of
    0.5 * squared error, sum over batches of alpha/2 * ||W||^2)`` -- the second only when
    ``track_penalty`` (it costs extra ops per batch, so timed fits leave it out).
    """
    import torch

    model = torch_model(init, case.dtype)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
    bs = case.config.batch_size
    groups = [{"params": weights, "weight_decay": ALPHA / bs},
              {"params": biases, "weight_decay": 0.0}]
    if case.solver == "sgd":
        opt = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=True)
    else:
        opt = torch.optim.Adam(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    mse = torch.nn.functional.mse_loss
    adam, step = case.solver == "adam", 0
    n = Xt.shape[0]
    curve = []
    for order in orders:
        idx = torch.from_numpy(order)
        Xp, Yp = Xt.index_select(0, idx), Yt.index_select(0, idx)  # this epoch's order
        losses, penalty = [], 0.0
        for start in range(0, n, bs):
            xb, yb = Xp[start:start + bs], Yp[start:start + bs]
            m = xb.shape[0]
            if m != bs:
                opt.param_groups[0]["weight_decay"] = ALPHA / m
            loss = mse(model(xb), yb, reduction="sum") * (0.5 / m)
            if track_penalty:
                with torch.no_grad():
                    penalty += 0.5 * ALPHA * float(sum((w.double() ** 2).sum() for w in weights))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if adam:  # torch divides by sqrt(v_hat) + eps: rescale eps to sklearn's sqrt(v) + eps
                step += 1
                for g in opt.param_groups:
                    g["eps"] = 1e-8 / math.sqrt(1.0 - 0.999**step)
            opt.step()
            losses.append(loss.detach())
        opt.param_groups[0]["weight_decay"] = ALPHA / bs
        per_batch = torch.stack(losses).double().numpy()
        rows = np.full(len(losses), bs, dtype=np.float64)
        rows[-1] = n - bs * (len(losses) - 1)
        curve.append((float(per_batch @ rows), penalty))
    return model, curve


# ---- GEMM peak and floor ------------------------------------------------------------------------


def _best_time(fn, reps):
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gemm_peak(dtype, threads, n=2048, reps=3):
    """GFLOP/s of a large square ``np.matmul`` (n x n) with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rs = np.random.RandomState(1)
    a = rs.standard_normal((n, n)).astype(dtype)
    b = rs.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)
        t = _best_time(lambda: np.matmul(a, b, out=c), reps)
    return 2.0 * n**3 / t / 1e9


def gemm_floor(config, dtype, threads, reps=3):
    """Seconds for one epoch's matrix products alone, at their real shapes (min of ``reps``).

    Per batch of m rows and per layer (fan_in -> fan_out): forward ``A @ W`` (m, fan_in) @
    (fan_in, fan_out); weight gradient ``A.T @ D`` (fan_in, m) @ (m, fan_out); and, above the
    first layer, delta backprop ``D @ W.T`` (m, fan_out) @ (fan_out, fan_in). Written into
    preallocated buffers with ``np.matmul(..., out=)``; the last, shorter batch uses views.
    """
    from threadpoolctl import threadpool_limits

    rs = np.random.RandomState(2)
    bs, n = config.batch_size, config.n_samples
    rows = [bs] * (n // bs) + ([n % bs] if n % bs else [])
    A = [rs.standard_normal((bs, s)).astype(dtype) for s in config.sizes]
    D = [rs.standard_normal((bs, s)).astype(dtype) for s in config.sizes[1:]]
    W = [(rs.standard_normal(p) / np.sqrt(p[0])).astype(dtype) for p in config.pairs]
    Z = [np.empty((bs, s), dtype) for s in config.sizes[1:]]  # forward outputs
    P = [np.empty((bs, s), dtype) for s in config.sizes[:-1]]  # backprop outputs
    dW = [np.empty(p, dtype) for p in config.pairs]
    L = len(W)
    matmul = np.matmul

    def epoch():
        for m in rows:
            for i in range(L):
                matmul(A[i][:m], W[i], out=Z[i][:m])  # (m, fan_out)
            for i in range(L - 1, -1, -1):
                matmul(A[i][:m].T, D[i][:m], out=dW[i])  # (fan_in, fan_out)
                if i > 0:
                    matmul(D[i][:m], W[i].T, out=P[i][:m])  # (m, fan_in)

    with threadpool_limits(limits=threads, user_api="blas"):
        epoch()
        return _best_time(epoch, reps)


# ---- the suite ----------------------------------------------------------------------------------


def _rel(a, b):
    if a is None or b is None:
        return None
    return abs(a - b) / max(abs(b), 1e-300)


class Bench:
    """Measurements of one run, and the tables made from them.

    Each ``measure_*`` method measures and records; :meth:`report` formats what was recorded.
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
        self.floors = {}  # case key -> seconds per epoch
        self.predict = {}  # "config/dtype" -> {impl: seconds per predict of all rows}
        self.startup = {}  # dtype -> {measure: seconds}
        self.memory = []  # rows

    # ---- shared pieces ----

    def data(self, config, dtype):
        key = (config, dtype)
        if key not in self._data:
            self._data[key] = make_data(config, dtype)
        return self._data[key]

    def _threads(self, config, batch):
        return thread_count(config, batch, self.opts.threads)

    def _thread_env(self):
        """``FASTFNN_NUM_THREADS`` set to the override for fastfnn's own fits, if any."""
        return _Env(FASTFNN_NUM_THREADS=str(self.opts.threads) if self.opts.threads else None)

    # ---- GEMM peak ----

    def measure_peak(self, dtype, threads=None):
        threads = threads or os.cpu_count() or 1
        value = gemm_peak(dtype, threads, n=self.opts.peak_size)
        self.peaks.setdefault(dtype, {})[threads] = value
        self.log(f"GEMM peak {dtype} {threads} thread(s): {value:.1f} GFLOP/s")
        return value

    def peak(self, dtype):
        p = self.peaks.get(dtype)
        return max(p.values()) if p else None

    # ---- training ----

    def train_runner(self, case, impl):
        """Prepare one (case, implementation): data, warm-up and the same-work record; returns a
        callable that runs one timed fit of ``case.epochs`` epochs and records its time."""
        X, y = self.data(case.config, case.dtype)
        threads = self._threads(case.config, case.config.batch_size)
        self.cases[case.key] = case
        self.threads[case.key] = threads
        times = self.train.setdefault(case.key, {}).setdefault(impl, [])
        losses = self.losses.setdefault(case.key, {})
        from threadpoolctl import threadpool_limits

        if impl == "torch":
            import torch

            torch.set_num_threads(threads)
            Xt = torch.from_numpy(X)
            Yt = torch.from_numpy(y.reshape(len(y), -1))
            init, orders = sklearn_draws(case.config, case.epochs)
            init = [(W.astype(case.dtype), b.astype(case.dtype)) for W, b in init]
            _, curve = torch_fit(case, Xt, Yt, init, orders[:1], track_penalty=True)
            data_term, penalty = curve[0]
            n, k = case.config.n_samples, case.config.n_outputs
            losses["torch"] = (data_term + penalty) / n
            losses["torch (sklearn's loss)"] = (data_term / k + penalty) / n

            def fit():
                torch.set_num_threads(threads)
                settle()
                t = time.perf_counter()
                torch_fit(case, Xt, Yt, init, orders)
                times.append(time.perf_counter() - t)

            return fit

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

        if impl == "fastfnn":  # load (or compile) the kernels before timing
            with warnings.catch_warnings(), self._thread_env():
                warnings.simplefilter("ignore")
                Est(**estimator_params(case, epochs=1)).fit(X[:256], y[:256])
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

        fastfnn's epoch-1 loss against scikit-learn's and torch's (torch starts from the same
        weights and visits the batches in the same order), relative, to :data:`TOLERANCE` (x10
        for adam). With several outputs scikit-learn reports the mean over outputs where fastfnn
        reports the sum it descends, so there the weights after the fit are compared ("sk W")
        and scikit-learn's loss is checked against torch's computed its way ("sk~torch").
        """
        case = self.cases[key]
        losses = self.losses.get(key, {})
        ff, sk = losses.get("fastfnn"), losses.get("sklearn")
        checks = [("torch", "torch", _rel(ff, losses.get("torch")))]
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

    # ---- GEMM floor ----

    def measure_floor(self, case):
        threads = self._threads(case.config, case.config.batch_size)
        value = gemm_floor(case.config, case.dtype, threads, reps=3 if self.opts.full else 2)
        self.cases[case.key] = case
        self.floors[case.key] = value
        self.log(f"floor {case.key:22s} {value:.4f} s/epoch")
        return value

    # ---- predict ----

    def predict_runner(self, config, dtype, impl):
        """A callable predicting all rows of the config's data (timed and recorded)."""
        from threadpoolctl import threadpool_limits

        X, y = self.data(config, dtype)
        threads = (int(self.opts.threads) if self.opts.threads else
                   blas_threads(np.asarray(config.sizes), min(config.n_samples, 4096)))
        key = f"{config.name}/{dtype}"
        times = self.predict.setdefault(key, {}).setdefault(impl, [])
        case = Case(config, "sgd", dtype, 1)
        if impl == "torch":
            import torch

            init, _ = sklearn_draws(config, 0)
            model = torch_model([(W.astype(dtype), b.astype(dtype)) for W, b in init], dtype)
            Xt = torch.from_numpy(X)

            def predict():
                torch.set_num_threads(threads)
                t = time.perf_counter()
                with torch.inference_mode():
                    model(Xt).numpy()
                times.append(time.perf_counter() - t)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = estimator_class(impl)(**estimator_params(case)).fit(X[:512], y[:512])

            def predict():
                with threadpool_limits(limits=threads, user_api="blas"):
                    t = time.perf_counter()
                    est.predict(X)
                    times.append(time.perf_counter() - t)

        predict()  # warm-up (compiled forward, torch's first call)
        times.clear()
        return predict

    def measure_predict(self, config, dtype, impl, timer=None):
        predict = self.predict_runner(config, dtype, impl)
        (timer or _loop)(predict, 5)
        best = min(self.predict[f"{config.name}/{dtype}"][impl])
        self.log(f"predict {config.name}/{dtype} {impl:8s} {config.n_samples / best:,.0f} rows/s")
        return best

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

    def measure_memory(self, config, dtype, impl):
        """Peak memory of a one-epoch fit, in a fresh process, against its data + parameters +
        workspace. See :func:`memory_child`."""
        spec = dict(config=dataclasses.asdict(config), dtype=dtype, impl=impl,
                    threads=self._threads(config, config.batch_size))
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
                if (os.cpu_count() or 1) > 1:
                    self.measure_peak(dtype)
        if "train" in o.sections:
            for case in o.cases():
                for impl in o.impls():
                    self.measure_train(case, impl)
        if "floor" in o.sections:
            for case in o.cases():
                if case.config.name in FLOOR_CONFIGS and case.solver == "sgd":
                    self.measure_floor(case)
        if "predict" in o.sections:
            for name in o.pick(PREDICT_CONFIGS):
                for dtype in o.dtypes:
                    for impl in o.impls():
                        self.measure_predict(o.config(name), dtype, impl)
        if "startup" in o.sections:
            for dtype in (o.dtypes if o.full else o.dtypes[:1]):
                self.measure_startup(dtype, cold=o.full)
        if "memory" in o.sections:
            for name in o.pick(MEMORY_CONFIGS):
                for impl in o.impls():
                    self.measure_memory(o.config(name), o.dtypes[0], impl)
        return self

    # ---- tables ----

    def all_same_work(self):
        """False if any compared case did different work; True otherwise."""
        return all(self.same_work(k)[0] is not False for k in self.train)

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


# ---- subprocess children ------------------------------------------------------------------------

# Runs in a fresh interpreter; imports nothing of fastfnn before the timed import.
STARTUP_CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
if spec["impl"] == "fastfnn":
    from fastfnn import FNNRegressor as Est
else:
    from sklearn.neural_network import MLPRegressor as Est
t_import = time.perf_counter() - t0
import warnings
import numpy as np
warnings.simplefilter("ignore")
rs = np.random.RandomState(0)
X = rs.standard_normal((spec["n"], spec["f"])).astype(spec["dtype"])
y = np.tanh(X @ rs.standard_normal(spec["f"])).astype(spec["dtype"])
params = dict(hidden_layer_sizes=tuple(spec["hidden"]), solver="sgd", batch_size=spec["batch"],
              learning_rate_init=1e-3, max_iter=1, tol=0.0, n_iter_no_change=2, random_state=0)
times = []
for _ in range(2):
    t = time.perf_counter()
    Est(**params).fit(X, y)
    times.append(time.perf_counter() - t)
print(json.dumps({"import": t_import, "first_fit": times[0], "second_fit": times[1]}))
"""

MEMORY_CHILD = r"""
import json, sys
from fastfnn.bench import memory_child
print(json.dumps(memory_child(json.loads(sys.argv[1]))))
"""


def _rss():
    """(current RSS, peak RSS) of this process in bytes, from /proc (Linux) or getrusage."""
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


def _reset_peak_rss():
    """Reset the peak RSS to the current RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def memory_child(spec):
    """In a fresh process: warm the implementation up on a few rows, then fit one epoch on the
    whole data under tracemalloc, and return the fit's traced peak (NumPy and Python
    allocations) and its RSS peak increase (everything, Numba's and torch's allocations too)."""
    import gc
    import tracemalloc

    from threadpoolctl import threadpool_limits

    cfg = Config(**{**spec["config"], "hidden": tuple(spec["config"]["hidden"])})
    dtype, impl, threads = spec["dtype"], spec["impl"], spec["threads"]
    case = Case(cfg, "sgd", dtype, 1)
    X, y = make_data(cfg, dtype)
    if impl == "torch":
        import torch

        torch.set_num_threads(threads)
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(y.reshape(len(y), -1))
        init, orders = sklearn_draws(cfg, 1)
        init = [(W.astype(dtype), b.astype(dtype)) for W, b in init]
        small = dataclasses.replace(case, config=dataclasses.replace(cfg, n_samples=256))
        torch_fit(small, Xt[:256], Yt[:256], init, [orders[0][orders[0] < 256]])

        def fit():
            torch_fit(case, Xt, Yt, init, orders)
    else:
        Est = estimator_class(impl)
        warnings.simplefilter("ignore")
        Est(**estimator_params(case)).fit(X[:256], y[:256])

        def fit():
            with threadpool_limits(limits=threads, user_api="blas"):
                Est(**estimator_params(case)).fit(X, y)

    gc.collect()
    _malloc_trim()  # freed warm-up memory goes back to the OS, so the fit's pages show in RSS
    exact = _reset_peak_rss()
    rss0, hwm0 = _rss()
    tracemalloc.start()
    fit()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _, hwm = _rss()
    return {"traced_peak": traced_peak, "rss_peak": hwm - (rss0 if exact else hwm0),
            "rss_exact": exact}


def _child(script, spec, env=None):
    out = subprocess.run([sys.executable, "-c", script, json.dumps(spec)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best_of(fn, n=2):
    """Element-wise minimum of ``n`` result dicts."""
    results = [fn() for _ in range(n)]
    return {k: min(r[k] for r in results) for k in results[0]}


# ---- formatting ---------------------------------------------------------------------------------


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


# ---- command ------------------------------------------------------------------------------------


def run(args):
    """``fastfnn bench``: run the selected benchmarks, print the tables; 1 if the
    implementations did not do the same work, else 0."""
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"fastfnn bench: {exc}", file=sys.stderr)
        return 2
    quiet = getattr(args, "quiet", False)
    bench = Bench(opts, log=None if quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    bench.run_all()
    text = bench.report()
    print(text)
    if getattr(args, "markdown", None):
        with open(args.markdown, "w") as f:
            f.write(text)
    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(bench.to_dict(), f, indent=1, default=float)
    return 0 if bench.all_same_work() else 1


def main(argv=None):
    """``python -m fastfnn.bench``: the same as ``fastfnn bench``."""
    parser = argparse.ArgumentParser(prog="fastfnn bench", description=run.__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
