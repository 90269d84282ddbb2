"""Layers that only change shape: Flatten, Reshape."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from funcnn.layers.base import Layer, RngArg, as_input, as_shape, layer_value
from funcnn.types import Cache, LayerState, Params, Shape


@attrs.frozen(repr=False)
class _Flatten(Layer):
    """``(batch, *dims) -> (batch, prod(dims))``."""

    def __repr__(self) -> str:
        return "Flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(as_shape(input_shape)),)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        return x.reshape(x.shape[0], math.prod(x.shape[1:])), state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        return (), (dy.reshape(cache) if need_dx else None)


Flatten = layer_value(_Flatten())


def _target_shape(value: Any) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in items
    ):
        raise TypeError(f"Reshape shape must be a tuple of ints, got {value!r}")
    shape = tuple(int(s) for s in items)
    if sum(s == -1 for s in shape) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"Reshape shape may hold one -1 and otherwise sizes >= 0, got {value!r}")
    return shape


@attrs.frozen(repr=False)
class Reshape(Layer):
    """``(batch, *dims) -> (batch, *shape)``; one entry of ``shape`` may be -1."""

    shape: tuple[int, ...] = attrs.field(converter=_target_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        in_shape = as_shape(input_shape)
        size = math.prod(in_shape)
        known = math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape:
            if known == 0 or size % known:
                raise ValueError(f"{self!r} cannot reshape an input of shape {in_shape}")
            return tuple(size // known if s == -1 else s for s in self.shape)
        if known != size:
            raise ValueError(
                f"{self!r} needs {known} values per example, got input shape {in_shape} with {size}"
            )
        return self.shape

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        return x.reshape(x.shape[0], *self.output_shape(x.shape[1:])), state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        return (), (dy.reshape(cache) if need_dx else None)
