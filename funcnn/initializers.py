"""Weight initializers: each is a callable ``(rng, shape, dtype=float32) -> array``.

Fans follow the usual convention for dense kernels ``(in, out)`` and channels-last
convolution kernels ``(*spatial, in_channels, out_channels)``:
``fan_in = in * receptive_field`` and ``fan_out = out * receptive_field`` where
``receptive_field`` is the product of the spatial sizes (1 for dense kernels).

Values are drawn in float64 from the generator and then cast, so one seed gives
the same weights (up to rounding) in float32 and float64.
"""

from __future__ import annotations

import math
from typing import Protocol

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import validate as check
from funcnn.random import RngLike, as_generator
from funcnn.types import Shape


class Initializer(Protocol):
    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = ...) -> np.ndarray: ...


def compute_fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel of ``shape``; a vector counts as (n, n)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _float(dtype: DTypeLike) -> np.dtype:
    return check.float_dtype("dtype", dtype)


def _check_shape(shape: Shape) -> Shape:
    """``shape`` as ints; a ValueError for negative sizes, and for a weight whose draw
    would not fit in the memory left (a typo such as ``Dense(10**9)``), before anything
    is allocated."""
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must have non-negative sizes, got {shape}")
    check.fits_in_memory(
        f"a weight of shape {shape}",
        math.prod(shape) * 12,  # drawn in float64, then cast
        ": is a layer's size (units, filters, kernel) what you meant?",
    )
    return shape


@attrs.frozen
class VarianceScaling:
    """Draw with variance ``scale / fan`` (fan by ``mode``), uniform or normal.

    uniform: U(-limit, limit) with ``limit = sqrt(3 * scale / fan)``;
    normal: N(0, scale / fan), not truncated (PyTorch's ``xavier_normal_``/``kaiming_normal_``).
    """

    scale: float
    mode: str = attrs.field(validator=attrs.validators.in_(("fan_in", "fan_out", "fan_avg")))
    distribution: str = attrs.field(validator=attrs.validators.in_(("uniform", "normal")))
    name: str = ""

    def __repr__(self) -> str:
        if self.name:
            return self.name
        return f"VarianceScaling({self.scale!r}, {self.mode!r}, {self.distribution!r})"

    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        shape = _check_shape(shape)
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        gen = as_generator(rng)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = gen.uniform(-limit, limit, shape)
        else:
            values = gen.standard_normal(shape) * math.sqrt(variance)
        return values.astype(_float(dtype))


glorot_uniform = VarianceScaling(1.0, "fan_avg", "uniform", "glorot_uniform")
"""U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
glorot_normal = VarianceScaling(1.0, "fan_avg", "normal", "glorot_normal")
"""N(0, 2 / (fan_in + fan_out))."""
he_uniform = VarianceScaling(2.0, "fan_in", "uniform", "he_uniform")
"""U(-l, l), l = sqrt(6 / fan_in) (He et al. 2015)."""
he_normal = VarianceScaling(2.0, "fan_in", "normal", "he_normal")
"""N(0, 2 / fan_in)."""
lecun_uniform = VarianceScaling(1.0, "fan_in", "uniform", "lecun_uniform")
"""U(-l, l), l = sqrt(3 / fan_in)."""
lecun_normal = VarianceScaling(1.0, "fan_in", "normal", "lecun_normal")
"""N(0, 1 / fan_in)."""


@attrs.frozen
class Normal:
    """N(0, stddev**2)."""

    stddev: float = 0.01

    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        return (as_generator(rng).standard_normal(_check_shape(shape)) * self.stddev).astype(
            _float(dtype)
        )


@attrs.frozen
class Uniform:
    """U(-scale, scale)."""

    scale: float = 0.05

    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        shape = _check_shape(shape)
        return as_generator(rng).uniform(-self.scale, self.scale, shape).astype(_float(dtype))


@attrs.frozen
class Orthogonal:
    """A (semi-)orthogonal matrix times ``scale`` (Saxe et al. 2014).

    The kernel is viewed as a ``(prod(shape[:-1]), shape[-1])`` matrix; its rows or
    columns, whichever are fewer, are orthonormal. Signs follow the QR diagonal.
    """

    scale: float = 1.0

    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        shape = _check_shape(shape)
        if len(shape) < 2:
            raise ValueError(f"orthogonal needs a shape of rank >= 2, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = as_generator(rng).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.scale * q).reshape(shape).astype(_float(dtype))


@attrs.frozen
class Constant:
    """Every entry equal to ``value``."""

    value: float = 0.0

    def __call__(self, rng: RngLike, shape: Shape, dtype: DTypeLike = np.float32) -> np.ndarray:
        del rng
        return np.full(_check_shape(shape), self.value, dtype=_float(dtype))


def normal(stddev: float = 0.01) -> Normal:
    return Normal(stddev)


def uniform(scale: float = 0.05) -> Uniform:
    return Uniform(scale)


def constant(value: float) -> Constant:
    return Constant(value)


orthogonal = Orthogonal(1.0)
"""A semi-orthogonal matrix (scale 1)."""
zeros = Constant(0.0)
ones = Constant(1.0)
