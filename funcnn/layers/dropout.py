"""Dropout with inverted scaling, its masks drawn per example from a counter-based key."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input
from funcnn.random import as_key
from funcnn.types import Cache, LayerState, Params


def _rate(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= check.real("Dropout rate", value) < 1:
        raise ValueError(
            f"Dropout rate is the probability of dropping a unit, in [0, 1); got {value!r}"
        )


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
        key = as_key(rng)
        if key is None:
            raise ValueError(
                f"{self!r} needs a random key when train=True. Instead of "
                "apply(params, x, train=True), call apply(params, x, train=True, rng=seed) "
                "with an int seed (or a funcnn.random.Key or a numpy Generator); with "
                "train=False dropout is the identity"
            )
        keep = key.uniform(x.shape) >= self.rate
        mask = keep * np.asarray(1.0 / (1.0 - self.rate), dtype=x.dtype)
        return x * mask, state, mask

    def backward(
        self, params: Params, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Params, np.ndarray | None]:
        if not need_dx:
            return (), None
        return (), (dy if cache is None else dy * cache)
