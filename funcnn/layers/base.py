"""The layer protocol.

A layer is an immutable value (an attrs frozen class) with pure methods. It
implements four, and inherits the rest:

``init(rng, input_shape, *, dtype=float32) -> params``
    ``input_shape`` is the shape of ONE example, without the batch axis: ``(784,)``
    or ``(28, 28, 1)``; layers that take several inputs get a tuple of shapes.
    ``params`` is a tuple or NamedTuple of read-only arrays, ``()`` for none.
``output_shape(input_shape) -> shape``
    Shape inference without params; raises ValueError for an input it cannot take.
``forward_with_state(params, state, x, *, train=False, rng=None) -> (y, new_state, cache)``
    The one forward primitive. ``x`` has a leading batch axis. ``state`` is the
    layer's non-trainable state; a stateless layer returns it unchanged, whatever
    it is (``()`` from ``init_state``, or None when the caller has none). ``rng`` is
    a :class:`funcnn.random.Key` (or None); combinators give every child its own.
``backward(params, cache, dy, *, need_dx=True) -> (grads, dx)``
    The hand-written pair. ``grads`` has the structure of ``params``; ``dx`` is
    None when ``need_dx=False`` (the first layer of a network need not compute it).

A layer that keeps state (BatchNorm's running statistics) also implements
``init_state(input_shape, *, dtype) -> state``; the default is ``()``. A stateful
layer given ``state=None`` raises an error that shows the call with state.

Derived once, here: ``apply(params, x) -> y``, ``forward(params, x) -> (y, cache)``
and ``apply_with_state(params, state, x) -> (y, new_state)``, each with the same
``train``/``rng`` keywords. Nothing is ever modified in place.

Every subclass is found by name (:func:`layer_classes`), and every parameter-free
layer value made with :func:`layer_value` is registered under its repr, so
:mod:`funcnn.io` can save and load any layer without a hand-kept list.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn.random import Key, RngLike, as_key
from funcnn.types import Cache, LayerState, Params, Shape

RngArg = Key | RngLike | None
L = TypeVar("L", bound="Layer")

VALUES: dict[str, Layer] = {}
"""Every parameter-free layer value (``Relu``, ``Flatten``) by its repr."""


@attrs.frozen(repr=False)
class Layer:
    """Base class of every layer: implement ``init``/``output_shape``/``forward_with_state``/
    ``backward`` (and ``init_state`` for a layer with state)."""

    def __repr__(self) -> str:
        # Constructor-style, showing only what differs from the defaults: Dense(10).
        parts = []
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if field.default is attrs.NOTHING:
                parts.append(repr(value))
            elif value != field.default:
                parts.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self!r} is a layer value, not a function: use it without parentheses, as in "
            f"serial(Dense(10), {self!r}), and run it with layer.apply(params, x)"
        )

    # -- what a layer implements

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        self.output_shape(input_shape)
        return ()

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        self.output_shape(input_shape)
        return ()

    def output_shape(self, input_shape: Shape) -> Shape:
        return as_shape(input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_with_state")

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    # -- derived from forward_with_state

    def apply(self, params: Params, x: Any, *, train: bool = False, rng: RngArg = None) -> Any:
        """The output ``y`` for a batch ``x`` (a model without state)."""
        return self.forward_with_state(params, None, x, train=train, rng=rng)[0]

    def forward(
        self, params: Params, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, Cache]:
        """``(y, cache)`` for :meth:`backward` (a model without state)."""
        y, _, cache = self.forward_with_state(params, None, x, train=train, rng=rng)
        return y, cache

    def apply_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState]:
        """``(y, new_state)``: the output and the state after this batch."""
        y, new_state, _ = self.forward_with_state(params, state, x, train=train, rng=rng)
        return y, new_state


def layer_classes() -> dict[str, type[Layer]]:
    """Every Layer subclass defined so far, by name and by ``module.qualname``.

    attrs builds a new class for each decorated one: where the one it replaced is still
    around, the decorated class (the one with its own ``__attrs_attrs__``) wins the name.
    """
    found: dict[str, type[Layer]] = {}
    todo = list(Layer.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        for name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            if name not in found or "__attrs_attrs__" in cls.__dict__:
                found[name] = cls
    return found


def layer_value(layer: L) -> L:
    """Register a parameter-free layer value under its repr (what io saves it as)."""
    name = repr(layer)
    existing = VALUES.get(name)
    if existing is not None and existing != layer:
        raise ValueError(f"a layer value named {name!r} exists already: {existing!r}")
    VALUES[name] = layer
    return layer


def training_key(layer: object, rng: RngArg) -> Key:
    """``rng`` as a key for a layer that draws in training (Dropout, the noise and
    augmentation layers), or the ValueError of one trained without a key."""
    key = as_key(rng)
    if key is None:
        raise ValueError(
            f"{layer!r} needs a random key when train=True. Instead of "
            "apply(params, x, train=True), call apply(params, x, train=True, rng=seed) "
            "with an int seed (or a funcnn.random.Key or a numpy Generator); with "
            f"train=False {type(layer).__name__} is the identity"
        )
    return key


def child_keys(rng: RngArg, n: int) -> list[Key | None]:
    """One key per child (stax's rule), or ``n`` Nones without a key."""
    key = as_key(rng)
    return [None] * n if key is None else list[Key | None](key.split(n))


def as_shape(shape: Any) -> Shape:
    """Normalize one example's shape: an int or a sequence of non-negative ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if isinstance(shape, (tuple, list)) and len(shape) > 1 and shape[0] is None:
        raise TypeError(
            f"input_shape is one example's shape, without the batch axis: "
            f"{tuple(shape[1:])}, not {tuple(shape)}"
        )
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape
    ):
        raise TypeError(
            f"input_shape must be a tuple of ints for one example (no batch axis), got {shape!r}"
        )
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"input_shape must have non-negative sizes, got {shape!r}")
    return out


def example_shape(layer: object, input_shape: Any, axes: tuple[str, ...], hint: str = "") -> Shape:
    """``input_shape`` as a shape of ``len(axes)`` axes, or a ValueError that names the axes
    (and says so when the shape looks like a batch of such examples)."""
    shape = as_shape(input_shape)
    if len(shape) == len(axes):
        return shape
    message = f"{layer!r} expects examples of shape ({', '.join(axes)}), got {shape}"
    if len(shape) == len(axes) + 1:
        message += (
            f", which looks like a batch of {shape[0]}: an input_shape is one example's "
            f"shape, without the batch axis: {shape[1:]}"
        )
    elif hint:
        message += f"; {hint}"
    raise ValueError(message)


def is_shape_tuple(shape: Any) -> bool:
    """True for a tuple of shapes (the input of a layer that takes several inputs)."""
    return (
        isinstance(shape, (tuple, list))
        and len(shape) > 0
        and all(isinstance(s, (tuple, list)) for s in shape)
    )


def as_input(x: Any, layer: object, *, min_ndim: int = 1) -> np.ndarray:
    """``x`` as a float array with a batch axis, or a TypeError/ValueError saying why not.

    Float arrays pass through without a copy; integer and bool arrays become float32.
    """
    a = np.asarray(x) if not isinstance(x, np.ndarray) else x
    kind = a.dtype.kind
    if kind != "f":
        if kind in "iub":
            a = a.astype(np.float32)
        else:
            raise TypeError(
                f"{layer!r} expects a numeric array, got dtype {a.dtype} (type {type(x).__name__})"
            )
    if a.ndim < min_ndim:
        raise ValueError(
            f"{layer!r} expects a batch of shape (batch, ...) with at least {min_ndim} "
            f"dimension(s), got shape {a.shape}; add a batch axis with x[None]"
        )
    return a


P = TypeVar("P")


def as_params(params: Any, layer: object, cls: type[P]) -> P:
    """``params`` if it is the ``cls`` record ``layer.init`` returns; a TypeError otherwise."""
    if not isinstance(params, cls):
        raise TypeError(
            f"{layer!r} expects its params as the {cls.__name__} that "
            f"layer.init(rng, input_shape) returns, got {type(params).__name__}"
        )
    return params


IMAGES = "(batch, height, width, channels)"
SEQUENCES = "(batch, length, channels)"


def as_batch_of(x: Any, layer: object, layout: str) -> np.ndarray:
    """``as_input`` for a fixed rank: ``layout`` names the axes, e.g. :data:`IMAGES`."""
    a = as_input(x, layer)
    if a.ndim != layout.count(",") + 1:
        raise ValueError(f"{layer!r} expects a batch of shape {layout}, got {a.shape}")
    return a
