"""Dropout with inverted scaling, its masks drawn per example from a counter-based key, and
its relatives: SpatialDropout (whole channels), GaussianNoise and GaussianDropout. Each acts
in training only and is the identity otherwise."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape, training_key
from funcnn.types import Cache, LayerState, Params, Shape


def _times_mask(dy: np.ndarray, mask: np.ndarray | None, need_dx: bool) -> np.ndarray | None:
    """The input's gradient of ``x * mask`` (``x`` itself where no mask was drawn)."""
    if not need_dx:
        return None
    return dy if mask is None else dy * mask


def _rate(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    name = f"{type(instance).__name__} rate"
    if not 0 <= check.real(name, value) < 1:
        raise ValueError(f"{name} is the probability of dropping a unit, in [0, 1); got {value!r}")


@attrs.frozen(repr=False)
class Dropout(Layer):
    """Zero each unit with probability ``rate`` in training and scale the rest by 1/(1-rate).

    ``rate`` is the probability of DROPPING a unit (as in Keras and PyTorch). With
    ``train=False`` the layer is the identity. Training needs ``rng`` (a
    :class:`funcnn.random.Key`, an int seed or a Generator). The mask of row ``r``
    depends only on the key and on ``key.row + r``, never on how a batch is split.
    """

    rate: float = attrs.field(validator=_rate)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        if not train or self.rate == 0:
            return x, state, None
        keep = training_key(self, rng).uniform(x.shape) >= self.rate
        mask = keep * np.asarray(1.0 / (1.0 - self.rate), dtype=x.dtype)
        return x * mask, state, mask

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), _times_mask(dy, cache, need_dx)


@attrs.frozen(repr=False)
class SpatialDropout(Layer):
    """Dropout of whole channels: each example's channel (the last axis) is zeroed at every
    position with probability ``rate``, the rest scaled by 1/(1-rate) (Keras'
    SpatialDropout1D on ``(steps, channels)``, SpatialDropout2D on ``(h, w, channels)``).
    Example rank >= 2; masks drawn per example, as :class:`Dropout`'s."""

    rate: float = attrs.field(validator=_rate)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) < 2:
            raise ValueError(
                f"{self!r} drops channels of examples (..., channels) of rank >= 2, got {shape}"
            )
        return shape

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        self.output_shape(x.shape[1:])
        if not train or self.rate == 0:
            return x, state, None
        keep = training_key(self, rng).uniform((x.shape[0], x.shape[-1])) >= self.rate
        mask = keep * np.asarray(1.0 / (1.0 - self.rate), dtype=x.dtype)
        mask = mask.reshape(x.shape[0], *([1] * (x.ndim - 2)), x.shape[-1])
        return x * mask, state, mask

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), _times_mask(dy, cache, need_dx)


def _stddev(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= check.real("GaussianNoise stddev", value) < np.inf:
        raise ValueError(f"GaussianNoise stddev must be finite and >= 0, got {value!r}")


@attrs.frozen(repr=False)
class GaussianNoise(Layer):
    """``x + stddev * N(0, 1)`` in training (a regularizer, Keras' GaussianNoise); the noise
    drawn per example from the key."""

    stddev: float = attrs.field(validator=_stddev)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        if not train or self.stddev == 0:
            return x, state, None
        noise = training_key(self, rng).normal(x.shape).astype(x.dtype)
        return x + np.asarray(self.stddev, x.dtype) * noise, state, None

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), (dy if need_dx else None)


@attrs.frozen(repr=False)
class GaussianDropout(Layer):
    """``x * N(1, rate / (1 - rate))`` in training (multiplicative noise of the variance
    Dropout of ``rate`` has, Keras' GaussianDropout); the noise drawn per example."""

    rate: float = attrs.field(validator=_rate)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        if not train or self.rate == 0:
            return x, state, None
        stddev = np.sqrt(self.rate / (1.0 - self.rate))
        mask = (1.0 + stddev * training_key(self, rng).normal(x.shape)).astype(x.dtype)
        return x * mask, state, mask

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        return (), _times_mask(dy, cache, need_dx)
