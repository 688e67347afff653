"""The one-hot table (sparse CSR input, adam): fastfnn against scikit-learn on the same matrix,
interleaved fits, and the case's physical limit (``fastfnn.bench.onehot``). The row is printed
(run with ``-s``) and kept in the benchmark's extra_info; nothing is asserted about time."""

import pytest

from fastfnn.bench.onehot import run_onehot


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_onehot(benchmark, request, dtype):
    if request.config.getoption("bench_dtype") not in ("both", dtype):
        pytest.skip(f"--bench-dtype leaves {dtype} out")
    rounds = request.config.getoption("bench_rounds") or 3
    row = benchmark.pedantic(run_onehot, kwargs=dict(dtype=dtype, rounds=rounds), rounds=1,
                             iterations=1)
    benchmark.group = "one-hot"
    benchmark.extra_info.update(row)
    print("\n" + " | ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}"
                            for k, v in row.items()))
    # the same training: the suite's same-work tolerance, x10 for adam (m / sqrt(v) amplifies
    # rounding)
    assert row["loss rel diff"] < (1e-5 if dtype == "float64" else 1e-2)
