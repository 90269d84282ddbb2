"""Combinators: serial, parallel, FanOut, FanInSum, FanInConcat, Identity."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn.layers.base import (
    Cache,
    Layer,
    Params,
    Shape,
    State,
    as_input,
    as_shape,
    is_shape_tuple,
)
from funcnn.random import RngLike, split


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


def _child_rngs(
    layers: tuple[Layer, ...], train: bool, rng: RngLike | None
) -> list[RngLike | None]:
    """One independent generator per layer that draws random numbers, None for the rest."""
    users = [i for i, layer in enumerate(layers) if layer.needs_rng]
    out: list[RngLike | None] = [None] * len(layers)
    if train and rng is not None and users:
        for i, child in zip(users, split(rng, len(users))):
            out[i] = child
    return out


@attrs.frozen(repr=False)
class Serial(Layer):
    """Layers applied one after another; params and state are tuples with one entry per layer."""

    layers: tuple[Layer, ...] = attrs.field(converter=_check_layers)

    def __repr__(self) -> str:
        return f"serial({', '.join(repr(layer) for layer in self.layers)})"

    @property
    def needs_rng(self) -> bool:
        return any(layer.needs_rng for layer in self.layers)

    @property
    def stateful(self) -> bool:
        return any(layer.stateful for layer in self.layers)

    def input_shapes(self, input_shape: Shape) -> list[Shape]:
        """The input shape of each layer, checking each step; ValueError names the layer."""
        shapes = [input_shape]
        for i, layer in enumerate(self.layers):
            try:
                shapes.append(layer.output_shape(shapes[-1]))
            except (ValueError, TypeError) as e:
                raise type(e)(
                    f"layer {i} ({layer!r}) cannot take input of shape {shapes[-1]}: {e}"
                ) from e
        return shapes

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.input_shapes(input_shape)[-1]

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        shapes = self.input_shapes(input_shape)
        rngs = split(rng, len(self.layers))
        return tuple(
            layer.init(r, shape, dtype=dtype) for layer, r, shape in zip(self.layers, rngs, shapes)
        )

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> State:
        shapes = self.input_shapes(input_shape)
        return tuple(
            layer.init_state(shape, dtype=dtype) for layer, shape in zip(self.layers, shapes)
        )

    def _check_params(self, params: Params) -> None:
        if not isinstance(params, tuple) or len(params) != len(self.layers):
            got = (
                f"{type(params).__name__} of length {len(params)}"
                if isinstance(params, (tuple, list))
                else type(params).__name__
            )
            raise ValueError(
                f"params of a serial of {len(self.layers)} layers must be a tuple of "
                f"{len(self.layers)} entries (from model.init), got {got}"
            )

    def _check_state(self, state: State) -> None:
        if not isinstance(state, tuple) or len(state) != len(self.layers):
            raise ValueError(
                f"state of a serial of {len(self.layers)} layers must be a tuple of "
                f"{len(self.layers)} entries (from model.init_state(input_shape)), "
                f"got {type(state).__name__}"
            )

    def apply(
        self, params: Params, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> Any:
        self._check_params(params)
        rngs = _child_rngs(self.layers, train, rng)
        for layer, p, r in zip(self.layers, params, rngs):
            x = layer.apply(p, x, train=train, rng=r)
        return x

    def forward(
        self, params: Params, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        self._check_params(params)
        rngs = _child_rngs(self.layers, train, rng)
        caches = []
        for layer, p, r in zip(self.layers, params, rngs):
            x, cache = layer.forward(p, x, train=train, rng=r)
            caches.append(cache)
        return x, tuple(caches)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        grads: list[Any] = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            grads[i], dy = self.layers[i].backward(
                params[i], cache[i], dy, need_dx=need_dx or i > 0
            )
        return tuple(grads), dy

    def apply_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State]:
        self._check_params(params)
        self._check_state(state)
        rngs = _child_rngs(self.layers, train, rng)
        new_state = []
        for layer, p, s, r in zip(self.layers, params, state, rngs):
            x, s = layer.apply_with_state(p, s, x, train=train, rng=r)
            new_state.append(s)
        return x, tuple(new_state)

    def forward_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State, Cache]:
        self._check_params(params)
        self._check_state(state)
        rngs = _child_rngs(self.layers, train, rng)
        new_state, caches = [], []
        for layer, p, s, r in zip(self.layers, params, state, rngs):
            x, s, cache = layer.forward_with_state(p, s, x, train=train, rng=r)
            new_state.append(s)
            caches.append(cache)
        return x, tuple(new_state), tuple(caches)


def serial(*layers: Layer) -> Serial:
    """Compose layers in sequence: ``serial(Dense(128), Relu, Dense(10))``."""
    return Serial(layers)


@attrs.frozen(repr=False)
class Parallel(Layer):
    """Apply layer i to input i of a tuple of inputs; outputs a tuple."""

    layers: tuple[Layer, ...] = attrs.field(converter=_check_layers)

    def __repr__(self) -> str:
        return f"parallel({', '.join(repr(layer) for layer in self.layers)})"

    @property
    def needs_rng(self) -> bool:
        return any(layer.needs_rng for layer in self.layers)

    @property
    def stateful(self) -> bool:
        return any(layer.stateful for layer in self.layers)

    def _shapes(self, input_shape: Any) -> list[Shape]:
        if not is_shape_tuple(input_shape) or len(input_shape) != len(self.layers):
            raise ValueError(
                f"{self!r} takes a tuple of {len(self.layers)} input shapes, got {input_shape!r}"
            )
        return list(input_shape)

    def _inputs(self, params: Params, x: Any) -> tuple[Any, ...]:
        if not isinstance(params, tuple) or len(params) != len(self.layers):
            raise ValueError(
                f"params of a parallel of {len(self.layers)} layers must be a tuple of "
                f"{len(self.layers)} entries (from model.init)"
            )
        if not isinstance(x, (tuple, list)) or len(x) != len(self.layers):
            raise ValueError(f"{self!r} takes a tuple of {len(self.layers)} input arrays")
        return tuple(x)

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(
            layer.output_shape(s) for layer, s in zip(self.layers, self._shapes(input_shape))
        )

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        shapes = self._shapes(input_shape)
        rngs = split(rng, len(self.layers))
        return tuple(
            layer.init(r, s, dtype=dtype) for layer, r, s in zip(self.layers, rngs, shapes)
        )

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> State:
        shapes = self._shapes(input_shape)
        return tuple(layer.init_state(s, dtype=dtype) for layer, s in zip(self.layers, shapes))

    def forward(
        self, params: Params, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        rngs = _child_rngs(self.layers, train, rng)
        outs = [
            layer.forward(p, xi, train=train, rng=r)
            for layer, p, xi, r in zip(self.layers, params, self._inputs(params, x), rngs)
        ]
        return tuple(y for y, _ in outs), tuple(c for _, c in outs)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        pairs = [
            layer.backward(p, c, d, need_dx=need_dx)
            for layer, p, c, d in zip(self.layers, params, cache, dy)
        ]
        return tuple(g for g, _ in pairs), (tuple(d for _, d in pairs) if need_dx else None)

    def forward_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State, Cache]:
        rngs = _child_rngs(self.layers, train, rng)
        outs = [
            layer.forward_with_state(p, s, xi, train=train, rng=r)
            for layer, p, s, xi, r in zip(self.layers, params, state, self._inputs(params, x), rngs)
        ]
        return tuple(o[0] for o in outs), tuple(o[1] for o in outs), tuple(o[2] for o in outs)

    def apply_with_state(
        self,
        params: Params,
        state: State,
        x: Any,
        *,
        train: bool = False,
        rng: RngLike | None = None,
    ) -> tuple[Any, State]:
        y, new_state, _ = self.forward_with_state(params, state, x, train=train, rng=rng)
        return y, new_state


def parallel(*layers: Layer) -> Parallel:
    """Apply ``layers[i]`` to input ``i``: ``serial(FanOut(2), parallel(A, B), FanInSum)``."""
    return Parallel(layers)


@attrs.frozen(repr=False)
class _Identity(Layer):
    def __repr__(self) -> str:
        return "Identity"

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        return x, None

    def backward(
        self, params: Any, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Any, Any]:
        return (), (dy if need_dx else None)


Identity = _Identity()
"""Pass the input through unchanged (a skip connection's other branch)."""


def _fan_count(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"FanOut needs a positive int number of copies, got {value!r}")


@attrs.frozen(repr=False)
class FanOut(Layer):
    """One input to a tuple of ``n`` references to it; the backward sums the ``n`` gradients."""

    n: int = attrs.field(validator=_fan_count)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape,) * self.n

    def forward(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        return (x,) * self.n, None

    def backward(
        self, params: Any, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Any, Any]:
        if not need_dx:
            return (), None
        total = dy[0]
        for d in dy[1:]:
            total = total + d
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

    def forward(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        xs = [as_input(xi, self) for xi in x]
        total = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for xi in xs[2:]:
            total += xi
        return total, len(xs)

    def backward(
        self, params: Any, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Any, Any]:
        return (), ((dy,) * cache if need_dx else None)


FanInSum = _FanInSum()
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

    def forward(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[Any, Cache]:
        xs = [as_input(xi, self) for xi in x]
        ax = self._example_axis(xs[0].ndim - 1) + 1
        sizes = [xi.shape[ax] for xi in xs]
        return np.concatenate(xs, axis=ax), (ax, sizes)

    def backward(
        self, params: Any, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Any, Any]:
        if not need_dx:
            return (), None
        ax, sizes = cache
        return (), tuple(np.split(dy, np.cumsum(sizes)[:-1], axis=ax))
