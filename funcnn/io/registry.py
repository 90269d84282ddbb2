"""The names a file may use, and layer specs: a model as JSON, rebuilt without code.

Every Layer subclass and layer value registers itself when it is defined
(:mod:`funcnn.layers.base`), funcnn's own records (params, layer and optimizer
states) and initializers are found in their modules, and anything else is registered
with :func:`register`. A name in a file is only ever looked up here, never imported.
Non-finite floats in layer fields are written ``{"float": "nan"}`` (``"inf"``,
``"-inf"``): strict JSON has no NaN or Infinity.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any

import attrs
import numpy as np

from funcnn import initializers, optim
from funcnn import layers as L
from funcnn.layers import base as layer_base
from funcnn.layers.base import Layer

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


def lookup(name: str, what: str) -> Any:
    """The object registered as ``name``; ValueError naming the fix for an unknown name."""
    registry = _registry()
    name = as_str(name, f"{what} name")
    if name not in registry:
        raise ValueError(
            f"unknown {what} {name!r} in the file; define the class (or register it with "
            "funcnn.io.register) before loading"
        )
    return registry[name]


def name_in_registry(obj: Any) -> str | None:
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
    name = name_in_registry(obj)
    if name is not None and not isinstance(obj, type):
        return {"value": name}
    if isinstance(obj, (tuple, list)):
        return {"tuple" if isinstance(obj, tuple) else "list": [to_spec(v) for v in obj]}
    cls_name = name_in_registry(type(obj))
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
            return non_finite(spec["float"], "a float in the model spec")
        if "value" in spec:
            return lookup(as_str(spec["value"], "value name"), "value")
        if "tuple" in spec or "list" in spec:
            items = [from_spec(v) for v in as_list(spec.get("tuple", spec.get("list")))]
            return tuple(items) if "tuple" in spec else items
        if "class" in spec:
            name = as_str(spec["class"], "class name")
            cls = lookup(name, "class")
            fields = spec.get("fields", {})
            if not isinstance(fields, dict):
                raise ValueError(f"the fields of {name} must be a JSON object, got {fields!r:.80}")
            if isinstance(cls, Layer) and not fields:
                return cls  # a parameter-free layer that format 1 saved as a class
            if not (isinstance(cls, type) and attrs.has(cls)):
                raise ValueError(f"{name!r} is not a layer or initializer class")
            kwargs = {as_str(k, "field name"): from_spec(v) for k, v in fields.items()}
            try:
                return cls(**kwargs)
            except (TypeError, ValueError, OverflowError) as e:
                raise ValueError(f"invalid fields for {name}: {e}") from e
    raise ValueError(f"malformed spec in the file: {spec!r:.200}")


# ---------------------------------------------------------------- values read from a file


def non_finite(name: Any, what: str) -> float:
    """The float a non-finite tag names (``"nan"``, ``"inf"``, ``"-inf"``)."""
    if not isinstance(name, str) or name not in _NON_FINITE:
        raise ValueError(f"{what} is {name!r:.40}, not one of 'nan', 'inf', '-inf'")
    return _NON_FINITE[name]


def as_str(value: Any, what: str) -> str:
    """``value``, a str read from a file; ValueError naming ``what`` for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"a {what} must be a string, got {value!r:.80}")
    return value


def as_list(value: Any) -> list[Any]:
    """``value``, a JSON list read from a file; ValueError for anything else."""
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list, got {value!r:.80}")
    return value
