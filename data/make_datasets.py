"""Regenerate fastfnn's toy datasets (CSV, header row, target in the last column).

    python data/make_datasets.py           # write data/*.csv and src/fastfnn/data/*.csv
    python data/make_datasets.py --check   # exit 1 unless the files on disk are what this writes

Synthetic sets use a fixed seed and every value is written with a fixed format, so the output is the
same byte for byte on every machine. The real sets (diabetes, iris) come from the copies that
scikit-learn bundles with its source: nothing is downloaded. See data/README.md for provenance.
The package copy (src/fastfnn/data/) is what ``fastfnn fit`` reads, so the default dataset is found
when fastfnn is installed without this repository; the repository copy (data/) is identical.
"""

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

SEED = 0
ROOT = Path(__file__).resolve().parent.parent
TARGETS = [ROOT / "data", ROOT / "src" / "fastfnn" / "data"]


def _csv_text(header, columns, formats):
    """CSV text: ``header`` names, ``columns`` (equal-length sequences), one format per column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in zip(*columns):
        writer.writerow([fmt % v if isinstance(fmt, str) else fmt(v)
                         for fmt, v in zip(formats, row)])
    return out.getvalue()


def sine():
    """1-D noisy sine curve: x ~ U(0, 2 pi), y = sin(x) + 0.1 N(0, 1); 500 rows sorted by x."""
    rng = np.random.RandomState(SEED)
    x = np.sort(rng.uniform(0.0, 2 * np.pi, 500))
    y = np.sin(x) + 0.1 * rng.standard_normal(x.size)
    return _csv_text(["x", "y"], [x, y], ["%.6f", "%.6f"])


def friedman1():
    """Friedman #1: 10 features U(0, 1) (x6..x10 irrelevant), y = 10 sin(pi x1 x2) +
    20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + N(0, 1); 2000 rows (scikit-learn's make_friedman1)."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=SEED)
    header = [f"x{j + 1}" for j in range(X.shape[1])] + ["y"]
    return _csv_text(header, [*X.T, y], ["%.6f"] * (X.shape[1] + 1))


def diabetes():
    """Diabetes (Efron et al. 2004): 442 patients, 10 baseline variables in original units,
    target = disease progression one year later (scikit-learn's bundled raw copy)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    header = list(d.feature_names) + ["progression"]
    return _csv_text(header, [*d.data.T, d.target], ["%.10g"] * (d.data.shape[1] + 1))


def iris():
    """Iris (Fisher 1936): 150 flowers, 4 measurements in cm, target = species name."""
    from sklearn.datasets import load_iris

    d = load_iris()
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    species = d.target_names[d.target]
    return _csv_text(header, [*d.data.T, species], ["%.10g"] * 4 + [str])


DATASETS = {"sine": sine, "friedman1": friedman1, "diabetes": diabetes, "iris": iris}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the files on disk with what this writes; exit 1 if any differ")
    args = parser.parse_args(argv)
    stale = []
    for name, make in DATASETS.items():
        text = make()
        for folder in TARGETS:
            path = folder / f"{name}.csv"
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(path)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8", newline="\n")
                print(f"wrote {path.relative_to(ROOT)} ({text.count(chr(10)) - 1} rows)")
    for path in stale:
        print(f"differs from the generator: {path.relative_to(ROOT)}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
