"""The ``fastfnn gradcheck`` command: the per-layer gradient check table."""

from .options import CLIError, hidden_sizes, number


def add_parser(sub):
    p = sub.add_parser(
        "gradcheck", help="check the back-propagated gradients against finite differences",
        description="For each hidden activation, each (loss, output activation) pair and the "
                    "derivation's own network (logistic everywhere, squared error), compare the "
                    "delta-recursion gradients of a small random float64 network (random data "
                    "and sample weights) with central finite differences. Prints the largest "
                    "relative error ||g - g_fd|| / (||g|| + ||g_fd||) per layer (over its W "
                    "and b); exits 1 if any exceeds --tol.")
    p.add_argument("--tol", type=number(float, 0, low_open=True), default=1e-7,
                   help="largest relative error allowed (default 1e-7)")
    p.add_argument("--eps", type=number(float, 0, low_open=True), default=1e-6,
                   help="finite-difference step, 1.5e-12 to 0.1 (default 1e-6)")
    p.add_argument("--alpha", type=number(float, 0), default=0.1,
                   help="L2 penalty included in the loss (default 0.1)")
    p.add_argument("--sizes", type=hidden_sizes, default=(3, 5, 4, 2), metavar="3,5,4,2",
                   help="layer widths, input to output (default 3,5,4,2)")
    p.add_argument("--samples", type=number(int, 1), default=8, metavar="N",
                   help="rows of random data (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random network and data")
    p.set_defaults(func=cmd_gradcheck)


def _gradcheck_targets(rng, loss, out, n, k):
    import numpy as np

    if loss == "poisson":
        return rng.poisson(1.0, (n, k)).astype(float)
    if loss == "binary_log_loss":
        return rng.randint(0, 2, (n, k)).astype(float)
    if loss == "log_loss":
        return np.eye(k)[rng.randint(0, k, n)]
    low, high = {"logistic": (0, 1), "tanh": (-1, 1), "relu": (0, 2), "exp": (0.5, 2)}.get(
        out, (-2, 2))
    return rng.uniform(low, high, (n, k))


def cmd_gradcheck(args):
    """``fastfnn gradcheck``: the per-layer gradient check table; exit 1 on any failure."""
    import numpy as np

    from fastfnn import check_gradients, gradcheck_cases

    sizes = list(args.sizes)
    if len(sizes) < 2 or sizes[-1] < 2:
        raise CLIError("--sizes needs an input and an output layer, the output at least 2 wide "
                       "(softmax)")
    rng = np.random.RandomState(args.seed)
    cases = gradcheck_cases()
    rows = []  # every case checked before the table starts: a refused option prints nothing
    for loss, hidden, out in cases:
        coefs = [rng.uniform(-1, 1, (a, b)) * np.sqrt(3.0 / a) for a, b in zip(sizes, sizes[1:])]
        intercepts = [rng.uniform(-0.5, 0.5, b) for b in sizes[1:]]
        X = rng.standard_normal((args.samples, sizes[0]))
        Y = _gradcheck_targets(rng, loss, out, args.samples, sizes[-1])
        # random weights: sums such as absolute_error's mean sign(r) are never exactly 0 (a
        # zero gradient against finite-difference noise would score a relative error of 1)
        weights = rng.uniform(0.5, 1.5, args.samples)
        errors = check_gradients((coefs, intercepts), X, Y, args.eps, sample_weight=weights,
                                 loss=loss, activation=hidden, out_activation=out,
                                 alpha=args.alpha,
                                 per_layer=True)
        rows.append((f"{hidden}, {loss} + {out}", [max(e) for e in errors]))
    print("fastfnn gradcheck: delta-recursion gradients vs central finite differences")
    print(f"network {'-'.join(map(str, sizes))}, {args.samples} samples (random weights), "
          f"alpha {args.alpha:g}, eps {args.eps:g}, float64, seed {args.seed}; "
          f"tolerance {args.tol:g}")
    print("largest relative error ||g - g_fd|| / (||g|| + ||g_fd||) of each layer's W and b\n")
    width = 42
    print(f"{'case (hidden activation, loss + output)':<{width}}"
          + "".join(f"{'layer ' + str(i + 1):>10}" for i in range(len(sizes) - 1)))
    failed = 0
    for i, (name, worst) in enumerate(rows):
        ok = all(e <= args.tol for e in worst)  # NaN fails
        failed += not ok
        name += " *" if i == len(rows) - 1 else ""
        print(f"{name:<{width}}" + "".join(f"{e:>10.1e}" for e in worst)
              + ("   ok" if ok else "   FAIL"))
    print("* the derivation's network: logistic everywhere, squared error")
    print(f"\n{len(cases) - failed} of {len(cases)} checks within {args.tol:g}"
          + ("" if not failed else f"; {failed} FAILED"))
    return 1 if failed else 0
