"""Elementwise merges of several inputs whose shapes broadcast together (Keras' Multiply,
Subtract, Average, Maximum, Minimum); the sum and the concatenation are FanInSum and
FanInConcat."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape, is_shape_tuple
from funcnn.types import Cache, LayerState, Params, Shape

OPS = ("multiply", "subtract", "average", "maximum", "minimum")


def _op(name: str, value: Any) -> str:
    return check.choice(name, value, OPS)


@attrs.frozen(repr=False)
class Merge(Layer):
    """A tuple of inputs of one shape to one: ``"multiply"`` (their product, in input
    order), ``"subtract"`` (the first minus the second; two inputs), ``"average"`` (their
    sum over their count), ``"maximum"``, ``"minimum"`` (the gradient goes to the first
    input holding the extreme, where several tie). Inputs of other shapes broadcast as
    NumPy's do over the example axes (a ``(1, 1, channels)`` gate times ``(h, w,
    channels)`` maps, as a squeeze-and-excitation block has it); each input's gradient is
    summed back to its shape."""

    op: str = attrs.field(validator=check.field(_op))

    def output_shape(self, input_shape: Shape) -> Shape:
        if not is_shape_tuple(input_shape) or len(input_shape) < 2:
            raise ValueError(
                f"{self!r} takes a tuple of two or more input shapes, got {input_shape!r}"
            )
        shapes = [as_shape(s) for s in input_shape]
        if self.op == "subtract" and len(shapes) != 2:
            raise ValueError(f"{self!r} takes exactly two inputs, got {len(shapes)}")
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(
                f"{self!r} needs inputs of shapes that broadcast together, got {tuple(shapes)}"
            ) from None

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not isinstance(x, (tuple, list)):
            raise ValueError(f"{self!r} takes a tuple of inputs, got one array")
        xs = [as_input(xi, self) for xi in x]
        self.output_shape(tuple(xi.shape[1:] for xi in xs))
        if len({xi.shape[0] for xi in xs}) > 1:
            raise ValueError(f"{self!r} needs inputs of one batch size, got {[len(a) for a in xs]}")
        shapes = [xi.shape for xi in xs]
        rank = max(xi.ndim for xi in xs)  # lower ranks broadcast on their leading axes
        xs = [xi.reshape(xi.shape[0], *[1] * (rank - xi.ndim), *xi.shape[1:]) for xi in xs]
        if self.op == "subtract":
            return xs[0] - xs[1], state, shapes
        if self.op in ("maximum", "minimum"):
            pick = np.argmax if self.op == "maximum" else np.argmin
            stacked = np.stack(np.broadcast_arrays(*xs))
            winner = pick(stacked, axis=0)  # the first of the inputs holding the extreme
            y = np.take_along_axis(stacked, winner[None], axis=0)[0]
            return y, state, (shapes, winner)
        y = xs[0] * xs[1] if self.op == "multiply" else xs[0] + xs[1]
        for xi in xs[2:]:
            y = y * xi if self.op == "multiply" else y + xi
        if self.op == "average":
            y = y / np.asarray(len(xs), y.dtype)
        return y, state, ((xs, shapes) if self.op == "multiply" else shapes)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        if self.op == "subtract":
            return (), (_to_shape(dy, cache[0]), _to_shape(-dy, cache[1]))
        if self.op == "average":
            share = dy / np.asarray(len(cache), dy.dtype)
            return (), tuple(_to_shape(share, shape) for shape in cache)
        if self.op in ("maximum", "minimum"):
            shapes, winner = cache
            return (), tuple(
                _to_shape(np.where(winner == i, dy, 0).astype(dy.dtype), shape)
                for i, shape in enumerate(shapes)
            )
        xs, shapes = cache  # multiply: each input's gradient is dy times the others' product
        grads = []
        for i in range(len(xs)):
            g = dy
            for j, xj in enumerate(xs):
                if j != i:
                    g = g * xj
            grads.append(_to_shape(g, shapes[i]))
        return (), tuple(grads)


def _to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A gradient of the broadcast output summed back to an input of ``shape`` (over the
    example axes it lacks or has as 1), within each example."""
    if g.shape == shape:
        return g
    expanded = (shape[0], *[1] * (g.ndim - len(shape)), *shape[1:])
    axes = tuple(i for i, n in enumerate(expanded) if n == 1 and g.shape[i] != 1)
    return (g.sum(axis=axes, keepdims=True) if axes else g).reshape(shape)
