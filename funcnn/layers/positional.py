"""Where each step is: position encodings added to a sequence's vectors.

Attention treats its input as a set; these give each step its place. Both take
``(batch, time, dim)``, or the masked pair ``(values, mask)`` (the mask passes on), and
return the sum ``x + P[:time]``:

- :class:`PositionalEmbedding` learns ``P`` (``max_len`` rows, as GPT-2 and BERT do);
- :class:`SinusoidalEncoding` fixes it, parameter-free (the original Transformer's
  ``sin``/``cos`` at geometric wavelengths up to ``max_wavelength``).

Rotary embeddings act inside attention instead: ``MultiHeadAttention(rotary=True)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_params, as_shape, is_shape_tuple
from funcnn.layers.masking import mask_grad, split_masked
from funcnn.random import RngLike
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape


def _values_shape(layer: object, input_shape: Any) -> Shape:
    masked = is_shape_tuple(input_shape) and len(input_shape) == 2
    shape = as_shape(input_shape[0] if masked else input_shape)
    if len(shape) != 2 or (masked and as_shape(input_shape[1]) != shape[:1]):
        raise ValueError(
            f"{layer!r} expects sequences of shape (time, dim), or the pair ((time, dim), "
            f"(time,)) with a mask, got {input_shape!r}"
        )
    return shape


def _values(layer: object, x: Any) -> tuple[np.ndarray, Any]:
    values, mask = split_masked(x, layer, min_ndim=3)
    if values.ndim != 3:
        raise ValueError(
            f"{layer!r} expects a batch of shape (batch, time, dim), got {values.shape}"
        )
    return values, mask


def _with_mask(y: np.ndarray, mask: Any) -> Any:
    return y if mask is None else (y, mask)


class PositionalEmbeddingParams(NamedTuple):
    positions: np.ndarray  # (max_len, dim)


@attrs.frozen(repr=False)
class PositionalEmbedding(Layer):
    """``x + P[:time]`` with a learned ``P`` of shape ``(max_len, dim)``: ``(batch, time,
    dim) -> (batch, time, dim)`` for ``time <= max_len``. ``P`` starts from ``init``
    (normal, stddev 0.02, as GPT-2). Its gradient is the sum of ``dy`` over the batch
    (in linalg's chunks and tree)."""

    max_len: int = attrs.field(validator=check.field(check.positive_int))
    dim: int = attrs.field(validator=check.field(check.positive_int))
    init_fn: initializers.Initializer = attrs.field(
        default=initializers.normal(0.02), kw_only=True, validator=attrs.validators.is_callable()
    )

    attends: ClassVar[bool] = True
    """A step's output depends on where it is (what ``sequence.generate`` asks)."""

    def _check_shape(self, shape: Shape) -> None:
        if shape[1] != self.dim or shape[0] > self.max_len:
            raise ValueError(
                f"{self!r} takes sequences of at most {self.max_len} steps of {self.dim} "
                f"features, got {shape}"
            )

    def output_shape(self, input_shape: Shape) -> Any:
        self._check_shape(_values_shape(self, input_shape))
        return input_shape if is_shape_tuple(input_shape) else as_shape(input_shape)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> PositionalEmbeddingParams:
        self.output_shape(input_shape)
        return freeze(PositionalEmbeddingParams(self.init_fn(rng, (self.max_len, self.dim), dtype)))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        table = as_params(params, self, PositionalEmbeddingParams).positions
        if table.shape != (self.max_len, self.dim):
            raise ValueError(
                f"{self!r} expects positions of shape {(self.max_len, self.dim)}, got {table.shape}"
            )
        values, mask = _values(self, x)
        self._check_shape(values.shape[1:])
        y = values + table[: values.shape[1]]
        return _with_mask(y, mask), state, (values.shape, mask)

    def backward(
        self, params: PositionalEmbeddingParams, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[PositionalEmbeddingParams, Any]:
        shape, mask = cache
        d = dy[0] if isinstance(dy, tuple) else dy
        batch, time, dim = shape
        summed = linalg.sum_rows(d.reshape(batch, time * dim)).reshape(time, dim)
        grads = np.zeros((self.max_len, dim), d.dtype)
        grads[:time] = summed
        if not need_dx:
            return PositionalEmbeddingParams(grads), None
        dx = d if mask is None else (d, mask_grad(mask, d.dtype))
        return PositionalEmbeddingParams(grads), dx


def sinusoids(length: int, dim: int, max_wavelength: float = 10000.0) -> np.ndarray:
    """The ``(length, dim)`` float64 table of "Attention is all you need": ``sin(pos /
    max_wavelength^(2i/dim))`` in the even columns ``2i``, ``cos`` of the same in the odd."""
    table = np.zeros((length, dim))
    rates = max_wavelength ** (-np.arange(0, dim, 2) / dim)
    angles = np.arange(length)[:, None] * rates[None, :]
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : dim // 2])
    return table


@attrs.frozen(repr=False)
class SinusoidalEncoding(Layer):
    """``x + sinusoids(time, dim)``, parameter-free (see :func:`sinusoids`): any length."""

    max_wavelength: float = attrs.field(
        default=10000.0, converter=lambda v: check.positive("max_wavelength", v)
    )

    attends: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Any:
        _values_shape(self, input_shape)
        return input_shape if is_shape_tuple(input_shape) else as_shape(input_shape)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        values, mask = _values(self, x)
        _, time, dim = values.shape
        y = values + sinusoids(time, dim, self.max_wavelength).astype(values.dtype)
        return _with_mask(y, mask), state, mask

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        mask = cache
        if not need_dx:
            return (), None
        d = dy[0] if isinstance(dy, tuple) else dy
        return (), (d if mask is None else (d, mask_grad(mask, d.dtype)))
