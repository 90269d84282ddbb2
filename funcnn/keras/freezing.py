"""Keras' ``layer.trainable = False``: what ``fit`` trains of a model with frozen layers.

As in Keras, a frozen layer's weights get no update (whatever the optimizer: momentum,
weight decay and penalties included) and a frozen ``BatchNormalization`` runs in inference
mode (its moving statistics normalize, and stay as they are); gradients still flow
through frozen layers to the trainable layers before them. ``fit`` reads the flags each
time it is called, so freezing after ``compile`` (or between two ``fit`` calls) counts.
The optimizer state keeps its structure (the frozen weights' entries stay), so a model
can be frozen and unfrozen and saved in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import optim, tree
from funcnn.layers.base import Layer, RngArg
from funcnn.random import RngLike
from funcnn.types import Cache, LayerState, OptState, Params, Shape, UpdateResult, Updates


@attrs.frozen(repr=False)
class InferenceMode(Layer):
    """``layer`` run with ``train=False`` always: a frozen BatchNormalization in training
    normalizes by its moving statistics and returns its state unchanged. Same params,
    state and shapes as ``layer``; the backward is ``layer``'s for that forward."""

    layer: Layer = attrs.field(validator=attrs.validators.instance_of(Layer))

    def __repr__(self) -> str:
        return f"InferenceMode({self.layer!r})"

    def output_shape(self, input_shape: Shape) -> Any:
        return self.layer.output_shape(input_shape)

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        return self.layer.init(rng, input_shape, dtype=dtype)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        return self.layer.init_state(input_shape, dtype=dtype)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        return self.layer.forward_with_state(params, state, x, train=False, rng=rng)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        return self.layer.backward(params, cache, dy, need_dx=need_dx)


def trainable_mask(params: Sequence[Any], trainable: Sequence[Any]) -> tuple[Any, ...]:
    """A tree of bools like ``params`` (one entry per layer): True where the layer trains.
    ``trainable`` holds a bool per layer, or for a nested model the list of its layers'."""
    return tuple(
        trainable_mask(p, on) if isinstance(on, list) else tree.map(lambda _, on=on: on, p)
        for p, on in zip(params, trainable)
    )


def all_trainable(trainable: Sequence[Any]) -> bool:
    """Whether every flag of ``trainable`` (as :func:`trainable_mask` takes it) is True."""
    return all(all_trainable(on) if isinstance(on, list) else on for on in trainable)


def _zero_where_frozen(updates: Updates, mask: Any) -> Updates:
    return tree.map(lambda u, on: u if on else np.zeros_like(u), updates, mask, shapes=False)


def frozen_updates(
    optimizer: optim.GradientTransformation, mask: Any
) -> optim.GradientTransformation:
    """``optimizer`` on the gradients of the trainable leaves (``mask`` True), and zero
    updates for the others: their gradients are zeroed before it and its updates after it
    (weight decay and momentum would move them otherwise). The state is ``optimizer``'s."""

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        new, state = optimizer.update(_zero_where_frozen(updates, mask), state, params)
        return _zero_where_frozen(new, mask), state

    return optim.GradientTransformation(optimizer.init, update)
