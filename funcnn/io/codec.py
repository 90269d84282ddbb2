"""The tree codec: params, state and optimizer-state trees as JSON that names arrays, and
history and metadata as JSON values that load gives back exactly.

A tree (:func:`encode`) is written as tagged JSON: ``{"array": "a0"}`` for an array
(stored beside the JSON, see :mod:`funcnn.io.files`), ``{"int": 3}``, ``{"float":
"0.1"}`` (its ``repr``: nan and inf included), ``{"record": name, "fields": [...]}``
for a registered NamedTuple, ``{"tuple": [...]}``, ``{"list": [...]}`` and ``{"dict":
{...}}``. Only bool, int and float arrays are saved (:data:`ARRAY_KINDS`).

History and metadata (:func:`to_json`) are plain JSON values. Strict JSON has no NaN or
Infinity: a non-finite float is written as the one-key object ``{"$float": "nan"}``
(``"inf"``, ``"-inf"``), and a dict of the user's whose only key is ``"$float"`` or
``"$dict"`` is written inside ``{"$dict": {...}}`` so that it is never read as a tag.
Anything load would not give back as it was (tuples, sets, non-str keys, objects) is
refused with a TypeError that names the key path; NumPy scalars are saved as the Python
numbers they equal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from funcnn.io.registry import as_list, as_str, lookup, name_in_registry, non_finite

ARRAY_KINDS = "biuf"
"""Bool, signed and unsigned ints, floats: the dtype kinds saved and read, nothing else."""
MAX_DEPTH = 100
"""The deepest nesting of lists and dicts save accepts in history and metadata."""

_FLOAT_TAG, _DICT_TAG = "$float", "$dict"  # history and metadata: see the module docstring


# ---------------------------------------------------------------- trees


def encode(t: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``t`` as tagged JSON, each array put in ``arrays`` under the key that names it."""
    if t is None or isinstance(t, (bool, str)):
        return t
    if isinstance(t, (np.ndarray, np.generic)):  # before float: np.float64 is a float
        a = np.asarray(t)
        if a.dtype.kind not in ARRAY_KINDS:
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
        name = name_in_registry(type(t))
        if name is None:
            raise ValueError(
                f"cannot save a {type(t).__name__}: register the NamedTuple with funcnn.io.register"
            )
        return {"record": name, "fields": [encode(v, arrays) for v in t]}
    if isinstance(t, (tuple, list)):
        return {"tuple" if isinstance(t, tuple) else "list": [encode(v, arrays) for v in t]}
    if isinstance(t, dict):
        if not all(isinstance(k, str) for k in t):
            raise ValueError("only dicts with str keys can be saved")
        return {"dict": {k: encode(v, arrays) for k, v in t.items()}}
    raise ValueError(f"cannot save a value of type {type(t).__name__}")


def decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The tree :func:`encode` described; ValueError for any value of the wrong type."""
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
                return float(as_str(obj["float"], "float"))
            except ValueError as e:
                raise ValueError(f"a float in the file is {obj['float']!r:.80}") from e
        if "array" in obj:
            key = obj["array"]
            if not isinstance(key, str) or key not in arrays:
                raise ValueError(f"the file lacks array {key!r:.80}: truncated or tampered")
            return arrays[key]
        if "record" in obj:
            cls = lookup(as_str(obj["record"], "record name"), "record")
            fields = as_list(obj.get("fields"))
            if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise ValueError(f"{obj['record']!r} is not a record (NamedTuple) class")
            if len(fields) != len(cls._fields):
                raise ValueError(
                    f"{obj['record']} has {len(cls._fields)} fields, the file gives {len(fields)}"
                )
            return cls(*(decode(v, arrays) for v in fields))
        if "tuple" in obj:
            return tuple(decode(v, arrays) for v in as_list(obj["tuple"]))
        if "list" in obj:
            return [decode(v, arrays) for v in as_list(obj["list"])]
        if "dict" in obj and isinstance(obj["dict"], dict):
            return {k: decode(v, arrays) for k, v in obj["dict"].items()}
    raise ValueError(f"malformed tree in the file: {obj!r:.200}")


# ---------------------------------------------------------------- history and metadata


def to_json(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as the JSON that :func:`from_json` reads back as exactly ``value``: a
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
        return [to_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r:.40} ({type(key).__name__}): only str keys "
                    "load back as they were"
                )
        out = {str(k): to_json(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
        return {_DICT_TAG: out} if len(out) == 1 and set(out) <= {_FLOAT_TAG, _DICT_TAG} else out
    if isinstance(value, tuple):
        raise TypeError(f"{where} is a tuple: load would give it back as a list; save a list")
    raise TypeError(
        f"{where} has type {type(value).__name__}, which is not a JSON value: history and "
        "metadata hold None, bool, int, float, str, and lists and dicts (str keys) of them"
    )


def from_json(value: Any) -> Any:
    """What :func:`to_json` encoded; ValueError for a malformed tag."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == _FLOAT_TAG:
            return non_finite(inner, f"a {_FLOAT_TAG} in the file")
        if key == _DICT_TAG:
            if not isinstance(inner, dict):
                raise ValueError(f"a {_DICT_TAG} in the file holds {type(inner).__name__}")
            return {k: from_json(v) for k, v in inner.items()}
    return {k: from_json(v) for k, v in value.items()}
