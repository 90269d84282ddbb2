"""Dropout with inverted scaling."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn.layers.base import Cache, Layer, as_input
from funcnn.random import RngLike, as_generator


def _rate(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(
            f"Dropout rate is the probability of dropping a unit, in [0, 1); got {value!r}"
        )


@attrs.frozen(repr=False)
class Dropout(Layer):
    """Zero each unit with probability ``rate`` in training and scale the rest by 1/(1-rate).

    ``rate`` is the probability of DROPPING a unit (as in Keras and PyTorch). With
    ``train=False`` the layer is the identity. Training needs ``rng``.
    """

    rate: float = attrs.field(validator=_rate)

    @property
    def needs_rng(self) -> bool:
        return self.rate > 0

    def _mask(self, x: np.ndarray, rng: RngLike | None) -> np.ndarray:
        if rng is None:
            raise ValueError(
                f"{self!r} needs a random generator when train=True. Instead of "
                "apply(params, x, train=True), call apply(params, x, train=True, "
                "rng=np.random.default_rng(seed)) (an int seed works too); with train=False "
                "dropout is the identity"
            )
        draw_dtype = np.float32 if x.dtype == np.float32 else np.float64
        keep = as_generator(rng).random(x.shape, dtype=draw_dtype) >= self.rate
        return keep * np.asarray(1.0 / (1.0 - self.rate), dtype=x.dtype)

    def apply(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> np.ndarray:
        return self.forward(params, x, train=train, rng=rng)[0]

    def forward(
        self, params: Any, x: Any, *, train: bool = False, rng: RngLike | None = None
    ) -> tuple[np.ndarray, Cache]:
        x = as_input(x, self)
        if not train or self.rate == 0:
            return x, None
        mask = self._mask(x, rng)
        return x * mask, mask

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not need_dx:
            return (), None
        return (), (dy if cache is None else dy * cache)
