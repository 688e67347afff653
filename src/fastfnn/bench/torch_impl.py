"""The PyTorch eager twin of a fit and of a network; torch is imported inside the functions only."""

import math

import numpy as np

from .cases import ALPHA, LR, MOMENTUM


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
