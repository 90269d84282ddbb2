"""Pooling on channels-last data: max and average, windowed and global, 2-D and 1-D.

Windowed pools loop over the window's offsets (pool_h * pool_w strided slices), never
over samples, pixels or channels. Max-pool gradients go to ONE position per window:
the first maximum in row-major window order (ties broken towards the top-left).
"Same" padding pads with -inf for max pools; average pools divide by the number of
real (unpadded) inputs in each window, as TensorFlow does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import numpy as np

from funcnn import kernels
from funcnn import validate as check
from funcnn.layers.base import (
    IMAGES,
    SEQUENCES,
    Layer,
    RngArg,
    as_batch_of,
    as_input,
    as_shape,
    example_shape,
    layer_value,
)
from funcnn.layers.conv import Pair, offset_slices, output_size, pad_spatial, resolve_pads
from funcnn.types import Cache, LayerState, Params, Shape


def _strides(value: Any) -> Pair | None:
    return None if value is None else check.int_pair("strides", value)


def _pool_padding(value: Any) -> str:
    if value not in ("valid", "same"):
        raise ValueError(f"pool padding must be 'valid' or 'same', got {value!r}")
    return str(value)


@attrs.frozen(repr=False)
class _Pool2D(Layer):
    pool_size: Pair = attrs.field(
        default=(2, 2), converter=lambda v: check.int_pair("pool_size", v)
    )
    strides: Pair | None = attrs.field(default=None, converter=_strides)
    padding: str = attrs.field(default="valid", converter=_pool_padding)

    @property
    def _steps(self) -> Pair:
        return self.strides or self.pool_size

    def _geometry(self, size: Pair) -> tuple[Any, Pair]:
        pads = resolve_pads(self.padding, size, self.pool_size, self._steps)
        return pads, output_size(size, self.pool_size, self._steps, pads)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("height", "width", "channels"))
        _, (oh, ow) = self._geometry((shape[0], shape[1]))
        if oh < 1 or ow < 1:
            raise ValueError(f"{self!r}: the pool window does not fit an input of {shape[:2]}")
        return (oh, ow, shape[2])

    def _input(self, x: Any) -> np.ndarray:
        x = as_batch_of(x, self, IMAGES)
        self.output_shape(x.shape[1:])
        return x

    def _slices(self, out: Pair) -> list[tuple[slice, slice, slice, slice]]:
        ph, pw = self.pool_size
        return [
            offset_slices((a, b), (1, 1), self._steps, out) for a in range(ph) for b in range(pw)
        ]


class MaxPool2D(_Pool2D):
    """Max over ``pool_size`` windows moved by ``strides`` (default: the pool size)."""

    def _max(self, x: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        x = self._input(x)
        pads, out = self._geometry((x.shape[1], x.shape[2]))
        xp = pad_spatial(x, pads, -np.inf)
        slices = self._slices(out)
        y = xp[slices[0]].copy()
        for s in slices[1:]:
            np.maximum(y, xp[s], out=y)
        return y, xp, pads

    def _hits(self, xp: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``hits[k]``: where window offset k holds its window's first maximum (row-major
        window order), one bool array of ``y``'s shape per offset."""
        slices = self._slices(y.shape[1:3])
        hits = np.empty((len(slices), *y.shape), dtype=bool)
        free = np.ones(y.shape, dtype=bool)  # windows whose maximum is not found yet
        for hit, s in zip(hits, slices):
            np.equal(xp[s], y, out=hit)
            hit &= free  # only the first maximum
            free ^= hit
        return hits

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        if kernels.compiled():  # one compiled pass: the maxima and where each first is
            x = self._input(x)
            pads, out = self._geometry((x.shape[1], x.shape[2]))
            xp = pad_spatial(x, pads, -np.inf)
            y, arg = kernels.maxpool_forward(xp, self.pool_size, self._steps, out)
            return y, state, (None, y, pads, xp.shape, arg)
        y, xp, pads = self._max(x)
        if train:  # find the maxima now, while the input is in cache: backward needs only them
            return y, state, (None, y, pads, xp.shape, self._hits(xp, y))
        return y, state, (xp, y, pads, xp.shape, None)

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        xp, y, pads, shape, hits = cache
        if hits is None:  # an inference-mode forward kept the input instead
            hits = self._hits(xp, y)
        overlapping = any(s < p for s, p in zip(self._steps, self.pool_size))
        # The windows tile the padded input (stride = pool size, no position left after the
        # last window) only where every position is written below: then no zero fill.
        tiled = self._steps == self.pool_size and shape[1:3] == tuple(
            o * p for o, p in zip(y.shape[1:3], self.pool_size)
        )
        if hits.shape == y.shape:  # the compiled forward's first-maximum offsets
            dy = np.asarray(dy)
            if kernels.compiled() and dy.dtype == y.dtype and dy.shape == y.shape:
                dxp = kernels.maxpool_backward(
                    dy, hits, shape, self.pool_size, self._steps, overlapping, tiled
                )
                h, w = shape[1] - sum(pads[0]), shape[2] - sum(pads[1])
                return (), dxp[:, pads[0][0] : pads[0][0] + h, pads[1][0] : pads[1][0] + w, :]
            hits = np.stack([hits == k for k in range(len(self._slices((1, 1))))])
        slices = self._slices(y.shape[1:3])
        dxp = (np.empty if tiled else np.zeros)(shape, dtype=dy.dtype)
        for hit, s in zip(hits, slices):
            if overlapping:
                dxp[s] += dy * hit
            else:
                np.multiply(dy, hit, out=dxp[s])
        h, w = shape[1] - sum(pads[0]), shape[2] - sum(pads[1])
        return (), dxp[:, pads[0][0] : pads[0][0] + h, pads[1][0] : pads[1][0] + w, :]


class AvgPool2D(_Pool2D):
    """Mean over ``pool_size`` windows; with "same" padding only real inputs are counted."""

    def _counts(self, h: int, w: int, dtype: Any) -> tuple[Any, Any, np.ndarray]:
        pads, out = self._geometry((h, w))
        ones = pad_spatial(np.ones((1, h, w, 1), dtype=dtype), pads)
        counts = sum(ones[s] for s in self._slices(out))
        return pads, out, np.asarray(counts)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = self._input(x)
        pads, out, counts = self._counts(x.shape[1], x.shape[2], x.dtype)
        xp = pad_spatial(x, pads)
        slices = self._slices(out)
        # float16 windows are summed in float32: a sum overflows at 65,504 before its mean
        y = xp[slices[0]].astype(np.promote_types(x.dtype, np.float32))
        for s in slices[1:]:
            y += xp[s]
        y /= counts
        return y.astype(x.dtype, copy=False), state, (x.shape, pads, counts)

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        (n, h, w, c), pads, counts = cache
        share = dy / counts
        dxp = np.zeros((n, h + sum(pads[0]), w + sum(pads[1]), c), dtype=dy.dtype)
        for s in self._slices(dy.shape[1:3]):
            dxp[s] += share
        return (), dxp[:, pads[0][0] : pads[0][0] + h, pads[1][0] : pads[1][0] + w, :]


@attrs.frozen(repr=False)
class _GlobalPool(Layer):
    """Pool over every axis between batch and channels: ``_pool`` reduces the input seen as
    ``(batch, positions, channels)`` to ``(batch, channels)``, ``_unpool`` is its backward."""

    _name: ClassVar[str]  # the layer value's name (its repr, what io saves)

    def __repr__(self) -> str:
        return self._name

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) < 2 or 0 in shape[:-1]:
            raise ValueError(
                f"{self!r} expects examples of shape (..., channels) with no empty axis, "
                f"got {shape}"
            )
        return (shape[-1],)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self, min_ndim=3)
        self.output_shape(x.shape[1:])  # an empty batch is fine, an empty image is not
        y, found = self._pool(x.reshape(_flat_shape(x.shape)))
        return y, state, (x.shape, found)

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        x_shape, found = cache
        return (), self._unpool(dy, _flat_shape(x_shape), found).reshape(x_shape)

    def _pool(self, flat: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _unpool(self, dy: np.ndarray, flat_shape: Shape, found: Any) -> np.ndarray:
        raise NotImplementedError


def _flat_shape(shape: Shape) -> Shape:
    """(batch, positions, channels) of a batch of ``shape``."""
    return (shape[0], math.prod(shape[1:-1]), shape[-1])


class _GlobalAvgPool(_GlobalPool):
    _name = "GlobalAvgPool2D"

    def _pool(self, flat: np.ndarray) -> tuple[np.ndarray, None]:
        return flat.mean(axis=1), None

    def _unpool(self, dy: np.ndarray, flat_shape: Shape, found: None) -> np.ndarray:
        share = dy / flat_shape[1]
        return np.broadcast_to(share[:, None, :], flat_shape).copy()


class _GlobalMaxPool(_GlobalPool):
    _name = "GlobalMaxPool2D"

    def _pool(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arg = flat.argmax(axis=1)  # first maximum
        return np.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0], arg

    def _unpool(self, dy: np.ndarray, flat_shape: Shape, arg: np.ndarray) -> np.ndarray:
        dflat = np.zeros(flat_shape, dtype=dy.dtype)
        np.put_along_axis(dflat, arg[:, None, :], dy[:, None, :], axis=1)
        return dflat


GlobalAvgPool2D = layer_value(_GlobalAvgPool())
"""(N, H, W, C) -> (N, C): the mean over height and width (any rank: every axis between)."""
GlobalMaxPool2D = layer_value(_GlobalMaxPool())
"""(N, H, W, C) -> (N, C): the maximum over height and width (gradient to the first one)."""
GlobalAvgPool1D = GlobalAvgPool2D
"""(N, L, C) -> (N, C): the same layer value as GlobalAvgPool2D."""
GlobalMaxPool1D = GlobalMaxPool2D
"""(N, L, C) -> (N, C): the same layer value as GlobalMaxPool2D."""


@attrs.frozen(repr=False)
class _Pool1D(Layer):
    pool_size: int = 2
    strides: int | None = None
    padding: str = attrs.field(default="valid", converter=_pool_padding)

    def _pool2d(self) -> _Pool2D:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = example_shape(self, input_shape, ("length", "channels"))
        return self._pool2d().output_shape((1, *shape))[1:]

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_batch_of(x, self, SEQUENCES)
        y, cache = self._pool2d().forward((), x[:, None], train=train)
        return y[:, 0], state, cache

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        _, dx = self._pool2d().backward((), cache, dy[:, None], need_dx=need_dx)
        return (), (None if dx is None else dx[:, 0])


class MaxPool1D(_Pool1D):
    """Max over windows of ``(batch, length, channels)`` data."""

    def _pool2d(self) -> _Pool2D:
        strides = None if self.strides is None else (1, self.strides)
        return MaxPool2D((1, self.pool_size), strides, self.padding)


class AvgPool1D(_Pool1D):
    """Mean over windows of ``(batch, length, channels)`` data."""

    def _pool2d(self) -> _Pool2D:
        strides = None if self.strides is None else (1, self.strides)
        return AvgPool2D((1, self.pool_size), strides, self.padding)
