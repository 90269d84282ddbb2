"""Transposed convolutions on channels-last data: Conv2DTranspose on (batch, height, width,
channels) and Conv1DTranspose on (batch, length, channels), the layers that make images
larger (a DCGAN generator's, a U-Net's and an autoencoder's decoder).

A transposed convolution is the gradient of a convolution with respect to its input, so
it runs on :mod:`funcnn.layers.conv`'s two halves, swapped: forward, every input pixel
times the kernel is added into the strided output window it maps to
(:func:`~funcnn.layers.conv.scatter_windows`, a convolution's ``dx``), and the result is
cropped to the output size; backward, ``dx`` gathers the windows of the (uncropped) ``dy``
(:func:`~funcnn.layers.conv.gather_windows`) and multiplies them by the kernel (a
convolution's forward), and ``dw`` is the batch sum of those windows times ``x``.

Output sizes are Keras' and TensorFlow's, per spatial axis of input size ``n``, kernel
``k`` (dilated: ``d * (k - 1) + 1``) and stride ``s``:

- "valid": ``n * s + max(k - s, 0)``; with ``output_padding`` ``p``: ``(n - 1) * s + k + p``.
- "same": ``n * s``; with ``output_padding`` ``p``: ``(n - 1) * s + k % 2 + p``.
- explicit crops ``(before, after)`` (PyTorch's ``padding``, or an int for both):
  ``(n - 1) * s + k - before - after + p``, ``p`` defaulting to 0 (PyTorch's rule).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg
from funcnn import validate as check
from funcnn.layers.base import (
    IMAGES,
    SEQUENCES,
    Layer,
    RngArg,
    as_batch_of,
    as_params,
    as_shape,
    example_shape,
)
from funcnn.layers.conv import (
    ConvParams,
    Pads,
    Pair,
    _padding,
    gather_windows,
    pad_spatial,
    scatter_windows,
)
from funcnn.random import RngLike, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape


def _output_padding(value: Any) -> Pair | None:
    return None if value is None else check.int_pair("output_padding", value, minimum=0)


def transpose_extent(
    n: int, k: int, s: int, d: int, padding: str | Pair, output_padding: int | None
) -> tuple[int, int]:
    """``(crop, size)`` of one axis: the output is ``size`` positions of the full transposed
    convolution, whose ``(n - 1) * s + d * (k - 1) + 1`` positions each input position's
    window reaches (zeros past its end), from position ``crop`` on. "valid" and "same"
    follow Keras (its JAX backend's padding of the dilated input); explicit
    ``(before, after)`` crops follow PyTorch."""
    window = d * (k - 1) + 1
    if not isinstance(padding, str):
        before, after = padding
        left, right = window - 1 - before, window - 1 - after + (output_padding or 0)
    elif padding == "valid":
        extra = max(window, s) - window if output_padding is None else output_padding
        left, right = window - 1, window - 1 + extra
    else:  # "same"
        if output_padding is None:
            total = s + window - 2
        else:
            total = window + window % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, window - 1)
        right = total - left
    size = (n - 1) * s + left + right - window + 2
    return window - 1 - left, size


@attrs.frozen(repr=False)
class Conv2DTranspose(Layer):
    """2-D transposed convolution (a "deconvolution"): ``(N, H, W, C) -> (N, H', W',
    filters)`` with ``H' = H * stride`` for "same" padding.

    ``kernel_size``, ``strides``, ``dilation``: an int or (height, width) pair.
    ``padding``: "valid", "same" (Keras' output sizes), or explicit crops of the full
    output as an int, ``(ph, pw)`` or ``((top, bottom), (left, right))`` (PyTorch's
    ``padding``). ``output_padding``: None, or an int or pair below the stride (or the
    dilation) that adds rows and columns at the end, as in Keras and PyTorch. The kernel
    has Keras' shape ``(kh, kw, filters, C)``: that of the convolution it transposes
    (PyTorch's ``ConvTranspose2d.weight`` is ``w.transpose(3, 2, 0, 1)``), and starts from
    ``w_init`` (Glorot uniform).
    """

    filters: int = attrs.field(validator=check.field(check.positive_int))
    kernel_size: Pair = attrs.field(converter=lambda v: check.int_pair("kernel_size", v))
    strides: Pair = attrs.field(
        default=(1, 1), kw_only=True, converter=lambda v: check.int_pair("strides", v)
    )
    padding: Any = attrs.field(default="valid", kw_only=True, converter=_padding)
    output_padding: Pair | None = attrs.field(default=None, kw_only=True, converter=_output_padding)
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

    def __attrs_post_init__(self) -> None:
        if self.output_padding is None:
            return
        for p, s, d in zip(self.output_padding, self.strides, self.dilation):
            if p >= max(s, d):
                raise ValueError(
                    f"output_padding must be smaller than the stride or the dilation on each "
                    f"axis, got output_padding={self.output_padding}, strides={self.strides}, "
                    f"dilation={self.dilation}"
                )

    def _extents(self, size: Pair) -> tuple[Pair, Pair]:
        """``(crop_h, crop_w), (out_h, out_w)`` for an input of ``size``."""
        found = [
            transpose_extent(
                size[i],
                self.kernel_size[i],
                self.strides[i],
                self.dilation[i],
                self.padding if isinstance(self.padding, str) else self.padding[i],
                None if self.output_padding is None else self.output_padding[i],
            )
            for i in (0, 1)
        ]
        return (found[0][0], found[1][0]), (found[0][1], found[1][1])

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(
            self,
            input_shape,
            ("height", "width", "channels"),
            "reshape flat inputs first, e.g. Reshape((7, 7, 16))",
        )
        _, (oh, ow) = self._extents((shape[0], shape[1]))
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{self!r}: an input of {shape[0]}x{shape[1]} gives an output of {oh}x{ow}; "
                "crop less"
            )
        return (oh, ow, self.filters)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> ConvParams:
        self.output_shape(input_shape)
        w_rng, b_rng = split(rng, 2)
        shape = (*self.kernel_size, self.filters, as_shape(input_shape)[-1])
        w = self.w_init(w_rng, shape, dtype)
        b = self.b_init(b_rng, (self.filters,), dtype) if self.use_bias else None
        return freeze(ConvParams(w, b))

    def _full(self, size: Pair) -> tuple[Pads, tuple[int, int]]:
        """The crops ``((top, bottom), (left, right))`` of the full output and its size: the
        positions the input's windows reach, and zeros past them where ``output_padding``
        reaches further."""
        (ch, cw), (oh, ow) = self._extents(size)
        reach = [
            (n - 1) * s + d * (k - 1) + 1
            for n, k, s, d in zip(size, self.kernel_size, self.strides, self.dilation)
        ]
        full = (max(reach[0], ch + oh), max(reach[1], cw + ow))
        return ((ch, full[0] - ch - oh), (cw, full[1] - cw - ow)), full

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        params = as_params(params, self, ConvParams)
        x = as_batch_of(x, self, IMAGES)
        if x.shape[3] != params.w.shape[3]:
            raise ValueError(
                f"{self!r} was initialized for {params.w.shape[3]} input channels, got x of shape "
                f"{x.shape}"
            )
        (oh, ow, _), (n, h, w) = self.output_shape(x.shape[1:]), x.shape[:3]
        crops, full = self._full((h, w))
        dtype = np.result_type(x, params.w)
        x2 = x.reshape(-1, x.shape[3]).astype(dtype, copy=False)
        # A convolution's dx: the convolution from the output (filters channels) to x.
        yp = scatter_windows(
            x2, params.w, (n, *full, self.filters), self.dilation, self.strides, (h, w),
            padded=not train,
        )  # fmt: skip
        (top, _), (left, _) = crops
        y = yp[:, top : top + oh, left : left + ow, :]
        y = y + params.b if params.b is not None else np.ascontiguousarray(y)
        return y, state, (x2, x.shape, crops)

    def backward(
        self, params: ConvParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[ConvParams, np.ndarray | None]:
        x2, x_shape, crops = cache
        n, h, w, channels = x_shape
        group = h * w  # rows of x2 per sample
        dyp = pad_spatial(dy, crops)  # the full output's gradient: zeros where it was cropped
        cols = gather_windows(dyp, self.kernel_size, self.dilation, self.strides, (h, w))
        dw = linalg.matmul_tn(cols, x2, group=group).reshape(params.w.shape)
        db = linalg.sum_rows(dy.reshape(-1, self.filters), group=dy.shape[1] * dy.shape[2])
        grads = ConvParams(dw, db if params.b is not None else None)
        if not need_dx:
            return grads, None
        dx = linalg.matmul(cols, params.w.reshape(-1, channels), group=group)
        return grads, dx.reshape(n, h, w, channels)


@attrs.frozen(repr=False)
class Conv1DTranspose(Layer):
    """1-D transposed convolution ``(N, L, C) -> (N, L', filters)``; kernel ``(k, filters,
    C)`` (Keras' layout). Arguments as :class:`Conv2DTranspose` with single ints (explicit
    ``padding`` an int or ``(before, after)``); runs as a Conv2DTranspose of height 1."""

    filters: int = attrs.field(validator=check.field(check.positive_int))
    kernel_size: int = attrs.field(validator=check.field(check.positive_int))
    strides: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))
    padding: Any = attrs.field(default="valid", kw_only=True)
    output_padding: int | None = attrs.field(default=None, kw_only=True)
    dilation: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )

    def __attrs_post_init__(self) -> None:
        _ = self._conv2d  # every setting is checked now, where it was written

    @property
    def _conv2d(self) -> Conv2DTranspose:
        padding: Any = self.padding
        if not isinstance(padding, str):
            crops = (padding, padding) if check.is_int(padding) else tuple(padding)
            padding = ((0, 0), crops)
        if self.output_padding is not None:
            check.non_negative_int("output_padding", self.output_padding)
        extra = None if self.output_padding is None else (0, self.output_padding)
        return Conv2DTranspose(
            self.filters, (1, self.kernel_size), strides=(1, self.strides), padding=padding,
            output_padding=extra, dilation=(1, self.dilation), use_bias=self.use_bias,
            w_init=self.w_init, b_init=self.b_init,
        )  # fmt: skip

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("length", "channels"))
        return self._conv2d.output_shape((1, *shape))[1:]

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> ConvParams:
        shape = example_shape(self, input_shape, ("length", "channels"))
        p = self._conv2d.init(rng, (1, *shape), dtype=dtype)
        return freeze(ConvParams(p.w[0], p.b))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        params = as_params(params, self, ConvParams)
        y, cache = self._conv2d.forward(
            ConvParams(params.w[None], params.b), x[:, None], train=train
        )
        return y[:, 0], state, cache

    def backward(
        self, params: ConvParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[ConvParams, np.ndarray | None]:
        p2 = ConvParams(params.w[None], params.b)
        grads, dx = self._conv2d.backward(p2, cache, dy[:, None], need_dx=need_dx)
        return ConvParams(grads.w[0], grads.b), (None if dx is None else dx[:, 0])
