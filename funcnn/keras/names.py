"""The names Keras scripts use for activations, losses, optimizers and initializers.

An unknown name raises ValueError listing the valid ones; objects pass through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from funcnn import initializers, losses, optim
from funcnn import layers as L
from funcnn.layers.base import Layer

ACTIVATIONS: dict[str, Layer] = {
    "relu": L.Relu,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": L.Softmax,
    "log_softmax": L.LogSoftmax,
    "softplus": L.Softplus,
    "elu": L.Elu,
    "selu": L.Selu,
    "gelu": L.Gelu,
    "leaky_relu": L.LeakyRelu(),
    "linear": L.Linear,
}

LOSSES: dict[str, losses.Loss] = {
    "mean_squared_error": losses.mean_squared_error,
    "mse": losses.mean_squared_error,
    "mean_absolute_error": losses.mean_absolute_error,
    "mae": losses.mean_absolute_error,
    "huber": losses.huber(),
    "binary_crossentropy": losses.binary_cross_entropy,
    "binary_cross_entropy": losses.binary_cross_entropy,
    "categorical_crossentropy": losses.categorical_cross_entropy,
    "categorical_cross_entropy": losses.categorical_cross_entropy,
    "sparse_categorical_crossentropy": losses.categorical_cross_entropy,
    "sigmoid_binary_cross_entropy": losses.sigmoid_binary_cross_entropy,
    "softmax_cross_entropy": losses.softmax_cross_entropy,
}

# Keras' default learning rates; adadelta keeps the paper's 1.0 (Keras' 0.001 barely moves).
OPTIMIZERS: dict[str, Callable[[], optim.GradientTransformation]] = {
    "sgd": lambda: optim.sgd(0.01),
    "momentum": lambda: optim.momentum(0.01),
    "nesterov": lambda: optim.nesterov(0.01),
    "rmsprop": lambda: optim.rmsprop(0.001),
    "adagrad": lambda: optim.adagrad(0.001),
    "adadelta": lambda: optim.adadelta(),
    "adam": lambda: optim.adam(0.001),
    "adamw": lambda: optim.adamw(0.001),
    "amsgrad": lambda: optim.amsgrad(0.001),
    "adamax": lambda: optim.adamax(0.001),
    "nadam": lambda: optim.nadam(0.001),
    "lion": lambda: optim.lion(0.0001),
}

INITIALIZERS: dict[str, Any] = {
    **{
        name: getattr(initializers, name)
        for name in (
            "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
            "lecun_normal", "orthogonal", "zeros", "ones",
        )
    },
    # Keras' RandomUniform(-0.05, 0.05) and RandomNormal(0, 0.05), under all their names
    **dict.fromkeys(["uniform", "random_uniform"], initializers.uniform(0.05)),
    **dict.fromkeys(["normal", "random_normal"], initializers.normal(0.05)),
}  # fmt: skip
# Keras 3's class names for the same: "GlorotUniform", "HeNormal", "Zeros"...
INITIALIZERS.update(
    {name.replace("_", ""): value for name, value in INITIALIZERS.items() if "_" in name}
)


def lookup(table: dict[str, Any], name: Any, what: str) -> Any:
    if isinstance(name, str):
        key = name.lower()
        if key not in table:
            raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")
        return table[key]
    return name


def get_initializer(initializer: Any) -> Any:
    """The initializer for a Keras name ("glorot_uniform", "he_normal", "uniform", "normal",
    "GlorotUniform"...); a callable ``(rng, shape, dtype) -> array`` passes through."""
    if isinstance(initializer, str):
        return lookup(INITIALIZERS, initializer, "initializer")  # "GlorotUniform" too
    if not callable(initializer):
        raise TypeError(f"an initializer must be a name or a callable, got {initializer!r}")
    return initializer


def get_activation(activation: str | Layer | None) -> Layer | None:
    """The activation layer for a name (None and "linear" mean no activation)."""
    if activation is None or activation == "linear":
        return None
    layer = lookup(ACTIVATIONS, activation, "activation")
    if not isinstance(layer, Layer):
        raise TypeError(f"activation must be a name or a layer, got {type(layer).__name__}")
    return layer


def get_loss(loss: str | losses.Loss) -> losses.Loss:
    found = lookup(LOSSES, loss, "loss")
    if not isinstance(found, losses.Loss):
        raise TypeError(f"loss must be a name or a funcnn.losses.Loss, got {type(found).__name__}")
    return found


def get_optimizer(optimizer: str | optim.GradientTransformation) -> optim.GradientTransformation:
    found = lookup(OPTIMIZERS, optimizer, "optimizer")
    found = found() if isinstance(optimizer, str) else found
    if not isinstance(found, optim.GradientTransformation):
        raise TypeError(
            f"optimizer must be a name or a GradientTransformation, got {type(found).__name__}"
        )
    return found
