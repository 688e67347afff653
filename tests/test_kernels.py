"""Numba kernels against their NumPy twins (activations.py / losses.py), float32 and float64.

Oracle: the plain-NumPy reference twins, run with NumPy floating-point errors raised, on random
inputs and on extreme ones (|z| up to 1e4).
"""

import warnings

import numpy as np
import pytest

from fastfnn import activations, losses
from fastfnn.activations import ACTIVATIONS

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
from cases import HIDDEN_ACTS  # noqa: E402

ALL_ACTS = HIDDEN_ACTS + ["softmax", "exp"]
ELEMENTWISE_ACTS = [a for a in ALL_ACTS if a != "softmax"]

from cases import PAIRS as WRITTEN_PAIRS  # noqa: E402  (written out, not imported)
# ...and as losses.py declares them (checked equal below).
PAIRS = [("squared_error", o) for o in losses.SQUARED_ERROR_OUTPUTS] + [
    (loss, out) for loss, out in losses.CANONICAL_OUTPUT.items() if loss != "squared_error"
]
PAIR_PARAMS = [pytest.param(loss, out, id=f"{loss}+{out}") for loss, out in PAIRS]

# Values that stress exp: over/underflow limits of both dtypes, and far beyond.
EXTREME_VALUES = np.array(
    [-1e4, -1e3, -745.2, -710.0, -104.0, -88.8, -50.0, -20.0, -1e-30, 0.0,
     1e-30, 20.0, 50.0, 88.8, 104.0, 710.0, 745.2, 1e3, 1e4]
)


def tol(dtype):
    """Comparison tolerance for kernel vs twin (fastmath may differ from NumPy by a few ulp)."""
    return dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


def random_z(dtype, n=37, k=5, scale=3.0, seed=0):
    rng = np.random.RandomState(seed)
    return (scale * rng.standard_normal((n, k))).astype(dtype), rng.standard_normal(k).astype(dtype)


EXTREME_BIAS = np.array([-1e4, 1e3, -50.0, 0.0, 710.0])


def extreme_z(dtype, bias=False):
    """Every extreme value in every column position, rows of mixed sign; zero bias, or one
    that is extreme itself (so that Z + b, not Z, decides a row's maximum)."""
    v = EXTREME_VALUES
    k = 5
    rows = [np.roll(v, -s)[:k] for s in range(len(v))]  # (19, 5) sliding windows of v
    rows += [np.full(k, x) for x in (-1e4, 1e4, 0.0)]  # all-equal rows (softmax: uniform)
    rows += [np.array([1e4, -1e4, 0.0, 1e4, -1e4])]  # ties at the maximum
    Z = np.array(rows)
    with np.errstate(over="ignore"):
        Z = Z.astype(dtype)
    b = EXTREME_BIAS if bias else np.zeros(k)
    return np.ascontiguousarray(Z), b.astype(dtype)


BIASES = [pytest.param(False, id="zero_bias"), pytest.param(True, id="extreme_bias")]


@pytest.fixture(autouse=True)
def _numpy_errors_raise():
    """NumPy overflow / invalid / divide-by-zero raise inside every test unless a test allows it.

    Underflow to zero is the correct result of exp(-large) and stays allowed.
    """
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        yield


def apply_kernel(Z, b, name):
    out = Z.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        activations.bias_act_(out, b, name)
    return out


# ---- activations ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_ACTS)
def test_bias_act_equals_twin_random(name, dtype):
    Z, b = random_z(dtype)
    got = apply_kernel(Z, b, name)
    want = ACTIVATIONS[name].reference(Z + b)
    assert got.dtype == dtype and want.dtype == dtype
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_ACTS)
def test_bias_act_equals_twin_extreme(name, dtype, bias):
    Z, b = extreme_z(dtype, bias)
    got = apply_kernel(Z, b, name)
    if name == "exp":
        with np.errstate(over="ignore"):  # exp(1e4) = inf is the right answer
            want = ACTIVATIONS[name].reference(Z + b)
    else:
        want = ACTIVATIONS[name].reference(Z + b)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, **tol(dtype))


def test_bias_act_adds_the_bias_per_column():
    """Z + b broadcasts b along rows (b has one entry per output unit)."""
    Z = np.zeros((3, 4))
    b = np.array([1.0, -2.0, 3.0, -4.0])
    np.testing.assert_array_equal(apply_kernel(Z, b, "identity"), np.tile(b, (3, 1)))


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["logistic", "softmax"])
def test_probability_outputs_are_stable_at_extremes(name, dtype, bias):
    """logistic / softmax for |z| up to 1e4: no warnings, no NaN, values in [0, 1], rows sum
    to 1; the NumPy twins run with overflow raising (the fixture)."""
    Z, b = extreme_z(dtype, bias)
    got = apply_kernel(Z, b, name)
    want = ACTIVATIONS[name].reference(Z + b)  # raises FloatingPointError on overflow
    assert np.isfinite(got).all() and np.isfinite(want).all()
    assert ((got >= 0) & (got <= 1)).all()
    if name == "softmax":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)
    else:
        z = Z + b
        big = np.abs(z) >= 1e3
        np.testing.assert_array_equal(got[big], (z[big] > 0).astype(dtype))  # saturates exactly
        np.testing.assert_array_equal(got[z == 0], 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one_random(dtype):
    Z, b = random_z(dtype, scale=30.0)
    got = apply_kernel(Z, b, "softmax")
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("name", ELEMENTWISE_ACTS)
def test_mul_derivative_equals_twin(name, extreme, dtype):
    """D * act'(z) with act' written in terms of A = act(z) (A is a real output of act)."""
    Z, b = extreme_z(dtype) if extreme else random_z(dtype)
    with np.errstate(over="ignore"):
        A = ACTIVATIONS[name].reference(Z + b)
    if name == "exp":  # keep exp's derivative finite: rows where exp overflowed are dropped
        A = np.ascontiguousarray(A[np.isfinite(A).all(axis=1)])
    rng = np.random.RandomState(1)
    D = rng.standard_normal(A.shape).astype(dtype)
    got = D.copy()
    if ACTIVATIONS[name].keeps_z:  # gelu, silu: the derivative needs z itself
        Zb = np.ascontiguousarray((Z + b).astype(dtype))
        activations.mul_derivative_(got, A, name, Z=Zb)
        want = D * ACTIVATIONS[name].reference_derivative_z(Zb)
    else:
        activations.mul_derivative_(got, A, name)
        want = D * ACTIVATIONS[name].reference_derivative(A)
    assert got.dtype == dtype and want.dtype == dtype
    np.testing.assert_allclose(got, want, **tol(dtype))


def test_relu_derivative_zero_exactly_where_unit_is_off():
    A = np.array([[0.0, 1e-300, 2.0], [0.0, 0.0, 5e-324]])
    D = np.full_like(A, 7.0)
    activations.mul_derivative_(D, A, "relu")
    np.testing.assert_array_equal(D, [[0.0, 7.0, 7.0], [0.0, 0.0, 7.0]])


def test_softmax_has_no_elementwise_derivative():
    D = np.ones((2, 3))
    with pytest.raises(ValueError, match="softmax"):
        activations.mul_derivative_(D, D.copy(), "softmax")


# ---- losses --------------------------------------------------------------------------------


def loss_problem(loss, out, dtype, n=41, k=3, extreme=False, seed=2):
    """Outputs A = out(Z) for random (or extreme) Z and targets valid for ``loss``."""
    rng = np.random.RandomState(seed)
    if extreme:
        Z, b = extreme_z(dtype)
        if out == "exp":
            Z = np.clip(Z, -60, 20).astype(dtype)  # finite exp outputs; exp(-60) ~ 1e-26
        n, k = Z.shape
    else:
        Z, b = random_z(dtype, n=n, k=k, scale=2.0, seed=seed)
    with np.errstate(over="ignore"):
        A = ACTIVATIONS[out].reference(Z + b)
    if loss in ("squared_error", "huber", "absolute_error"):
        Y = rng.standard_normal((n, k))
    elif loss == "poisson":
        Y = rng.poisson(1.5, (n, k)).astype(float)  # includes zeros
    elif loss == "binary_log_loss":
        Y = (rng.uniform(size=(n, k)) < 0.5).astype(float)
    else:
        Y = np.eye(k)[rng.randint(k, size=n)]  # one-hot rows
    sw = rng.uniform(0.2, 3.0, n).astype(dtype)
    return np.ascontiguousarray(A), Y.astype(dtype), sw


def test_allowed_pairs_are_the_written_ones():
    assert sorted(PAIRS) == sorted(WRITTEN_PAIRS)
    for loss, out in WRITTEN_PAIRS:
        losses.check_pair(loss, out)


@pytest.mark.parametrize(
    "loss, out",
    [("poisson", "identity"), ("binary_log_loss", "softmax"), ("log_loss", "logistic"),
     ("squared_error", "softmax"), ("hinge", "identity")],
    ids=lambda v: v,
)
def test_check_pair_rejects_unsupported_pairs(loss, out):
    with pytest.raises(ValueError, match="loss"):
        losses.check_pair(loss, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("loss, out", PAIR_PARAMS)
def test_loss_value_equals_twin(loss, out, extreme, weighted, dtype):
    A, Y, sw = loss_problem(loss, out, dtype, extreme=extreme)
    sw = sw if weighted else None
    got = losses.loss_value(A, Y, sw, loss)
    want = losses.reference_loss_value(A, Y, sw, loss)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["binary_log_loss", "log_loss"])
def test_log_losses_clip_saturated_probabilities(loss, dtype):
    """A probability of exactly 0 or 1 (logistic/softmax of |z| = 1e4) gives a finite loss,
    clipped at the dtype's eps, as scikit-learn."""
    A = np.array([[0.0, 1.0], [1.0, 0.0]], dtype)
    Y = np.array([[1.0, 0.0], [1.0, 0.0]], dtype)
    got = losses.loss_value(A, Y, None, loss)
    want = losses.reference_loss_value(A, Y, None, loss)
    eps = np.finfo(dtype).eps
    # row 0 pays -log(eps) (plus -log(eps) again for the binary loss's second column); row 1 ~0
    n_terms = 2 if loss == "binary_log_loss" else 1
    assert np.isfinite(got)
    np.testing.assert_allclose(got, n_terms * -np.log(eps) / 2, rtol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("extreme", [False, True], ids=["random", "extreme"])
@pytest.mark.parametrize("loss, out", PAIR_PARAMS)
def test_output_delta_equals_twin(loss, out, extreme, weighted, dtype):
    A, Y, sw = loss_problem(loss, out, dtype, extreme=extreme)
    sw = sw if weighted else None
    got = losses.output_delta(A, Y, sw, loss, out)
    want = losses.reference_output_delta(A, Y, sw, loss, out)
    assert got.dtype == dtype and want.dtype == dtype
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_unweighted_equals_unit_weights(dtype):
    """The unweighted loss and delta are the weighted ones with all weights 1."""
    A, Y, _ = loss_problem("squared_error", "tanh", dtype)
    ones = np.ones(A.shape[0], dtype)
    assert losses.loss_value(A, Y, None, "squared_error") == pytest.approx(
        losses.loss_value(A, Y, ones, "squared_error"), rel=1e-14)
    np.testing.assert_array_equal(losses.output_delta(A, Y, None, "squared_error", "tanh"),
                                  losses.output_delta(A, Y, ones, "squared_error", "tanh"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_poisson_loss_at_zero_mean_equals_twin(dtype):
    """exp(z) underflows to exactly 0 for z < -745 (float64) / -104 (float32); with y > 0 the
    Poisson loss is then +inf."""
    A = np.array([[0.0, 1.0]], dtype)
    Y = np.array([[2.0, 1.0]], dtype)
    want = losses.reference_loss_value(A, Y, None, "poisson")
    assert want == np.inf
    assert losses.loss_value(A, Y, None, "poisson") == want


# ---- views of the flat buffers ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_views_are_numpys_reshaped_slices(dtype):
    """The kernels' layer views (built without reshape) are NumPy's slice-and-reshape of the
    buffer: the same elements, shape and strides, and writes reach the buffer."""
    from fastfnn import _kernels as K

    units = np.array([3, 5, 2], np.int64)
    m = 4
    buf = np.arange(m * units.sum(), dtype=dtype)
    offset = 0
    for i, k in enumerate(units):
        view = K.layer_view(buf, units, m, i)
        expected = buf[offset:offset + m * k].reshape(m, k)
        assert view.shape == expected.shape and view.strides == expected.strides
        np.testing.assert_array_equal(view, expected)
        assert np.shares_memory(view, buf)
        offset += m * k
    K.layer_view(buf, units, m, 1)[0, 0] = -1
    assert buf[m * units[0]] == -1


@pytest.mark.parametrize("rows, units", [(5, [3, 5, 2]), (4, [3, 5, 3])])
def test_a_view_past_its_buffer_is_an_error_not_a_read_out_of_bounds(rows, units):
    from fastfnn import _kernels as K

    buf = np.zeros(4 * 10)  # holds 4 rows of layers of 3, 5 and 2 units
    with pytest.raises(IndexError, match="outside its buffer"):
        K.layer_view(buf, np.array(units, np.int64), rows, 2)


def test_borrowed_groups_see_the_same_memory_without_a_reference_count():
    """``borrowed`` (the compiled loops' groups seen without reference counts): every array of
    a nested group keeps its data, shape and strides, writes through it reach the owner, its
    meminfo (the count the loops would update atomically) is NULL, and scalars pass as they
    are. Oracle: the owning NumPy arrays, and the meminfo pointer read back in LLVM."""
    from typing import NamedTuple

    import numba
    from numba import types
    from numba.extending import intrinsic

    from fastfnn import _kernels as K

    @intrinsic
    def counted(typingctx, array):
        def codegen(context, builder, sig, args):
            meminfo = context.make_array(sig.args[0])(context, builder, args[0]).meminfo
            return builder.icmp_unsigned("!=", meminfo, meminfo.type(None))

        return types.boolean(array), codegen

    class Group(NamedTuple):
        W: np.ndarray
        scale: float
        inner: tuple

    @numba.njit
    def write_borrowed(group):
        owned = counted(group.W) and counted(group.inner[0])
        group = K.borrowed(group)
        group.W[1, 1] = group.scale
        group.inner[0][:] = group.inner[1]
        return owned, counted(group.W), counted(group.inner[0]), group.W.strides, group.W.sum()

    W, v = np.arange(12.0).reshape(3, 4)[:, ::2], np.zeros(5, np.float32)
    owned, W_counted, v_counted, strides, total = write_borrowed(Group(W, 7.5, (v, 3)))
    assert owned and not W_counted and not v_counted
    assert W[1, 1] == 7.5 and strides == W.strides and total == W.sum()
    np.testing.assert_array_equal(v, np.full(5, 3, np.float32))
