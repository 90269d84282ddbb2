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
of known layers, initializers and state records, never code. Register your own
with :func:`register`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from funcnn import initializers, optim, tree
from funcnn import layers as L
from funcnn.layers.base import Layer

FORMAT = "funcnn"
FORMAT_VERSION = 1
_META_KEY = "__funcnn__"

_REGISTRY: dict[str, Any] = {}


def register(obj: Any, name: str | None = None) -> Any:
    """Make a layer class, layer value, initializer class or NamedTuple savable by name."""
    key = name or getattr(obj, "__name__", None) or repr(obj)
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not obj:
        raise ValueError(f"the name {key!r} is already registered for {existing!r}")
    _REGISTRY[key] = obj
    return obj


for _obj in (
    L.Dense, L.Dropout, L.LeakyRelu, L.Reshape, L.FanOut, L.FanInConcat, L.Serial, L.Parallel,
    L.Conv2D, L.Conv1D, L.ZeroPadding2D, L.MaxPool2D, L.AvgPool2D, L.GlobalAvgPool2D,
    L.GlobalMaxPool2D, L.MaxPool1D, L.AvgPool1D, L.BatchNorm, L.LayerNorm,
    L.ConvParams, L.NormParams, L.BatchNormState,
    initializers.VarianceScaling, initializers.Normal, initializers.Uniform,
    initializers.Orthogonal, initializers.Constant,
    L.DenseParams, optim.EmptyState, optim.ChainState, optim.ScaleByLearningRateState,
    optim.TraceState, optim.ScaleByRmsState, optim.ScaleByStddevState, optim.ScaleByRssState,
    optim.ScaleByAdamState, optim.ScaleByAdamaxState, optim.ScaleByAdadeltaState,
    optim.ScaleByLionState, optim.MaskedState, optim.ApplyIfFiniteState, optim.MultiStepsState,
):  # fmt: skip
    register(_obj)
for _value in (
    L.Relu, L.Sigmoid, L.Tanh, L.Softmax, L.LogSoftmax, L.Softplus, L.Elu, L.Selu, L.Gelu,
    L.Linear, L.Flatten, L.Identity, L.FanInSum,
):  # fmt: skip
    register(_value, repr(_value))


def _lookup(name: str, what: str) -> Any:
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown {what} {name!r} in the file; register it with funcnn.io.register "
            "before loading"
        )
    return _REGISTRY[name]


# ---------------------------------------------------------------- layer specs


def _name_of_value(obj: Any) -> str | None:
    for name, registered in _REGISTRY.items():
        if registered is obj:
            return name
    return None


def to_spec(obj: Any) -> Any:
    """A JSON-able description of a layer (or of any value found in a layer's fields)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    name = _name_of_value(obj)
    if name is not None and not isinstance(obj, type):
        return {"value": name}
    if isinstance(obj, (tuple, list)):
        return {"tuple" if isinstance(obj, tuple) else "list": [to_spec(v) for v in obj]}
    if attrs.has(type(obj)) and type(obj).__name__ in _REGISTRY:
        return {
            "class": type(obj).__name__,
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
        name = type(t).__name__
        if _REGISTRY.get(name) is not type(t):
            raise ValueError(
                f"cannot save a {name}: register the NamedTuple with funcnn.io.register"
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
    )
