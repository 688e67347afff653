"""Model files that loading cannot turn into code execution: :func:`save_model`, :func:`load_model`.

Both are exported by the package: ``fastfnn.save_model``, ``fastfnn.load_model``.

A model file is a `skops <https://skops.readthedocs.io>`_ file (a zip archive: ``schema.json``
and one ``.npy`` member per array) with one member more, ``fastfnn-model.json``, the header::

    {"format": "fastfnn-model", "format_version": 1,
     "written_by": {"fastfnn": ..., "scikit-learn": ..., "skops": ..., "numpy": ..., "python": ...},
     "metadata": {...the caller's JSON dict...},
     "payload_sha256": "...", "metadata_sha256": "..."}

``payload_sha256`` is the SHA-256 of the skops members (for each member, sorted by name: the name,
a NUL byte, the length as 8 little-endian bytes, the bytes); ``metadata_sha256`` that of the
canonical JSON (sorted keys, no spaces, ASCII) of ``{"metadata": ..., "written_by": ...}``.
skops ignores the extra member, so ``skops.io.load(path, trusted=[...])`` still reads the model.

Loading reads the file once into memory and then, in this order: checks the sizes the zip
directory declares (below), checks the header (format name and version), verifies both hashes
while decompressing each member in bounded chunks (zip's CRC-32 checks each member as well, and
each ``.npy`` member's header must account for exactly its size), lists the types the file names
without building anything (:func:`skops.io.get_untrusted_types`), refuses the file unless it
holds a fastfnn estimator and every type is trusted, builds the model with skops from the
verified bytes, and checks every field of every fastfnn estimator in it
(:mod:`fastfnn._modelcheck`: types, dtypes, shapes, order, finiteness, ranges, and agreement
with the network). Nothing is unpickled, and no model is returned that compiled code could
not safely run: a refusal names the field, e.g. ``field '_optimizer.m' has shape (1,),
expected (64,)``. The checksums protect against damage, not against the file's author.

Sizes
-----
A zip member can decompress to about 1000 times its compressed size, so a small file could
ask for gigabytes. Before anything is decompressed, the sizes the zip directory declares
(all members together) must stay within ``FREE_BYTES`` (64 MiB) plus ``MAX_RATIO`` (40) times
the file's size, and within ``MAX_MODEL_BYTES`` (16 GiB). Weights and optimizer state compress
to 80-95% of their size (float mantissas are close to random), and the JSON schema, the most
compressible part, about 10-20 times, so a real model file is far inside the ratio; 64 MiB
covers any small model outright. Only the two methods fastfnn writes, stored and deflate, are
read. A member is then decompressed in chunks and never beyond its declared size (one that
holds more or fewer bytes is damage), and a ``.npy`` member's header must declare exactly the
bytes that follow it, since NumPy allocates the array the header describes before it reads the
data; a ``.npz`` member (a zip of ``.npy`` files) is checked in the same way. Loading therefore
holds the file, the payload decompressed at most twice (skops's buffers and the arrays built
from them) and no more, and a file that asks for more is refused having decompressed nothing.

Trusted types: skops's own defaults (scikit-learn estimators, numpy arrays, scalars, random
states, built-in containers), ``numpy.dtype``, and the classes defined in the fastfnn modules that
fitted models are made of (estimators, optimizers, network, trainer and the estimators' shared
base and fit state), listed when the file is loaded, so renaming a class needs no change here.

Versioning
----------
* ``format_version`` is an integer, 1 for the layout above. A fastfnn release writes its own
  format version and reads every version up to it; a file with a newer one is refused with a
  message saying to upgrade fastfnn. The number goes up only when an older reader could not
  follow the file (a header field it needs, the hashing rule, the payload encoding); new
  optional header fields or metadata keys leave it as it is.
* The payload is a skops file: skops reads files written with its older protocols, and refuses
  newer ones (upgrade skops then). A scikit-learn object loaded in another scikit-learn version
  is reported by scikit-learn's ``InconsistentVersionWarning``, passed on as a warning: check
  the predictions or refit when it appears.
* fastfnn's own objects are rebuilt from their attributes (their ``__init__`` is not called).
  A fastfnn release that renames a class or attribute that fitted models hold keeps reading
  older files (an alias of the old class name, or a ``__setstate__`` filling the new
  attribute), so a model saved by one release loads in the next. A file naming a fastfnn class
  that the running release does not define is refused with the version that wrote it.
"""

import hashlib
import importlib
import io
import json
import os
import pkgutil
import platform
import re
import stat
import zipfile

import numpy as np

from ._files import write_atomically

FORMAT_NAME = "fastfnn-model"
FORMAT_VERSION = 1
HEADER_NAME = "fastfnn-model.json"
# Types that fitted fastfnn models hold beyond skops's defaults and fastfnn's own classes.
EXTRA_TRUSTED_TYPES = ("numpy.dtype",)
# fastfnn's modules whose classes fitted models may hold (those that exist in this release).
_MODEL_MODULES = ("estimators", "_base", "optimizers", "network", "trainer", "fitstate",
                  "preprocessing", "ensemble")
_PICKLE_BASED_MAGIC = b"FASTFNN-MODEL 1\n"  # files of the earlier, pickle-based CLI format
_ZIP_MAGIC = b"PK\x03\x04"
# Bounds on what a model file may decompress to, checked from the zip directory before any
# member is decompressed (see "Sizes" in the module docstring).
FREE_BYTES = 64 * 2**20  # any file may hold this much: every small model, schemas included
MAX_RATIO = 40  # beyond that, content up to 40 times the file's size
MAX_MODEL_BYTES = 16 * 2**30  # and never more than this, whatever the file's size
MAX_MEMBERS = 100_000
CHUNK_BYTES = 2**20  # members are decompressed and hashed in chunks of this size


class ModelFileError(ValueError):
    """A file that :func:`load_model` refuses: not a fastfnn model file, damaged, written by a
    newer fastfnn, or holding types outside the trusted set. Nothing in it was run."""


def save_model(model, path, *, metadata=None):
    """Save a fitted fastfnn model (an estimator, an ensemble, or a scikit-learn pipeline
    holding one) to ``path``.

    The file is written atomically: to a temporary file in the same directory, then renamed
    over ``path``, so a failed save leaves ``path`` as it was.

    Parameters
    ----------
    model : estimator
        An ``FNNRegressor``/``FNNClassifier``, an ``FNNEnsembleRegressor``/
        ``FNNEnsembleClassifier``, or a scikit-learn meta-estimator (``Pipeline``,
        ``TransformedTargetRegressor``, ``ColumnTransformer``...) holding one.
    path : str or os.PathLike
        The file to write (conventionally ``*.skops``); replaced if it exists.
    metadata : dict, optional
        JSON-serialisable information stored beside the model (feature names, metrics...).
        NumPy scalars and arrays are stored as numbers and lists.

    Raises
    ------
    TypeError
        If ``metadata`` is not a JSON-serialisable dict, or ``model`` holds no fastfnn estimator.
    ValueError
        If ``model`` holds objects of types, or fields, that :func:`load_model` would refuse
        (nothing is written).

    See Also
    --------
    load_model : Read the model back.
    """
    metadata = _normalised_metadata(metadata)
    import skops.io

    payload = skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED)
    fastfnn_types = _fastfnn_types()
    types = skops.io.get_untrusted_types(data=payload)
    if not _holds_estimator(types, fastfnn_types):
        raise TypeError(f"save_model saves fastfnn models (FNNRegressor, FNNClassifier, an "
                        f"ensemble of them, or a pipeline holding one); got "
                        f"{type(model).__name__}.")
    _check_saved_types(types, fastfnn_types)
    problem = _field_problem(model)  # what load_model would refuse is not written
    if problem is not None:
        raise ValueError(f"Cannot save this model: {problem}, which load_model would refuse.")
    write_atomically(path, _with_header(payload, metadata), "model file")


def load_model(path, *, return_metadata=False):
    """Load a model saved by :func:`save_model`, refusing anything that could run code.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    return_metadata : bool, default=False
        Also return the ``metadata`` dict given to :func:`save_model` (as JSON decodes it:
        tuples come back as lists; ``{}`` when none was given).

    Returns
    -------
    model : estimator
        The fitted model, as it was saved.
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    ModelFileError
        A subclass of ValueError: the file is not a fastfnn model file (a pickle or joblib file
        included, which is never unpickled), is damaged (truncated, a changed byte), was written
        by a newer fastfnn, or names a type outside the trusted set. The check happens before
        any object is built.
    OSError
        If the file cannot be read (``FileNotFoundError``, ``PermissionError``).

    See Also
    --------
    save_model : Write a model file.
    """
    data = _read_file(path)
    header = _verified_header(data, path)
    import skops.io

    fastfnn_types = _fastfnn_types()
    types = _payload_call(skops.io.get_untrusted_types, path, data=data)
    _check_types(types, fastfnn_types, path, header)
    trusted = sorted(fastfnn_types) + list(EXTRA_TRUSTED_TYPES)
    model = _payload_call(skops.io.loads, path, data, trusted=trusted)
    _check_estimators(model, path, header)
    return (model, header["metadata"]) if return_metadata else model


def model_file_info(path):
    """The verified header of a model file, without building the model.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.

    Returns
    -------
    info : dict
        ``format``, ``format_version``, ``written_by`` (the fastfnn, scikit-learn, skops,
        NumPy and Python versions that wrote the file) and ``metadata``.

    Raises
    ------
    ModelFileError
        As :func:`load_model`, for a file that is not a readable fastfnn model file.
    """
    header = _verified_header(_read_file(path), path)
    return {key: header[key] for key in ("format", "format_version", "written_by", "metadata")}


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _normalised_metadata(metadata):
    """``metadata`` as JSON decodes it (the form it is hashed and loaded in)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}.")
    try:
        return json.loads(json.dumps(metadata, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable (str, numbers, bool, None, lists "
                        f"and dicts with str keys): {exc}.") from None


def _canonical_sha256(obj):
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _payload_sha256(members):
    """The payload's hashing rule: SHA-256 over ``(name, length, chunks)`` triples taken in
    name order; per member the name, a NUL byte, the length as 8 little-endian bytes, then its
    bytes (``chunks``: an iterable of bytes, so a reader can hash as it decompresses)."""
    digest = hashlib.sha256()
    for name, length, chunks in members:
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(length.to_bytes(8, "little"))
        for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()


def _with_header(payload, metadata):
    """The skops ``payload`` with the header member added."""
    import sklearn
    import skops

    from ._version import __version__

    written_by = {"fastfnn": __version__, "scikit-learn": sklearn.__version__,
                  "skops": skops.__version__, "numpy": np.__version__,
                  "python": platform.python_version()}
    buffer = io.BytesIO(payload)
    with zipfile.ZipFile(buffer, "a") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
        header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                  "written_by": written_by, "metadata": metadata,
                  "payload_sha256": _payload_sha256(
                      (name, len(members[name]), [members[name]]) for name in sorted(members)),
                  "metadata_sha256": _canonical_sha256({"metadata": metadata,
                                                        "written_by": written_by})}
        archive.writestr(HEADER_NAME, json.dumps(header, indent=1, sort_keys=True),
                         compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _read_file(path):
    """The bytes of the regular file ``path``. A directory, a FIFO, a device or a file of more
    than ``MAX_MODEL_BYTES`` is refused before anything is read (opened without blocking, so a
    FIFO with no writer cannot hang the load)."""
    name = os.fspath(path)
    if os.path.isdir(path):
        raise ModelFileError(f"{name}: is a directory, not a fastfnn model file.")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags | getattr(os, "O_CLOEXEC", 0)), "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{name}: not a regular file (a FIFO, a device or a socket); "
                                 "a model file is a file written by fastfnn.save_model.")
        if info.st_size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{name}: {info.st_size} bytes, more than any model file "
                                 f"fastfnn reads ({MAX_MODEL_BYTES} bytes); refused unread.")
        data = f.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise ModelFileError(f"{name}: the file changed while it was read; load it again.")
    return data


def _refuse_foreign(data, path):
    """Refuse, by its first bytes, a file that is not a zip archive (pickles are never read)."""
    if not data:
        raise ModelFileError(f"{path}: empty file, not a fastfnn model file.")
    if data.startswith(_PICKLE_BASED_MAGIC):
        raise ModelFileError(
            f"{path}: a model file of an earlier fastfnn, stored as a pickle. It is not loaded "
            "because unpickling can run arbitrary code; refit the model and save it again.")
    if data[:1] == b"\x80":
        raise ModelFileError(
            f"{path}: a pickle or joblib file. fastfnn does not load these because unpickling "
            "can run arbitrary code; save models with fastfnn.save_model.")
    if not data.startswith(_ZIP_MAGIC):
        raise ModelFileError(f"{path}: not a fastfnn model file (write one with "
                             "fastfnn.save_model).")


def _check_format(header, path):
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a fastfnn model file (unknown header).")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: damaged fastfnn model file (format version {version!r}).")
    if version > FORMAT_VERSION:
        written = header.get("written_by", {})
        by = written.get("fastfnn", "?") if isinstance(written, dict) else "?"
        raise ModelFileError(
            f"{path}: written by a newer fastfnn ({by}, model file format version {version}); "
            f"this fastfnn reads format versions up to {FORMAT_VERSION}. Upgrade fastfnn "
            "(pip install --upgrade fastfnn) to load it.")
    fields = {"written_by": dict, "metadata": dict, "payload_sha256": str, "metadata_sha256": str}
    for key, kind in fields.items():
        if not isinstance(header.get(key), kind):
            raise ModelFileError(f"{path}: damaged fastfnn model file (header field {key!r}).")


def _read_archive(data, path):
    """The header of the zip archive ``data`` and the SHA-256 of its other members (the
    payload's hashing rule), with every size checked before anything is decompressed.

    Each member is decompressed in chunks, at most its declared size, and hashed as it
    streams: loading holds no copy of the payload. Every read error is damage.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise ModelFileError(f"{path}: damaged fastfnn model file (repeated member names).")
        if HEADER_NAME not in names:
            raise ModelFileError(f"{path}: a zip archive, but not a fastfnn model file (no "
                                 f"{HEADER_NAME}), or a damaged one.")
        _check_declared_sizes(infos, len(data), path)
        header_info = infos[names.index(HEADER_NAME)]
        header = json.loads(b"".join(_member_chunks(archive, header_info, path)))
        _check_format(header, path)
        def payload():
            for info in sorted(infos, key=lambda info: info.filename):
                if info.filename != HEADER_NAME:
                    _check_member_layout(archive, info, path)
                    yield info.filename, info.file_size, _member_chunks(archive, info, path)

        return header, _payload_sha256(payload())


def _size_limit(file_size):
    """The most bytes a model file of ``file_size`` bytes may decompress to (all members)."""
    return min(MAX_MODEL_BYTES, FREE_BYTES + MAX_RATIO * file_size)


def _check_declared_sizes(infos, file_size, path, what="the archive"):
    """Refuse, from the zip directory alone, an archive that would decompress to more than
    :func:`_size_limit` allows, or that uses a compression method fastfnn does not write."""
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{path}: damaged fastfnn model file ({what} has {len(infos)} "
                             f"members; model files have far fewer than {MAX_MEMBERS}).")
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: damaged fastfnn model file (member "
                                 f"{info.filename!r} uses compression method "
                                 f"{info.compress_type}; model files use deflate).")
    total = sum(info.file_size for info in infos)
    limit = _size_limit(file_size)
    if total > limit:
        raise ModelFileError(
            f"{path}: damaged or crafted fastfnn model file, refused: {what} declares {total} "
            f"bytes of content in a "
            f"{file_size}-byte file, more than the {limit} bytes that a fastfnn model file "
            f"of this size can hold ({FREE_BYTES // 2**20} MiB plus {MAX_RATIO} times the "
            f"file's size, at most {MAX_MODEL_BYTES // 2**30} GiB); nothing was decompressed.")


def _member_chunks(archive, info, path):
    """The bytes of member ``info`` in chunks of up to CHUNK_BYTES, decompressing no more than
    its declared size; ModelFileError unless it holds exactly that many."""
    left = info.file_size
    with archive.open(info) as f:
        while left:
            chunk = f.read(min(CHUNK_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
        if left or f.read(1):
            raise ModelFileError(f"{path}: damaged fastfnn model file (member "
                                 f"{info.filename!r} does not hold the {info.file_size} bytes "
                                 "its directory entry declares).")


def _check_member_layout(archive, info, path):
    """Refuse a ``.npy`` member whose header's shape and dtype do not account for exactly its
    declared size (NumPy allocates what the header says before reading the data), and an
    ``.npz`` member (a zip of ``.npy`` files) whose own members would not pass these checks."""
    if info.filename.endswith(".npz"):
        inner = b"".join(_member_chunks(archive, info, path))
        with zipfile.ZipFile(io.BytesIO(inner)) as npz:
            infos = npz.infolist()
            _check_declared_sizes(infos, len(inner), path, f"member {info.filename!r}")
            for inner_info in infos:
                _check_npy(npz, inner_info, path, f"{info.filename}/")
    elif info.filename.endswith(".npy"):
        _check_npy(archive, info, path)


def _check_npy(archive, info, path, where=""):
    name = where + info.filename
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            header_size = f.tell()
        except (ValueError, TypeError, SyntaxError, OverflowError, EOFError) as exc:
            raise ModelFileError(f"{path}: damaged fastfnn model file (array member {name!r}: "
                                 f"{exc}).") from None
    if dtype.hasobject:
        raise ModelFileError(f"{path}: refused: array member {name!r} holds Python objects "
                             f"(dtype {dtype}), which model files never store as arrays.")
    count = 1
    for n in shape:
        count *= int(n)
    if header_size + count * dtype.itemsize != info.file_size:
        raise ModelFileError(
            f"{path}: damaged fastfnn model file (array member {name!r} declares shape "
            f"{shape} of {dtype}, {count * dtype.itemsize} bytes, but holds "
            f"{info.file_size - header_size}).")


def _verified_header(data, path):
    """The header of ``data`` after checking the format, the sizes and both hashes."""
    path = os.fspath(path)
    _refuse_foreign(data, path)
    try:
        header, payload_sha256 = _read_archive(data, path)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read the archive is damage
        raise ModelFileError(f"{path}: damaged fastfnn model file ({type(exc).__name__}: "
                             f"{exc}).") from exc
    if payload_sha256 != header["payload_sha256"]:
        raise ModelFileError(f"{path}: damaged fastfnn model file (the model's checksum does "
                             "not match).")
    signed = {"metadata": header["metadata"], "written_by": header["written_by"]}
    if _canonical_sha256(signed) != header["metadata_sha256"]:
        raise ModelFileError(f"{path}: damaged fastfnn model file (the metadata checksum does "
                             "not match).")
    return header


def _payload_call(function, path, *args, **kwargs):
    """``function(*args, **kwargs)`` on the verified payload; its failures become ModelFileError."""
    try:
        return function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - skops/zip/numpy errors on content we cannot use
        raise ModelFileError(f"{os.fspath(path)}: cannot read the model in this file "
                             f"({type(exc).__name__}: {exc}).") from exc


def _fastfnn_types():
    """``{'fastfnn.<module>.<Class>': class}`` for the classes defined in the modules that
    fitted models are made of (packages included, submodules and all)."""
    found = {}
    for short in _MODEL_MODULES:
        try:
            root = importlib.import_module(f"{__package__}.{short}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{short}":
                continue
            raise
        modules = [root]
        if hasattr(root, "__path__"):
            modules += [importlib.import_module(info.name) for info in
                        pkgutil.walk_packages(root.__path__, root.__name__ + ".")]
        for module in modules:
            for obj in vars(module).values():
                home = getattr(obj, "__module__", "") or ""
                if isinstance(obj, type) and (home == root.__name__
                                              or home.startswith(root.__name__ + ".")):
                    found[f"{home}.{obj.__name__}"] = obj
    return found


def _holds_estimator(types, fastfnn_types):
    from sklearn.base import BaseEstimator

    return any(name in fastfnn_types and issubclass(fastfnn_types[name], BaseEstimator)
               for name in types)


def _kept_out(types, fastfnn_types):
    """``(fastfnn's, others')``: the names among ``types`` (those skops does not trust by
    default) outside the trusted set, fastfnn's own apart."""
    kept_out = sorted(set(types) - set(fastfnn_types) - set(EXTRA_TRUSTED_TYPES))
    ours = [name for name in kept_out if name.split(".")[0] == __package__]
    return ours, [name for name in kept_out if name not in ours]


def _check_saved_types(types, fastfnn_types):
    """Refuse to save a model holding what :func:`load_model` would refuse (ValueError)."""
    ours, others = _kept_out(types, fastfnn_types)
    if ours:
        raise ValueError(f"Cannot save this model: it holds {', '.join(ours)}, which fastfnn's "
                         "model files do not hold: save the estimator it fitted (a search's "
                         "best_estimator_, for example), without callbacks.")
    if others:
        raise ValueError(f"Cannot save this model: it holds types that load_model does not "
                         f"trust ({', '.join(others)}), since loading them could run code. "
                         "fastfnn's model files hold fastfnn's and scikit-learn's estimators "
                         "and transformers and NumPy types: give a scoring by name (e.g. "
                         "scoring='r2'), not as a scorer object or a function, and remove "
                         "callbacks (set_callbacks() with none) before saving.")


def _newer_writer(header):
    """The fastfnn version that wrote the file where it is newer than this one, else None."""
    from ._version import __version__

    def release(version):
        found = re.match(r"\d+(\.\d+)*", version) if isinstance(version, str) else None
        return tuple(int(part) for part in found.group().split(".")) if found else None

    by = header["written_by"].get("fastfnn")
    theirs, ours = release(by), release(__version__)
    return by if theirs is not None and ours is not None and theirs > ours else None


def _upgrade(header):
    """What a refusal adds for a file written by a newer fastfnn (else '')."""
    from ._version import __version__

    by = _newer_writer(header)
    return "" if by is None else (
        f" It was written by a newer fastfnn ({by}; this is {__version__}), whose models may "
        "hold what this one does not know: upgrade fastfnn (pip install --upgrade fastfnn) "
        "to load it.")


def _check_types(types, fastfnn_types, path, header):
    """Refuse to load a file whose ``types`` (those skops does not trust by default) name a
    type outside the trusted set (ModelFileError)."""
    from ._version import __version__

    subject = (f"{os.fspath(path)}: written by fastfnn "
               f"{header['written_by'].get('fastfnn', '?')}, it")
    ours, others = _kept_out(types, fastfnn_types)
    if ours:
        raise ModelFileError(
            f"{subject} holds fastfnn types that this fastfnn ({__version__}) does not define "
            f"({', '.join(ours)})." + (_upgrade(header) or " Load it with the fastfnn version "
                                                             "that wrote it."))
    if others:
        raise ModelFileError(
            f"{subject} holds types outside fastfnn's trusted set ({', '.join(others)}), "
            "which loading could turn into code execution; refused, nothing was loaded. fastfnn "
            "model files hold only fastfnn, scikit-learn and NumPy types.")
    if not _holds_estimator(types, fastfnn_types):
        raise ModelFileError(f"{subject} holds no fastfnn model (FNNRegressor or "
                             "FNNClassifier).")


def _fnn_estimators(obj, seen, where=""):
    """``(where, estimator)`` for the fastfnn estimators inside ``obj`` (through objects'
    attributes, lists, tuples, object arrays, sets, dicts); ``where`` is the path to it from
    ``obj``, such as ``"regressor_.steps[1][1]"`` ("" for ``obj`` itself)."""
    from sklearn.base import BaseEstimator

    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, BaseEstimator) and type(obj).__module__.startswith(__package__ + "."):
        yield where, obj
    if isinstance(obj, dict):
        children = [(f"{where}[{key!r}]", value) for key, value in obj.items()]
    elif isinstance(obj, (list, tuple)):
        children = [(f"{where}[{i}]", value) for i, value in enumerate(obj)]
    elif isinstance(obj, np.ndarray):  # an object array holds objects as a list does
        if obj.dtype != object:
            return
        children = [(f"{where}[{i}]", value) for i, value in enumerate(obj.ravel())]
    elif isinstance(obj, (set, frozenset)):
        children = [(f"{where}{{}}", value) for value in obj]
    elif isinstance(getattr(obj, "__dict__", None), dict) and not isinstance(obj, type):
        children = [(f"{where}.{key}" if where else str(key), value)
                    for key, value in vars(obj).items()]
    else:
        return
    for child_where, child in children:
        yield from _fnn_estimators(child, seen, child_where)


def _field_problem(model):
    """None where every fastfnn estimator inside ``model`` holds fields a model fastfnn saved
    can hold (:mod:`fastfnn._modelcheck`), else what is wrong, naming the field."""
    from ._modelcheck import FieldError, check_estimator

    try:
        estimators = list(_fnn_estimators(model, set()))
    except RecursionError:
        return "objects nested deeper than any model fastfnn saves"
    for where, est in estimators:
        try:
            check_estimator(est)
        except FieldError as exc:
            field = ".".join(part for part in (where, exc.field) if part) or "the model"
            return f"field {field!r} {exc.problem}"
    return None


def _check_estimators(model, path, header):
    """Refuse a model holding a fastfnn estimator whose fields a model fastfnn saved cannot
    hold (:func:`_field_problem`)."""
    problem = _field_problem(model)
    if problem is not None:
        raise ModelFileError(f"{os.fspath(path)}: refused: {problem}." + (
            _upgrade(header) or " It is not a model that fastfnn saved."))
