"""Machine GEMM peak (large np.matmul) and the GEMM floor of medium and wide, in the same run."""


def test_gemm_peak(benchmark, bench, peak):
    dtype, threads = peak
    benchmark.group = f"gemm peak {dtype}"
    value = benchmark.pedantic(bench.measure_peak, args=(dtype, threads), rounds=1,
                               iterations=1)
    benchmark.extra_info["gflops"] = value


def test_gemm_floor(benchmark, bench, floor_case):
    benchmark.group = f"floor {floor_case.key}"
    value = benchmark.pedantic(bench.measure_floor, args=(floor_case,), rounds=1, iterations=1)
    benchmark.extra_info["floor_s_per_epoch"] = value
