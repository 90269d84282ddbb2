"""Layers and combinators. See :mod:`funcnn.layers.base` for the protocol."""

from funcnn.layers.activations import (
    Activation,
    Elu,
    Gelu,
    LeakyRelu,
    Linear,
    LogSoftmax,
    Relu,
    Selu,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    elementwise,
)
from funcnn.layers.base import Layer
from funcnn.layers.combinators import (
    FanInConcat,
    FanInSum,
    FanOut,
    Identity,
    Parallel,
    Serial,
    parallel,
    serial,
)
from funcnn.layers.dense import Dense, DenseParams
from funcnn.layers.dropout import Dropout
from funcnn.layers.reshape import Flatten, Reshape

__all__ = [
    "Activation",
    "Dense",
    "DenseParams",
    "Dropout",
    "Elu",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "Identity",
    "Layer",
    "LeakyRelu",
    "Linear",
    "LogSoftmax",
    "Parallel",
    "Relu",
    "Reshape",
    "Selu",
    "Serial",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "elementwise",
    "parallel",
    "serial",
]
