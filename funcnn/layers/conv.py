"""Convolutions on channels-last data: Conv2D on (batch, height, width, channels), Conv1D on
(batch, length, channels), and ZeroPadding2D.

Forward is one matrix product per call: the input windows are gathered once into an
im2col matrix ``cols`` of shape ``(batch * out_h * out_w, kh * kw * in_channels)``
(through ``sliding_window_view``, one copy; for one input channel, a copy per kernel
offset, which is 3x faster there), then ``cols @ kernel``. The same ``cols``
gives ``dw = cols.T @ dy``; ``dx`` gathers, for each kernel offset, ``dy @ kernel[a, b].T``
and adds it into the strided input positions that offset read (kh * kw products and
slice additions, never a loop over samples, pixels or channels).

:func:`gather_windows` (im2col) and :func:`scatter_windows` (col2im, its adjoint through
the kernel) are the two halves every convolution here shares: a transposed convolution
(:mod:`funcnn.layers.conv_transpose`) runs forward as a convolution's ``dx`` and
backward as its forward. ``groups`` splits the channels into groups convolved apart
(PyTorch's and Keras' ``groups``): the windows are laid out group by group and each group
is one product with its own slice of the kernel.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import DTypeLike

from funcnn import initializers, kernels, linalg
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
from funcnn.random import RngLike, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]


def _padding(value: Any) -> str | Pads:
    """ "valid", "same", an int, (ph, pw) or ((top, bottom), (left, right))."""
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {value!r}")
        return value
    if isinstance(value, (int, np.integer)):
        p = check.int_pair("padding", value, minimum=0)
        return ((p[0], p[0]), (p[1], p[1]))
    items = tuple(value)
    if len(items) == 2 and all(isinstance(v, (int, np.integer)) for v in items):
        ph, pw = check.int_pair("padding", items, minimum=0)
        return ((ph, ph), (pw, pw))
    if len(items) == 2:
        return (
            check.int_pair("padding", items[0], minimum=0),
            check.int_pair("padding", items[1], minimum=0),
        )
    raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {value!r}")


def resolve_pads(padding: str | Pads, size: Pair, window: Pair, strides: Pair) -> Pads:
    """Explicit (before, after) pads for each spatial axis. "same" follows TensorFlow:
    the output is ceil(size / stride) and an odd total pad puts the extra row after."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for n, k, s in zip(size, window, strides):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return (pads[0], pads[1])
    if isinstance(padding, str):  # _padding() already rejected other strings
        raise ValueError(f"padding must be 'valid', 'same', an int or pairs, got {padding!r}")
    return padding


def output_size(size: Pair, window: Pair, strides: Pair, pads: Pads) -> Pair:
    out = tuple((n + p[0] + p[1] - k) // s + 1 for n, k, s, p in zip(size, window, strides, pads))
    return (int(out[0]), int(out[1]))


def _effective(kernel: Pair, dilation: Pair) -> Pair:
    return (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)


def pad_spatial(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad axes 1 and 2 of a (N, H, W, C) array (no copy when there is nothing to pad)."""
    if pads == ((0, 0), (0, 0)):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def offset_slices(
    offset: Pair, dilation: Pair, strides: Pair, out: Pair
) -> tuple[slice, slice, slice, slice]:
    """The strided slice of a padded input that kernel offset ``offset`` reads for every output."""
    (a, b), (dh, dw), (sh, sw), (oh, ow) = offset, dilation, strides, out
    return (
        slice(None),
        slice(a * dh, a * dh + sh * (oh - 1) + 1, sh),
        slice(b * dw, b * dw + sw * (ow - 1) + 1, sw),
        slice(None),
    )


def gather_windows(
    xp: np.ndarray, kernel: Pair, dilation: Pair, strides: Pair, out: Pair, groups: int = 1
) -> np.ndarray:
    """im2col: the windows of the padded ``xp`` (N, H, W, C) that each of the ``out``
    outputs reads, as ``(N * oh * ow, kh * kw * C)``, columns in the kernel's
    ``(kh, kw, C)`` order; with ``groups`` > 1, ``(groups, kh, kw, C / groups)`` order, so
    each group's columns are one contiguous block."""
    if kernels.compiled() and kernels.floating(xp):  # one compiled copy, the same values
        return kernels.gather_windows(xp, kernel, dilation, strides, out, groups)
    (kh, kw), (dh, dw), (sh, sw), (oh, ow) = kernel, dilation, strides, out
    channels = xp.shape[3]
    if channels == 1:  # one channel: a copy per kernel offset, each a run of ow values
        cols = np.empty((xp.shape[0], oh, ow, kh, kw, 1), dtype=xp.dtype)
        for a in range(kh):
            for b in range(kw):
                cols[:, :, :, a, b] = xp[offset_slices((a, b), (dh, dw), (sh, sw), (oh, ow))]
        return cols.reshape(-1, kh * kw)
    window = _effective(kernel, dilation)
    views = sliding_window_view(xp, window, axis=(1, 2))  # (N, H', W', C, wh, ww), no copy
    views = views[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, :, ::dh, ::dw]
    if groups == 1:
        # (N, oh, ow, kh, kw, C): the one copy, laid out to match the kernel's (kh, kw, C) order
        cols = np.ascontiguousarray(views.transpose(0, 1, 2, 4, 5, 3))
        return cols.reshape(-1, kh * kw * channels)
    split = views.reshape(*views.shape[:3], groups, channels // groups, kh, kw)
    cols = np.ascontiguousarray(split.transpose(0, 1, 2, 3, 5, 6, 4))  # (.., g, kh, kw, C/g)
    return cols.reshape(-1, kh * kw * channels)


def grouped_matmul(
    a: np.ndarray, blocks: list[np.ndarray], *, group: int, padded: bool = False
) -> np.ndarray:
    """``a @ block_diag(*blocks)``: ``a``'s columns cut into ``len(blocks)`` equal parts,
    part ``g`` times ``blocks[g]``, side by side; one :func:`linalg.matmul` per block."""
    if len(blocks) == 1:
        return linalg.matmul(a, blocks[0], group=group, padded=padded)
    k = blocks[0].shape[0]
    parts = [
        linalg.matmul(a[:, g * k : (g + 1) * k], w, group=group, padded=padded)
        for g, w in enumerate(blocks)
    ]
    return np.concatenate(parts, axis=1)


def kernel_blocks(w2: np.ndarray, groups: int) -> list[np.ndarray]:
    """A grouped kernel ``(k, filters)`` as the ``groups`` blocks of :func:`grouped_matmul`:
    group ``g``'s filters."""
    per = w2.shape[1] // groups
    return [w2[:, g * per : (g + 1) * per] for g in range(groups)]


def scatter_windows(
    dy2: np.ndarray,
    w: np.ndarray,
    padded_shape: tuple[int, int, int, int],
    dilation: Pair,
    strides: Pair,
    out: Pair,
    *,
    groups: int = 1,
    padded: bool = False,
) -> np.ndarray:
    """col2im through the kernel, the adjoint of ``gather_windows(...) @ w``: for each
    kernel offset ``(a, b)``, ``dy2 @ w[a, b].T`` (one contiguous product; per group with
    ``groups``) added into the strided positions of the padded input it read.
    ``dy2``: ``(N * oh * ow, filters)``; ``w``: ``(kh, kw, C / groups, filters)``; the
    result has ``padded_shape`` ``(N, H + pads, W + pads, C)``."""
    n, oh, ow = padded_shape[0], out[0], out[1]
    dxp = np.zeros(padded_shape, dtype=dy2.dtype)
    compiled = kernels.compiled() and kernels.floating(dxp)
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            # What kernel offset (a, b) contributed, as one contiguous matrix product,
            # added into the strided positions of the input it read.
            blocks = [block.T for block in kernel_blocks(w[a, b], groups)]
            part = grouped_matmul(dy2, blocks, group=oh * ow, padded=padded)
            part = part.reshape(n, oh, ow, padded_shape[3])
            if compiled and part.dtype == dxp.dtype:
                kernels.add_window(dxp, part, (a, b), dilation, strides)
            else:
                dxp[offset_slices((a, b), dilation, strides, (oh, ow))] += part
    return dxp


class ConvParams(NamedTuple):
    w: np.ndarray  # (kh, kw, in_channels, filters) for Conv2D; (k, in_channels, filters) for Conv1D
    b: np.ndarray | None  # (filters,)


@attrs.frozen(repr=False)
class Conv2D(Layer):
    """2-D convolution (a cross-correlation, as in every framework).

    ``(N, H, W, C) -> (N, H', W', filters)``.

    ``kernel_size``, ``strides``, ``dilation``: an int or (height, width) pair.
    ``padding``: "valid" (none), "same" (output ``ceil(H / stride)``, TensorFlow's
    rule), an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``. The kernel has
    shape ``(kh, kw, C / groups, filters)`` and starts from ``w_init`` (Glorot uniform,
    fans counting the receptive field).

    ``groups`` (PyTorch's and Keras' ``groups``): the channels and the filters are cut
    into ``groups`` equal parts and filter part ``g`` sees only channel part ``g``; both
    ``C`` and ``filters`` must be multiples of it. ``groups == C`` is a depthwise
    convolution (see :class:`~funcnn.layers.conv_transpose.DepthwiseConv2D`).
    """

    filters: int = attrs.field(validator=check.field(check.positive_int))
    kernel_size: Pair = attrs.field(converter=lambda v: check.int_pair("kernel_size", v))
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
    groups: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))

    @groups.validator
    def _divides_filters(self, attribute: attrs.Attribute, value: int) -> None:
        if self.filters % value:
            raise ValueError(
                f"filters must be a multiple of groups: got filters={self.filters}, groups={value}"
            )

    def _geometry(self, shape: Shape) -> tuple[Pads, Pair]:
        window = _effective(self.kernel_size, self.dilation)
        pads = resolve_pads(self.padding, (shape[0], shape[1]), window, self.strides)
        return pads, output_size((shape[0], shape[1]), window, self.strides, pads)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(
            self,
            input_shape,
            ("height", "width", "channels"),
            "reshape flat images first, e.g. Reshape((28, 28, 1))",
        )
        if shape[2] % self.groups:
            raise ValueError(
                f"{self!r}: the input's {shape[2]} channels are not a multiple of "
                f"groups={self.groups}"
            )
        pads, (oh, ow) = self._geometry(shape)
        if oh < 1 or ow < 1:
            window = _effective(self.kernel_size, self.dilation)
            raise ValueError(
                f"{self!r}: the {window[0]}x{window[1]} (dilated) kernel does not fit an input "
                f"of {shape[0]}x{shape[1]} with padding {pads}"
            )
        return (oh, ow, self.filters)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> ConvParams:
        return _init_conv(self, rng, input_shape, self.kernel_size, dtype, self.groups)

    def _check(self, params: ConvParams, x: Any) -> np.ndarray:
        params = as_params(params, self, ConvParams)
        x = as_batch_of(x, self, IMAGES)
        if x.shape[3] != params.w.shape[2] * self.groups:
            raise ValueError(
                f"{self!r} was initialized for {params.w.shape[2] * self.groups} input "
                f"channels, got x of shape {x.shape}"
            )
        self.output_shape(x.shape[1:])
        return x

    def _cols(self, x: np.ndarray) -> tuple[np.ndarray, Pads, Pair]:
        pads, out = self._geometry(x.shape[1:])
        xp = pad_spatial(x, pads)
        cols = gather_windows(xp, self.kernel_size, self.dilation, self.strides, out, self.groups)
        return cols, pads, out

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = self._check(params, x)
        cols, pads, (oh, ow) = self._cols(x)
        w2 = params.w.reshape(-1, self.filters)
        blocks = kernel_blocks(w2, self.groups)
        y = grouped_matmul(cols, blocks, group=oh * ow, padded=not train)
        if params.b is not None:
            y += params.b
        return y.reshape(x.shape[0], oh, ow, self.filters), state, (cols, x.shape, pads)

    def backward(
        self, params: ConvParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[ConvParams, np.ndarray | None]:
        cols, x_shape, pads = cache
        n, oh, ow, _ = dy.shape
        dy2 = dy.reshape(-1, self.filters)
        group = oh * ow  # rows per sample
        dw = self._kernel_grad(cols, dy2, group).reshape(params.w.shape)
        db = linalg.sum_rows(dy2, group=group) if params.b is not None else None
        if not need_dx:
            return ConvParams(dw, db), None
        padded = (n, x_shape[1] + sum(pads[0]), x_shape[2] + sum(pads[1]), x_shape[3])
        dxp = scatter_windows(
            dy2, params.w, padded, self.dilation, self.strides, (oh, ow), groups=self.groups
        )
        dx = dxp[:, pads[0][0] : padded[1] - pads[0][1], pads[1][0] : padded[2] - pads[1][1], :]
        return ConvParams(dw, db), dx

    def _kernel_grad(self, cols: np.ndarray, dy2: np.ndarray, group: int) -> np.ndarray:
        """``cols.T @ dy2`` as a batch sum, per group: ``(kh * kw * C / groups, filters)``."""
        if self.groups == 1:
            return linalg.matmul_tn(cols, dy2, group=group)
        k, per = cols.shape[1] // self.groups, self.filters // self.groups
        parts = [
            linalg.matmul_tn(
                cols[:, g * k : (g + 1) * k], dy2[:, g * per : (g + 1) * per], group=group
            )
            for g in range(self.groups)
        ]
        return np.concatenate(parts, axis=1)


def _to_2d(x: np.ndarray) -> np.ndarray:
    return x[:, None, :, :]


@attrs.frozen(repr=False)
class Conv1D(Layer):
    """1-D convolution ``(N, L, C) -> (N, L', filters)``; kernel ``(k, C / groups, filters)``.

    Arguments as :class:`Conv2D` with single ints; runs as a Conv2D of height 1.
    """

    filters: int = attrs.field(validator=check.field(check.positive_int))
    kernel_size: int = attrs.field(validator=check.field(check.positive_int))
    strides: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))
    padding: Any = attrs.field(default="valid", kw_only=True)
    dilation: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )
    groups: int = attrs.field(default=1, kw_only=True, validator=check.field(check.positive_int))

    def __attrs_post_init__(self) -> None:
        _ = self._conv2d  # every setting is checked now, where it was written

    @property
    def _conv2d(self) -> Conv2D:
        if isinstance(self.padding, str):
            padding: Any = self.padding
        else:
            p = (
                self.padding
                if not isinstance(self.padding, (int, np.integer))
                else (self.padding,) * 2
            )
            padding = ((0, 0), tuple(p))
        return Conv2D(
            self.filters, (1, self.kernel_size), strides=(1, self.strides), padding=padding,
            dilation=(1, self.dilation), use_bias=self.use_bias,
            w_init=self.w_init, b_init=self.b_init, groups=self.groups,
        )  # fmt: skip

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("length", "channels"))
        return self._conv2d.output_shape((1, *shape))[1:]

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> ConvParams:
        return _init_conv(self, rng, input_shape, (self.kernel_size,), dtype, self.groups)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        params = as_params(params, self, ConvParams)
        p2 = ConvParams(params.w[None], params.b)
        y, cache = self._conv2d.forward(p2, _to_2d(x), train=train)
        return y[:, 0], state, cache

    def backward(
        self, params: ConvParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[ConvParams, np.ndarray | None]:
        p2 = ConvParams(params.w[None], params.b)
        grads, dx = self._conv2d.backward(p2, cache, _to_2d(dy), need_dx=need_dx)
        return ConvParams(grads.w[0], grads.b), (None if dx is None else dx[:, 0])


def _init_conv(
    layer: Conv2D | Conv1D,
    rng: RngLike,
    input_shape: Shape,
    window: tuple[int, ...],
    dtype: DTypeLike,
    groups: int = 1,
) -> ConvParams:
    """Params for an input of ``input_shape`` (checked first): the kernel, of shape
    ``(*window, in_channels / groups, filters)``, from ``w_init`` and the bias from
    ``b_init``, each from its own generator."""
    layer.output_shape(input_shape)
    w_rng, b_rng = split(rng, 2)
    shape = (*window, as_shape(input_shape)[-1] // groups, layer.filters)
    w = layer.w_init(w_rng, shape, dtype)
    b = layer.b_init(b_rng, (layer.filters,), dtype) if layer.use_bias else None
    return freeze(ConvParams(w, b))


@attrs.frozen(repr=False)
class ZeroPadding2D(Layer):
    """Zeros around height and width: an int, ``(ph, pw)`` or ``((top, bottom), (left, right))``."""

    padding: Any = attrs.field(default=1, converter=_padding)

    @padding.validator
    def _explicit(self, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, str):
            raise ValueError("ZeroPadding2D needs explicit sizes, not 'same' or 'valid'")

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("height", "width", "channels"))
        (t, b), (left, r) = self.padding
        return (shape[0] + t + b, shape[1] + left + r, shape[2])

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, IMAGES)
        return pad_spatial(x, self.padding), state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        (t, _), (left, _) = self.padding
        return (), dy[:, t : t + cache[1], left : left + cache[2], :]
