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
