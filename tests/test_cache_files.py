"""The cache folder and its measurements file: read and written like a careful Unix tool, used
only where it can be trusted, and a hint only (an entry that does not validate is measured
again).

Oracles: the file system after the fact (what exists, what a planted link points to, modes),
the warnings raised, the entry a lookup returns against the fake measurement it was given, and
the consumers of the entries (``_tuning._choose``, ``_parts._choose``, ``_parts.
_choose_prediction`` and real fits) which must work whatever the file holds. Nothing here times
the machine: measurements are replaced by fakes.
"""

import errno
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from fastfnn import FNNRegressor
from fastfnn import _cache, _kernels, _parts, _tuning
from fastfnn._version import __version__

KEY = "test machine | fastfnn test"
F64, F32 = "training split float64", "training split float32"  # names of two entries
FINAL = {"verdict": "final", "why": "quiet", "probes": [0.99, 0.98, 0.99], "apart": 1.03,
         "widest": 1.6, "quiet": 2, "fastfnn": __version__, "deferrals": 0, "retry_after": 0.0}
VALID = {  # one valid entry of each kind
    F64: {"split_flops": 1e6, "timings": [[16, 3e5, 0.9], [24, 6.7e5, 1.2]],
          "when": "2026-01-01 00:00", "evidence": FINAL},
    F32: {"split_flops": float("inf"), "timings": [], "when": "2026-01-01 00:00",
          "evidence": FINAL},
    "prediction threads float64": {"chunk_flops": 4e5, "timings": [[8, 4.1e5, 1.3]],
                                   "when": "2026-01-01 00:00", "evidence": FINAL},
}
MEASURED = {"split_flops": 4096.0, "timings": [], "when": "2026-02-02 02:02", "evidence": FINAL}
# The tile kernel's share by the rule for this CPU's vector width: no file may change it.
RULE = {name: _tuning.RULES.get(_kernels.VECTOR_BYTES, {}).get(name, _tuning.Limits(0, 0, 0))
        for name in ("float64", "float32")}


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh cache folder of this user's (mode 0o700, not yet made), no shipped file, a fixed
    machine key, nothing refused yet; returns the folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FASTFNN_CACHE_DIR", str(folder))
    monkeypatch.setattr(_tuning, "SHIPPED", str(tmp_path / "no-shipped-file.json"))
    monkeypatch.setattr(_tuning, "machine_key", lambda: KEY)
    monkeypatch.setattr(_cache, "_refused", {})
    monkeypatch.setattr(_tuning, "_IN_PROCESS", {})  # nothing this process measured
    return folder


def fake(entry=MEASURED):
    """A measurement that records its calls: ``calls`` counts them."""

    def measure_now(earlier):
        measure_now.calls += 1
        return json.loads(json.dumps(entry))

    measure_now.calls = 0
    return measure_now


def kept(folder):
    """The entries the folder's file keeps for KEY."""
    return json.loads((folder / _tuning.FILE).read_text())[KEY]


def make(folder, mode=0o700):
    folder.mkdir(mode=0o700)
    os.chmod(folder, mode)  # whatever the umask
    return folder


def cache_warnings(record):
    return [str(w.message) for w in record if "cache folder" in str(w.message)]


# ---- files are opened without following links; written whole or not at all -----------------


def test_a_symlink_at_the_lock_file_is_not_followed(cache, tmp_path):
    victim = tmp_path / "victim"
    make(cache)
    os.symlink(victim, cache / (_tuning.FILE + ".lock"))
    measure = fake()
    with pytest.warns(UserWarning, match="lock is a symbolic link"):
        entry, how = _tuning.cached(F64, measure)
    assert entry == MEASURED and measure.calls == 1 and "by this process" in how
    assert not victim.exists()  # neither created nor written through the link
    assert sorted(os.listdir(cache)) == [_tuning.FILE + ".lock"]


def test_a_symlink_at_a_predictable_temporary_name_is_not_followed(cache, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    make(cache)
    os.symlink(victim, cache / f"{_tuning.FILE}.{os.getpid()}.tmp")
    entry, how = _tuning.cached(F64, fake())
    assert entry == MEASURED and how == f"measured now, kept in {cache / _tuning.FILE}"
    assert victim.read_text() == "precious"
    assert not (cache / _tuning.FILE).is_symlink() and kept(cache)[F64] == MEASURED


def test_the_measurements_file_is_not_read_through_a_symlink(cache, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({KEY: VALID}))
    make(cache)
    os.symlink(elsewhere, cache / _tuning.FILE)
    measure = fake()
    with pytest.warns(UserWarning, match="kernel-choices.json is a symbolic link"):
        entry, _ = _tuning.cached(F64, measure)
    assert entry == MEASURED and measure.calls == 1  # the linked entry is not taken
    assert json.loads(elsewhere.read_text()) == {KEY: VALID}


def test_a_huge_measurements_file_is_ignored_and_replaced(cache):
    """Valid JSON padded beyond MAX_BYTES: not read (its entry is not taken), measured again
    and written over."""
    make(cache)
    text = json.dumps({KEY: VALID})
    (cache / _tuning.FILE).write_text(text + " " * (_cache.MAX_BYTES + 1 - len(text)))
    measure = fake()
    entry, how = _tuning.cached(F64, measure)
    assert entry == MEASURED and measure.calls == 1 and how.startswith("measured now")
    assert kept(cache) == {F64: MEASURED}
    assert (cache / _tuning.FILE).stat().st_size < 1000


def test_a_file_of_gigabytes_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(4 << 30)  # sparse: no disk used
    reads = []
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real(fd, n))
    assert _cache.read_json(str(path), check=False) is None
    assert reads == []


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="no file size limit here")
def test_a_full_disk_leaves_the_file_as_it_was_and_nothing_behind(cache):
    """A real write failure: the process's file size limit (RLIMIT_FSIZE, with SIGXFSZ
    ignored) makes writes past 1000 bytes fail, as a full disk would."""
    make(cache)
    before = json.dumps({KEY: {F32: VALID[F32]}})
    (cache / _tuning.FILE).write_text(before)
    big = dict(VALID[F64], timings=[[16, 3e5, 0.9]] * 100)  # several kB of JSON
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        written = _tuning._keep(str(cache / _tuning.FILE), KEY, F64, big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert written is False
    assert sorted(os.listdir(cache)) == [_tuning.FILE]
    assert (cache / _tuning.FILE).read_text() == before


@pytest.mark.parametrize("where", ["_write_all", "fsync", "replace"])
def test_any_failure_while_writing_removes_the_temporary_file(tmp_path, monkeypatch, where):
    path = tmp_path / "data.json"
    path.write_text('{"old": 1}')

    def full(*args):
        if where == "_write_all":  # part written, then the disk is full
            os.write(args[0], b'{"new": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_cache if where == "_write_all" else _cache.os, where, full)
    assert _cache.write_json(str(path), {"new": 2}) is False
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["data.json"] and json.loads(path.read_text()) == {"old": 1}


def test_a_write_makes_a_new_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "data.json"
    assert _cache.write_json(str(path), {"a": [1, 2.5, None]})
    assert os.listdir(tmp_path) == ["data.json"]
    assert _cache.read_json(str(path)) == {"a": [1, 2.5, None]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_fifo_in_place_of_the_file_does_not_stall_a_lookup(cache):
    import threading

    make(cache)
    os.mkfifo(cache / _tuning.FILE)
    got = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        lookup = threading.Thread(target=lambda: got.append(_tuning.cached(F64, fake())),
                                  daemon=True)
        lookup.start()
        lookup.join(30)
    assert not lookup.is_alive(), "the lookup waits on the FIFO"
    assert got[0][0] == MEASURED
    assert any("kernel-choices.json is not a regular file" in w for w in cache_warnings(record))


# ---- the folder is used only where it can be trusted ----------------------------------------


def test_a_missing_cache_folder_is_made_with_mode_0700(cache):
    _tuning.cached(F64, fake())
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert kept(cache) == {F64: MEASURED}


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_writable_by_others_is_refused_once_and_nothing_kept(cache, mode):
    make(cache, mode)
    measure = fake()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = _tuning.cached(F64, measure)
        second = _tuning.cached(F32, measure)
    assert cache_warnings(record) == [
        f"fastfnn does not use the cache folder {cache}: it is writable by group or others, "
        "without the sticky bit; measurements are made for this process alone (fix the "
        "folder, or set FASTFNN_CACHE_DIR to a folder of your own)"]
    assert measure.calls == 2 and first[0] == second[0] == MEASURED
    assert first[1] == "measured by this process (no usable cache folder)"
    assert os.listdir(cache) == []  # no lock file, no data


def test_a_refused_folder_still_reads_the_shipped_measurements(cache, tmp_path, monkeypatch):
    make(cache, 0o777)
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps({KEY: VALID}))
    monkeypatch.setattr(_tuning, "SHIPPED", str(shipped))
    with pytest.warns(UserWarning, match="writable by group or others"):
        entry, how = _tuning.cached(F64, fake())
    assert entry == VALID[F64] and how.endswith(f"read from {shipped}")
    assert os.listdir(cache) == []


def test_a_sticky_folder_writable_by_others_is_used(cache):
    make(cache, 0o1777)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entry, how = _tuning.cached(F64, fake())
    assert how.startswith("measured now") and kept(cache) == {F64: MEASURED}


@pytest.mark.parametrize("what", ["the folder", "the file", "the lock file"])
def test_a_folder_or_file_owned_by_another_user_is_refused(cache, what):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("giving a file to another user takes root")
    make(cache)
    target = {"the folder": cache, "the file": cache / _tuning.FILE,
              "the lock file": cache / (_tuning.FILE + ".lock")}[what]
    if what == "the file":
        target.write_text(json.dumps({KEY: VALID}))
    elif what == "the lock file":
        target.touch()
    os.chown(target, 65534, 65534)
    measure = fake()
    with pytest.warns(UserWarning, match="owned by uid 65534, not by this user"):
        entry, _ = _tuning.cached(F64, measure)
    assert entry == MEASURED and measure.calls == 1
    assert not (cache / _tuning.FILE).exists() or what == "the file"


def test_a_file_writable_by_others_is_refused(cache):
    make(cache)
    (cache / _tuning.FILE).write_text(json.dumps({KEY: VALID}))
    os.chmod(cache / _tuning.FILE, 0o666)
    with pytest.warns(UserWarning, match="its kernel-choices.json is writable by group or "
                                         "others"):
        entry, _ = _tuning.cached(F64, fake())
    assert entry == MEASURED
    assert json.loads((cache / _tuning.FILE).read_text()) == {KEY: VALID}  # not written


def test_without_owners_the_ownership_check_is_skipped(monkeypatch):
    info = os.stat_result((stat.S_IFDIR | 0o777, 0, 0, 1, 12345, 12345, 0, 0, 0, 0))
    assert "owned by uid 12345" in _cache.problem(info, folder=True)
    monkeypatch.delattr(os, "geteuid")  # as on Windows
    assert _cache.problem(info, folder=True) is None


# ---- an entry that does not validate is measured again --------------------------------------

OLD_SCHEMA = {k: v for k, v in VALID[F64].items() if k != "evidence"}
ODD = {  # name looked up -> what the file holds
    "[]": (F64, []),
    "null": (F64, None),
    "a string": (F64, "x"),
    "a list under the machine key": (F64, {KEY: []}),
    "an entry without split_flops": (F64, {KEY: {F64: {"timings": [], "when": "t",
                                                      "evidence": FINAL}}}),
    "string timings": (F64, {KEY: {F64: dict(VALID[F64], timings=[["16", "3e5", "0.9"]])}}),
    "a non-numeric split_flops": (F64, {KEY: {F64: dict(VALID[F64], split_flops="many")}}),
    "short timing rows": (F32, {KEY: {F32: dict(VALID[F32], timings=[[1, 2]])}}),
    "a string entry": ("prediction threads float64", {KEY: {"prediction threads float64": "x"}}),
    # the evidence: an older schema (none), another version, a verdict it does not show
    "an entry of the older schema": (F64, {KEY: {F64: OLD_SCHEMA}}),
    "evidence of another version": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, fastfnn="0.0.1"))}}),
    "final with a busy probe": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, probes=[0.99, 0.5, 0.99]))}}),
    "final with halves apart": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, apart=1.5))}}),
    "final with halves apart by a little more than the guard takes": (F64, {KEY: {F64: dict(
        VALID[F64], evidence=dict(FINAL, apart=1.15))}}),
    "final with a loss at the widest width": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, widest=0.75))}}),
    "final with two probes": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, probes=[0.99, 0.99]))}}),
    "final with a retry time": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, retry_after=5.0))}}),
    "final from one quiet measurement": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, quiet=1))}}),
    "deferred though confirmed": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, verdict="deferred", deferrals=1, retry_after=5.0))}}),
    "a confirmation count past its top": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, quiet=3))}}),
    "deferred without a retry time": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, verdict="deferred", deferrals=1))}}),
    "an evidence field too many": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, load=0.1))}}),
    "a negative probe": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, probes=[-1, 0.99, 0.99]))}}),
    "a bool deferral count": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, verdict="deferred", deferrals=True, retry_after=5.0))}}),
    # integers JSON reads whole, past float's range; a retry time past any clock's years
    "a split_flops of 401 digits": (F64, {KEY: {F64: dict(VALID[F64], split_flops=10**400)}}),
    "timings flops of 401 digits": (F64, {KEY: {F64: dict(VALID[F64], timings=[
        [16, 10**400, 0.9]])}}),
    "an evidence number of 401 digits": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, apart=10**400))}}),
    "a retry time past the year 9999": (F64, {KEY: {F64: dict(VALID[F64], evidence=dict(
        FINAL, verdict="deferred", quiet=0, deferrals=1, retry_after=1e17))}}),
}


@pytest.mark.parametrize("shape", list(ODD))
def test_an_odd_entry_is_measured_again_and_written_over(cache, shape):
    name, table = ODD[shape]
    make(cache)
    (cache / _tuning.FILE).write_text(json.dumps(table))
    good = VALID.get(name, MEASURED)
    entry, how = _tuning.cached(name, fake(good))
    assert entry == good and how.startswith("measured now")
    assert kept(cache)[name] == good


def test_a_process_that_may_not_measure_takes_no_retry_time_past_any_clock(cache):
    """A deferred entry whose retry time no calendar holds (1e17 s: past the year 9999) is
    not an entry: a process that may not measure (one CPU, two threads asked for) gets the
    default, not an error out of the clock's conversion."""
    make(cache)
    far = dict(VALID[F64], evidence=dict(FINAL, verdict="deferred", quiet=0, deferrals=1,
                                         retry_after=1e17))
    (cache / _tuning.FILE).write_text(json.dumps({KEY: {F64: far}}))
    measure_now = fake()
    assert _tuning.cached(F64, measure_now, may_measure=False) == (None, None)
    assert measure_now.calls == 0


@pytest.fixture
def fakes(monkeypatch, cache):
    """Every measurement replaced by a fake returning VALID's entry, nothing memoised: the
    consumers read the cache file."""
    monkeypatch.delenv("FASTFNN_TILE", raising=False)
    monkeypatch.delenv("FASTFNN_SPLIT_FLOPS", raising=False)
    monkeypatch.setattr(_tuning, "_limits", {})
    monkeypatch.setattr(_parts, "_chosen", {})
    monkeypatch.setattr(_parts, "can_measure", lambda: True)
    monkeypatch.setattr(_tuning, "measure", lambda name: json.loads(json.dumps(
        VALID.get(name, VALID[F64]))))
    monkeypatch.setattr(_parts, "measure",
                        lambda name, earlier=None: dict(VALID["training split " + name]))
    monkeypatch.setattr(_parts, "measure_prediction", lambda name, earlier=None: dict(
        VALID["prediction threads float64"]))
    return cache


@pytest.mark.parametrize("shape", list(ODD))
def test_a_fit_works_whatever_odd_entry_the_file_holds(fakes, monkeypatch, shape):
    name, table = ODD[shape]
    make(fakes)
    (fakes / _tuning.FILE).write_text(json.dumps(table))
    monkeypatch.setattr(_tuning, "_limits", {})
    monkeypatch.setattr(_parts, "_chosen", {})
    dtype = np.dtype(name.split()[-1])  # the fit reads the entry of its dtype
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((2500, 16)).astype(dtype), rng.standard_normal(2500).astype(dtype)
    est = FNNRegressor(hidden_layer_sizes=(32, 32), batch_size=64, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert np.isfinite(est.predict(X)).all()  # 3 chunks: prediction's threads looked up
    assert est.coefs_[0].dtype == dtype
    assert _tuning.tile_limits(dtype) == RULE[dtype.name]  # never read from the file
    assert _parts.parallel_flops(dtype) == max(_parts.SMALLEST, VALID[
        "training split " + dtype.name]["split_flops"])
    if _parts.prediction_threads([16, 32, 32, 1], len(X), dtype) > 1 or dtype == np.float64:
        assert _parts.prediction_flops(dtype) == VALID["prediction threads float64"][
            "chunk_flops"]


def _json():
    scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.just(10**400)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
               | st.sampled_from(list(VALID) + ["final", "deferred", __version__]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                            ["timings", "when", "split_flops", "chunk_flops", "evidence",
                             "verdict", "probes", "apart", "widest", "deferrals", "retry_after"]),
                            inner, max_size=4), max_leaves=12)


def _spoil(data, value):
    """``value`` (a valid table) with an arbitrary JSON value at a node drawn by ``data``, or a
    key dropped from a dict or an item from a list on the way."""
    children = (list(value) if isinstance(value, dict)
                else range(len(value)) if isinstance(value, list) else [])
    action = data.draw(st.sampled_from(["replace", "descend", "drop"] if children
                                       else ["replace"]))
    if action == "replace":
        return data.draw(_json())
    at = data.draw(st.sampled_from(list(children)))
    if isinstance(value, dict):
        value = dict(value)
    else:
        value = list(value)
    if action == "drop":
        del value[at]
    else:
        value[at] = _spoil(data, value[at])
    return value


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_whatever_the_file_holds_each_choice_is_valid(fakes, data):
    """Arbitrary JSON at every level of the file (the table, a machine's entries, an entry, a
    field, a row, a cell): each consumer still gets a valid choice, from the file where its
    entry validates, else from a measurement."""
    table = _spoil(data, {KEY: VALID, "other machine": {}})
    (fakes / _tuning.FILE).parent.mkdir(mode=0o700, exist_ok=True)
    (fakes / _tuning.FILE).write_text(json.dumps(table))
    _tuning._limits.clear()
    _parts._chosen.clear()
    for name in ("float64", "float32"):
        assert _tuning.tile_limits(name) == RULE[name]
    assert _parts.parallel_flops(np.float64) >= _parts.SMALLEST
    assert _parts.parallel_flops(np.float32) >= _parts.SMALLEST
    assert _parts.prediction_flops(np.float64) >= 0
    assert _parts.describe()
    assert not _cache._refused


def test_the_schema_accepts_what_the_measurements_write(monkeypatch):
    """The real measurements' form (with fake timings, a quiet and a busy probe; quiet once,
    then confirmed): valid, and the file's text of it too (once a deferral is counted)."""
    monkeypatch.setattr(_parts, "_rounds", lambda pair, widths, name, probes: probes.extend(
        [0.99, 0.99]) or [[1.5] * len(widths)] * _parts.ROUNDS)
    for share in (0.99, 0.5):
        monkeypatch.setattr(_parts._guard, "probe", lambda threads, share=share: share)
        once = {F32: _parts.measure("float32"),
                "prediction threads float64": _parts.measure_prediction("float64")}
        entries = {F32: _parts.measure("float32", once[F32]),
                   "prediction threads float64": _parts.measure_prediction("float64", once[
                       "prediction threads float64"])}
        for name, entry in [*entries.items(), *once.items()]:
            assert _parts._guard.final(entry) == (share == 0.99 and entry in entries.values())
            if not _parts._guard.final(entry):
                entry = _parts._guard.postponed(entry, 1e9, 1)
            assert _tuning.entry_problem(name, entry) is None
            assert _tuning.entry_problem(name, json.loads(json.dumps(entry))) is None
    # a quiet measurement awaiting confirmation (its gains would count with the next one's)
    # whose evidence shows no passing measurement
    waiting = dict(FINAL, verdict="deferred", quiet=1, deferrals=1, retry_after=5.0)
    assert _tuning.entry_problem(F64, dict(VALID[F64], evidence=waiting)) is None
    for odd in ({"probes": [0.99, 0.5, 0.99]}, {"apart": 1.5}, {"widest": 0.75}):
        assert _tuning.entry_problem(F64, dict(VALID[F64], evidence=dict(waiting, **odd)))
    assert _tuning.entry_problem(F64, dict(VALID[F64], split_flops=float("nan")))
    assert _tuning.entry_problem(F64, dict(VALID[F64], timings=[[True, 1.0, 1.0]]))
    assert _tuning.entry_problem(F64, dict(VALID[F64], extra=1))
    assert _tuning.entry_problem(F64, dict(VALID[F64], when="a\nb"))
    with pytest.raises(ValueError, match="no kind of measurement"):
        _tuning.entry_problem("float16", {})
    with pytest.raises(ValueError, match="no kind of measurement"):
        _tuning.entry_problem("float64", {})  # the tile crossover is a rule's, never kept


# ---- environment variables ------------------------------------------------------------------


@pytest.mark.parametrize("text, limits", [
    (" ON ", _tuning.Limits(_tuning.UNLIMITED, _tuning.UNLIMITED, _tuning.UNLIMITED)),
    ("off", _tuning.Limits(0, 0, 0)), ("Auto", RULE["float64"]),
    ("", RULE["float64"]), ("maybe", None), ("1", None)])
def test_fastfnn_tile_takes_auto_on_off(fakes, monkeypatch, text, limits):
    monkeypatch.setenv("FASTFNN_TILE", text)
    if limits is None:
        with pytest.raises(ValueError, match="FASTFNN_TILE must be one of 'auto', 'on', 'off'"):
            _tuning.tile_limits(np.float64)
    else:
        assert _tuning.tile_limits(np.float64) == limits


@pytest.mark.parametrize("text, flops", [(" 1e7 ", 1e7), ("INF", np.inf),
                                         ("", _parts.SPLIT_FLOPS["float64"]),
                                         ("-1", None), ("nan", None), ("lots", None)])
def test_fastfnn_split_flops_is_read_through_env(fakes, monkeypatch, text, flops):
    monkeypatch.setenv("FASTFNN_SPLIT_FLOPS", text)
    if flops is None:
        with pytest.raises(ValueError, match="FASTFNN_SPLIT_FLOPS must be a number >= 0"):
            _parts.split_flops(np.float64)
    else:
        assert _parts.split_flops(np.float64) == flops


@pytest.mark.parametrize("text, on", [(" OFF", False), ("no", False), ("0", False),
                                      ("true", True), ("", True), ("maybe", None)])
def test_fastfnn_compile_ahead_takes_on_and_off_words(monkeypatch, text, on):
    """Off by 0/false/no/off, on by 1/true/yes/on or unset; another word turns nothing on, and
    a fit names the variable (the import never fails)."""
    from fastfnn import _compile_ahead

    monkeypatch.setenv("FASTFNN_COMPILE_AHEAD", text)
    monkeypatch.setattr(_compile_ahead.os, "sched_getaffinity", lambda pid: {0, 1},
                        raising=False)
    assert _compile_ahead.enabled() is bool(on)
    if on is None:
        with pytest.raises(ValueError, match="FASTFNN_COMPILE_AHEAD must be 1, true"):
            FNNRegressor(max_iter=1).fit(np.ones((4, 2)), np.ones(4))


def test_an_empty_cache_dir_variable_is_unset(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTFNN_CACHE_DIR", "  ")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.folder() == str(tmp_path / "xdg" / "fastfnn")
    _tuning.cached(F64, fake())
    assert kept(tmp_path / "xdg" / "fastfnn") == {F64: MEASURED}
    monkeypatch.setenv("FASTFNN_CACHE_DIR", f" {tmp_path / 'set'} ")
    assert _cache.folder() == str(tmp_path / "set")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG rules say
    monkeypatch.delenv("FASTFNN_CACHE_DIR")
    assert _cache.folder() == os.path.join(os.path.expanduser("~"), ".cache", "fastfnn")


# ---- import touches nothing ------------------------------------------------------------------


def test_import_fastfnn_touches_no_cache_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTFNN_", "XDG_"))}
    env.update(HOME=str(home), FASTFNN_CACHE_DIR=str(tmp_path / "cache"))
    code = textwrap.dedent("""
        import fastfnn, fastfnn._tuning, fastfnn._parts
    """)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "cache").exists()
    assert list(home.iterdir()) == []  # not the default folder either
    env.pop("FASTFNN_CACHE_DIR")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(home.iterdir()) == []


def test_a_lock_held_too_long_is_not_waited_for(cache, monkeypatch):
    """Another process holding the lock (stopped, hung): after LOCK_SECONDS this one measures
    for itself and keeps nothing, rather than waiting for ever."""
    import fcntl

    monkeypatch.setattr(_cache, "LOCK_SECONDS", 0.2)
    cache.mkdir(mode=0o700)
    holder = os.open(cache / (_tuning.FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another open file description: another holder
        entry, how = _tuning.cached(F64, fake())
    finally:
        os.close(holder)
    assert entry == MEASURED and "measured by this process" in how
    assert not (cache / _tuning.FILE).exists()
