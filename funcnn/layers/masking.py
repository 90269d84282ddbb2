"""Masks over the time axis, passed explicitly: a masked sequence is the pair ``(values,
mask)``.

``values`` has shape ``(batch, time, ...)``; ``mask`` has shape ``(batch, time)``, bool, True
where the step is real and False where it is padding (``Embedding(mask_zero=True)``
makes one). A mask given as numbers must hold only 0 and 1. Nothing is hidden in the
arrays: a layer that takes a mask takes the pair, a layer that keeps it returns the pair.

The gradient of a mask is zeros of the mask's shape (in the values' dtype), so that
combinators that add the gradients of a value used twice add them as they add any other.

- :class:`PerStep` (``per_step(layer)``) runs a layer on the values of a pair and passes
  the mask on: ``per_step(Dense(10))`` on ``(values, mask)`` gives ``(logits, mask)``.
- :data:`MaskedGlobalAvgPool1D` and :data:`MaskedGlobalMaxPool1D` pool over the real steps.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape, is_shape_tuple, layer_value
from funcnn.random import RngLike
from funcnn.types import Cache, LayerState, Params, Shape


def as_mask(mask: Any, batch_time: tuple[int, ...], layer: object) -> np.ndarray:
    """``mask`` as a bool array of shape ``batch_time`` (``(batch, time)``), or a
    TypeError/ValueError that says what was expected (:func:`funcnn.validate.mask`)."""
    return check.mask(repr(layer) if not isinstance(layer, str) else layer, mask, batch_time)


def mask_grad(mask: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """The gradient of a mask: zeros of its shape."""
    return np.zeros(np.shape(mask), dtype=dtype)


def is_masked_shape(input_shape: Any) -> bool:
    """True for the shapes of a pair ``(values, mask)``: two shapes, the mask's the values'
    leading axes, fewer of them (the values have features; two shapes of one length are
    two arrays, such as SimpleRNN's output and state)."""
    return (
        is_shape_tuple(input_shape)
        and len(input_shape) == 2
        and len(input_shape[1]) < len(input_shape[0])
        and tuple(input_shape[1]) == tuple(input_shape[0])[: len(input_shape[1])]
    )


def split_masked(x: Any, layer: object, *, min_ndim: int = 2) -> tuple[np.ndarray, Any]:
    """``(values, mask)`` from ``x`` or the pair ``(x, mask)``; mask is None without one."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(
                f"{layer!r} takes values or the pair (values, mask), got a tuple of {len(x)}"
            )
        values = as_input(x[0], layer, min_ndim=min_ndim)
        return values, as_mask(x[1], values.shape[:2], layer)
    return as_input(x, layer, min_ndim=min_ndim), None


@attrs.frozen(repr=False)
class PerStep(Layer):
    """``layer`` on the values of ``(values, mask)``; the mask passes on unchanged.

    ``(batch, time, ...) -> layer's output``, and ``((batch, time, ...), (batch, time))
    -> (layer's output, mask)``. The layer sees the whole ``(batch, time, ...)`` array, so
    it must take a time axis itself (Dense, the activations, Dropout and LayerNorm do).
    Without a mask it is ``layer`` itself.
    """

    layer: Layer = attrs.field(validator=attrs.validators.instance_of(Layer))

    def __repr__(self) -> str:
        return f"per_step({self.layer!r})"

    def _values_shape(self, input_shape: Any) -> Any:
        return input_shape[0] if is_masked_shape(input_shape) else input_shape

    def output_shape(self, input_shape: Shape) -> Any:
        out = self.layer.output_shape(self._values_shape(input_shape))
        return (out, as_shape(input_shape[1])) if is_masked_shape(input_shape) else out

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        return self.layer.init(rng, self._values_shape(input_shape), dtype=dtype)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        return self.layer.init_state(self._values_shape(input_shape), dtype=dtype)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not isinstance(x, (tuple, list)):
            return self.layer.forward_with_state(params, state, x, train=train, rng=rng)
        values, mask = split_masked(x, self)
        y, state, cache = self.layer.forward_with_state(params, state, values, train=train, rng=rng)
        return (y, mask), state, (cache, mask)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not isinstance(dy, tuple):
            return self.layer.backward(params, cache, dy, need_dx=need_dx)
        inner, mask = cache
        grads, dx = self.layer.backward(params, inner, dy[0], need_dx=need_dx)
        return grads, ((dx, mask_grad(mask, dx.dtype)) if need_dx else None)


def per_step(layer: Layer) -> PerStep:
    """Run ``layer`` on the values of a masked sequence and pass the mask on."""
    return PerStep(layer)


@attrs.frozen(repr=False)
class _MaskedGlobalPool(Layer):
    """``(batch, time, channels)`` or ``((batch, time, channels), (batch, time))`` ->
    ``(batch, channels)``, pooled over the real steps only."""

    name: str

    def __repr__(self) -> str:
        return self.name

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape[0] if is_masked_shape(input_shape) else input_shape)
        if len(shape) != 2:
            raise ValueError(
                f"{self!r} expects examples of shape (time, channels), or the pair of shapes "
                f"((time, channels), (time,)), got {input_shape}"
            )
        return (shape[1],)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        values, mask = split_masked(x, self, min_ndim=3)
        self.output_shape(values.shape[1:])
        paired = mask is not None
        if mask is None:
            mask = np.ones(values.shape[:2], dtype=bool)
        y, found = self._pool(values, mask)
        return y, state, (values.shape, mask, found, paired)

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        if not need_dx:
            return (), None
        shape, mask, found, paired = cache
        dx = self._unpool(dy, shape, mask, found)
        return (), ((dx, mask_grad(mask, dx.dtype)) if paired else dx)

    def _pool(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _unpool(self, dy: np.ndarray, shape: Shape, mask: np.ndarray, found: Any) -> np.ndarray:
        raise NotImplementedError


@attrs.frozen(repr=False)
class _MaskedGlobalAvgPool(_MaskedGlobalPool):
    def _pool(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, Any]:
        wide = np.promote_types(values.dtype, np.float32)  # float16 sums overflow at 65,504
        weights = mask.astype(wide)
        count = np.maximum(weights.sum(axis=1, keepdims=True), 1)  # (batch, 1)
        mean = (values * weights[:, :, None]).sum(axis=1) / count
        return mean.astype(values.dtype, copy=False), count

    def _unpool(self, dy: np.ndarray, shape: Shape, mask: np.ndarray, count: Any) -> np.ndarray:
        dx = (dy / count)[:, None, :] * mask[:, :, None].astype(count.dtype)
        return dx.astype(dy.dtype, copy=False)


@attrs.frozen(repr=False)
class _MaskedGlobalMaxPool(_MaskedGlobalPool):
    def _pool(self, values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, Any]:
        hidden = np.where(mask[:, :, None], values, -np.inf)
        arg = hidden.argmax(axis=1)  # the first maximum among the real steps
        y = np.take_along_axis(values, arg[:, None, :], axis=1)[:, 0]
        y[~mask.any(axis=1)] = 0  # no real step: zeros
        return y, arg

    def _unpool(self, dy: np.ndarray, shape: Shape, mask: np.ndarray, arg: Any) -> np.ndarray:
        dx = np.zeros(shape, dtype=dy.dtype)
        dy = np.where(mask.any(axis=1, keepdims=True), dy, 0)
        np.put_along_axis(dx, arg[:, None, :], dy[:, None, :], axis=1)
        return dx


MaskedGlobalAvgPool1D = layer_value(_MaskedGlobalAvgPool("MaskedGlobalAvgPool1D"))
"""``(values, mask) -> (batch, channels)``: the mean over the real steps (zeros for a row with
none; without a mask, the mean over every step, as GlobalAvgPool1D)."""
MaskedGlobalMaxPool1D = layer_value(_MaskedGlobalMaxPool("MaskedGlobalMaxPool1D"))
"""``(values, mask) -> (batch, channels)``: the maximum over the real steps (gradient to the
first one; zeros for a row with none)."""
