"""The update in one sweep over fixed blocks of parameters (finished gradient, AdamW's decay and
the rule's step per parameter), on one thread or on Numba's threads.

Oracles: the two-pass path (the gradient finished over every parameter, then the step: what
clipping runs, here with a norm no gradient reaches, so nothing is clipped) gives the same bits
of theta and of the rule's state; the parallel sweep gives the same bits as the serial one.
"""

import numpy as np
import pytest

from fastfnn import _kernels as K
from fastfnn._threads import numba_threads
from fastfnn.network import DataSource, Network
from fastfnn.optimizers import make_optimizer

DTYPES = [np.float64, np.float32]
SIZES = [70, 65, 40, 3]  # layers of 3, 2 and 1 step blocks (2048), the last of each partial


def _cfg(solver):
    return type("Cfg", (), dict(learning_rate_init=1e-2, learning_rate="constant", momentum=0.9,
                                schedule="constant", max_iter=200, nesterovs_momentum=True,
                                power_t=0.5, beta_1=0.9,
                                beta_2=0.999, epsilon=1e-8, alpha=1e-3,
                                weight_decay=1e-2, l2=1e-3))


def _train(dtype, solver, max_grad_norm=None, parallel_step=False, parts=1, threads=1):
    rs = np.random.RandomState(7)
    n = 230
    X = rs.standard_normal((n, SIZES[0])).astype(dtype)
    Y = rs.standard_normal((n, SIZES[-1])).astype(dtype)
    net = Network(SIZES, "relu", "identity", "squared_error", dtype)
    net.theta[:] = rs.uniform(-0.3, 0.3, net.theta.size)
    opt = make_optimizer(solver, net.theta.size, dtype, _cfg(solver))
    rule = opt.rule()
    data = DataSource(X, dtype).data(Y, None, rs.permutation(n).astype(np.int64))
    work = net.workspace(50, parts)
    alpha = 0.0 if solver == "adamw" else 1e-3
    params, rule, work, data, model = net.batch_groups(data, work, rule, 50, alpha,
                                                       max_grad_norm=max_grad_norm)
    model = model._replace(parallel_step=parallel_step)
    with numba_threads(threads):
        value, penalty = K.run_batches_(params, rule, work, data, model, 0, 5, 50)
    state = [np.array(a, copy=True) for a in rule if isinstance(a, np.ndarray)]
    return value + penalty, net.theta.copy(), state, work.layer_sq.copy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw"])
def test_one_sweep_equals_the_two_pass_path(dtype, solver):
    loss, theta, state, norms = _train(dtype, solver)
    loss2, theta2, state2, norms2 = _train(dtype, solver, max_grad_norm=1e30)
    np.testing.assert_array_equal(theta, theta2)
    for a, b in zip(state, state2):
        np.testing.assert_array_equal(a, b)
    # The sums of squares (loss's L2 term, gradient norms) are added in another order.
    assert loss == pytest.approx(loss2, rel=1e-12 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(norms, norms2, rtol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("parts", [1, 2])
def test_the_sweep_on_two_threads_gives_the_same_bits(dtype, solver, parts):
    one = _train(dtype, solver, parts=parts)
    two = _train(dtype, solver, parallel_step=True, parts=parts, threads=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    for a, b in zip(one[2], two[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[3], two[3])


def test_step_blocks_cover_every_parameter_once():
    # SGD at rate 1 from theta = 0 with gradient 1: a block's step writes -1 exactly on its
    # parameters, and a block of weights (decay) sums its gradient's squares (its length).
    sizes = np.array(SIZES, dtype=np.int64)
    n_w = int(np.sum(sizes[:-1] * sizes[1:]))
    n = n_w + int(np.sum(sizes[1:]))
    ends = np.cumsum([0] + [a * b for a, b in zip(SIZES[:-1], SIZES[1:])] + [n - n_w])
    expected = [(b0, min(b0 + K.STEP_BLOCK, hi)) for lo, hi in zip(ends[:-1], ends[1:])
                for b0 in range(lo, hi, K.STEP_BLOCK)]  # W[0]: 4550, W[1]: 2600, W[2]: 120, b
    blocks = K.n_step_blocks(sizes, n)
    assert blocks == len(expected) == 7
    h = (1.0, 0.0, 0.0, 0.0, 1.0)
    for k, (lo, hi) in enumerate(expected):
        theta, grad, velocity, sums = np.zeros(n), np.ones(n), np.zeros(n), np.zeros((blocks, 2))
        K.step_range_(theta, grad, np.zeros((0, n)), velocity, velocity, sums, sizes, k, k + 1,
                      False, 0.0, 1.0, h, False, False)
        np.testing.assert_array_equal(np.flatnonzero(theta), np.arange(lo, hi))
        np.testing.assert_array_equal(sums[:, 1], np.where(np.arange(blocks) == k,
                                                           hi - lo if hi <= n_w else 0, 0))


def test_thread_shares_are_runs_of_whole_blocks_alike_in_parameters():
    # Oracle: the blocks' parameter counts listed in NumPy. Shares of the blocks from `first`
    # on must follow one another, cover them once, and each hold its even part of their
    # parameters to within one block.
    sizes = np.array(SIZES, dtype=np.int64)
    n_w = int(np.sum(sizes[:-1] * sizes[1:]))
    n = n_w + int(np.sum(sizes[1:]))
    ends = np.cumsum([0] + [a * b for a, b in zip(SIZES[:-1], SIZES[1:])] + [n - n_w])
    counts = np.array([min(b0 + K.STEP_BLOCK, hi) - b0 for lo, hi in zip(ends[:-1], ends[1:])
                       for b0 in range(lo, hi, K.STEP_BLOCK)])
    for first in range(len(counts)):
        before = np.concatenate([[0], np.cumsum(counts[first:])])[:-1]  # from block `first`
        total = counts[first:].sum()
        for T in range(1, 5):
            starts = [K.share_start(sizes, n, first, t, T) for t in range(T + 1)]
            # a share starts at the first block with t / T of the parameters before it
            assert starts == [first + int(np.searchsorted(before, total * t / T))
                              for t in range(T)] + [len(counts)], (first, T)
            share = [counts[a:b].sum() for a, b in zip(starts[:-1], starts[1:])]
            assert all(abs(s - total / T) <= K.STEP_BLOCK for s in share), (first, T, share)
