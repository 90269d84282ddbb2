"""Activation layers: each pairs a forward from :mod:`funcnn.nn` with its derivative.

Parameter-free activations are values (``Relu``, ``Softmax``); those with a
hyperparameter are constructors (``LeakyRelu(0.2)``). ``elementwise`` makes new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
import numpy as np

from funcnn import kernels, linalg, nn
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, layer_value
from funcnn.types import Cache, LayerState, Params


@attrs.frozen(repr=False)
class Activation(Layer):
    """An elementwise (or last-axis) function with its paired backward ``(x, y, dy) -> dx``."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray] = attrs.field(eq=False)
    backward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] = attrs.field(eq=False)
    pointwise: bool = attrs.field(default=False, eq=False)
    """Each output element depends on the same element of the input alone (not Softmax):
    forward and backward then run in cache-sized spans (:func:`funcnn.linalg.pointwise`)."""

    def __repr__(self) -> str:
        return self.name

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        y = linalg.pointwise(self.fn, x) if self.pointwise else self.fn(x)
        return y, state, (x, y)

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        x, y = cache
        if not need_dx:
            return (), None
        if self.pointwise:
            return (), linalg.pointwise(self.backward_fn, x, y, np.asarray(dy))
        return (), self.backward_fn(x, y, dy)


def elementwise(
    name: str,
    fn: Callable[[np.ndarray], np.ndarray],
    backward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    *,
    pointwise: bool = False,
) -> Activation:
    """Make an activation layer from a forward and its backward ``(x, y, dy) -> dx``.
    With ``pointwise=True`` (each output element from the same input element alone) both
    run over cache-sized spans on funcnn's threads, with the bits of one call.

    The layer is a value registered under ``name``, so models holding it can be
    saved and loaded (:mod:`funcnn.io`) in any process that made it the same way.
    """
    return layer_value(Activation(name, fn, backward_fn, pointwise))


class PositiveMask(NamedTuple):
    """What a training-mode ReLU keeps for backward: where its output is positive."""

    positive: np.ndarray  # bool, the output's shape
    dtype: np.dtype  # the output's dtype (the gradient's, as in nn.relu_backward)


@attrs.frozen(repr=False)
class _Relu(Activation):
    """ReLU: in training mode it keeps only where ``y > 0`` (a bool per element, found
    while ``y`` is in cache) instead of ``x`` and ``y``: backward reads a quarter of
    the bytes. Its gradient has the bits of :func:`funcnn.nn.relu_backward`."""

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        if train and kernels.compiled() and kernels.floating(x):  # one pass for both
            y, positive = kernels.relu_forward(x)
            return y, state, PositiveMask(positive, y.dtype)
        y, state, cache = super().forward_with_state(params, state, x, train=train, rng=rng)
        return y, state, (PositiveMask(y > 0, y.dtype) if train else cache)

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        if not isinstance(cache, PositiveMask):  # an inference-mode forward's (x, y)
            return super().backward(params, cache, dy, need_dx=need_dx)
        if not need_dx:
            return (), None
        dy = np.asarray(dy)
        if kernels.compiled() and kernels.floating(dy) and dy.dtype == cache.dtype:
            if dy.shape == cache.positive.shape:
                return (), kernels.relu_backward(dy, cache.positive)
        return (), np.multiply(dy, cache.positive, dtype=np.result_type(dy, cache.dtype))


Relu = layer_value(_Relu("Relu", nn.relu, nn.relu_backward))
Sigmoid = elementwise("Sigmoid", nn.sigmoid, nn.sigmoid_backward, pointwise=True)
Tanh = elementwise("Tanh", nn.tanh, nn.tanh_backward, pointwise=True)
Softplus = elementwise("Softplus", nn.softplus, nn.softplus_backward, pointwise=True)
Elu = elementwise("Elu", nn.elu, nn.elu_backward, pointwise=True)
"""ELU with alpha = 1."""
Selu = elementwise("Selu", nn.selu, nn.selu_backward, pointwise=True)
Gelu = elementwise("Gelu", nn.gelu, nn.gelu_backward, pointwise=True)
Softmax = elementwise("Softmax", nn.softmax, nn.softmax_backward)
"""Softmax over the last axis."""
LogSoftmax = elementwise("LogSoftmax", nn.log_softmax, nn.log_softmax_backward)
"""Log-softmax over the last axis."""
Linear = elementwise("Linear", nn.identity, nn.identity_backward)
"""The identity activation (Keras' ``"linear"``)."""


@attrs.frozen(repr=False)
class LeakyRelu(Layer):
    """x for x > 0, ``negative_slope * x`` otherwise."""

    negative_slope: float = attrs.field(default=0.01, validator=check.field(check.number))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = as_input(x, self)
        return nn.leaky_relu(x, self.negative_slope), state, x

    def backward(
        self, params: Any, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[Any, np.ndarray | None]:
        dx = nn.leaky_relu_backward(cache, dy, self.negative_slope) if need_dx else None
        return (), dx
