"""Elementwise merges of several inputs of one shape (Keras' Multiply, Subtract, Average,
Maximum, Minimum); the sum and the concatenation are FanInSum and FanInConcat."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn.layers.base import Layer, RngArg, as_input, as_shape, is_shape_tuple
from funcnn.types import Cache, LayerState, Params, Shape

OPS = ("multiply", "subtract", "average", "maximum", "minimum")


def _op(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in OPS:
        raise ValueError(f"Merge op must be one of {', '.join(OPS)}; got {value!r}")


@attrs.frozen(repr=False)
class Merge(Layer):
    """A tuple of inputs of one shape to one: ``"multiply"`` (their product, in input
    order), ``"subtract"`` (the first minus the second; two inputs), ``"average"`` (their
    sum over their count), ``"maximum"``, ``"minimum"`` (the gradient goes to the first
    input holding the extreme, where several tie)."""

    op: str = attrs.field(validator=_op)

    def output_shape(self, input_shape: Shape) -> Shape:
        if not is_shape_tuple(input_shape) or len(input_shape) < 2:
            raise ValueError(
                f"{self!r} takes a tuple of two or more input shapes, got {input_shape!r}"
            )
        shapes = [as_shape(s) for s in input_shape]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self!r} needs inputs of one shape, got {tuple(shapes)}")
        if self.op == "subtract" and len(shapes) != 2:
            raise ValueError(f"{self!r} takes exactly two inputs, got {len(shapes)}")
        return shapes[0]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not isinstance(x, (tuple, list)):
            raise ValueError(f"{self!r} takes a tuple of inputs, got one array")
        xs = [as_input(xi, self) for xi in x]
        self.output_shape(tuple(xi.shape[1:] for xi in xs))
        if self.op == "subtract":
            return xs[0] - xs[1], state, len(xs)
        if self.op in ("maximum", "minimum"):
            pick = np.argmax if self.op == "maximum" else np.argmin
            stacked = np.stack(xs)
            winner = pick(stacked, axis=0)  # the first of the inputs holding the extreme
            y = np.take_along_axis(stacked, winner[None], axis=0)[0]
            return y, state, (len(xs), winner)
        y = xs[0] * xs[1] if self.op == "multiply" else xs[0] + xs[1]
        for xi in xs[2:]:
            y = y * xi if self.op == "multiply" else y + xi
        if self.op == "average":
            y = y / np.asarray(len(xs), y.dtype)
        return y, state, (xs if self.op == "multiply" else len(xs))

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        if self.op == "subtract":
            return (), (dy, -dy)
        if self.op == "average":
            return (), (dy / np.asarray(cache, dy.dtype),) * cache
        if self.op in ("maximum", "minimum"):
            n, winner = cache
            return (), tuple(np.where(winner == i, dy, 0).astype(dy.dtype) for i in range(n))
        xs = cache  # multiply: each input's gradient is dy times the product of the others
        grads = []
        for i in range(len(xs)):
            g = dy
            for j, xj in enumerate(xs):
                if j != i:
                    g = g * xj
            grads.append(g)
        return (), tuple(grads)
