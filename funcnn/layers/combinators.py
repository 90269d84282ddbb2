"""Combinators: serial, parallel, Graph, FanOut, FanInSum, FanInConcat, Identity.

A combinator's params and state are tuples with one entry per child. Each child
gets its own random key (``key.fold_in(i)``), whether it draws or not.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import tree
from funcnn import validate as check
from funcnn.layers.base import (
    Layer,
    RngArg,
    as_input,
    as_shape,
    child_keys,
    is_shape_tuple,
    layer_value,
)
from funcnn.random import RngLike, split
from funcnn.types import Cache, LayerState, Params, Shape


def _check_layers(layers: Any) -> tuple[Layer, ...]:
    layers = tuple(layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, type) and issubclass(layer, Layer):
            raise TypeError(
                f"layer {i} is the class {layer.__name__}, not a layer: construct it, "
                f"e.g. {layer.__name__}(...)"
            )
        if not isinstance(layer, Layer):
            raise TypeError(f"layer {i} must be a funcnn Layer, got {type(layer).__name__}")
    return layers


def _output_shape_of(i: int, layer: Layer, input_shape: Any) -> Shape:
    """``layer.output_shape(input_shape)``; its ValueError or TypeError names layer ``i``."""
    try:
        return layer.output_shape(input_shape)
    except (ValueError, TypeError) as e:
        raise type(e)(f"layer {i} ({layer!r}) cannot take input of shape {input_shape}: {e}") from e


@attrs.frozen(repr=False)
class _Combinator(Layer):
    """What serial and parallel share: the children, and one params/state entry per child."""

    layers: tuple[Layer, ...] = attrs.field(converter=_check_layers)

    def __repr__(self) -> str:
        return f"{type(self).__name__.lower()}({', '.join(repr(c) for c in self.layers)})"

    def _entries(self, value: Any, what: str, source: str) -> tuple[Any, ...]:
        n = len(self.layers)
        if what == "state" and value is None:
            return (None,) * n
        if not isinstance(value, tuple) or len(value) != n:
            got = (
                f"{type(value).__name__} of length {len(value)}"
                if isinstance(value, (tuple, list))
                else type(value).__name__
            )
            raise ValueError(
                f"{what} of a {type(self).__name__.lower()} of {n} layers must be a tuple of "
                f"{n} entries (from {source}), got {got}"
            )
        return value

    def _children(self, params: Params, state: LayerState, rng: RngArg) -> list[tuple]:
        """(layer, params, state, key) for each child, after checking params and state."""
        return list(
            zip(
                self.layers,
                self._entries(params, "params", "model.init"),
                self._entries(state, "state", "model.init_state(input_shape)"),
                child_keys(rng, len(self.layers)),
            )
        )

    def child_shapes(self, input_shape: Shape) -> list[Shape]:
        """The input shape each child gets when the combinator gets ``input_shape``
        (shape inference only: what init and a file's architecture check use)."""
        raise NotImplementedError

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        shapes, rngs = self.child_shapes(input_shape), split(rng, len(self.layers))
        return tuple(c.init(r, s, dtype=dtype) for c, r, s in zip(self.layers, rngs, shapes))

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        shapes = self.child_shapes(input_shape)
        return tuple(c.init_state(s, dtype=dtype) for c, s in zip(self.layers, shapes))


@attrs.frozen(repr=False)
class Serial(_Combinator):
    """Layers applied one after another: ``serial(Dense(128), Relu, Dense(10))``."""

    def input_shapes(self, input_shape: Shape) -> list[Shape]:
        """The input shape of each layer, checking each step; ValueError names the layer."""
        shapes = [input_shape]
        for i, layer in enumerate(self.layers):
            shapes.append(_output_shape_of(i, layer, shapes[-1]))
        return shapes

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.input_shapes(input_shape)[-1]

    def child_shapes(self, input_shape: Shape) -> list[Shape]:
        return self.input_shapes(input_shape)[:-1]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        states, caches = [], []
        for layer, p, s, key in self._children(params, state, rng):
            x, s, cache = layer.forward_with_state(p, s, x, train=train, rng=key)
            states.append(s)
            caches.append(cache)
        return x, (None if state is None else tuple(states)), tuple(caches)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        grads: list[Any] = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            grads[i], dy = self.layers[i].backward(
                params[i], cache[i], dy, need_dx=need_dx or i > 0
            )
        return tuple(grads), dy


def serial(*layers: Layer) -> Serial:
    """Compose layers in sequence: ``serial(Dense(128), Relu, Dense(10))``."""
    return Serial(layers)


@attrs.frozen(repr=False)
class Parallel(_Combinator):
    """Apply layer i to input i of a tuple of inputs; outputs a tuple."""

    def child_shapes(self, input_shape: Any) -> list[Shape]:
        if not is_shape_tuple(input_shape) or len(input_shape) != len(self.layers):
            raise ValueError(
                f"{self!r} takes a tuple of {len(self.layers)} input shapes, got {input_shape!r}"
            )
        return list(input_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        shapes = self.child_shapes(input_shape)
        return tuple(c.output_shape(s) for c, s in zip(self.layers, shapes))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        children = self._children(params, state, rng)
        if not isinstance(x, (tuple, list)) or len(x) != len(self.layers):
            raise ValueError(f"{self!r} takes a tuple of {len(self.layers)} input arrays")
        outs = [
            layer.forward_with_state(p, s, xi, train=train, rng=key)
            for (layer, p, s, key), xi in zip(children, x)
        ]
        new_state = None if state is None else tuple(o[1] for o in outs)
        return tuple(o[0] for o in outs), new_state, tuple(o[2] for o in outs)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        pairs = [
            layer.backward(p, c, d, need_dx=need_dx)
            for layer, p, c, d in zip(self.layers, params, cache, dy)
        ]
        return tuple(g for g, _ in pairs), (tuple(d for _, d in pairs) if need_dx else None)


def parallel(*layers: Layer) -> Parallel:
    """Apply ``layers[i]`` to input ``i``: ``serial(FanOut(2), parallel(A, B), FanInSum)``."""
    return Parallel(layers)


@attrs.frozen(repr=False)
class _Identity(Layer):
    def __repr__(self) -> str:
        return "Identity"

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        return x, state, None

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        return (), (dy if need_dx else None)


Identity = layer_value(_Identity())
"""Pass the input through unchanged (a skip connection's other branch)."""


@attrs.frozen(repr=False)
class FanOut(Layer):
    """One input to a tuple of ``n`` references to it; the backward sums the ``n`` gradients."""

    n: int = attrs.field(validator=check.field(check.positive_int))

    def output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape,) * self.n

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        return (x,) * self.n, state, None

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        total = dy[0]
        for d in dy[1:]:
            total = _add(total, d)  # a (values, mask) pair adds entry by entry
        return (), total


def _multi_input(layer: Layer, input_shape: Any) -> list[Shape]:
    if not is_shape_tuple(input_shape):
        raise ValueError(
            f"{layer!r} takes a tuple of input shapes (after FanOut or parallel), "
            f"got {input_shape!r}"
        )
    return [as_shape(s) for s in input_shape]


@attrs.frozen(repr=False)
class _FanInSum(Layer):
    def __repr__(self) -> str:
        return "FanInSum"

    def output_shape(self, input_shape: Shape) -> Shape:
        shapes = _multi_input(self, input_shape)
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"FanInSum needs inputs of one shape, got {tuple(shapes)}")
        return shapes[0]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        xs = [as_input(xi, self) for xi in x]
        total = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for xi in xs[2:]:
            total += xi
        return total, state, len(xs)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        return (), ((dy,) * cache if need_dx else None)


FanInSum = layer_value(_FanInSum())
"""Sum a tuple of inputs of one shape."""


@attrs.frozen(repr=False)
class FanInConcat(Layer):
    """Concatenate a tuple of inputs along ``axis`` of the batched arrays (default: last)."""

    axis: int = -1

    def _example_axis(self, ndim: int) -> int:
        """The axis within one example (batch axis removed)."""
        axis = self.axis if self.axis < 0 else self.axis - 1
        if self.axis == 0 or not -ndim <= axis < ndim:
            raise ValueError(f"{self!r} cannot concatenate examples of rank {ndim} on that axis")
        return axis % ndim

    def output_shape(self, input_shape: Shape) -> Shape:
        shapes = _multi_input(self, input_shape)
        ax = self._example_axis(len(shapes[0]))
        rest = [s[:ax] + s[ax + 1 :] for s in shapes]
        if any(len(s) != len(shapes[0]) for s in shapes) or any(r != rest[0] for r in rest):
            raise ValueError(
                f"{self!r} needs inputs equal off the concat axis, got {tuple(shapes)}"
            )
        return (*shapes[0][:ax], sum(s[ax] for s in shapes), *shapes[0][ax + 1 :])

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        xs = [as_input(xi, self) for xi in x]
        ax = self._example_axis(xs[0].ndim - 1) + 1
        sizes = [xi.shape[ax] for xi in xs]
        return np.concatenate(xs, axis=ax), state, (ax, sizes)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        ax, sizes = cache
        return (), tuple(np.split(dy, np.cumsum(sizes)[:-1], axis=ax))


def _add(a: Any, b: Any) -> Any:
    """Two gradients of one value summed (tuples entry by entry)."""
    if isinstance(a, tuple):
        return tuple(_add(u, v) for u, v in zip(a, b))
    return a + b


def _ids(value: Any) -> tuple[int, ...]:
    items = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not items or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
    ):
        raise TypeError(f"graph node ids must be a non-empty tuple of ints, got {value!r}")
    return tuple(int(v) for v in items)


@attrs.frozen(repr=False)
class Graph(_Combinator):
    """Layers wired as a directed acyclic graph (what Keras' functional ``Model`` builds).

    Values are numbered: ``0 .. inputs - 1`` are the model's inputs, ``inputs + i`` is
    the output of ``layers[i]``. ``parents[i]`` lists the values ``layers[i]`` takes
    (one id: that value; several: a tuple of them, for FanInConcat, FanInSum, parallel),
    all of them earlier values. ``outputs`` lists the values the graph returns (one
    id: that value; several: a tuple; by default the last layer's output). A value
    used twice gets the sum of both
    gradients; a layer that no output depends on gets zero gradients.

    ``Graph((Dense(8), Relu, Dense(8), FanInSum), ((0,), (1,), (2,), (1, 3)), outputs=(4,))``
    is a residual block: ``h = Dense(x); y = h + Dense(relu(h))``.
    """

    parents: tuple[tuple[int, ...], ...] = attrs.field(
        converter=lambda v: tuple(_ids(p) for p in v)
    )
    inputs: int = attrs.field(
        default=1, kw_only=True, converter=lambda v: check.positive_int("Graph inputs", v)
    )
    outputs: tuple[int, ...] = attrs.field(
        default=attrs.Factory(lambda g: (g.inputs + len(g.layers) - 1,), takes_self=True),
        kw_only=True,
        converter=_ids,
    )

    def __attrs_post_init__(self) -> None:
        n, k = len(self.layers), self.inputs
        if len(self.parents) != n:
            raise ValueError(f"Graph has {n} layers but {len(self.parents)} parent lists")
        for i, ids in enumerate(self.parents):
            if any(not 0 <= v < k + i for v in ids):
                raise ValueError(
                    f"Graph layer {i} takes values {ids}, but only values 0 .. {k + i - 1} "
                    "(the inputs and earlier layers) exist before it"
                )
        if any(not 0 <= v < k + n for v in self.outputs):
            raise ValueError(f"Graph outputs {self.outputs} name values that do not exist")

    def __repr__(self) -> str:
        return Layer.__repr__(self)

    def _value(self, values: list[Any], ids: tuple[int, ...]) -> Any:
        return values[ids[0]] if len(ids) == 1 else tuple(values[v] for v in ids)

    def _shapes(self, input_shape: Shape) -> list[Any]:
        """The shape of every value: the inputs', then each layer's output."""
        if self.inputs == 1:
            shapes: list[Any] = [input_shape]
        elif not is_shape_tuple(input_shape) or len(input_shape) != self.inputs:
            raise ValueError(
                f"this Graph takes a tuple of {self.inputs} input shapes, got {input_shape!r}"
            )
        else:
            shapes = list(input_shape)
        for i, (layer, ids) in enumerate(zip(self.layers, self.parents)):
            shapes.append(_output_shape_of(i, layer, self._value(shapes, ids)))
        return shapes

    def output_shape(self, input_shape: Shape) -> Shape:
        return self._value(self._shapes(input_shape), self.outputs)

    def child_shapes(self, input_shape: Shape) -> list[Shape]:
        shapes = self._shapes(input_shape)
        return [self._value(shapes, ids) for ids in self.parents]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        children = self._children(params, state, rng)
        if self.inputs == 1:
            values: list[Any] = [x]
        elif not isinstance(x, (tuple, list)) or len(x) != self.inputs:
            raise ValueError(f"this Graph takes a tuple of {self.inputs} input arrays")
        else:
            values = list(x)
        inputs = [(np.shape(v), np.asarray(v).dtype) for v in values]
        states, caches = [], []
        for (layer, p, s, key), ids in zip(children, self.parents):
            y, s, cache = layer.forward_with_state(
                p, s, self._value(values, ids), train=train, rng=key
            )
            values.append(y)
            states.append(s)
            caches.append(cache)
        new_state = None if state is None else tuple(states)
        return self._value(values, self.outputs), new_state, (tuple(caches), inputs)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        caches, inputs = cache
        k = self.inputs
        pending: dict[int, Any] = {}
        outs = dy if len(self.outputs) > 1 else (dy,)
        for v, d in zip(self.outputs, outs):
            pending[v] = d if v not in pending else _add(pending[v], d)
        # a layer's dx is needed if it feeds a layer, or an input when the caller wants dx
        wanted = [any(v >= k or need_dx for v in ids) for ids in self.parents]
        grads: list[Any] = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            d = pending.pop(k + i, None)
            if d is None:  # no output depends on this layer
                grads[i] = tree.zeros_like(params[i])
                continue
            grads[i], dx = self.layers[i].backward(params[i], caches[i], d, need_dx=wanted[i])
            if not wanted[i]:  # every parent is an input whose gradient no one asked for
                continue
            ids = self.parents[i]
            parts = (dx,) if len(ids) == 1 else dx
            for v, part in zip(ids, parts):
                if v >= k or need_dx:
                    pending[v] = part if v not in pending else _add(pending[v], part)
        if not need_dx:
            return tuple(grads), None
        dxs = [
            pending[v] if v in pending else np.zeros(shape, dtype)
            for v, (shape, dtype) in enumerate(inputs)
        ]
        return tuple(grads), (dxs[0] if k == 1 else tuple(dxs))
