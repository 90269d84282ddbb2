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
from funcnn.layers.attention import (
    AttentionParams,
    AttentionPool1D,
    AttentionPoolParams,
    MultiHeadAttention,
)
from funcnn.layers.augment import RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from funcnn.layers.base import Layer
from funcnn.layers.cells import CellParams, GRUCell, LSTMCell, SimpleRNNCell
from funcnn.layers.combinators import (
    FanInConcat,
    FanInSum,
    FanOut,
    Graph,
    Identity,
    Parallel,
    Serial,
    parallel,
    serial,
)
from funcnn.layers.conv import Conv1D, Conv2D, ConvParams, ZeroPadding2D
from funcnn.layers.conv_transpose import Conv1DTranspose, Conv2DTranspose
from funcnn.layers.dense import Dense, DenseParams
from funcnn.layers.dropout import Dropout, GaussianDropout, GaussianNoise, SpatialDropout
from funcnn.layers.embedding import Discretization, Embedding, EmbeddingParams
from funcnn.layers.masking import MaskedGlobalAvgPool1D, MaskedGlobalMaxPool1D, PerStep, per_step
from funcnn.layers.merge import Merge
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
from funcnn.layers.positional import (
    PositionalEmbedding,
    PositionalEmbeddingParams,
    SinusoidalEncoding,
)
from funcnn.layers.preprocessing import (
    Normalization,
    NormalizationState,
    Rescaling,
    normalization_state,
)
from funcnn.layers.recurrent import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    BidirectionalParams,
    SimpleRNN,
)
from funcnn.layers.resample import (
    Cropping1D,
    Cropping2D,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
)
from funcnn.layers.reshape import Flatten, Permute, RepeatVector, Reshape
from funcnn.layers.separable import DepthwiseConv2D, SeparableConv2D, SeparableParams
from funcnn.layers.transformer import (
    DecoderOnlyTransformer,
    Residual,
    TransformerBlock,
    TransformerEncoder,
    residual,
)

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
    "Graph",
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
    # sequences: embeddings, masks, recurrent layers
    "Bidirectional",
    "BidirectionalParams",
    "CellParams",
    "Discretization",
    "Embedding",
    "EmbeddingParams",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "MaskedGlobalAvgPool1D",
    "MaskedGlobalMaxPool1D",
    "PerStep",
    "RNN",
    "SimpleRNN",
    "SimpleRNNCell",
    "per_step",
    # attention and transformers
    "AttentionParams",
    "AttentionPool1D",
    "AttentionPoolParams",
    "DecoderOnlyTransformer",
    "MultiHeadAttention",
    "PositionalEmbedding",
    "PositionalEmbeddingParams",
    "Residual",
    "SinusoidalEncoding",
    "TransformerBlock",
    "TransformerEncoder",
    "residual",
    # the convolution family: transposed, depthwise, separable, resampling
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Cropping1D",
    "Cropping2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "SeparableParams",
    "UpSampling1D",
    "UpSampling2D",
    "ZeroPadding1D",
    # merges, moves, noise and preprocessing (the Keras layers of scripts)
    "GaussianDropout",
    "GaussianNoise",
    "Merge",
    "Normalization",
    "NormalizationState",
    "Permute",
    "RepeatVector",
    "Rescaling",
    "SpatialDropout",
    "normalization_state",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
]
