"""The layer protocol.

A layer is an immutable value (an attrs frozen class) with pure methods:

``init(rng, input_shape, *, dtype=float32) -> params``
    ``input_shape`` is the shape of ONE example, without the batch axis: ``(784,)``
    or ``(28, 28, 1)``; layers that take several inputs get a tuple of shapes.
    ``params`` is a tuple or NamedTuple of read-only arrays, ``()`` for none.
``output_shape(input_shape) -> shape``
    Shape inference without params; raises ValueError for an input it cannot take.
``apply(params, x, *, train=False, rng=None) -> y``
    ``x`` has a leading batch axis.
``forward(params, x, *, train=False, rng=None) -> (y, cache)``
``backward(params, cache, dy, *, need_dx=True) -> (grads, dx)``
    The hand-written pair. ``grads`` has the structure of ``params``; ``dx`` is
    None when ``need_dx=False`` (the first layer of a network need not compute it).
    ``apply(...)`` equals ``forward(...)[0]`` bit for bit.

Non-trainable state (running statistics) travels in a separate, explicit tree:
``init_state(input_shape) -> state`` (``()`` for stateless layers),
``apply_with_state(params, state, x, ...) -> (y, new_state)`` and
``forward_with_state(params, state, x, ...) -> (y, new_state, cache)``.
Stateless layers get these for free from the base class, so code that uses only
stateless layers never sees a state; a stateful layer's plain ``apply`` raises an
error that shows the call with state. Nothing is ever modified in place.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn.random import RngLike

Shape = tuple[Any, ...]
Params = Any
State = Any
Cache = Any


@attrs.frozen(repr=False)
class Layer:
    """Base class of every layer: override ``init``/``output_shape``/``forward``/``backward``."""

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

    @property
    def needs_rng(self) -> bool:
        """True if ``forward(..., train=True)`` draws random numbers (Dropout)."""
        return False

    @property
    def stateful(self) -> bool:
        """True if the layer keeps non-trainable state (BatchNorm's running statistics)."""
        return False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self!r} is a layer value, not a function: use it without parentheses, as in "
            f"serial(Dense(10), {self!r}), and run it with layer.apply(params, x)"
        )

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        self.output_shape(input_shape)
        return ()

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> State:
        del input_shape, dtype
        return ()

    def output_shape(self, input_shape: Shape) -> Shape:
        return as_shape(input_shape)

    def apply(
        self, params: Params, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> Any:
        return self.forward(params, x, train=train, rng=rng)[0]

    def forward(
        self, params: Params, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def apply_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State]:
        return self.apply(params, x, train=train, rng=rng), state

    def forward_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State, Cache]:
        y, cache = self.forward(params, x, train=train, rng=rng)
        return y, state, cache


def as_shape(shape: Any) -> Shape:
    """Normalize one example's shape: an int or a sequence of non-negative ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
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


IMAGES = "(batch, height, width, channels)"
SEQUENCES = "(batch, length, channels)"


def as_batch_of(x: Any, layer: object, layout: str) -> np.ndarray:
    """``as_input`` for a fixed rank: ``layout`` names the axes, e.g. :data:`IMAGES`."""
    a = as_input(x, layer)
    if a.ndim != layout.count(",") + 1:
        raise ValueError(f"{layer!r} expects a batch of shape {layout}, got {a.shape}")
    return a
