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
from funcnn.layers.conv import Conv1D, Conv2D, ConvParams, ZeroPadding2D
from funcnn.layers.dense import Dense, DenseParams
from funcnn.layers.dropout import Dropout
from funcnn.layers.normalization import BatchNorm, BatchNormState, LayerNorm, NormParams
from funcnn.layers.pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    MaxPool1D,
    MaxPool2D,
)
from funcnn.layers.reshape import Flatten, Reshape

__all__ = [
    "Activation",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "BatchNormState",
    "Conv1D",
    "Conv2D",
    "ConvParams",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "LayerNorm",
    "MaxPool1D",
    "MaxPool2D",
    "NormParams",
    "ZeroPadding2D",
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
