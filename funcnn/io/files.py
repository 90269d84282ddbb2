"""The bytes on disk: files written atomically, and read within a budget by hardened readers.

An ``.npz`` file (any name not ending in ``.json``, in any case) holds the arrays as
NumPy stores them (``allow_pickle=False``) and one more member, ``__funcnn__``: the JSON
document (architecture, trees, history, metadata, digest) as a 0-d str array. A
``.json`` file is that document with one more key, ``"arrays"``: each array as its
``dtype``, ``shape`` and ``data`` (nested lists; float32 and float64 values round-trip
exactly), plus a ``nonfinite`` entry for a float array with NaN or infinite values
(:func:`json_entry`).

Load is bounded by the file. It may allocate at most ``LOAD_FACTOR`` times the file's
size plus ``LOAD_FLOOR`` bytes in all (:func:`load_budget`), counted (:class:`Budget`)
before each step that allocates: the members of an .npz file as they would unpack, the
JSON it parses (an upper bound on the objects it builds, from a count of its
characters), its arrays, and the one-example check of :mod:`funcnn.io.architecture`.

Writes go to a temporary file in the same directory that is renamed over the target
only when complete (:func:`atomic_write`), so an interrupted save never destroys the
previous file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from funcnn.io.codec import ARRAY_KINDS
from funcnn.io.registry import as_str

META_KEY = "__funcnn__"
"""The .npz member that holds the JSON document."""
MAX_META_BYTES = 64 * 2**20
"""The largest metadata document (JSON) load reads from an .npz file."""
LOAD_FACTOR = 16
"""Load may allocate this many times the file's size, plus :data:`LOAD_FLOOR`."""
LOAD_FLOOR = 64 * 2**20
"""What load may allocate for any file, however small (a small model on large images)."""


# ---------------------------------------------------------------- the load budget


def load_budget(size: int) -> int:
    """The bytes :func:`funcnn.io.load` may allocate for a file of ``size`` bytes."""
    return LOAD_FACTOR * size + LOAD_FLOOR


class Budget:
    """What a load has allocated so far, against :func:`load_budget` of the file's size."""

    def __init__(self, size: int) -> None:
        self.size, self.limit, self.spent = size, load_budget(size), 0

    def check(self, nbytes: int, what: str) -> None:
        """Refuse a step that would take ``nbytes`` more than what is left."""
        if self.spent + nbytes > self.limit:
            raise ValueError(
                f"{what} needs about {nbytes:,} bytes, more than load may allocate for a file "
                f"of {self.size:,} bytes ({self.limit - self.spent:,} left of {self.limit:,}: "
                f"{LOAD_FACTOR} x its size + {LOAD_FLOOR // 2**20} MiB)"
            )

    def spend(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` that stay allocated, after :meth:`check`."""
        self.check(nbytes, what)
        self.spent += nbytes


# Bytes json.loads allocates for each of these characters, at most (CPython 3.11, measured
# with tracemalloc): a dict 72 bytes empty, 216 with one key; a list 64 empty, 96 with one
# item; a float in a list 32; a string 59 and up; a key of a dict of many 144.
_JSON_BYTES = (("{", 136), ("[", 88), (",", 32), (":", 80), ('"', 16))


def json_cost(text: str | bytes) -> int:
    """An upper bound on what parsing ``text`` allocates, from a count of its characters
    (those inside strings too: an overestimate there, never an underestimate)."""
    width = 1 if text.isascii() else 4  # the parsed text's characters, and its strings
    if isinstance(text, bytes):
        return width * len(text) + sum(w * text.count(c.encode()) for c, w in _JSON_BYTES)
    return width * len(text) + sum(w * text.count(c) for c, w in _JSON_BYTES)


def parse_json(text: str | bytes, what: str = "the JSON") -> Any:
    """``json.loads(text)`` within the budget load gives a file of ``text``'s size, refusing
    ``NaN``/``Infinity``; ValueError naming ``what`` for anything it refuses."""
    return parse(text, what, Budget(len(text)))


def parse(text: bytes | str, what: str, budget: Budget) -> Any:
    """Parsed JSON, refusing non-finite constants; ValueError for anything unreadable, or
    for a text whose objects would not fit in ``budget``."""
    budget.spend(json_cost(text), f"parsing {what}")

    def constant(name: str) -> Any:
        raise ValueError(f"{what} holds the non-number {name}")

    try:
        return json.loads(text, parse_constant=constant)
    except RecursionError as e:
        raise ValueError(f"{what} is nested too deeply") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON (truncated?): {e}") from e


# ---------------------------------------------------------------- readers


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], Budget]:
    """(metadata, arrays, what is left to spend) of a file; ValueError for anything that is
    not a funcnn file or that would take more than the file's budget."""
    info = os.stat(path)  # FileNotFoundError, PermissionError: the OS's own errors
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("it is not a regular file (a device, pipe or socket never ends)")
    budget = Budget(info.st_size)
    if path.suffix.lower() == ".json":
        budget.spend(info.st_size, "reading it")
        with path.open("rb") as f:
            meta = parse(f.read(info.st_size + 1), "the file", budget)
        if not isinstance(meta, dict):
            raise ValueError(f"it holds {type(meta).__name__}, not a JSON object")
        arrays = meta.pop("arrays", {})
        if not isinstance(arrays, dict):
            raise ValueError(f"its arrays must be a JSON object, got {type(arrays).__name__}")
        return (
            meta,
            {as_str(k, "array name"): _json_array(k, v, budget) for k, v in arrays.items()},
            budget,
        )
    try:
        arrays = _npz_arrays(path, budget)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:
        raise ValueError(f"it is not a readable .npz archive (truncated or corrupted): {e}") from e
    if META_KEY not in arrays:
        raise ValueError(f"it is not a funcnn file (no {META_KEY} entry)")
    document = arrays.pop(META_KEY)
    budget.spend(document.nbytes, "decoding its metadata")  # UCS-4 to a str: at most as large
    meta = parse(document.item(), "its metadata", budget)
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata holds {type(meta).__name__}, not a JSON object")
    return meta, arrays, budget


def _npz_arrays(path: Path, budget: Budget) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, each member's unpacked size counted before it is read."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if key == info.filename or key in arrays:
                raise ValueError(f"unexpected member {info.filename!r:.80} in the archive")
            budget.spend(info.file_size, f"unpacking member {key!r}")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                reader = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = reader(f, max_header_size=2**16)
                if key == META_KEY:
                    if dtype.kind != "U" or shape != () or info.file_size > MAX_META_BYTES:
                        raise ValueError("its metadata is not one JSON string of bounded size")
                else:
                    dtype = _dtype(dtype.str, key)
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                if nbytes != info.file_size - f.tell():
                    raise ValueError(
                        f"array {key!r} declares {shape} {dtype} ({nbytes} bytes), "
                        f"its member holds {info.file_size - f.tell()}"
                    )
                a = np.empty(count, dtype=dtype)
                _read_into(f, a.view(np.uint8), key)
            a = a.reshape(shape, order="F" if fortran else "C")
            arrays[key] = np.ascontiguousarray(a) if fortran else a
    return arrays


def _read_into(f: Any, out: np.ndarray, key: str) -> None:
    """Fill the bytes ``out`` from ``f``, a MiB at a time (never a second copy of the member)."""
    done = 0
    while done < out.size:
        chunk = f.read(min(2**20, out.size - done))
        if not chunk:
            raise ValueError(f"member {key!r} ends early: truncated")
        out[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
        done += len(chunk)


# ---------------------------------------------------------------- arrays in a .json file


def _json_array(key: str, entry: Any, budget: Budget) -> np.ndarray:
    """The array a .json file's entry describes (:func:`json_entry`), its bytes counted
    against ``budget`` before its data is read."""
    keys = {"dtype", "shape", "data"}
    if not isinstance(entry, dict) or not keys <= set(entry) <= {*keys, "nonfinite"}:
        raise ValueError(f"array {key!r} must hold dtype, shape and data, got {entry!r:.80}")
    dtype = _dtype(entry["dtype"], key)
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ValueError(f"array {key!r} has the shape {shape!r:.80}")
    budget.spend(math.prod(shape) * dtype.itemsize, f"array {key!r} of shape {tuple(shape)}")
    try:
        a = np.array(entry["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"array {key!r} holds data that is not {dtype}: {e}") from e
    if a.shape != tuple(shape):
        if a.size != 0 or math.prod(shape) != 0:  # nested lists cannot say the shape of nothing
            raise ValueError(f"array {key!r} declares shape {tuple(shape)}, its data has {a.shape}")
        a = a.reshape(shape)
    return _nonfinite(key, a, entry["nonfinite"]) if "nonfinite" in entry else a


def _dtype(value: Any, key: str) -> np.dtype:
    """The dtype a file names for array ``key``: bool, int or float, nothing else."""
    try:
        dtype = np.dtype(as_str(value, "dtype"))
    except TypeError as e:
        raise ValueError(f"array {key!r} has the unknown dtype {value!r:.40}") from e
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {key!r} has dtype {dtype}: only bool, int and float arrays load")
    return dtype


def _nonfinite(key: str, a: np.ndarray, listed: Any) -> np.ndarray:
    """``a`` with the values a ``nonfinite`` entry lists (flat index and bits) set."""
    if a.dtype.kind != "f" or not isinstance(listed, dict) or set(listed) != {"index", "bits"}:
        raise ValueError(f"array {key!r} has a malformed nonfinite entry: {listed!r:.80}")
    try:
        index = np.array(listed["index"], dtype=np.int64)
        bits = np.array(listed["bits"], dtype=f"u{a.dtype.itemsize}")
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"array {key!r} has a malformed nonfinite entry: {e}") from e
    if index.shape != bits.shape or index.ndim != 1 or ((index < 0) | (index >= a.size)).any():
        raise ValueError(f"array {key!r} lists nonfinite values outside its {a.size} values")
    a = a if a.flags.c_contiguous else a.copy(order="C")  # np.array gave its own array
    a.reshape(-1).view(bits.dtype)[index] = bits
    return a


def json_entry(a: np.ndarray) -> dict[str, Any]:
    """An array in a .json file: its dtype, shape and data (nested lists). Strict JSON has no
    NaN or Infinity: a float array's non-finite values are written as 0 in ``data`` and
    listed under ``nonfinite``, by flat index and bits, so that they load bit for bit."""
    if a.dtype.kind == "f" and a.dtype.itemsize not in (2, 4, 8):
        raise ValueError(
            f"cannot save a {a.dtype} array in a .json file: its values are not Python floats "
            "(save float16, float32 or float64 arrays, or use an .npz file)"
        )
    entry: dict[str, Any] = {"dtype": a.dtype.str, "shape": list(a.shape)}
    special = ~np.isfinite(a) if a.dtype.kind == "f" else None
    if special is None or not special.any():
        return {**entry, "data": a.tolist()}
    index = np.flatnonzero(special)
    bits = np.ascontiguousarray(a).reshape(-1).view(f"u{a.dtype.itemsize}")[index]
    data = np.where(special, np.zeros((), a.dtype), a).tolist()
    return {**entry, "data": data, "nonfinite": {"index": index.tolist(), "bits": bits.tolist()}}


# ---------------------------------------------------------------- atomic writes


_TMP_PREFIX = ".funcnn-"  # temporary files: .funcnn-<pid>-<random>.tmp beside the target


def _target(path: Path) -> Path:
    """Where a save to ``path`` writes: through a symbolic link, to the file it points to."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _remove_stale_temporaries(directory: Path) -> None:
    """Remove temporary files that saves of processes no longer running left behind."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            name = entry.name
            if not (name.startswith(_TMP_PREFIX) and name.endswith(".tmp")):
                continue
            pid = name[len(_TMP_PREFIX) :].split("-", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:  # that process is gone: its file is garbage
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError:
                pass


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, renamed over ``path`` when complete.

    A new file gets the mode the umask gives; a file written again keeps its mode; a
    file the user may not write is refused as ``open`` would refuse it.
    """
    path = _target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    _remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
