"""Layers that resize images and sequences without weights: UpSampling2D (nearest or
bilinear), UpSampling1D, Cropping2D, Cropping1D and ZeroPadding1D (ZeroPadding2D lives
with the convolutions in :mod:`funcnn.layers.conv`).

None of them sums over the batch or multiplies matrices: each output is a fixed
combination of its own example's values (bilinear upsampling: two taps per axis), so
their bits never depend on the batch.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import (
    IMAGES,
    SEQUENCES,
    Layer,
    RngArg,
    as_batch_of,
    example_shape,
)
from funcnn.layers.conv import Pads, Pair
from funcnn.types import Cache, LayerState, Params, Shape


def _sides(name: str, value: Any) -> Pair:
    """An int for both ends, or ``(before, after)``, each >= 0."""
    if check.is_int(value):
        value = (value, value)
    return check.int_pair(name, value, minimum=0)


def _sides_2d(name: str, value: Any) -> Pads:
    """An int, ``(h, w)`` (each for both ends) or ``((top, bottom), (left, right))``."""
    if check.is_int(value):
        value = (value, value)
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or len(items) != 2:
        raise TypeError(
            f"{name} must be an int, (height, width) or ((top, bottom), (left, right)), "
            f"got {value!r}"
        )
    return (_sides(name, items[0]), _sides(name, items[1]))


# ---------------------------------------------------------------- upsampling


def linear_taps(n: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear interpolation of ``n`` positions to ``n * scale``, half-pixel centres
    (``align_corners=False``: Keras', TensorFlow's and PyTorch's default): output ``i``
    reads input ``(i + 0.5) / scale - 0.5``, clamped to the input's edges, from its two
    neighbours ``lo`` and ``lo + 1``. Returns ``lo``, ``hi`` and the weight of ``hi``."""
    where = np.clip((np.arange(n * scale) + 0.5) / scale - 0.5, 0.0, n - 1)
    lo = np.minimum(np.floor(where).astype(np.intp), n - 1)
    return lo, np.minimum(lo + 1, n - 1), where - lo


def _interpolate(x: np.ndarray, axis: int, scale: int) -> np.ndarray:
    lo, hi, frac = linear_taps(x.shape[axis], scale)
    shape = [1] * x.ndim
    shape[axis] = -1
    f = frac.astype(x.dtype).reshape(shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + f * (b - a)


def _interpolate_back(dy: np.ndarray, axis: int, n: int, scale: int) -> np.ndarray:
    """The adjoint of :func:`_interpolate`: each output's gradient back to its two taps."""
    lo, hi, frac = linear_taps(n, scale)
    shape = [1] * dy.ndim
    shape[axis] = -1
    f = frac.astype(dy.dtype).reshape(shape)
    out_shape = list(dy.shape)
    out_shape[axis] = n
    dx = np.zeros(out_shape, dtype=dy.dtype)
    index: list[Any] = [slice(None)] * dy.ndim
    for taps, part in ((lo, dy - f * dy), (hi, f * dy)):
        index[axis] = taps
        np.add.at(dx, tuple(index), part)
    return dx


@attrs.frozen(repr=False)
class UpSampling2D(Layer):
    """``(N, H, W, C) -> (N, H * sh, W * sw, C)``; ``size`` an int or ``(sh, sw)``.

    ``interpolation``: "nearest" repeats each pixel (Keras' default); "bilinear"
    interpolates with half-pixel centres (``align_corners=False``), as Keras'
    ``UpSampling2D(interpolation="bilinear")`` and PyTorch's ``Upsample(mode="bilinear")``.
    """

    size: Pair = attrs.field(default=(2, 2), converter=lambda v: check.int_pair("size", v))
    interpolation: str = attrs.field(
        default="nearest",
        kw_only=True,
        validator=check.field(lambda n, v: check.choice(n, v, ("nearest", "bilinear"))),
    )

    def output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = example_shape(self, input_shape, ("height", "width", "channels"))
        return (h * self.size[0], w * self.size[1], c)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, IMAGES)
        sh, sw = self.size
        if self.interpolation == "nearest":
            y = np.repeat(np.repeat(x, sh, axis=1), sw, axis=2)
        else:
            y = _interpolate(_interpolate(x, 1, sh), 2, sw)
        return y, state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        n, h, w, c = cache
        sh, sw = self.size
        if self.interpolation == "nearest":
            return (), dy.reshape(n, h, sh, w, sw, c).sum(axis=(2, 4))
        return (), _interpolate_back(_interpolate_back(dy, 2, w, sw), 1, h, sh)


@attrs.frozen(repr=False)
class UpSampling1D(Layer):
    """``(N, L, C) -> (N, L * size, C)``: each step repeated ``size`` times (Keras')."""

    size: int = attrs.field(default=2, validator=check.field(check.positive_int))

    def output_shape(self, input_shape: Shape) -> Shape:
        length, c = example_shape(self, input_shape, ("length", "channels"))
        return (length * self.size, c)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        return np.repeat(x, self.size, axis=1), state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        n, length, c = cache
        return (), dy.reshape(n, length, self.size, c).sum(axis=2)


# ---------------------------------------------------------------- cropping and padding


@attrs.frozen(repr=False)
class Cropping2D(Layer):
    """Drops rows and columns at the edges: ``cropping`` an int, ``(h, w)`` (each for both
    ends) or ``((top, bottom), (left, right))``, as Keras' ``Cropping2D``."""

    cropping: Pads = attrs.field(
        default=((0, 0), (0, 0)), converter=lambda v: _sides_2d("cropping", v)
    )

    def output_shape(self, input_shape: Shape) -> Shape:
        h, w, c = example_shape(self, input_shape, ("height", "width", "channels"))
        (t, b), (left, r) = self.cropping
        if h - t - b < 1 or w - left - r < 1:
            raise ValueError(
                f"{self!r} crops {t + b} rows and {left + r} columns: an input of {h}x{w} "
                "keeps nothing"
            )
        return (h - t - b, w - left - r, c)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, IMAGES)
        h, w, _ = self.output_shape(x.shape[1:])
        (t, _), (left, _) = self.cropping
        return x[:, t : t + h, left : left + w], state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        return (), (np.pad(dy, ((0, 0), *self.cropping, (0, 0))) if need_dx else None)


@attrs.frozen(repr=False)
class Cropping1D(Layer):
    """Drops steps at the ends of sequences: ``cropping`` an int or ``(start, end)``."""

    cropping: Pair = attrs.field(default=(1, 1), converter=lambda v: _sides("cropping", v))

    def output_shape(self, input_shape: Shape) -> Shape:
        length, c = example_shape(self, input_shape, ("length", "channels"))
        kept = length - sum(self.cropping)
        if kept < 1:
            raise ValueError(f"{self!r}: a sequence of {length} steps keeps nothing")
        return (kept, c)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        kept, _ = self.output_shape(x.shape[1:])
        start = self.cropping[0]
        return x[:, start : start + kept], state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        return (), (np.pad(dy, ((0, 0), self.cropping, (0, 0))) if need_dx else None)


@attrs.frozen(repr=False)
class ZeroPadding1D(Layer):
    """Zeros at the ends of sequences: ``padding`` an int or ``(start, end)``."""

    padding: Pair = attrs.field(default=(1, 1), converter=lambda v: _sides("padding", v))

    def output_shape(self, input_shape: Shape) -> Shape:
        length, c = example_shape(self, input_shape, ("length", "channels"))
        return (length + sum(self.padding), c)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        return np.pad(x, ((0, 0), self.padding, (0, 0))), state, x.shape

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        start = self.padding[0]
        return (), dy[:, start : start + cache[1]]
