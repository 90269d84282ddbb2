"""Keras-style layer specs: ``Dense(8, activation="relu", input_dim=4)`` and friends.

Each spec turns into core layers (``layers()``) and may declare the model's input
shape; plain core layers work in a ``Sequential`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from funcnn import layers as L
from funcnn.keras.names import INITIALIZERS, get_activation, lookup
from funcnn.layers.base import Layer, as_shape


def _input_shape(
    input_dim: int | None, input_shape: Sequence[int] | None
) -> tuple[int, ...] | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_dim is not None:
        return as_shape((input_dim,))
    return None if input_shape is None else as_shape(tuple(input_shape))


@attrs.frozen
class Dense:
    """Keras' ``Dense(units, activation=None, input_dim=None, ...)``: core Dense + activation."""

    units: int
    activation: str | Layer | None = None
    input_dim: int | None = None
    input_shape: tuple[int, ...] | None = None
    kernel_initializer: Any = "glorot_uniform"
    bias_initializer: Any = "zeros"
    use_bias: bool = True

    def layers(self) -> list[Layer]:
        dense = L.Dense(
            self.units,
            w_init=lookup(INITIALIZERS, self.kernel_initializer, "initializer"),
            b_init=lookup(INITIALIZERS, self.bias_initializer, "initializer"),
            use_bias=self.use_bias,
        )
        act = get_activation(self.activation)
        return [dense] if act is None else [dense, act]

    def declared_input_shape(self) -> tuple[int, ...] | None:
        return _input_shape(self.input_dim, self.input_shape)


@attrs.frozen
class Activation:
    """Keras' ``Activation("relu")``."""

    activation: str | Layer

    def layers(self) -> list[Layer]:
        act = get_activation(self.activation)
        return [] if act is None else [act]

    def declared_input_shape(self) -> tuple[int, ...] | None:
        return None


def Dropout(rate: float) -> Layer:
    """Keras' ``Dropout(rate)``: rate is the probability of dropping a unit."""
    return L.Dropout(rate)


def Flatten() -> Layer:
    return L.Flatten
