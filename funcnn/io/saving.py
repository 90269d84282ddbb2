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

Both formats are strict JSON: no ``NaN`` or ``Infinity`` tokens. History and metadata
are JSON values that load gives back exactly as they were saved, non-finite floats
included (a diverging run's losses): a non-finite float is written as the one-key
object ``{"$float": "nan"}`` (``"inf"``, ``"-inf"``), and a dict of the user's whose only
key is ``"$float"`` or ``"$dict"`` is written inside ``{"$dict": {...}}`` so that it is
never read as a tag. Save refuses, before a byte is written, anything load would not
give back as it was (tuples, sets, non-str keys, objects: a TypeError that names the
key path); NumPy scalars are saved as the Python numbers they equal. Non-finite floats
in layer fields are written ``{"float": "nan"}`` in the model spec.

Architectures are rebuilt from layer specs: a class name looked up in a registry
of known layers, initializers and state records, never code. Every Layer subclass
and layer value registers itself when it is defined, and funcnn's own records and
initializers are found in their modules; register other records with :func:`register`.

Load is bounded by the file. It may allocate at most ``LOAD_FACTOR`` times the file's
size plus ``LOAD_FLOOR`` bytes in all (:func:`load_budget`), counted before each step
that allocates: the members of an .npz file as they would unpack, the JSON it parses
(an upper bound on the objects it builds, from a count of its characters), its arrays,
and the one-example check that the params fit the architecture (each layer's input,
output and windows, from shape inference, before the layer runs). A file that would
need more is refused with a :class:`LoadError`, and save refuses to write what load
would refuse.
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
LOAD_FACTOR = 16
"""Load may allocate this many times the file's size, plus :data:`LOAD_FLOOR`."""
LOAD_FLOOR = 64 * 2**20
"""What load may allocate for any file, however small (a small model on large images)."""
MAX_DEPTH = 100
"""The deepest nesting of lists and dicts save accepts in history and metadata."""

_FLOAT_TAG, _DICT_TAG = "$float", "$dict"  # history and metadata: see the module docstring
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

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
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"float": repr(float(obj))}  # strict JSON has no NaN or Infinity
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
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
        if "float" in spec and len(spec) == 1:
            return _non_finite(spec["float"], "a float in the model spec")
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


def _non_finite(name: Any, what: str) -> float:
    if not isinstance(name, str) or name not in _NON_FINITE:
        raise ValueError(f"{what} is {name!r:.40}, not one of 'nan', 'inf', '-inf'")
    return _NON_FINITE[name]


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


# ---------------------------------------------------------------- history and metadata


def _to_json(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as the JSON that :func:`_from_json` reads back as exactly ``value``: a
    non-finite float tagged, a dict whose only key is a tag escaped. A TypeError or
    ValueError naming the key path (``metadata['runs'][2]``) for anything load would
    not give back as it was; NumPy scalars become the Python numbers they equal."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if number != value and not math.isnan(number):
            raise ValueError(
                f"{where} is {value!r}, not exactly a float: load would give {number!r}"
            )
        return number if math.isfinite(number) else {_FLOAT_TAG: repr(number)}
    if isinstance(value, (list, dict)) and depth >= MAX_DEPTH:
        shown = where if len(where) <= 80 else f"{where[:80]}..."
        raise ValueError(f"{shown} is nested deeper than {MAX_DEPTH} lists and dicts")
    if isinstance(value, list):
        return [_to_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r:.40} ({type(key).__name__}): only str keys "
                    "load back as they were"
                )
        out = {str(k): _to_json(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
        return {_DICT_TAG: out} if len(out) == 1 and set(out) <= {_FLOAT_TAG, _DICT_TAG} else out
    if isinstance(value, tuple):
        raise TypeError(f"{where} is a tuple: load would give it back as a list; save a list")
    raise TypeError(
        f"{where} has type {type(value).__name__}, which is not a JSON value: history and "
        "metadata hold None, bool, int, float, str, and lists and dicts (str keys) of them"
    )


def _from_json(value: Any) -> Any:
    """What :func:`_to_json` encoded; ValueError for a malformed tag."""
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == _FLOAT_TAG:
            return _non_finite(inner, f"a {_FLOAT_TAG} in the file")
        if key == _DICT_TAG:
            if not isinstance(inner, dict):
                raise ValueError(f"a {_DICT_TAG} in the file holds {type(inner).__name__}")
            return {k: _from_json(v) for k, v in inner.items()}
    return {k: _from_json(v) for k, v in value.items()}


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


def load_budget(size: int) -> int:
    """The bytes :func:`load` may allocate for a file of ``size`` bytes."""
    return LOAD_FACTOR * size + LOAD_FLOOR


class _Budget:
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


def _json_cost(text: str | bytes) -> int:
    """An upper bound on what parsing ``text`` allocates, from a count of its characters
    (those inside strings too: an overestimate there, never an underestimate)."""
    width = 1 if text.isascii() else 4  # the parsed text's characters, and its strings
    if isinstance(text, bytes):
        return width * len(text) + sum(w * text.count(c.encode()) for c, w in _JSON_BYTES)
    return width * len(text) + sum(w * text.count(c) for c, w in _JSON_BYTES)


def parse_json(text: str | bytes, what: str = "the JSON") -> Any:
    """``json.loads(text)`` within the budget :func:`load` gives a file of ``text``'s size,
    refusing ``NaN``/``Infinity``; ValueError naming ``what`` for anything it refuses."""
    return _json(text, what, _Budget(len(text)))


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

    ``history`` may be a History or a dict of lists; ``history`` and ``metadata`` hold
    JSON values (non-finite floats included), which load gives back exactly. A model
    that keeps state (BatchNorm) needs its ``state``. ``input_shape`` (one example's
    shape) lets :func:`load` check that the params fit the architecture. Everything is
    checked before a byte is written: what :func:`load` would refuse, or not give back
    as it was, raises TypeError or ValueError and leaves the file as it was.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a funcnn Layer, got {type(model).__name__}")
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    history_dict = history.to_dict() if hasattr(history, "to_dict") else history
    if history_dict is not None and not (
        isinstance(history_dict, dict)
        and all(isinstance(v, (list, tuple)) for v in history_dict.values())
    ):
        raise TypeError(f"history must be a History or a dict of lists, got {history!r:.80}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    if epoch is not None:
        epoch = check.non_negative_int("epoch", epoch)
    shape = None
    if input_shape is not None:
        try:
            shape = _shape_tree(input_shape)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"cannot save to {path}: input_shape must be one example's shape (a tuple of "
                f"ints) or a tuple of them, got {input_shape!r:.80}"
            ) from e
    _check_state(model, state, shape)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": to_spec(model),
        "input_shape": None if shape is None else _encode(shape, {}),
        "params": _encode(params, arrays),
        "state": _encode(state, arrays),
        "opt_state": _encode(opt_state, arrays),
        "history": None if history_dict is None else _to_json(history_dict, "history"),
        "epoch": epoch,
        "metadata": _to_json(metadata or {}, "metadata"),
        "provenance": provenance(),
    }
    if path.suffix.lower() == ".json":
        meta["arrays"] = {k: _json_entry(a) for k, a in arrays.items()}
        meta["sha256"] = _digest({k: v for k, v in meta.items() if k != "arrays"}, arrays)
        text = json.dumps(meta, indent=1, allow_nan=False).encode()
        budget = _Budget(len(text))  # what load will spend on this file, step by step
        steps = [(len(text), "reading it"), (_json_cost(text), "parsing the file")]

        def write(f: Any) -> None:
            f.write(text)

    else:
        meta["sha256"] = _digest(meta, arrays)
        document = json.dumps(meta, allow_nan=False)
        if 4 * len(document) + 256 > MAX_META_BYTES:
            raise ValueError(
                f"cannot save to {path}: its metadata would take {4 * len(document):,} bytes, "
                f"more than the {MAX_META_BYTES:,} load reads (a history or metadata too long)"
            )
        payload = {_META_KEY: np.array(document), **arrays}
        budget = _Budget(sum(a.nbytes for a in payload.values()))  # the file holds more
        steps = [(4 * len(document), "unpacking its metadata")] * 2  # and decoding it
        steps.append((_json_cost(document), "parsing its metadata"))

        def write(f: Any) -> None:
            np.savez(f, **payload)  # type: ignore[arg-type]

    steps += [(a.nbytes, f"array {k!r}") for k, a in arrays.items()]
    try:
        for nbytes, what in steps:
            budget.spend(nbytes, what)
        if shape is not None:  # what load will check, checked before a byte is written
            _check_fit(model, params, state, shape, budget)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"cannot save to {path}: {e}") from e
    _atomic_write(path, write)
    return path


def _stateful_layers(layer: Layer) -> list[Layer]:
    """The layers inside ``layer`` that define their own ``init_state``, found without an
    input shape: a layer with layers in its fields (serial, parallel, Graph) keeps the
    state of its children, any other keeps state if it defines ``init_state``."""
    children = [
        child
        for field in (attrs.fields(type(layer)) if attrs.has(type(layer)) else ())
        for value in [getattr(layer, field.name)]
        for child in (value if isinstance(value, (tuple, list)) else (value,))
        if isinstance(child, Layer)
    ]
    if children:
        return [found for child in children for found in _stateful_layers(child)]
    return [layer] if type(layer).init_state is not Layer.init_state else []


def _check_state(model: Layer, state: Any, input_shape: Any) -> None:
    """Refuse to save a model that keeps state without its state: that file could not predict."""
    if tree.leaves(state):
        return
    keepers = _stateful_layers(model)
    keeps = bool(keepers)
    if input_shape is not None:  # the model itself says, for this shape
        with contextlib.suppress(TypeError, ValueError):  # the fit check names a bad shape
            keeps = bool(tree.leaves(model.init_state(input_shape)))
    if keeps:
        names = ", ".join(dict.fromkeys(repr(layer) for layer in keepers)) or repr(model)
        raise ValueError(
            f"this model keeps state ({names}): pass state=..., e.g. save(path, model, params, "
            "state=state), with the state fit returned (history.state) or "
            "model.init_state(input_shape); without it the file cannot predict"
        )


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


def _json(text: bytes | str, what: str, budget: _Budget) -> Any:
    """Parsed JSON, refusing non-finite constants; ValueError for anything unreadable, or
    for a text whose objects would not fit in ``budget``."""
    budget.spend(_json_cost(text), f"parsing {what}")

    def constant(name: str) -> Any:
        raise ValueError(f"{what} holds the non-number {name}")

    try:
        return json.loads(text, parse_constant=constant)
    except RecursionError as e:
        raise ValueError(f"{what} is nested too deeply") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON (truncated?): {e}") from e


def _json_entry(a: np.ndarray) -> dict[str, Any]:
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


def _json_array(key: str, entry: Any, budget: _Budget) -> np.ndarray:
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
    try:
        dtype = np.dtype(_string(value, "dtype"))
    except TypeError as e:
        raise ValueError(f"array {key!r} has the unknown dtype {value!r:.40}") from e
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {key!r} has dtype {dtype}: only bool, int and float arrays load")
    return dtype


def _npz_arrays(path: Path, budget: _Budget) -> dict[str, np.ndarray]:
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


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], _Budget]:
    """(metadata, arrays, what is left to spend) of a file; ValueError for anything that is
    not a funcnn file or that would take more than the file's budget."""
    info = os.stat(path)  # FileNotFoundError, PermissionError: the OS's own errors
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("it is not a regular file (a device, pipe or socket never ends)")
    budget = _Budget(info.st_size)
    if path.suffix.lower() == ".json":
        budget.spend(info.st_size, "reading it")
        with path.open("rb") as f:
            meta = _json(f.read(info.st_size + 1), "the file", budget)
        if not isinstance(meta, dict):
            raise ValueError(f"it holds {type(meta).__name__}, not a JSON object")
        arrays = meta.pop("arrays", {})
        if not isinstance(arrays, dict):
            raise ValueError(f"its arrays must be a JSON object, got {type(arrays).__name__}")
        return (
            meta,
            {_string(k, "array name"): _json_array(k, v, budget) for k, v in arrays.items()},
            budget,
        )
    try:
        arrays = _npz_arrays(path, budget)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:
        raise ValueError(f"it is not a readable .npz archive (truncated or corrupted): {e}") from e
    if _META_KEY not in arrays:
        raise ValueError(f"it is not a funcnn file (no {_META_KEY} entry)")
    document = arrays.pop(_META_KEY)
    budget.spend(document.nbytes, "decoding its metadata")  # UCS-4 to a str: at most as large
    meta = _json(document.item(), "its metadata", budget)
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata holds {type(meta).__name__}, not a JSON object")
    return meta, arrays, budget


_KEYS = (
    "format", "version", "sha256", "model", "params", "state", "opt_state", "history",
    "epoch", "input_shape", "metadata",
)  # fmt: skip


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read what :func:`save` wrote. Safe on any file: anything truncated, tampered, foreign
    or hostile raises :class:`LoadError` (a ValueError) naming the file; the only other
    errors are the OS's (FileNotFoundError, PermissionError, IsADirectoryError). Time and
    memory are bounded by the file's size: it allocates at most :func:`load_budget` of it,
    counted before each step (see the module docstring); no code in the file is ever run."""
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
    meta, arrays, budget = _read(path)
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
    epoch = meta["epoch"]
    history = None if meta["history"] is None else _from_json(meta["history"])
    metadata = _from_json(meta["metadata"])
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
        _check_fit(model, params, state, input_shape, budget)
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


# ---------------------------------------------------------------- the one-example check

_OFFSET_BYTES = 256
"""What a window offset costs, in bytes: pools and one-channel convolutions loop over them."""


@attrs.frozen
class _Part:
    """One layer of a model (combinators opened), with its params, state and shapes."""

    where: str
    layer: Layer
    params: Any
    state: Any
    input_shape: Any
    output_shape: Any


def _parts(layer: Layer, params: Any, state: Any, input_shape: Any, where: str) -> list[_Part]:
    """The layers of ``layer``, serial, parallel and Graph opened, each with its params, state
    and shapes (shape inference only: nothing is allocated)."""
    if not isinstance(layer, (L.Serial, L.Parallel, L.Graph)):
        return [_Part(where, layer, params, state, input_shape, layer.output_shape(input_shape))]
    n = len(layer.layers)
    shapes = layer._child_shapes(input_shape)
    states = (None,) * n if state is None else state
    for what, value in (("params", params), ("state", states)):
        if not isinstance(value, tuple) or len(value) != n:
            got = f"{len(value)} entries" if isinstance(value, (tuple, list)) else "a "
            got += "" if isinstance(value, (tuple, list)) else type(value).__name__
            raise ValueError(
                f"the params do not fit the architecture: {where} has {n} layers, its {what} {got}"
            )
    return [
        part
        for i, (child, p, s, shape) in enumerate(zip(layer.layers, params, states, shapes))
        for part in _parts(child, p, s, shape, f"{where}.layers[{i}]")
    ]


def _shape_list(shape: Any) -> list[tuple[int, ...]]:
    return list(shape) if is_shape_tuple(shape) else [shape]


def _window(layer: Layer) -> tuple[tuple[int, ...], ...] | None:
    """(kernel, strides, dilation) of a layer that gathers a window of its input for each
    output position (Conv2D, Conv1D and the pools: their kernel_size or pool_size,
    strides and dilation fields), or None."""
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if kernel is None:
        return None

    def ints(value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
        value = default if value is None else value
        return tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))

    try:
        sizes = ints(kernel, ())
        strides = ints(getattr(layer, "strides", None), sizes)
        found = (sizes, strides, ints(getattr(layer, "dilation", None), (1,) * len(sizes)))
    except (TypeError, ValueError):
        return None
    if len({len(t) for t in found}) != 1 or min(v for t in found for v in t) < 1:
        return None
    return found


def _cost(part: _Part, itemsize: int) -> int:
    """An upper bound on the bytes ``part`` allocates to run one example: its input, its
    output and temporaries as large, a fresh init of its params, and, for a layer with a
    window, one window of the (padded) input per output position, and its loop over the
    window's offsets."""
    ins, outs = _shape_list(part.input_shape), _shape_list(part.output_shape)
    elements = sum(map(math.prod, ins)) + 3 * sum(map(math.prod, outs))
    elements += sum(a.size for a in tree.leaves(part.params) if isinstance(a, np.ndarray))
    window = _window(part.layer)
    offsets = 0
    if window is not None and len(ins) == len(outs) == 1 and len(outs[0]) == len(window[0]) + 1:
        (kernel, strides, dilation), out, channels = window, outs[0], ins[0][-1]
        offsets = math.prod(kernel)
        elements += math.prod(out[:-1]) * offsets * channels  # the windows (im2col)
        padded = zip(out[:-1], strides, dilation, kernel)
        elements += math.prod(o * s + d * k for o, s, d, k in padded) * channels
    return elements * itemsize + offsets * _OFFSET_BYTES


def _check_fit(model: Layer, params: Any, state: Any, input_shape: Any, budget: _Budget) -> None:
    """The params fit the architecture: shape inference first, then each layer (combinators
    opened) runs one zero example with the file's params and state, and its params have
    the structure of a fresh init. What each layer would allocate is counted against
    ``budget`` before anything runs."""
    for leaf in tree.leaves(params):
        if not isinstance(leaf, np.ndarray) or leaf.dtype.kind != "f":
            raise ValueError(
                f"the params must be float arrays, got a {type(leaf).__name__}"
                + (f" of dtype {leaf.dtype}" if isinstance(leaf, np.ndarray) else "")
            )
    dtype = next((a.dtype for a in tree.leaves(params)), np.dtype(np.float32))
    for shape in _shape_list(input_shape):
        as_shape(shape)
    budget.check(
        sum(map(math.prod, _shape_list(input_shape))) * dtype.itemsize,
        f"its input shape {input_shape} is larger than such a file can serve: one example",
    )
    model.output_shape(input_shape)  # a wiring error, named for the whole model
    parts = _parts(model, params, state if tree.leaves(state) else None, input_shape, "model")
    for part in parts:
        budget.check(_cost(part, dtype.itemsize), f"checking {part.where} ({part.layer!r})")
    for part in parts:
        _check_part(part, dtype)


def _check_part(part: _Part, dtype: np.dtype) -> None:
    """One layer runs a zero example with its params and gives its inferred output shape.
    It runs in training mode, whose products take the example as it is (inference products
    pad it to a block of up to ``linalg.ROWS`` samples, which :func:`_cost` does not count)."""
    zeros = [np.zeros((1, *shape), dtype) for shape in _shape_list(part.input_shape)]
    x = tuple(zeros) if is_shape_tuple(part.input_shape) else zeros[0]
    name = f"{part.where} ({part.layer!r})"
    try:
        y, _ = part.layer.apply_with_state(part.params, part.state, x, train=True, rng=0)
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"the params do not fit the architecture: {name}: {e}") from e
    got = tuple(tuple(a.shape[1:]) for a in y) if isinstance(y, tuple) else tuple(y.shape[1:])
    if got != part.output_shape:
        raise ValueError(
            f"the params do not fit the architecture: {name} gives {got}, not {part.output_shape}"
        )
    diff = tree.structure_difference(part.layer.init(0, part.input_shape, dtype=dtype), part.params)
    if diff is not None:
        raise ValueError(f"the params do not fit the architecture: {name} {diff}")
