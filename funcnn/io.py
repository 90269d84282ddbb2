"""Save and load models, params, state, optimizer state and history. No pickle, ever.

Two formats, chosen by the file name:

- ``.npz`` (any name not ending in ``.json``): arrays stored by NumPy with
  ``allow_pickle=False``, plus one JSON document (the architecture and the tree
  structures) stored as a string array.
- ``.json``: one human-readable JSON file, every array written out as nested lists
  (float32 and float64 values round-trip exactly).

Every file carries a format name, a version, and a SHA-256 digest of its
content: a truncated or tampered file, a wrong version, or arrays that do not
fit the architecture raise ValueError. Writes go to a temporary file in the same
directory that is renamed over the target only when complete, so an interrupted
save never destroys the previous file.

Architectures are rebuilt from layer specs: a class name looked up in a registry
of known layers, initializers and state records, never code. Every Layer subclass
and layer value registers itself when it is defined, and funcnn's own records and
initializers are found in their modules; register other records with :func:`register`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import json
import math
import os
import pkgutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import initializers, linalg, optim, tree
from funcnn import layers as L
from funcnn import validate as check
from funcnn.layers import base as layer_base
from funcnn.layers.base import Layer, as_shape, is_shape_tuple
from funcnn.version import __version__

FORMAT = "funcnn"
FORMAT_VERSION = 1
_META_KEY = "__funcnn__"

_ARRAY_KINDS = "biuf"  # bool, signed and unsigned ints, floats: nothing else is saved or read
MAX_META_BYTES = 64 * 2**20
"""The largest metadata document (JSON) load reads from an .npz file."""

_USER: dict[str, Any] = {}
_FOUND: dict[str, Any] = {}


def register(obj: Any, name: str | None = None) -> Any:
    """Make a NamedTuple, initializer class or value savable by name.

    Layer classes and the layer values made with ``elementwise``/``layer_value`` are
    registered when they are defined; so are funcnn's own records (params, layer
    and optimizer states) and initializers. Register your own optimizer-state
    NamedTuples and initializer classes here.
    """
    key = name or getattr(obj, "__name__", None) or repr(obj)
    existing = _registry().get(key)
    if existing is not None and existing is not obj:
        raise ValueError(f"the name {key!r} is already registered for {existing!r}")
    _USER[key] = obj
    return obj


def _registry() -> dict[str, Any]:
    """Every name a file may use: found in funcnn's modules once, plus the layers' own
    registries and the user's registrations (read anew: classes may be defined later)."""
    if not _FOUND:
        modules = [initializers, *_submodules(L), *_submodules(optim)]
        for module in modules:
            for obj in vars(module).values():
                if isinstance(obj, type) and obj.__module__ == module.__name__:
                    record = issubclass(obj, tuple) and hasattr(obj, "_fields")
                    if record or (attrs.has(obj) and module is initializers):
                        _FOUND.setdefault(obj.__name__, obj)
    return {**_FOUND, **layer_base.layer_classes(), **layer_base.VALUES, **_USER}


def _submodules(package: Any) -> list[Any]:
    names = (m.name for m in pkgutil.iter_modules(package.__path__))
    return [importlib.import_module(f"{package.__name__}.{n}") for n in names if n != "compiled"]


def _lookup(name: str, what: str) -> Any:
    registry = _registry()
    name = _string(name, f"{what} name")
    if name not in registry:
        raise ValueError(
            f"unknown {what} {name!r} in the file; define the class (or register it with "
            "funcnn.io.register) before loading"
        )
    return registry[name]


def _name_in_registry(obj: Any) -> str | None:
    """The name under which ``obj`` itself (not an equal object) is registered."""
    registry = _registry()
    if isinstance(obj, type):
        names = (obj.__name__, f"{obj.__module__}.{obj.__qualname__}")
        return next((n for n in names if registry.get(n) is obj), None)
    return next((n for n, v in registry.items() if v is obj), None)


# ---------------------------------------------------------------- layer specs


def to_spec(obj: Any) -> Any:
    """A JSON-able description of a layer (or of any value found in a layer's fields)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    name = _name_in_registry(obj)
    if name is not None and not isinstance(obj, type):
        return {"value": name}
    if isinstance(obj, (tuple, list)):
        return {"tuple" if isinstance(obj, tuple) else "list": [to_spec(v) for v in obj]}
    cls_name = _name_in_registry(type(obj))
    if attrs.has(type(obj)) and cls_name is not None:
        return {
            "class": cls_name,
            "fields": {f.name: to_spec(getattr(obj, f.name)) for f in attrs.fields(type(obj))},
        }
    raise ValueError(
        f"cannot save {obj!r}: it is not a registered layer, initializer or value; "
        "register it with funcnn.io.register(...) (custom activations from elementwise() "
        "need funcnn.io.register(layer, name))"
    )


def from_spec(spec: Any) -> Any:
    """The object :func:`to_spec` described; ValueError for anything else."""
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return spec
    if isinstance(spec, dict) and len(spec) <= 2:
        if "value" in spec:
            return _lookup(_string(spec["value"], "value name"), "value")
        if "tuple" in spec or "list" in spec:
            items = [from_spec(v) for v in _sequence(spec.get("tuple", spec.get("list")))]
            return tuple(items) if "tuple" in spec else items
        if "class" in spec:
            name = _string(spec["class"], "class name")
            cls = _lookup(name, "class")
            fields = spec.get("fields", {})
            if not isinstance(fields, dict):
                raise ValueError(f"the fields of {name} must be a JSON object, got {fields!r:.80}")
            if isinstance(cls, Layer) and not fields:
                return cls  # a parameter-free layer that format 1 saved as a class
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise ValueError(f"{name!r} is not a layer or initializer class")
            kwargs = {_string(k, "field name"): from_spec(v) for k, v in fields.items()}
            try:
                return cls(**kwargs)
            except (TypeError, ValueError, OverflowError) as e:
                raise ValueError(f"invalid fields for {name}: {e}") from e
    raise ValueError(f"malformed spec in the file: {spec!r:.200}")


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a {what} must be a string, got {value!r:.80}")
    return value


def _sequence(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list, got {value!r:.80}")
    return value


# ---------------------------------------------------------------- trees


def _encode(t: Any, arrays: dict[str, np.ndarray]) -> Any:
    if t is None or isinstance(t, (bool, str)):
        return t
    if isinstance(t, (np.ndarray, np.generic)):  # before float: np.float64 is a float
        a = np.asarray(t)
        if a.dtype.kind not in _ARRAY_KINDS:
            raise ValueError(
                f"cannot save an array of dtype {a.dtype}: only bool, int and float arrays "
                "can be saved (and loaded again without code)"
            )
        key = f"a{len(arrays)}"
        arrays[key] = a
        return {"array": key}
    if isinstance(t, (int, float)):
        return {"int": t} if isinstance(t, int) else {"float": repr(t)}
    if isinstance(t, tuple) and hasattr(t, "_fields"):
        name = _name_in_registry(type(t))
        if name is None:
            raise ValueError(
                f"cannot save a {type(t).__name__}: register the NamedTuple with funcnn.io.register"
            )
        return {"record": name, "fields": [_encode(v, arrays) for v in t]}
    if isinstance(t, (tuple, list)):
        return {"tuple" if isinstance(t, tuple) else "list": [_encode(v, arrays) for v in t]}
    if isinstance(t, dict):
        if not all(isinstance(k, str) for k in t):
            raise ValueError("only dicts with str keys can be saved")
        return {"dict": {k: _encode(v, arrays) for k, v in t.items()}}
    raise ValueError(f"cannot save a value of type {type(t).__name__}")


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The tree :func:`_encode` described; ValueError for any value of the wrong type."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, dict) and len(obj) <= 2:
        if "int" in obj:
            value = obj["int"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"an int in the file is {value!r:.80}")
            return value
        if "float" in obj:
            try:
                return float(_string(obj["float"], "float"))
            except ValueError as e:
                raise ValueError(f"a float in the file is {obj['float']!r:.80}") from e
        if "array" in obj:
            key = obj["array"]
            if not isinstance(key, str) or key not in arrays:
                raise ValueError(f"the file lacks array {key!r:.80}: truncated or tampered")
            return arrays[key]
        if "record" in obj:
            cls = _lookup(_string(obj["record"], "record name"), "record")
            fields = _sequence(obj.get("fields"))
            if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise ValueError(f"{obj['record']!r} is not a record (NamedTuple) class")
            if len(fields) != len(cls._fields):
                raise ValueError(
                    f"{obj['record']} has {len(cls._fields)} fields, the file gives {len(fields)}"
                )
            return cls(*(_decode(v, arrays) for v in fields))
        if "tuple" in obj:
            return tuple(_decode(v, arrays) for v in _sequence(obj["tuple"]))
        if "list" in obj:
            return [_decode(v, arrays) for v in _sequence(obj["list"])]
        if "dict" in obj and isinstance(obj["dict"], dict):
            return {k: _decode(v, arrays) for k, v in obj["dict"].items()}
    raise ValueError(f"malformed tree in the file: {obj!r:.200}")


# ---------------------------------------------------------------- files


@attrs.frozen
class Checkpoint:
    """What :func:`load` returns."""

    model: Layer
    params: Any
    state: Any = None
    opt_state: Any = None
    history: dict[str, Any] | None = None
    epoch: int | None = None
    input_shape: Any = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    provenance: dict[str, Any] | None = None  # what made the bits (None in older files)


def _digest(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class LoadError(ValueError):
    """A file :func:`load` refuses (truncated, corrupted, foreign or hostile); names the file."""


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


def _atomic_write(path: Path, write: Any) -> None:
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


def save(
    path: str | os.PathLike[str],
    model: Layer,
    params: Any,
    *,
    state: Any = None,
    opt_state: Any = None,
    history: Any = None,
    epoch: int | None = None,
    input_shape: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a model and its trees to ``path`` atomically (``.json``: human-readable).

    ``history`` may be a History or a dict of lists. ``input_shape`` (one
    example's shape) lets :func:`load` check that the params fit the architecture.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a funcnn Layer, got {type(model).__name__}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    history_dict = history.to_dict() if hasattr(history, "to_dict") else history
    if history_dict is not None and not (
        isinstance(history_dict, dict)
        and all(
            isinstance(k, str) and isinstance(v, (list, tuple)) for k, v in history_dict.items()
        )
    ):
        raise TypeError(f"history must be a History or a dict of lists, got {history!r:.80}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    if epoch is not None:
        epoch = check.non_negative_int("epoch", epoch)
    if input_shape is not None:  # what load will check, checked before a byte is written
        size = sum(a.nbytes for a in tree.leaves(params) if isinstance(a, np.ndarray))
        try:
            _check_fit(model, params, state, _shape_tree(input_shape), size)
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"cannot save to {path}: {e}") from e
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": to_spec(model),
        "input_shape": None if input_shape is None else _encode(_shape_tree(input_shape), {}),
        "params": _encode(params, arrays),
        "state": _encode(state, arrays),
        "opt_state": _encode(opt_state, arrays),
        "history": history_dict,
        "epoch": epoch,
        "metadata": metadata or {},
        "provenance": provenance(),
    }
    if path.suffix.lower() == ".json":
        meta["arrays"] = {
            k: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tolist()}
            for k, a in arrays.items()
        }
        meta["sha256"] = _digest({k: v for k, v in meta.items() if k != "arrays"}, arrays)
        text = json.dumps(meta, indent=1).encode()
        _atomic_write(path, lambda f: f.write(text))
    else:
        meta["sha256"] = _digest(meta, arrays)
        payload = {_META_KEY: np.array(json.dumps(meta)), **arrays}
        _atomic_write(path, lambda f: np.savez(f, **payload))  # type: ignore[arg-type]
    return path


def provenance() -> dict[str, Any]:
    """What the bits of a result depend on: funcnn's and NumPy's versions, the BLAS and its
    CPU kernel, and funcnn's block sizes. Saved in every file, so that a comparison across
    machines can say why two runs' bits differ."""
    return {
        "funcnn": __version__,
        "numpy": np.__version__,
        "blas": linalg.blas_description(),
        "blocks": {
            name: getattr(linalg, name)
            for name in ("ROWS", "BLOCK_FLOPS", "CHUNK", "TRAIN_BLOCK_FLOPS", "COLS", "MIN_TASKS")
        },
    }


def _shape_tree(shape: Any) -> Any:
    if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], (tuple, list)):
        return tuple(_shape_tree(s) for s in shape)
    return tuple(int(s) for s in shape)


def _json(text: bytes | str, what: str) -> Any:
    """Parsed JSON, refusing non-finite constants; ValueError for anything unreadable."""

    def constant(name: str) -> Any:
        raise ValueError(f"{what} holds the non-number {name}")

    try:
        return json.loads(text, parse_constant=constant)
    except RecursionError as e:
        raise ValueError(f"{what} is nested too deeply") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON (truncated?): {e}") from e


def _json_array(key: str, entry: Any) -> np.ndarray:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
        raise ValueError(f"array {key!r} must hold dtype, shape and data, got {entry!r:.80}")
    dtype = _dtype(entry["dtype"], key)
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ValueError(f"array {key!r} has the shape {shape!r:.80}")
    try:
        a = np.array(entry["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"array {key!r} holds data that is not {dtype}: {e}") from e
    if a.shape != tuple(shape):
        if a.size == 0 == math.prod(shape):  # nested lists cannot say the shape of nothing
            return a.reshape(shape)
        raise ValueError(f"array {key!r} declares shape {tuple(shape)}, its data has {a.shape}")
    return a


def _dtype(value: Any, key: str) -> np.dtype:
    try:
        dtype = np.dtype(_string(value, "dtype"))
    except TypeError as e:
        raise ValueError(f"array {key!r} has the unknown dtype {value!r:.40}") from e
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {key!r} has dtype {dtype}: only bool, int and float arrays load")
    return dtype


def _npz_arrays(path: Path, size: int) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, each checked against its member's size before reading."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if key == info.filename or key in arrays:
                raise ValueError(f"unexpected member {info.filename!r:.80} in the archive")
            if info.file_size > 64 * size + 2**20:  # np.savez stores, it does not compress
                raise ValueError(f"member {key!r} unpacks to {info.file_size} bytes")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                reader = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = reader(f, max_header_size=2**16)
                if key == _META_KEY:
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
                data = f.read(nbytes)
            a = np.frombuffer(data, dtype=dtype, count=count)
            arrays[key] = a.reshape(shape, order="F" if fortran else "C").copy()
    return arrays


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, arrays) of a file; ValueError for anything that is not a funcnn file."""
    info = os.stat(path)  # FileNotFoundError, PermissionError: the OS's own errors
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("it is not a regular file (a device, pipe or socket never ends)")
    if path.suffix.lower() == ".json":
        with path.open("rb") as f:
            meta = _json(f.read(info.st_size + 1), "the file")
        if not isinstance(meta, dict):
            raise ValueError(f"it holds {type(meta).__name__}, not a JSON object")
        arrays = meta.pop("arrays", {})
        if not isinstance(arrays, dict):
            raise ValueError(f"its arrays must be a JSON object, got {type(arrays).__name__}")
        return meta, {_string(k, "array name"): _json_array(k, v) for k, v in arrays.items()}
    try:
        arrays = _npz_arrays(path, info.st_size)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:
        raise ValueError(f"it is not a readable .npz archive (truncated or corrupted): {e}") from e
    if _META_KEY not in arrays:
        raise ValueError(f"it is not a funcnn file (no {_META_KEY} entry)")
    meta = _json(str(arrays.pop(_META_KEY)), "its metadata")
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata holds {type(meta).__name__}, not a JSON object")
    return meta, arrays


_KEYS = (
    "format", "version", "sha256", "model", "params", "state", "opt_state", "history",
    "epoch", "input_shape", "metadata",
)  # fmt: skip


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read what :func:`save` wrote. Safe on any file: anything truncated, tampered, foreign
    or hostile raises :class:`LoadError` (a ValueError) naming the file; the only other
    errors are the OS's (FileNotFoundError, PermissionError, IsADirectoryError). Time and
    memory are bounded by the file's size; no code in the file is ever run."""
    path = Path(path)
    try:
        return _load(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError, LoadError):
        raise
    except (RecursionError, MemoryError) as e:
        raise LoadError(f"{path}: too deep or too large to load ({type(e).__name__})") from e
    except Exception as e:  # whatever a damaged file makes a parser raise (NumPy's header
        # parser raises SyntaxError): the file is refused, with the cause attached
        raise LoadError(f"{path}: {e}") from e


def _load(path: Path) -> Checkpoint:
    meta, arrays = _read(path)
    if meta.get("format") != FORMAT:
        raise ValueError("it is not a funcnn file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"it has format version {meta.get('version')!r:.40}; this funcnn reads version "
            f"{FORMAT_VERSION}"
        )
    missing = [key for key in _KEYS if key not in meta]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    expected = meta.pop("sha256")
    if expected != _digest(meta, arrays):
        raise ValueError("it fails its SHA-256 check: the file was modified or damaged")
    model = from_spec(meta["model"])
    if not isinstance(model, Layer):
        raise ValueError("the model spec does not describe a layer")
    params = tree.freeze(_decode(meta["params"], arrays))
    state = tree.freeze(_decode(meta["state"], arrays))
    epoch, history, metadata = meta["epoch"], meta["history"], meta["metadata"]
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise ValueError(f"its epoch is {epoch!r:.40}, not an int >= 0")
    if history is not None and not (
        isinstance(history, dict) and all(isinstance(v, list) for v in history.values())
    ):
        raise ValueError("its history is not a JSON object of lists")
    if not isinstance(metadata, dict):
        raise ValueError("its metadata is not a JSON object")
    input_shape = None if meta["input_shape"] is None else _decode(meta["input_shape"], {})
    if input_shape is not None:
        _check_fit(model, params, state, input_shape, path.stat().st_size)
    return Checkpoint(
        model=model,
        params=params,
        state=state,
        opt_state=tree.freeze(_decode(meta["opt_state"], arrays)),
        history=history,
        epoch=epoch,
        input_shape=input_shape,
        metadata=metadata,
        provenance=meta.get("provenance"),
    )


def _check_fit(model: Layer, params: Any, state: Any, input_shape: Any, size: int) -> None:
    """The params fit the architecture: shape inference first, then one zero example
    through the model with the file's params, then the structure of a fresh init (whose
    size the first two bound by the file's)."""
    for leaf in tree.leaves(params):
        if not isinstance(leaf, np.ndarray) or leaf.dtype.kind != "f":
            raise ValueError(
                f"the params must be float arrays, got a {type(leaf).__name__}"
                + (f" of dtype {leaf.dtype}" if isinstance(leaf, np.ndarray) else "")
            )
    shapes = input_shape if is_shape_tuple(input_shape) else (input_shape,)
    for shape in shapes:
        as_shape(shape)
        if math.prod(shape) > max(2**24, 16 * size):
            raise ValueError(f"its input shape {shape} is larger than such a file can serve")
    expected = model.output_shape(input_shape)
    dtype = next((a.dtype for a in tree.leaves(params)), np.dtype(np.float32))
    zeros = [np.zeros((1, *shape), dtype) for shape in shapes]
    x = tuple(zeros) if is_shape_tuple(input_shape) else zeros[0]
    layer_state = state if tree.leaves(state) else None
    try:
        y, _ = model.apply_with_state(params, layer_state, x)
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"the params do not fit the architecture: {e}") from e
    got = tuple(tuple(a.shape[1:]) for a in y) if isinstance(y, tuple) else tuple(y.shape[1:])
    if got != expected:
        raise ValueError(f"the params do not fit the architecture: output {got}, not {expected}")
    diff = tree.structure_difference(model.init(0, input_shape, dtype=dtype), params)
    if diff is not None:
        raise ValueError(f"the params do not fit the architecture {diff}")
