"""Keras' weight regularizers: ``Dense(64, kernel_regularizer=regularizers.l2(1e-4))``.

``L1(l1=0.01)`` is ``l1 * sum(|x|)``, ``L2(l2=0.01)`` is ``l2 * sum(x**2)`` (Keras' L2:
no 1/2) and ``L1L2(l1=0.0, l2=0.0)`` their sum, with Keras 3's defaults; ``l1``, ``l2``
and ``l1_l2`` are the classes L1, L2 and L1L2 under their Keras names (as in Keras 3,
``l1_l2()`` is ``L1L2()``, zeros: Keras 2's 0.01 defaults are gone). Strings name them
with these defaults ("l1", "l2", "L1L2", "l1l2"); as in Keras 3, "l1_l2" is not a name.

A regularizer of one's own trains, but a model that holds one is not saved (Keras loads
a custom object only where it is registered): ``save`` and ``to_json`` refuse it.

Each regularizer gives its value and its exact gradient (:meth:`Regularizer.value_and_grad`):
``sign(x) * l1`` (0 at 0) and ``2 * l2 * x``. :func:`penalty` gathers the regularizers of a
model's layers into one ``funcnn.losses.Penalty`` that training adds to the loss (its
value to the logged loss, its gradient to the weights' gradients); as in Keras, the
regularizers of frozen layers (``trainable=False``) count for nothing and the validation
loss and ``evaluate`` include the penalty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from funcnn import losses, tree
from funcnn.keras import weights


class Regularizer:
    """Keras' base class: ``regularizer(x)`` is the penalty of the weight ``x``.

    funcnn also needs its gradient: a subclass implements :meth:`value_and_grad` (and
    :meth:`get_config`, to be saved with the model)."""

    def __call__(self, x: Any) -> float:
        return self.value_and_grad(np.asarray(x))[0]

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``(penalty, d penalty / d x)``, the gradient of ``x``'s shape and dtype."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement value_and_grad(x): funcnn trains with "
            "the penalty's exact gradient"
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Regularizer:
        return cls(**config)

    def __repr__(self) -> str:
        try:
            settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            settings = ""
        return f"{type(self).__name__}({settings})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Regularizer) or type(other) is not type(self):
            return False
        if type(self) not in _BUILT_IN:
            return other is self
        return self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return id(self) if type(self) not in _BUILT_IN else hash(type(self))


def _factor(name: str, value: Any) -> float:
    """A non-negative finite factor, as Keras checks it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a non-negative number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return value


def _l1_l2(x: np.ndarray, l1: float, l2: float) -> tuple[float, np.ndarray]:
    """``l1 * sum(|x|) + l2 * sum(x**2)`` (summed in float64) and its gradient."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"a regularizer takes a float array, got dtype {x.dtype}")
    value, grad = 0.0, np.zeros_like(x)
    if l1:
        value += l1 * float(np.sum(np.abs(x), dtype=np.float64))
        grad += np.sign(x) * x.dtype.type(l1)
    if l2:
        value += l2 * float(np.sum(np.square(x, dtype=np.float64)))
        grad += x * x.dtype.type(2 * l2)
    return value, grad


class L1L2(Regularizer):
    """``L1L2(l1=0.0, l2=0.0)``: ``l1 * sum(|x|) + l2 * sum(x**2)`` (Keras 3's defaults:
    ``L1L2(l2=0.1)`` has no L1 term)."""

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        self.l1 = _factor("l1", 0.0 if l1 is None else l1)
        self.l2 = _factor("l2", 0.0 if l2 is None else l2)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _l1_l2(x, self.l1, self.l2)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``L1(l1=0.01)``: ``l1 * sum(|x|)``; its gradient ``l1 * sign(x)`` is 0 at 0."""

    def __init__(self, l1: float | None = 0.01) -> None:
        self.l1 = _factor("l1", 0.01 if l1 is None else l1)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _l1_l2(x, self.l1, 0.0)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """``L2(l2=0.01)``: ``l2 * sum(x**2)`` (no 1/2), gradient ``2 * l2 * x``."""

    def __init__(self, l2: float | None = 0.01) -> None:
        self.l2 = _factor("l2", 0.01 if l2 is None else l2)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        return _l1_l2(x, 0.0, self.l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


l1 = L1
l2 = L2


l1_l2 = L1L2  # Keras 3: the class, zeros by default


_BUILT_IN: dict[type[Regularizer], str] = {L1: "L1", L2: "L2", L1L2: "L1L2"}
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES: dict[str, Any] = {"l1": L1, "l2": L2, "l1l2": L1L2, **_CLASSES}


def get(identifier: Any) -> Regularizer | None:
    """A regularizer from what a layer is given: None, a name ("l1", "l2", "l1l2"), a
    config (what :func:`serialize` wrote, Keras' ``{"class_name", "config"}``), a class or
    a regularizer. A plain function is refused: funcnn needs the penalty's gradient."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        make = _NAMES.get(identifier)
        if make is None:
            hint = (
                " (as in Keras 3; give keras.regularizers.L1L2(l1=..., l2=...))"
                if identifier == "l1_l2"
                else ""
            )
            raise ValueError(
                f"unknown regularizer {identifier!r}{hint}; the names are "
                f"{', '.join(map(repr, _NAMES))}"
            )
        return make()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        raise TypeError(
            f"regularizer {identifier!r:.60} is a function: funcnn trains with the penalty's "
            "exact gradient, so it takes keras.regularizers.L1, L2, L1L2 (or a name: 'l1', "
            "'l2', 'l1l2'), or a Regularizer subclass with value_and_grad(x)"
        )
    raise TypeError(
        f"a regularizer is a name ('l1', 'l2', 'l1l2'), a config or a "
        f"keras.regularizers object, got {type(identifier).__name__}"
    )


def serialize(regularizer: Regularizer) -> dict[str, Any]:
    """Keras' form ``{"module", "class_name", "config", "registered_name"}``; a TypeError
    for a regularizer of another class (it has no config that builds it again)."""
    name = _BUILT_IN.get(type(regularizer))
    if name is None:
        raise TypeError(f"{type(regularizer).__name__} is not a keras.regularizers class")
    return {
        "module": "keras.regularizers",
        "class_name": name,
        "config": regularizer.get_config(),
        "registered_name": None,
    }


def deserialize(config: Any, custom_objects: Any = None) -> Regularizer:
    """The regularizer of a config :func:`serialize` (or Keras) wrote."""
    if isinstance(config, str):
        made = get(config)
        assert made is not None
        return made
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    settings = config.get("config", {}) if isinstance(config, dict) else None
    if cls is None or not isinstance(settings, dict):
        raise ValueError(
            "a regularizer's config is {'class_name': 'L1' | 'L2' | 'L1L2', 'config': {...}}, "
            f"got {config!r:.80}"
        )
    try:
        return cls.from_config(settings)
    except TypeError as e:
        raise ValueError(f"the config {settings!r:.80} does not build {cls.__name__}: {e}") from e


def config_value(regularizer: Regularizer) -> Any:
    """What a layer's config holds for ``regularizer``: its serialized form, or the object
    itself where it has none (a regularizer of one's own: the config shows it, and saving
    it is refused, see :func:`not_saved`)."""
    try:
        return serialize(regularizer)
    except (TypeError, NotImplementedError):
        return regularizer


def not_saved(regularizer: Regularizer) -> ValueError:
    """The error for saving a model (or its config) that holds ``regularizer``, one of
    one's own: the file could not build it again, and loading the model without it would
    train without its penalty."""
    return ValueError(
        f"the regularizer {regularizer!r} ({type(regularizer).__module__}."
        f"{type(regularizer).__qualname__}) is not saved with the model: a model's file and "
        "config keep keras.regularizers.L1, L2 and L1L2 only (there is no registry of custom "
        "regularizers to load it from, as Keras' register_keras_serializable is). Use one of "
        "those, or build the model in code and keep its weights with get_weights() (a "
        "weights file is refused too: load_model reads one)"
    )


# ---------------------------------------------------------------- a model's penalty


class _Regularized(Protocol):
    """What :func:`penalty` reads of a Keras layer."""

    trainable: bool

    def weight_regularizers(self) -> dict[str, Regularizer]: ...


Term = tuple[int, int, Regularizer]
"""(layer, the weight's place among the layer's params' leaves, its regularizer)."""


@attrs.frozen(repr=False)
class LayerPenalty(losses.Penalty):
    """The sum of the layers' regularizers of their weights (``terms``), and ``extra``, a
    penalty of all params (``compile(penalty=...)``) or None. The params are a tuple with
    one entry per layer, as a Keras model's. Value and gradient are the sums of the
    regularizers' (exact; zero for the weights no regularizer names)."""

    terms: tuple[Term, ...] = attrs.field(default=(), kw_only=True)
    extra: losses.Penalty | None = attrs.field(default=None, kw_only=True)

    def __repr__(self) -> str:
        return f"LayerPenalty({len(self.terms)} regularized weights, extra={self.extra!r})"

    def value_and_grad(self, params: Any) -> tuple[float, Any]:
        by_layer: dict[int, list[tuple[int, Regularizer]]] = {}
        for layer, leaf, regularizer in self.terms:
            by_layer.setdefault(layer, []).append((leaf, regularizer))
        total, grads = 0.0, []
        for i, entry in enumerate(params):
            flat, treedef = tree.flatten(entry)
            g = [np.zeros_like(a) for a in flat]
            for leaf, regularizer in by_layer.get(i, ()):
                value, grad = regularizer.value_and_grad(flat[leaf])
                total += float(value)
                g[leaf] = g[leaf] + np.asarray(grad, dtype=flat[leaf].dtype)
            grads.append(tree.unflatten(treedef, g))
        result = tuple(grads)
        if self.extra is not None:
            value, extra_grads = self.extra.value_and_grad(params)
            total += value
            result = tree.map(np.add, result, extra_grads)
        return total, result


def penalty(
    layers: Sequence[_Regularized], params: Any, extra: losses.Penalty | None = None
) -> losses.Penalty | None:
    """The penalty of the regularizers of ``layers`` (a Keras model's, in order) for its
    ``params`` (one entry per layer), plus ``extra``: ``extra`` itself where no layer has
    a regularizer (None where there is neither). A frozen layer's regularizers are left
    out (Keras regularizes trainable weights only)."""
    terms = [
        (i, k, regularizer)
        for i, (layer, entry) in enumerate(zip(layers, params))
        for k, regularizer in regularized_leaves(layer, entry)
    ]
    if not terms:
        return extra
    return LayerPenalty("l2", 0.0, terms=tuple(terms), extra=extra)


def regularized_leaves(layer: _Regularized, entry: Any) -> list[tuple[int, Regularizer]]:
    """``(place among the leaves of the layer's params entry, regularizer)`` of each
    weight of ``layer`` that has a regularizer and trains; a model held as a layer (its
    ``layers``, one entry each) gives its layers' in their places."""
    held = getattr(layer, "layers", None)
    if isinstance(held, list) and isinstance(entry, tuple) and len(held) == len(entry):
        found, offset = [], 0
        for inner, inner_entry in zip(held, entry):
            found += [(offset + k, r) for k, r in regularized_leaves(inner, inner_entry)]
            offset += len(tree.leaves(inner_entry))
        return found
    named = layer.weight_regularizers() if layer.trainable else {}
    if not named:
        return []
    return [(k, named[name]) for k, name in enumerate(weights.leaf_names(entry)) if name in named]
