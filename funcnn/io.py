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
import hashlib
import importlib
import json
import os
import pkgutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import initializers, linalg, optim, tree
from funcnn import layers as L
from funcnn.layers import base as layer_base
from funcnn.layers.base import Layer
from funcnn.version import __version__

FORMAT = "funcnn"
FORMAT_VERSION = 1
_META_KEY = "__funcnn__"

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
    """The object :func:`to_spec` described."""
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return spec
    if isinstance(spec, dict):
        if "value" in spec:
            return _lookup(spec["value"], "value")
        if "tuple" in spec:
            return tuple(from_spec(v) for v in spec["tuple"])
        if "list" in spec:
            return [from_spec(v) for v in spec["list"]]
        if "class" in spec:
            cls = _lookup(spec["class"], "class")
            if isinstance(cls, Layer) and not spec.get("fields"):
                return cls  # a parameter-free layer that format 1 saved as a class
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise ValueError(f"{spec['class']!r} is not a layer or initializer class")
            fields = {k: from_spec(v) for k, v in spec.get("fields", {}).items()}
            try:
                return cls(**fields)
            except (TypeError, ValueError) as e:
                raise ValueError(f"invalid fields for {spec['class']}: {e}") from e
    raise ValueError(f"malformed spec in the file: {spec!r}")


# ---------------------------------------------------------------- trees


def _encode(t: Any, arrays: dict[str, np.ndarray]) -> Any:
    if t is None or isinstance(t, (bool, str)):
        return t
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return {"int": t} if isinstance(t, int) else {"float": repr(t)}
    if isinstance(t, (np.ndarray, np.generic)):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(t)
        return {"array": key}
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
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, dict):
        if "int" in obj:
            return int(obj["int"])
        if "float" in obj:
            return float(obj["float"])
        if "array" in obj:
            if obj["array"] not in arrays:
                raise ValueError(f"the file lacks array {obj['array']!r}: truncated or tampered")
            return arrays[obj["array"]]
        if "record" in obj:
            cls = _lookup(obj["record"], "record")
            return cls(*(_decode(v, arrays) for v in obj["fields"]))
        if "tuple" in obj:
            return tuple(_decode(v, arrays) for v in obj["tuple"])
        if "list" in obj:
            return [_decode(v, arrays) for v in obj["list"]]
        if "dict" in obj:
            return {k: _decode(v, arrays) for k, v in obj["dict"].items()}
    raise ValueError(f"malformed tree in the file: {obj!r}")


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


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
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
    if path.suffix == ".json":
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


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".json":
        try:
            meta = json.loads(path.read_text())
            arrays = {
                k: np.array(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"])
                for k, v in meta.pop("arrays", {}).items()
            }
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a readable funcnn JSON file (truncated?): {e}") from e
        return meta, arrays
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"{path} is not a readable funcnn file (truncated or corrupted): {e}"
        ) from e
    if _META_KEY not in arrays:
        raise ValueError(f"{path} is not a funcnn file (no {_META_KEY} entry)")
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupted metadata: {e}") from e
    return meta, arrays


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read what :func:`save` wrote; ValueError for anything truncated, tampered or foreign."""
    path = Path(path)
    meta, arrays = _read(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a funcnn file")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {meta.get('version')!r}; this funcnn reads version "
            f"{FORMAT_VERSION}"
        )
    expected = meta.pop("sha256", None)
    if expected != _digest(meta, arrays):
        raise ValueError(f"{path} fails its SHA-256 check: the file was modified or damaged")
    model = from_spec(meta["model"])
    if not isinstance(model, Layer):
        raise ValueError(f"{path}: the model spec does not describe a layer")
    params = tree.freeze(_decode(meta["params"], arrays))
    input_shape = None if meta["input_shape"] is None else _decode(meta["input_shape"], {})
    if input_shape is not None:
        dtype = next((a.dtype for a in tree.leaves(params)), np.float32)
        fresh = model.init(0, input_shape, dtype=dtype)
        diff = tree.structure_difference(fresh, params)
        if diff is not None:
            raise ValueError(f"{path}: the params do not fit the architecture {diff}")
    return Checkpoint(
        model=model,
        params=params,
        state=tree.freeze(_decode(meta["state"], arrays)),
        opt_state=tree.freeze(_decode(meta["opt_state"], arrays)),
        history=meta["history"],
        epoch=meta["epoch"],
        input_shape=input_shape,
        metadata=meta["metadata"],
        provenance=meta.get("provenance"),
    )
