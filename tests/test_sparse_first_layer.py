"""The first layer at the input's sparsity: CSR rows are read by the first layer's products
(forward ``A[0] @ W[0]`` and weight gradient ``A[0].T @ D[0]`` in O(stored entries x width)),
never gathered into a dense A[0].

Oracles: the same network on the same rows as a dense array (the gather and the dense
products), a NumPy reference of the first layer, and the same fit on one and two threads. The
sparse products add a row's nonzero terms in CSR order, the dense ones every column in blocks of
their own (zeros leave a sum unchanged): the results agree to rounding, not bit for bit.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor, trainer
from fastfnn import _kernels as K
from fastfnn.network import DataSource, Network
from fastfnn.optimizers import make_optimizer

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def one_hot_table(n, cards=(30, 7, 3), numeric=2, seed=0):
    """A one-hot table as scikit-learn's encoder leaves it: one 1.0 per text column, then the
    numeric columns (CSR, n rows)."""
    rs = np.random.RandomState(seed)
    blocks = [sp.csr_matrix((np.ones(n), (np.arange(n), rs.randint(0, c, n))), shape=(n, c))
              for c in cards]
    X = sp.hstack(blocks + [sp.csr_matrix(rs.standard_normal((n, numeric)))], format="csr")
    return X, rs.standard_normal((n, 2))


def _network(sizes, dtype, act="relu", seed=1):
    net = Network(sizes, act, "identity", "squared_error", dtype)
    net.theta[:] = np.random.RandomState(seed).uniform(-0.3, 0.3, net.theta.size)
    return net


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_loss_and_gradient_from_csr_equal_the_dense_path(dtype, act):
    X, Y = one_hot_table(157)
    net = _network([X.shape[1], 16, 8, 2], dtype, act)
    loss_d, grad_d = net.loss_grad(X.toarray().astype(dtype), Y, alpha=1e-3)
    grad_d = grad_d.copy()
    loss_s, grad_s = net.loss_grad(X.astype(dtype), Y, alpha=1e-3)
    assert loss_s == pytest.approx(loss_d, rel=RTOL[dtype])
    np.testing.assert_allclose(grad_s, grad_d, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_layer_products_equal_numpy(dtype):
    """csr_matmul_ and csr_matmul_tn_ against NumPy on rows taken in a shuffled order, with
    unsorted indices and a column stored twice in a row (its terms add up)."""
    rs = np.random.RandomState(2)
    X = sp.random(40, 25, density=0.2, format="csr", random_state=rs, dtype=dtype)
    X = sp.csr_matrix((np.r_[X.data, dtype(1.5)], np.r_[X.indices, 3],
                       np.r_[X.indptr[:-1], X.indptr[-1] + 1]), shape=X.shape)  # a repeat
    X.indices[X.indptr[5]:X.indptr[6]] = X.indices[X.indptr[5]:X.indptr[6]][::-1].copy()
    order = rs.permutation(40).astype(np.int64)
    net = Network([25, 12, 1], "relu", "identity", "squared_error", dtype)
    data = DataSource(X, dtype).data(np.zeros((40, 1)), None, order)
    model = net.model(data=data)
    assert model.first_csr
    W = rs.standard_normal((25, 12)).astype(dtype)
    D = rs.standard_normal((17, 12)).astype(dtype)
    dense = X.toarray().astype(np.float64)[order[9:26]]  # the rows at positions 9..25
    out = np.full((17, 12), np.nan, dtype)
    K.csr_matmul_(out, W, model, 9)
    np.testing.assert_allclose(out, dense @ W, rtol=RTOL[dtype], atol=RTOL[dtype])
    grad = np.full((25, 12), np.nan, dtype)
    K.csr_matmul_tn_(grad, D, model, 9)
    np.testing.assert_allclose(grad, dense.T @ D, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_minibatch_training_from_csr_equals_dense_and_ignores_threads(dtype, solver):
    """Batches split into parts, on one thread and on two: the same bits; against the dense
    gather, the same trajectory to rounding."""
    X, Y = one_hot_table(230)
    sizes = [X.shape[1], 24, 8, 2]
    cfg = type("Cfg", (), dict(learning_rate_init=1e-2, learning_rate="constant", momentum=0.9,
                               schedule="constant", max_iter=200, nesterovs_momentum=True,
                               power_t=0.5, beta_1=0.9, beta_2=0.999,
                               epsilon=1e-8))
    order = np.random.RandomState(4).permutation(230).astype(np.int64)
    results = {}
    for rows, parts, threads in (("dense", 2, 1), ("csr", 1, 1), ("csr", 2, 1), ("csr", 2, 2)):
        net = _network(sizes, dtype)
        source = DataSource(X.toarray() if rows == "dense" else X, dtype)
        opt = make_optimizer(solver, net.theta.size, dtype, cfg)
        value, penalty = net.run_batches(source.data(Y, None, order.copy()),
                                         net.workspace(50, parts), opt.rule(), 0, 5, 50, 1e-3,
                                         threads)
        results[rows, parts, threads] = (value + penalty, net.theta.copy())
    loss, theta = results["csr", 2, 1]
    assert results["csr", 2, 2][0] == loss  # the same bits on any thread count
    np.testing.assert_array_equal(results["csr", 2, 2][1], theta)
    for key in (("dense", 2, 1), ("csr", 1, 1)):
        assert results[key][0] == pytest.approx(loss, rel=RTOL[dtype] * 10)
        np.testing.assert_allclose(results[key][1], theta, rtol=RTOL[dtype] * 10,
                                   atol=RTOL[dtype])


def test_csr_prediction_of_a_row_ignores_its_company():
    """Prediction from CSR rows: each row's output is the same bits alone, in any company, on
    one thread or several, and equals the dense rows' output to rounding."""
    X, _ = one_hot_table(3000)
    net = _network([X.shape[1], 16, 2], np.float64)
    full = net.forward(X, threads=2)
    np.testing.assert_array_equal(full, net.forward(X, threads=1))
    for rows in (slice(7, 8), slice(1000, 1013), [2999, 5, 70]):
        np.testing.assert_array_equal(net.forward(X[rows]), full[rows])
    np.testing.assert_allclose(net.forward(X.toarray()), full, rtol=1e-12, atol=1e-14)


def test_a_model_that_reads_other_rows_is_refused():
    X, Y = one_hot_table(20)
    net = _network([X.shape[1], 4, 2], np.float64)
    data = DataSource(X, np.float64).data(Y)
    other = DataSource(X, np.float64).data(Y)  # equal arrays, not the same ones
    with pytest.raises(ValueError, match="other rows"):
        net.check(data, model=net.model(data=other))
    net.check(data, model=net.model(data=data))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parts, threads", [(1, 1), (2, 1), (2, 2)])
def test_sgd_without_momentum_or_l2_steps_only_the_columns_a_batch_touches(dtype, parts,
                                                                             threads):
    """SGD without momentum or L2 on CSR rows skips the first-layer weights of the columns a
    batch stores no entry in: theta the same bits as the full step's, which leaves them as
    they are; the first layer's gradient norm to rounding (summed in another order)."""
    from fastfnn._threads import numba_threads
    from fastfnn.optimizers import SGD

    X, Y = one_hot_table(230, cards=(60, 7, 3))
    sizes = [X.shape[1], 24, 8, 2]
    order = np.random.RandomState(4).permutation(230).astype(np.int64)
    results = {}
    for sparse_update in (True, False):
        net = _network(sizes, dtype)
        data = DataSource(X, dtype).data(Y, None, order)
        groups = net.batch_groups(data, net.workspace(20, parts),
                                  SGD(net.theta.size, dtype, 0.05, momentum=0.0).rule(), 20, 0.0,
                                  threads=threads)
        assert groups[4].sparse_update  # the rule allows it: chosen
        params, rule, work, data, model = groups
        model = model._replace(sparse_update=sparse_update)
        run = K.run_batches_parallel_ if threads > 1 else K.run_batches_
        with numba_threads(threads):
            value, penalty = run(params, rule, work, data, model, 0, 12, 20)
        results[sparse_update] = (value + penalty, net.theta.copy(), work.layer_sq.copy())
    assert results[True][0] == results[False][0]
    np.testing.assert_array_equal(results[True][1], results[False][1])
    np.testing.assert_allclose(results[True][2], results[False][2], rtol=RTOL[dtype])
    assert not np.array_equal(results[True][1], _network(sizes, dtype).theta)  # it trained


def test_the_sparse_step_is_chosen_only_where_exact():
    from fastfnn.optimizers import SGD, Adam

    X, Y = one_hot_table(40)
    net = _network([X.shape[1], 4, 2], np.float64)
    work = net.workspace(20)
    n = net.theta.size
    for rule, alpha, sparse_x, chosen in (
            (SGD(n, np.float64, 0.1, momentum=0.0).rule(), 0.0, True, True),
            (SGD(n, np.float64, 0.1, momentum=0.9).rule(), 0.0, True, False),
            (SGD(n, np.float64, 0.1, momentum=0.0).rule(), 1e-4, True, False),
            (SGD(n, np.float64, 0.1, momentum=0.0).rule(), 0.0, False, False),
            (Adam(n, np.float64).rule(), 0.0, True, False)):
        data = DataSource(X if sparse_x else X.toarray(), np.float64).data(Y)
        model = net.batch_groups(data, work, rule, 20, alpha)[4]
        assert model.sparse_update is chosen


def test_an_epoch_counts_a_wide_csr_first_layer_at_its_sparsity(monkeypatch):
    """A one-hot layer of 4,000 columns is 8 stored entries a row, not 4,000 columns of dense
    work: an epoch runs its batches in a few compiled calls (counted as dense work, each batch
    would take a call of its own), and the weights are those of one call per batch, bit for
    bit (the calls only cut the epoch's batches into chunks)."""
    X, Y = one_hot_table(2000, cards=(3000, 900, 93), numeric=5)
    y = Y[:, 0]
    calls = {"n": 0}
    run_batches = Network.run_batches

    def counted(*args, **kwargs):
        calls["n"] += 1
        return run_batches(*args, **kwargs)

    monkeypatch.setattr(Network, "run_batches", counted)
    fitted = {}
    for per_call in ("default", "one batch"):
        if per_call == "one batch":
            monkeypatch.setattr(trainer, "FLOPS_PER_CALL", 1.0)
        calls["n"] = 0
        with pytest.warns(ConvergenceWarning):
            est = FNNRegressor(hidden_layer_sizes=(64, 64), max_iter=2, random_state=0,
                               batch_size=200).fit(X, y)
        fitted[per_call] = (calls["n"], est)
    batches = 2 * (2000 // 200)
    assert fitted["one batch"][0] == batches
    assert fitted["default"][0] == 2  # one call an epoch: 10 batches of ~9 MFLOP (update too)
    for a, b in zip(fitted["default"][1].coefs_, fitted["one batch"][1].coefs_):
        np.testing.assert_array_equal(a, b)
    assert fitted["default"][1].loss_curve_ == fitted["one batch"][1].loss_curve_
