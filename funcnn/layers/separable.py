"""Depthwise and depthwise-separable convolutions (MobileNet's and Xception's), as
compositions of :class:`~funcnn.layers.conv.Conv2D`:

- ``DepthwiseConv2D(kernel_size, depth_multiplier)`` convolves each input channel with
  its own ``depth_multiplier`` filters: a Conv2D with ``groups = channels``. Output
  channel ``c * depth_multiplier + m`` is channel ``c``'s filter ``m``, as in Keras and
  PyTorch.
- ``SeparableConv2D(filters, kernel_size, depth_multiplier)`` is a DepthwiseConv2D
  without bias followed by a 1x1 Conv2D to ``filters`` channels, with the bias.

Their kernels have Keras' shapes (depthwise ``(kh, kw, C, depth_multiplier)``, pointwise
``(1, 1, C * depth_multiplier, filters)``), so Keras' weights load as they are; the
products and batch sums are the grouped Conv2D's, through :mod:`funcnn.linalg`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers
from funcnn import validate as check
from funcnn.layers.base import (
    IMAGES,
    Layer,
    RngArg,
    as_batch_of,
    as_params,
    as_shape,
    example_shape,
)
from funcnn.layers.conv import Conv2D, ConvParams, Pair, _padding
from funcnn.random import RngLike, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape


@attrs.frozen(repr=False)
class DepthwiseConv2D(Layer):
    """Depthwise 2-D convolution ``(N, H, W, C) -> (N, H', W', C * depth_multiplier)``.

    ``kernel_size``, ``strides``, ``padding``, ``dilation`` as :class:`Conv2D`. The kernel
    has shape ``(kh, kw, C, depth_multiplier)`` and starts from ``w_init`` (Glorot
    uniform over that shape, as Keras' ``depthwise_initializer``); the bias has ``C *
    depth_multiplier`` entries.
    """

    kernel_size: Pair = attrs.field(converter=lambda v: check.int_pair("kernel_size", v))
    depth_multiplier: int = attrs.field(default=1, validator=check.field(check.positive_int))
    strides: Pair = attrs.field(
        default=(1, 1), kw_only=True, converter=lambda v: check.int_pair("strides", v)
    )
    padding: Any = attrs.field(default="valid", kw_only=True, converter=_padding)
    dilation: Pair = attrs.field(
        default=(1, 1), kw_only=True, converter=lambda v: check.int_pair("dilation", v)
    )
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )

    def grouped(self, channels: int) -> Conv2D:
        """The Conv2D this layer is for ``channels`` input channels."""
        return Conv2D(
            channels * self.depth_multiplier, self.kernel_size, strides=self.strides,
            padding=self.padding, dilation=self.dilation, use_bias=self.use_bias,
            groups=channels,
        )  # fmt: skip

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("height", "width", "channels"))
        return self.grouped(max(shape[2], 1)).output_shape(shape)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> ConvParams:
        self.output_shape(input_shape)
        channels = as_shape(input_shape)[-1]
        w_rng, b_rng = split(rng, 2)
        w = self.w_init(w_rng, (*self.kernel_size, channels, self.depth_multiplier), dtype)
        outputs = channels * self.depth_multiplier
        b = self.b_init(b_rng, (outputs,), dtype) if self.use_bias else None
        return freeze(ConvParams(w, b))

    def _as_grouped(self, params: Any) -> tuple[Conv2D, ConvParams]:
        params = as_params(params, self, ConvParams)
        kh, kw, channels, multiplier = params.w.shape
        w = params.w.reshape(kh, kw, 1, channels * multiplier)  # filter c * m_total + m
        return self.grouped(channels), ConvParams(w, params.b)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        conv, p = self._as_grouped(params)
        y, cache = conv.forward(p, as_batch_of(x, self, IMAGES), train=train)
        return y, state, cache

    def backward(
        self, params: ConvParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[ConvParams, np.ndarray | None]:
        conv, p = self._as_grouped(params)
        grads, dx = conv.backward(p, cache, dy, need_dx=need_dx)
        return ConvParams(grads.w.reshape(params.w.shape), grads.b), dx


class SeparableParams(NamedTuple):
    depthwise: np.ndarray  # (kh, kw, in_channels, depth_multiplier)
    pointwise: np.ndarray  # (1, 1, in_channels * depth_multiplier, filters)
    b: np.ndarray | None  # (filters,)


@attrs.frozen(repr=False)
class SeparableConv2D(Layer):
    """Depthwise-separable 2-D convolution ``(N, H, W, C) -> (N, H', W', filters)``: a
    :class:`DepthwiseConv2D` (no bias; ``kernel_size``, ``strides``, ``padding``,
    ``dilation`` as Conv2D) then a 1x1 Conv2D to ``filters`` channels with the bias.
    Params :class:`SeparableParams` in Keras' order: depthwise kernel, pointwise kernel,
    bias; each kernel starts from its own initializer (Glorot uniform)."""

    filters: int = attrs.field(validator=check.field(check.positive_int))
    kernel_size: Pair = attrs.field(converter=lambda v: check.int_pair("kernel_size", v))
    depth_multiplier: int = attrs.field(default=1, validator=check.field(check.positive_int))
    strides: Pair = attrs.field(
        default=(1, 1), kw_only=True, converter=lambda v: check.int_pair("strides", v)
    )
    padding: Any = attrs.field(default="valid", kw_only=True, converter=_padding)
    dilation: Pair = attrs.field(
        default=(1, 1), kw_only=True, converter=lambda v: check.int_pair("dilation", v)
    )
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    depthwise_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    pointwise_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )

    @property
    def depthwise(self) -> DepthwiseConv2D:
        return DepthwiseConv2D(
            self.kernel_size, self.depth_multiplier, strides=self.strides, padding=self.padding,
            dilation=self.dilation, use_bias=False,
        )  # fmt: skip

    @property
    def pointwise(self) -> Conv2D:
        return Conv2D(self.filters, 1, use_bias=self.use_bias)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.pointwise.output_shape(self.depthwise.output_shape(input_shape))

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> SeparableParams:
        mid = self.depthwise.output_shape(input_shape)
        self.pointwise.output_shape(mid)
        d_rng, p_rng, b_rng = split(rng, 3)
        channels = example_shape(self, input_shape, ("height", "width", "channels"))[2]
        depthwise = self.depthwise_init(
            d_rng, (*self.kernel_size, channels, self.depth_multiplier), dtype
        )
        pointwise = self.pointwise_init(p_rng, (1, 1, mid[2], self.filters), dtype)
        b = self.b_init(b_rng, (self.filters,), dtype) if self.use_bias else None
        return freeze(SeparableParams(depthwise, pointwise, b))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        params = as_params(params, self, SeparableParams)
        h, d_cache = self.depthwise.forward(ConvParams(params.depthwise, None), x, train=train)
        y, p_cache = self.pointwise.forward(ConvParams(params.pointwise, params.b), h, train=train)
        return y, state, (d_cache, p_cache)

    def backward(
        self, params: SeparableParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[SeparableParams, np.ndarray | None]:
        d_cache, p_cache = cache
        p_grads, dh = self.pointwise.backward(ConvParams(params.pointwise, params.b), p_cache, dy)
        dh = cast(np.ndarray, dh)  # need_dx: always an array
        d_grads, dx = self.depthwise.backward(
            ConvParams(params.depthwise, None), d_cache, dh, need_dx=need_dx
        )
        return SeparableParams(d_grads.w, p_grads.w, p_grads.b), dx
