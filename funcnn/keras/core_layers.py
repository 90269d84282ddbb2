"""The funcnn layers the Keras facade needs and the core lacks: Keras' ``Masking``
(:class:`MaskValues`), a mask dropped where a Keras layer does not take one
(:data:`DropMask`), and ``go_backwards``' outputs in reading order (:data:`ReverseSteps`).

Each follows the layer protocol (:mod:`funcnn.layers.base`); masks are explicit pairs
``(values, mask)`` as in :mod:`funcnn.layers.masking`.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape, is_shape_tuple, layer_value
from funcnn.layers.masking import is_masked_shape, mask_grad, split_masked
from funcnn.types import Cache, LayerState, Params, Shape


@attrs.frozen(repr=False)
class MaskValues(Layer):
    """Keras' ``Masking(mask_value)``: ``(batch, time, features) -> (values, mask)``, a
    step real unless every feature equals ``mask_value``; masked steps' values are zeros
    (Keras' output). Gradient: the values' where the step is real, zeros elsewhere."""

    mask_value: float = attrs.field(default=0.0, converter=lambda v: check.real("mask_value", v))

    def __repr__(self) -> str:
        return f"MaskValues({self.mask_value!r})"

    def output_shape(self, input_shape: Shape) -> Any:
        shape = as_shape(input_shape)
        if len(shape) != 2:
            raise ValueError(f"{self!r} expects sequences of shape (time, features), got {shape}")
        return shape, shape[:1]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        values = as_input(x, self, min_ndim=3)
        self.output_shape(values.shape[1:])
        mask = np.any(values != values.dtype.type(self.mask_value), axis=-1)
        return (np.where(mask[:, :, None], values, 0), mask), state, mask

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        mask = cache
        values = dy[0] if isinstance(dy, tuple) else dy
        return (), (np.where(mask[:, :, None], values, 0) if need_dx else None)


@attrs.frozen(repr=False)
class _DropMask(Layer):
    """``(values, mask) -> values``: what a Keras layer without masking support sees (Keras
    drops the mask there, with a warning). Plain values pass through."""

    def __repr__(self) -> str:
        return "DropMask"

    def output_shape(self, input_shape: Shape) -> Any:
        return as_shape(input_shape[0] if is_masked_shape(input_shape) else input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        values, mask = split_masked(x, self)
        return values, state, mask

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        mask = cache
        if not need_dx:
            return (), None
        return (), (dy if mask is None else (dy, mask_grad(mask, np.asarray(dy).dtype)))


@attrs.frozen(repr=False)
class _ReverseSteps(Layer):
    """The time axis of ``y`` reversed: ``(batch, time, ...)``, or the first entry of a
    tuple (a recurrent layer's ``(y, mask, *state)``; the rest passes unchanged). With
    ``RNN(reverse=True)`` it gives Keras' ``go_backwards`` outputs, in reading order."""

    def __repr__(self) -> str:
        return "ReverseSteps"

    def output_shape(self, input_shape: Shape) -> Any:
        first = input_shape[0] if is_shape_tuple(input_shape) else input_shape
        if len(as_shape(first)) < 1:
            raise ValueError(f"{self!r} expects sequences (time, ...), got {input_shape!r}")
        return input_shape

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if isinstance(x, (tuple, list)):
            return (np.flip(as_input(x[0], self, min_ndim=2), 1), *x[1:]), state, len(x)
        return np.flip(as_input(x, self, min_ndim=2), 1), state, None

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        if cache is None:
            return (), np.flip(dy, 1)
        return (), (np.flip(dy[0], 1), *dy[1:])


DropMask = layer_value(_DropMask())
ReverseSteps = layer_value(_ReverseSteps())
