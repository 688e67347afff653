"""What the suite runs: constants, the configs, the one table of targets, cases and options, the
data, the thread count and the estimators' shared parameters (and scikit-learn's random draws)."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from .._parts import training_parts, training_threads

SEED = 0
LR = 1e-3
MOMENTUM = 0.9
ALPHA = 1e-4
# Training: fastfnn, the straightforward compiled reference (sgd only), scikit-learn, torch.
IMPLS = ("fastfnn", "reference", "sklearn", "torch")
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
        """Training flops per sample: the forward and weight-gradient products of every layer
        (2 fan_in fan_out each), the delta recursion's of every layer but the first (no
        implementation computes a delta of the input)."""
        (a0, b0), pairs = self.pairs[0], self.pairs
        return 6 * sum(a * b for a, b in pairs) - 2 * a0 * b0

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
FLOOR_CONFIGS = ("medium", "wide")
MEMORY_CONFIGS = ("small", "medium", "wide")
# Epochs per fit in the full suite (scikit-learn is slow on medium and wide).
FULL_EPOCHS = {"tiny": 3, "small": 3, "medium": 2, "wide": 2, "deep": 3}
QUICK_EPOCHS = 2
ROUNDS = {"fastfnn": 3, "reference": 3, "sklearn": 2, "torch": 3}
# Predict: a (64, 64) regressor on 20 features, fitted briefly on PREDICT_FIT_ROWS rows; each row
# count is timed as the best of PREDICT_REPEATS medians of that many calls; the last is throughput.
PREDICT_CONFIG = Config("predict", 100_000, 20, (64, 64), 1, 64)
PREDICT_FIT_ROWS = 2000
PREDICT_CALLS = {1: 2000, 10: 1000, 100: 500, 1_000: 200, 10_000: 20, 100_000: 1}
PREDICT_REPEATS = 5
PREDICT_CASE = "(64, 64) float64"


@dataclass(frozen=True)
class Target:
    """One performance target: the measured ``measure`` of ``case`` ``op`` ``bound``."""

    measure: str
    case: str
    op: str  # ">=", ">" or "<="
    bound: float
    unit: str = "x"

    def met(self, value):
        return {">=": value >= self.bound, ">": value > self.bound,
                "<=": value <= self.bound}[self.op]

    @property
    def text(self):
        return f"{self.op} {self.bound:g}{self.unit}"


_SPEED = {"tiny": (40, 40), "small": (6, 9), "deep": (5, 7), "medium": (2.3, 2.3)}
# Against the plain compiled loop: tiny, whose batches are mostly fixed costs, 1.3x; wide,
# whose products are GEMM-bound in both, at least the loop; the others 1.15x.
_VS_REFERENCE = {"tiny": 1.3, "small": 1.15, "deep": 1.15, "medium": 1.15, "wide": 1.0}
# Every target of the suite, in one table. Training: sgd, samples/s ratios in the same run
# ("% of GEMM peak": GFLOP/s over the peak measured at the fit's thread count); "first `fastfnn
# fit`": wall time of the command on the bundled data, fresh process, empty Numba cache.
TARGETS = (
    *(Target("vs sklearn", f"{c}/{d}", ">=", v[j])
      for c, v in _SPEED.items() for j, d in enumerate(DTYPES)),
    Target("% of GEMM peak", "wide/float64", ">=", 85, "%"),
    Target("% of GEMM peak", "wide/float32", ">=", 75, "%"),
    *(Target("vs reference", f"{c}/{d}", ">=", v) for c, v in _VS_REFERENCE.items()
      for d in DTYPES),
    *(Target("vs torch", f"{c}/{d}", ">", 1) for c in CONFIGS for d in DTYPES),
    Target("predict 1 row vs sklearn", PREDICT_CASE, ">=", 10),
    Target("predict 1 row", PREDICT_CASE, "<=", 25, " us"),
    *(Target(f"predict {rows} rows vs sklearn", PREDICT_CASE, ">=", 2)
      for rows in ("1k", "10k", "100k")),
    Target("first `fastfnn fit`", "after install", "<=", 8, " s"),
    Target("peak RSS / sklearn's", "wide", "<=", 1),
)
# Same-work tolerances on the epoch-1 loss (relative); torch runs its own GEMMs (and sums in
# another order), hence looser. x10 for adam, whose m / sqrt(v) amplifies rounding.
TOLERANCE = {
    ("sklearn", "float64"): 1e-6,
    ("sklearn", "float32"): 1e-3,
    ("reference", "float64"): 1e-6,
    ("reference", "float32"): 1e-3,
    ("torch", "float64"): 1e-5,
    ("torch", "float32"): 1e-3,
}
TRAIN_COLUMNS = (
    "config", "solver", "dtype", "epochs", "threads", "fastfnn s/epoch", "reference s/epoch",
    "sklearn s/epoch", "torch s/epoch", "fastfnn samples/s", "vs sklearn", "vs reference",
    "vs torch", "epoch/floor", "same work",
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

    def impls(self, solver=None):
        """Implementations of a training case with ``solver`` (the reference runs sgd only), or
        with None those of predict and memory (fastfnn, scikit-learn, torch)."""
        out = [i for i in IMPLS if i != "torch" or (self.torch and torch_available())]
        return tuple(i for i in out if i != "reference" or solver == "sgd")

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


def _names(text, option, known, default):
    """The comma-separated names of ``option`` (``default`` when not given), each known, each
    once (ValueError otherwise)."""
    if text is None:
        return default
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",")))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"Unknown {option} {unknown}; choose from {list(known)} "
                         "(comma-separated).")
    return names


def _count(args, option, default=None):
    """The positive integer of ``--option`` (``default`` when not given; ValueError when it
    is not positive)."""
    value = getattr(args, option.replace("-", "_"), None)
    if value is None:
        return default
    if value < 1:
        raise ValueError(f"--{option} must be a positive integer, got {value}.")
    return value


def options_from_args(args):
    """:class:`Options` from an ``argparse.Namespace`` made by :func:`add_arguments`;
    ValueError naming the option that is not valid."""
    full = bool(getattr(args, "full", False))
    configs = _names(getattr(args, "configs", None), "config(s)", CONFIGS,
                     tuple(CONFIGS) if full else QUICK_CONFIGS)
    dtype = getattr(args, "dtype", "both") or "both"
    sections = _names(getattr(args, "sections", None), "section(s)", SECTIONS,
                      SECTIONS if full else ("train", "predict", "startup"))
    return Options(
        configs=configs,
        dtypes=DTYPES if dtype == "both" else (dtype,),
        sections=sections,
        full=full,
        epochs=_count(args, "epochs"),
        rounds=_count(args, "rounds"),
        samples=_count(args, "samples"),
        threads=_count(args, "threads"),
        torch=not getattr(args, "no_torch", False),
        peak_size=_count(args, "peak-size", 2048),
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


def thread_count(config, dtype, override=None):
    """Threads for one problem in ``dtype``: ``override``, else fastfnn's own choice
    (``_parts.training_threads`` of ``_parts.training_parts``)."""
    if override:
        return int(override)
    sizes = np.asarray(config.sizes, dtype=np.int64)
    parts = training_parts(sizes, config.batch_size, dtype)
    return int(training_threads(sizes, config.batch_size, dtype, parts))


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
