"""Smoke test of the benchmark harness (``fastfnn bench``): a miniature run, no timing asserted.

Checks that ``bench.run`` completes on a small slice of the tiny config, prints the training
table with its expected columns, and that fastfnn and scikit-learn did the same work (same
epoch-1 loss from the same seed). PyTorch joins in when it is installed.
"""

import argparse
import json

import pytest

from fastfnn import bench


def test_bench_run_smoke(tmp_path, capsys, monkeypatch):
    # No measurement of the machine's thread choices first (a quiet machine's confirmation
    # pauses 15 s a choice; the guard's tests script that step): nothing here is timed.
    monkeypatch.setattr(bench, "measure_deferred", lambda log: None)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    raw = tmp_path / "bench.json"
    args = parser.parse_args([
        "--configs", "tiny", "--samples", "640", "--epochs", "1", "--rounds", "1",
        "--sections", "train", "--peak-size", "256", "--json", str(raw),
    ])
    assert bench.run(args) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("| config | solver"))
    assert [c.strip() for c in header.strip().strip("|").split("|")] == list(bench.TRAIN_COLUMNS)
    rows = [line for line in text.splitlines() if line.startswith("| tiny | sgd |")]
    assert len(rows) == 2  # float64 and float32

    results = json.loads(raw.read_text())
    for dtype, rel in (("float64", 1e-6), ("float32", 1e-3)):
        losses = results["losses"][f"tiny/sgd/{dtype}"]
        assert losses["fastfnn"] == pytest.approx(losses["sklearn"], rel=rel)
        if "torch" in losses:
            assert losses["torch"] == pytest.approx(losses["fastfnn"], rel=10 * rel)
        assert results["same_work"][f"tiny/sgd/{dtype}"][0] is True


def test_bench_rejects_unknown_config(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--configs", "huge"])) == 2
    assert "Unknown config" in capsys.readouterr().err


@pytest.mark.parametrize("option", [
    ["--configs", ""], ["--configs", "tiny,huge"], ["--sections", ""], ["--sections", "speed"],
    ["--samples", "0"], ["--epochs", "0"], ["--rounds", "-1"], ["--threads", "0"],
    ["--peak-size", "0"],
])
def test_a_bad_option_exits_2_naming_it_before_anything_runs(option, capsys, monkeypatch):
    """The documented exit code 2 and one line naming the option, before any measurement
    (a value of 0 had fallen back to the default; a negative one failed after the peaks)."""
    monkeypatch.setattr(bench, "measure_deferred", lambda log: pytest.fail("measured"))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(option)) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastfnn bench: ") and len(err.strip().splitlines()) == 1
    assert option[0] in err or "config" in err or "section" in err


@pytest.mark.parametrize("outputs, named", [
    (["--json", "{tmp}"], "--json"),  # a directory
    (["--markdown", "{tmp}/missing/tables.md"], "--markdown"),
    (["--json", "{tmp}/same", "--markdown", "{tmp}/same"], "--json and --markdown"),
])
def test_an_output_that_cannot_be_written_exits_2_before_anything_runs(
        outputs, named, tmp_path, capsys, monkeypatch):
    """A run takes minutes: an output file it could not write at the end is refused first,
    naming the option, and nothing is left in the folder."""
    monkeypatch.setattr(bench, "measure_deferred", lambda log: pytest.fail("measured"))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([o.format(tmp=tmp_path) for o in outputs])
    assert bench.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastfnn bench: {named}") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


class _Tables:
    """The measurements' stand-in: what they print and record, nothing timed."""

    def __init__(self, opts, log=None):
        pass

    def run_all(self):
        pass

    def report(self):
        return "| tables |"

    def to_dict(self):
        return {"losses": {"tiny/sgd/float64": {"fastfnn": 0.5}}}

    def all_same_work(self):
        return True


def _run_with(monkeypatch, *argv):
    monkeypatch.setattr(bench, "measure_deferred", lambda log: None)
    monkeypatch.setattr(bench, "Bench", _Tables)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return bench.run(parser.parse_args([str(a) for a in argv]))


def test_the_outputs_are_replaced_whole(tmp_path, monkeypatch):
    """The tables and the raw results replace the files given (an existing file too, its mode
    kept), through a new file renamed into place: nothing else is left in the folder."""
    (tmp_path / "results.json").write_text("an earlier, longer run's results " * 100)
    (tmp_path / "results.json").chmod(0o640)
    assert _run_with(monkeypatch, "--json", tmp_path / "results.json",
                     "--markdown", tmp_path / "tables.md") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "tables.md"]
    assert json.loads((tmp_path / "results.json").read_text()) == _Tables(None).to_dict()
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "tables.md").read_text() == "| tables |"


def test_a_link_is_written_through_and_a_fifo_is_written_to(tmp_path, monkeypatch):
    """As every fastfnn command writes (and ``open(path, "w")`` did): a symbolic link's target
    is replaced, the link stays; a FIFO (or /dev/stdout) is written to, never replaced."""
    import os
    import threading

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "real.md").write_text("old")
    (tmp_path / "link.md").symlink_to(tmp_path / "elsewhere" / "real.md")
    os.mkfifo(tmp_path / "pipe.json")
    read = []
    reader = threading.Thread(target=lambda: read.append((tmp_path / "pipe.json").read_text()))
    reader.start()
    assert _run_with(monkeypatch, "--markdown", tmp_path / "link.md",
                     "--json", tmp_path / "pipe.json") == 0
    reader.join(timeout=30)
    assert (tmp_path / "link.md").is_symlink()
    assert (tmp_path / "elsewhere" / "real.md").read_text() == "| tables |"
    assert json.loads(read[0]) == _Tables(None).to_dict()
    assert (tmp_path / "pipe.json").is_fifo()


def test_repeated_names_run_once():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    opts = bench.options_from_args(parser.parse_args(["--configs", "tiny,small,tiny"]))
    assert opts.configs == ("tiny", "small")


def test_all_cores_are_the_cpus_the_process_may_run_on(monkeypatch):
    """Under an affinity mask of one CPU (as ``taskset -c 0`` sets), the header says so and
    the all-core peak is measured on one thread (``os.sched_getaffinity`` is the oracle)."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert bench.usable_cpus() == 1
    options = bench.Options(("tiny",), ("float64",), ("train",))
    assert "1 of 2 cores" in bench.machine_header(bench.Bench(options))
    threads = []
    monkeypatch.setattr(bench.suite, "gemm_peak", lambda dtype, t, n: threads.append(t) or 1.0)
    bench.Bench(options).measure_peak("float64")
    assert threads == [1]


@pytest.mark.parametrize("name", sorted(bench.CONFIGS))
def test_the_flop_count_is_that_of_the_products_an_epoch_runs(name, monkeypatch):
    """Oracle: the GEMM floor's own products (an epoch's, at their real shapes), each counted
    as 2 m k n flops by a counting ``np.matmul``: per sample, the flops the GFLOP/s and the
    shares of the peak are computed from."""
    from fastfnn.bench import gemm

    import dataclasses

    config = dataclasses.replace(bench.CONFIGS[name], n_samples=100, batch_size=32)  # 4 batches
    counted = []

    def matmul(a, b, out):
        counted.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return out

    monkeypatch.setattr(gemm.np, "matmul", matmul)
    monkeypatch.setattr(gemm, "_best_time", lambda epoch, reps: epoch())
    gemm.gemm_floor(config, "float64", threads=1)
    assert sum(counted) == 2 * config.flops_per_sample * config.n_samples  # two epochs


def test_a_fit_that_stops_early_is_not_the_same_work(monkeypatch):
    """fastfnn stopping after one of the epochs asked for has the first epoch's loss of
    scikit-learn's full fit: the amount of work (epochs, samples seen) tells them apart."""
    monkeypatch.setattr(bench, "measure_deferred", lambda log: None)
    opts = bench.Options(configs=("tiny",), dtypes=("float64",), sections=("train",),
                         epochs=3, rounds=1, samples=640, torch=False, peak_size=64)
    real = bench.estimator_class("fastfnn")

    class OneEpoch(real):
        def fit(self, X, y):
            return real.fit(self.set_params(max_iter=1), X, y)

    from fastfnn.bench import suite

    monkeypatch.setattr(suite, "estimator_class",
                        lambda impl: OneEpoch if impl == "fastfnn" else bench.estimator_class(impl))
    run = bench.Bench(opts)
    case = bench.Case(opts.config("tiny"), "sgd", "float64", 3)
    for impl in ("fastfnn", "sklearn"):
        run.measure_train(case, impl)
    ok, detail = run.same_work(case.key)
    assert ok is False and detail == "fastfnn 1 epochs, 640 samples FAIL"
    assert not run.all_same_work()


def test_a_share_of_the_peak_is_of_the_best_peak_its_threads_can_reach():
    """Two threads can always run as one: where a busy moment made the two-thread peak measure
    below the one-thread peak, a two-thread fit's share is of the one-thread peak."""
    opts = bench.Options(configs=("tiny",), dtypes=("float64",), sections=("train",))
    run = bench.Bench(opts)
    run.peaks = {"float64": {1: 43.4, 2: 27.7}}
    assert run.peak("float64", 2) == run.peak("float64", 1) == 43.4
    run.peaks = {"float64": {1: 43.4, 2: 87.7}}
    assert (run.peak("float64", 1), run.peak("float64", 2)) == (43.4, 87.7)
