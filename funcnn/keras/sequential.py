"""``Sequential``: Keras' stack of layers, with ``add`` and ``pop``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from funcnn.keras import layers as K
from funcnn.keras.engine import Model
from funcnn.layers.base import Layer
from funcnn.random import RngLike


class Sequential(Model):
    """``Sequential([Dense(64, activation="relu", input_shape=(784,)), Dense(10)])``, or
    ``add`` one layer at a time. Keras layers, ``keras.Input(shape=...)``, funcnn layers
    (``funcnn.layers.Gelu``) and models all work: ``Sequential([base_model, Dense(10)])``
    holds ``base_model`` as one layer, its weights shared (see :class:`Model`)."""

    def __init__(
        self,
        layers: Sequence[Any] | None = None,
        *,
        name: str | None = None,
        seed: RngLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed)
        for layer in layers or ():
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer: a Keras layer, ``keras.Input(shape=...)`` first, a funcnn layer,
        or a model (one layer; a first one gives this model its input shape)."""
        if self.opt_state is not None or self.history is not None:
            raise ValueError("layers cannot be added after the model was trained or loaded")
        if isinstance(layer, K.KerasTensor):
            if self._specs or layer.layer is not None:
                raise ValueError("keras.Input(shape=...) goes first in a Sequential")
            self.input_shape = layer.shape
            return
        if isinstance(layer, type) and issubclass(layer, (Layer, K.KerasLayer)):
            raise TypeError(f"add() got the class {layer.__name__}; construct it first")
        if isinstance(layer, Layer):
            layer = K.Wrap(layer)
        if not isinstance(layer, K.KerasLayer):
            raise TypeError(f"add() takes a layer, got {type(layer).__name__}")
        if layer is self:
            raise ValueError("a model cannot be added to itself")
        declared = layer.declared_input_shape
        if isinstance(layer, Model) and (self._specs or self.input_shape is not None):
            declared = None  # a model's own input shape, after an input, is no declaration
        if declared is not None:
            if self._specs and not all(isinstance(s, K.InputLayer) for s in self._specs):
                raise ValueError("input_dim/input_shape belongs on the first layer")
            self.input_shape = declared
        self._add(layer)
        self.params = self.state = None  # built again, with the same seed, when needed

    def pop(self) -> K.KerasLayer:
        """Remove and return the last layer."""
        if not self._specs:
            raise ValueError("the model has no layers to pop")
        if self.opt_state is not None or self.history is not None:
            raise ValueError("layers cannot be removed after the model was trained or loaded")
        self.params = self.state = None
        return self._specs.pop()
