"""Layers that prepare inputs inside a model, as Keras' preprocessing layers do: Rescaling
(an affine map of the values) and Normalization (by statistics of the data, from
:func:`normalization_state`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape
from funcnn.types import Cache, LayerState, Params, Shape


@attrs.frozen(repr=False)
class Rescaling(Layer):
    """``x * scale + offset`` (Keras' Rescaling: ``Rescaling(1 / 255)`` takes pixels to [0,
    1], ``Rescaling(1 / 127.5, offset=-1)`` to [-1, 1]), in the input's float dtype."""

    scale: float = attrs.field(converter=float, validator=check.field(check.real))
    offset: float = attrs.field(default=0.0, converter=float, validator=check.field(check.real))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        y = x * np.asarray(self.scale, x.dtype)
        if self.offset:
            y += np.asarray(self.offset, x.dtype)
        return y, state, None

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), (dy * np.asarray(self.scale, dy.dtype) if need_dx else None)


class NormalizationState(NamedTuple):
    means: np.ndarray  # one per position of the axis (a scalar with axis=None)
    variances: np.ndarray
    counted: np.ndarray  # int64 scalar: how many values each statistic was taken over


EPSILON = 1e-7
"""The least standard deviation :class:`Normalization` divides by (Keras' epsilon)."""


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    return tuple(float(v) for v in values)


def _axis(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value == 0
    ):
        raise TypeError(
            "Normalization axis is an int naming an axis of the batch, not the batch axis 0 "
            f"(-1: the last), or None (one mean and variance for all values); got {value!r}"
        )


@attrs.frozen(repr=False)
class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per position of ``axis`` (Keras'
    Normalization; ``axis=None``: one mean and variance for all values).

    State: a :class:`NormalizationState` (what Keras keeps as the layer's non-trainable
    weights), never changed by training: it starts from ``mean``, ``variance`` (zeros
    and ones when not given) and ``count`` (how many values they were taken over), and
    :func:`normalization_state` takes new ones from data (Keras' ``adapt``). With
    ``constant=True`` the given ``mean`` and ``variance`` are constants of the layer and it
    has no state (Keras' layer built with ``mean=`` and ``variance=`` has no weights).
    """

    mean: tuple[float, ...] | None = attrs.field(default=None, converter=_floats)
    variance: tuple[float, ...] | None = attrs.field(default=None, converter=_floats)
    axis: int | None = attrs.field(default=-1, validator=_axis)
    count: int = attrs.field(default=0, validator=check.field(check.non_negative_int))
    constant: bool = attrs.field(default=False, validator=check.field(check.boolean))

    def __attrs_post_init__(self) -> None:
        if (self.mean is None) != (self.variance is None):
            raise ValueError("Normalization takes both mean and variance, or neither")
        if self.constant and self.mean is None:
            raise ValueError("Normalization(constant=True) needs mean and variance")
        if self.variance is not None and any(v < 0 for v in self.variance):
            raise ValueError("Normalization variance must be >= 0")

    def _positions(self, input_shape: Shape) -> int:
        """How many statistics an example of ``input_shape`` has (1 with axis=None)."""
        shape = as_shape(input_shape)
        if self.axis is None:
            return 1
        axis = self.axis - 1 if self.axis > 0 else self.axis
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"{self!r}: axis {self.axis} is not an axis of examples {shape}")
        return shape[axis]

    def _broadcast(self, a: np.ndarray, ndim: int) -> np.ndarray:
        """A statistic of shape (positions,) or () reshaped against a batch of rank ``ndim``."""
        if self.axis is None:
            return a.reshape(())
        axis = self.axis if self.axis > 0 else ndim + self.axis
        return a.reshape([-1 if i == axis else 1 for i in range(ndim)])

    def output_shape(self, input_shape: Shape) -> Shape:
        n = self._positions(input_shape)
        for name, given in (("means", self.mean), ("variances", self.variance)):
            if given is not None and len(given) not in (1, n):
                raise ValueError(
                    f"{self!r} has {len(given)} {name} for {n} positions of axis {self.axis}"
                )
        return as_shape(input_shape)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        self.output_shape(input_shape)
        if self.constant:
            return ()
        return self._statistics(input_shape, dtype)

    def _statistics(self, input_shape: Shape, dtype: DTypeLike) -> NormalizationState:
        """The statistics of the fields (zeros and ones where not given)."""
        n = self._positions(input_shape)
        shape: tuple[int, ...] = () if self.axis is None else (n,)
        if self.mean is None or self.variance is None:
            mean, variance = np.zeros(shape, dtype), np.ones(shape, dtype)
        else:
            mean, variance = (
                np.broadcast_to(np.asarray(v, dtype), shape or (1,)).reshape(shape).copy()
                for v in (self.mean, self.variance)
            )
        return NormalizationState(mean, variance, np.asarray(self.count, np.int64))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        stats = self._statistics(x.shape[1:], x.dtype) if self.constant else state
        if not isinstance(stats, NormalizationState):
            raise ValueError(
                f"{self!r} needs its state (layer.init_state(input_shape), or "
                f"normalization_state(layer, data)), got {type(state).__name__}"
            )
        mean = self._broadcast(np.asarray(stats.means, x.dtype), x.ndim)
        std = np.sqrt(np.asarray(stats.variances, x.dtype))
        std = self._broadcast(np.maximum(std, np.asarray(EPSILON, x.dtype)), x.ndim)
        return (x - mean) / std, state, std

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), (dy / cache if need_dx else None)


def normalization_state(
    layer: Normalization, data: Any, *, dtype: DTypeLike = np.float32
) -> NormalizationState:
    """The state of ``layer`` for ``data`` (a batch of examples): the mean and (biased)
    variance of the values at each position of its axis, computed in float64, and how
    many values each was taken over (Keras' ``adapt``)."""
    if not isinstance(layer, Normalization):
        raise TypeError(f"normalization_state takes a Normalization, got {type(layer).__name__}")
    x = as_input(data, layer)
    layer.output_shape(x.shape[1:])
    if x.shape[0] == 0:
        raise ValueError("normalization_state needs at least one example, got an empty batch")
    values = np.asarray(x, np.float64)
    if layer.axis is None:
        mean, variance, count = values.mean(), values.var(), values.size
    else:
        axis = layer.axis if layer.axis > 0 else x.ndim + layer.axis
        values = np.moveaxis(values, axis, -1).reshape(-1, x.shape[axis])
        mean, variance, count = values.mean(axis=0), values.var(axis=0), values.shape[0]
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
        raise ValueError("normalization_state: the data hold NaN or infinite values")
    return NormalizationState(
        np.asarray(mean, dtype), np.asarray(variance, dtype), np.asarray(count, np.int64)
    )
