"""Layers that only move values: Flatten, Reshape, RepeatVector, Permute."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
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


@attrs.frozen(repr=False)
class RepeatVector(Layer):
    """``(batch, features) -> (batch, n, features)``: each example's vector ``n`` times (a
    sequence-to-sequence decoder's input, Keras' RepeatVector). Its gradient sums the
    ``n`` copies' gradients of each example."""

    n: int = attrs.field(validator=check.field(check.positive_int))

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) != 1:
            raise ValueError(f"{self!r} takes vectors (features,), got examples of shape {shape}")
        return (self.n, shape[0])

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        return np.repeat(x[:, None, :], self.n, axis=1), state, None

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        return (), (dy.sum(axis=1) if need_dx else None)


def _permutation(value: Any) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in items
    ):
        raise TypeError(f"Permute dims must be a tuple of ints, got {value!r}")
    dims = tuple(int(d) for d in items)
    if sorted(dims) != list(range(1, len(dims) + 1)):
        raise ValueError(
            f"Permute dims is a permutation of the example's axes numbered from 1 (the batch "
            f"axis is 0 and stays), e.g. (2, 1); got {value!r}"
        )
    return dims


@attrs.frozen(repr=False)
class Permute(Layer):
    """The example's axes in the order ``dims``, numbered from 1 as in Keras (``Permute((2,
    1))``: ``(batch, steps, features) -> (batch, features, steps)``)."""

    dims: tuple[int, ...] = attrs.field(converter=_permutation)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) != len(self.dims):
            raise ValueError(f"{self!r} permutes {len(self.dims)} axes, got example shape {shape}")
        return tuple(shape[d - 1] for d in self.dims)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        return np.ascontiguousarray(x.transpose(0, *self.dims)), state, None

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        inverse = np.argsort((0, *self.dims))
        return (), np.ascontiguousarray(dy.transpose(*inverse))
