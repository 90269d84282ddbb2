"""A Keras model's config, both ways: what ``get_config``, ``to_json`` and a file's
metadata hold, and those values read back (layers, wiring and input shape from an
architecture; ``compile``'s arguments from the settings it recorded).

Values only, no model: :func:`funcnn.keras.files.restore` builds the model from them.
Reading names what was expected and what was found, with a ValueError, for anything a
model did not write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from funcnn.keras import layers as K
from funcnn.keras import losses as keras_losses
from funcnn.keras import optimizers as keras_optimizers
from funcnn.keras import regularizers
from funcnn.keras.base import declared_shape
from funcnn.layers.base import is_shape_tuple

# A functional model's graph: each layer's parents, the number of inputs, the outputs
# (node numbers: the inputs first, then the layers in order).
Wiring = tuple[tuple[tuple[int, ...], ...], int, tuple[int, ...]]


# -- writing


def json_values(value: Any) -> Any:
    """``value`` with tuples as lists; a TypeError for anything that is not a JSON value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [json_values(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: json_values(v) for k, v in value.items()}
    if isinstance(value, regularizers.Regularizer):  # one of one's own: refused, not dropped
        raise regularizers.not_saved(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def architecture(
    kind: str, name: str, specs: Sequence[K.KerasLayer], wiring: Wiring | None, input_shape: Any
) -> dict[str, Any] | None:
    """A model's class (``kind``), name, each layer's class and config, and the wiring:
    what rebuilds its ``layers``; None where a layer has no Keras config (a wrapped
    funcnn layer, an object in a config)."""
    try:
        layers = [{"class": type(s).__name__, "config": s.get_config()} for s in specs]
        json_values(layers)
    except TypeError:
        return None
    arch: dict[str, Any] = {"class": kind, "name": name, "layers": layers}
    if wiring is not None:
        parents, inputs, outputs = wiring
        arch["wiring"] = {
            "parents": [list(p) for p in parents],
            "inputs": inputs,
            "outputs": list(outputs),
        }
    if input_shape is not None:
        arch["input_shape"] = (
            [list(s) for s in input_shape] if is_shape_tuple(input_shape) else list(input_shape)
        )
    return arch


def metadata(compile_config: Any, arch: dict[str, Any] | None) -> dict[str, Any]:
    """What a file keeps of the facade: compile settings and Keras architecture, as JSON
    values (tuples as lists, as :func:`read_architecture` reads them)."""
    return {"keras": {"compile": json_values(compile_config), "architecture": json_values(arch)}}


# -- reading


class Architecture(NamedTuple):
    """What :func:`architecture` wrote, read back: the model's class name, its name (None
    for the class's default), fresh layers, wiring and input shape."""

    kind: str | None
    name: str | None
    specs: list[K.KerasLayer]
    wiring: Wiring | None
    input_shape: Any


def found(value: Any) -> str:
    """What a config holds where it should not, for an error message."""
    return (
        f"{type(value).__name__} {value!r:.60}" if isinstance(value, str) else type(value).__name__
    )


# What builds a nested model (a layer that is a model) from its config; the caller's.
NestedModel = Callable[[dict[str, Any]], K.KerasLayer]


def read_architecture(arch: Any, nested: NestedModel | None = None) -> Architecture:
    """The values :meth:`Model.get_config` wrote (layers not yet named or built);
    ``nested`` builds a layer that is a model from its config (refused without it)."""
    if not isinstance(arch, dict):
        raise ValueError(
            f"not a Keras model config: expected a JSON object with a list of layers, got "
            f"{found(arch)}"
        )
    if not isinstance(arch.get("layers"), list):
        raise ValueError(
            f"not a Keras model config: it needs a list of layers, got {found(arch.get('layers'))}"
        )
    specs = [_read_layer(i, entry, nested) for i, entry in enumerate(arch["layers"])]
    name = arch.get("name")
    if "name" in arch and not isinstance(name, str):
        raise ValueError(f"the Keras config's name must be a string, got {found(name)}")
    wiring = arch.get("wiring")
    shape = arch.get("input_shape")
    kind = arch.get("class")
    return Architecture(
        kind if isinstance(kind, str) else None,
        name,
        specs,
        None if wiring is None else _read_wiring(wiring),
        None if shape is None else _read_input_shape(shape),
    )


def _read_layer(i: int, entry: Any, nested: NestedModel | None = None) -> K.KerasLayer:
    if not isinstance(entry, dict):
        raise ValueError(
            f"layer {i} of the Keras config must be a JSON object with a class and a "
            f"config, got {found(entry)}"
        )
    name = entry.get("class")
    cls = getattr(K, name, None) if isinstance(name, str) else None
    config = entry.get("config", {})
    is_layer = isinstance(cls, type) and issubclass(cls, K.KerasLayer)
    if nested is not None and not is_layer and isinstance(config, dict) and "layers" in config:
        try:  # a model used as a layer: its config is a model's
            return nested(config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"layer {i} ({name}), a model, cannot be built: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, K.KerasLayer)) or cls is K.Wrap:
        raise ValueError(f"unknown Keras layer class {name!r:.80} (layer {i})")
    if not isinstance(config, dict):
        raise ValueError(
            f"layer {i} ({name}): its config must be a JSON object of keyword arguments, "
            f"got {found(config)}"
        )
    try:
        return cls(**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer {i} ({name}) cannot be built from its config: {e}") from e


def _read_wiring(wiring: Any) -> Wiring:
    """A functional model's wiring from its config: parents, inputs and outputs."""
    expected = "a JSON object of parents (lists of ints), inputs (an int) and outputs (ints)"
    if not isinstance(wiring, dict):
        raise ValueError(f"the Keras config's wiring must be {expected}, got {found(wiring)}")

    def ints(value: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"the Keras config's wiring must be {expected}, got {value!r:.80}")
        return tuple(value)

    parents, inputs = wiring.get("parents"), wiring.get("inputs")
    if not isinstance(parents, list) or isinstance(inputs, bool) or not isinstance(inputs, int):
        raise ValueError(f"the Keras config's wiring must be {expected}, got {wiring!r:.80}")
    return tuple(ints(p) for p in parents), inputs, ints(wiring.get("outputs"))


def _read_input_shape(shape: Any) -> Any:
    """An input shape from a config: a list of ints (null for a length that varies, as
    ``keras.Input(shape=(None,))``), or a list of such lists."""
    try:
        if not isinstance(shape, list):
            raise TypeError(f"got {found(shape)}")
        if shape and isinstance(shape[0], list):
            return tuple(declared_shape(tuple(s)) for s in shape)
        return declared_shape(tuple(shape))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"the Keras config's input_shape must be a list of ints or nulls (or a list of "
            f"such lists, one per input): {e}"
        ) from e


def read_compile(settings: Any) -> dict[str, Any]:
    """The keyword arguments of ``compile`` from the settings :meth:`Model.compile`
    recorded. A TypeError from an optimizer or loss that its config does not build."""
    expected = "an optimizer (a name or {class, config}), a loss and a list of metrics"
    if not isinstance(settings, dict):
        raise ValueError(
            f"the compile settings must be a JSON object of {expected}, got {found(settings)}"
        )
    missing = [key for key in ("optimizer", "loss") if key not in settings]
    if missing:
        raise ValueError(
            f"the compile settings lack {' and '.join(missing)}: expected {expected}, got "
            f"the keys {sorted(settings)}"
        )
    metrics = settings.get("metrics") or []
    if not isinstance(metrics, list):
        raise ValueError(f"the compile settings' metrics must be a list, got {found(metrics)}")
    opt = settings["optimizer"]
    if isinstance(opt, dict) and not isinstance(opt.get("config", {}), dict):
        raise ValueError(
            f"the optimizer's config must be a JSON object, got {found(opt.get('config'))}"
        )
    if not isinstance(opt, (dict, str)):
        raise ValueError(f"the optimizer must be a name or {{class, config}}, got {found(opt)}")
    if isinstance(opt, dict):
        opt = keras_optimizers.from_config(str(opt.get("class")), dict(opt.get("config", {})))
    return {"optimizer": opt, "loss": _read_loss(settings["loss"]), "metrics": metrics}


def _read_loss(config: Any) -> Any:
    if isinstance(config, str):
        return config
    if isinstance(config, dict) and isinstance(config.get("per_output"), list):
        return [_read_loss(x) for x in config["per_output"]]
    if isinstance(config, dict) and config.get("class") in keras_losses.CLASSES:
        settings = config.get("config", {})
        if not isinstance(settings, dict):
            raise ValueError(f"the loss's config must be a JSON object, got {found(settings)}")
        return keras_losses.CLASSES[config["class"]](**settings)
    raise ValueError(f"unknown loss in the file: {config!r:.80}")
