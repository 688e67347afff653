"""Helpers of the ``fastfnn`` command's tests (no tests here): run the command in processes.

``fastfnn(*args)`` starts ``python -m fastfnn`` as its own process. ``run_forked(cases)``
starts one Python process that imports fastfnn (and warms its kernels) once and then forks one
child per case: each case is still a process of its own, with its own working directory, file
descriptors, exit status and output, without paying the interpreter's start-up per case
(seconds on a loaded machine), so the many end-to-end error cases stay fast.
"""

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_SERVER = r'''
import json, os, sys, tempfile, traceback
import numpy as np, pandas, tqdm, sklearn.compose, sklearn.impute, sklearn.pipeline
import sklearn.preprocessing, skops.io
from fastfnn import FNNClassifier, FNNRegressor
from fastfnn.cli import main
try:
    import matplotlib.figure
except ImportError:
    pass
try:
    import fastfnn.onnx  # skl2onnx and onnxruntime, imported once for every export case
except ImportError:
    pass
import warnings
X = np.random.RandomState(0).standard_normal((20, 3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    FNNRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X, X[:, 0])   # load the kernels once
    FNNClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, X[:, 0] > 0)
scratch = tempfile.mkdtemp()


def run(case, paths):
    """In the forked child: run one case with fds 0-2 redirected; never returns."""
    code = 99
    try:
        os.chdir(case["cwd"])
        for name in case.get("hide") or ():  # as if not installed: `import name` fails
            sys.modules[name] = None
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in zip((1, 2), paths):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        try:
            code = main(case["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(code)


for line in sys.stdin:  # one JSON list of cases per line; one JSON list of results back
    results = []
    for i, case in enumerate(json.loads(line)):
        paths = [os.path.join(scratch, f"{i}.{name}") for name in ("out", "err")]
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run(case, paths)
        _, status, usage = os.wait4(pid, 0)
        out, err = (open(p, encoding="utf-8", errors="replace").read() for p in paths)
        results.append({"returncode": os.waitstatus_to_exitcode(status), "stdout": out,
                        "stderr": err, "maxrss_kb": usage.ru_maxrss})
    sys.__stdout__.write(json.dumps(results) + "\n")
    sys.__stdout__.flush()
'''


def fastfnn(*args, cwd=None, env=None, timeout=300):
    """Run ``python -m fastfnn ARGS``; returns the CompletedProcess (text mode)."""
    return subprocess.run([sys.executable, "-m", "fastfnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


_server = None


def _start_server():
    global _server
    if _server is None or _server.poll() is not None:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        _server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, encoding="utf-8", env=env)
        atexit.register(_stop_server, _server)
    return _server


def _stop_server(server):
    server.stdin.close()
    server.wait(timeout=60)


def run_forked(cases):
    """Run each case, ``{id: (argv, cwd[, hidden modules])}``, in order, as a process forked
    from one warm Python (started once per test session); the hidden modules fail to import
    in that process. Returns ``{id: CompletedProcess}``, each with ``maxrss_kb``, the child's
    peak resident memory."""
    payload = [{"argv": [str(a) for a in case[0]], "cwd": str(case[1]),
                "hide": list(case[2]) if len(case) > 2 else []} for case in cases.values()]
    server = _start_server()
    server.stdin.write(json.dumps(payload) + "\n")
    server.stdin.flush()
    line = server.stdout.readline()
    assert line, "the process running the cases died (see its stderr above)"
    runs = {}
    for (key, case), r in zip(cases.items(), json.loads(line)):
        runs[key] = subprocess.CompletedProcess(case[0], r["returncode"], r["stdout"],
                                                r["stderr"])
        runs[key].maxrss_kb = r["maxrss_kb"]
    return runs


def assert_one_line_error(result, *fragments, command="fit"):
    """Exit code 1 and one line on stderr, ``fastfnn COMMAND: error: ...`` with each fragment."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fastfnn {command}: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_csv(path, header, rows):
    """A CSV file: the header, then one line per row."""
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def regression_table(n=200, seed=0):
    """(header, rows) of a small regression table: features a, b, c; target 'target'."""
    import numpy as np

    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, (n, 3))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2]
    return ["a", "b", "c", "target"], [[f"{v:.6f}" for v in row] for row in np.column_stack([X, y])]
