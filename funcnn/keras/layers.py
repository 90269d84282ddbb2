"""Keras' layers, in Keras' words: ``Dense(64, activation="relu", input_shape=(784,))``,
``Conv2D(32, (3, 3), activation="relu")``, ``MaxPooling2D()``, ``BatchNormalization()``...

Each one is a spec that builds a funcnn layer (:meth:`KerasLayer.core`: the operation
and its activation, as one Keras layer is one entry of ``model.layers``). Every one
takes ``name=`` and, as the first layer of a ``Sequential``, ``input_shape=`` (Dense
also ``input_dim=``). Calling one on the tensor of ``Input(shape=...)`` builds a
functional model: ``x = Dense(64)(inputs)``. Keyword names and defaults are Keras'
(both Keras 2's and Keras 3's where they differ and the meaning is plain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.attention import MultiHeadAttention
from funcnn.keras.base import (
    KERNEL_AND_BIAS,
    Input,
    KerasLayer,
    KerasTensor,
    _common,
    _with_activation,
)
from funcnn.keras.conv_layers import (
    Conv1DTranspose,
    Conv2DTranspose,
    Cropping1D,
    Cropping2D,
    DepthwiseConv2D,
    SeparableConv2D,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    causal_padding,
)
from funcnn.keras.names import get_activation, get_initializer
from funcnn.keras.preprocessing_layers import (
    Normalization,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
)
from funcnn.keras.recurrent import (
    GRU,
    LSTM,
    Bidirectional,
    Embedding,
    Masking,
    SimpleRNN,
    TakeOutput,
    TimeDistributed,
)
from funcnn.layers.base import Layer
from funcnn.layers.masking import MaskedGlobalAvgPool1D

__all__ = [
    "Activation",
    "Add",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "KerasLayer",
    "KerasTensor",
    "LSTM",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "MultiHeadAttention",
    "ReLU",
    "Reshape",
    "SimpleRNN",
    "Softmax",
    "TakeOutput",
    "TimeDistributed",
    "Wrap",
    "ZeroPadding2D",
    # the convolution family (funcnn.keras.conv_layers)
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Cropping1D",
    "Cropping2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "UpSampling1D",
    "UpSampling2D",
    "ZeroPadding1D",
    # merges, noise, moves (this module)
    "Average",
    "ELU",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "RepeatVector",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "Subtract",
    # preprocessing (funcnn.keras.preprocessing_layers)
    "Normalization",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "Rescaling",
    # Keras' other names
    "AvgPool1D",
    "AvgPool2D",
    "Convolution1D",
    "Convolution1DTranspose",
    "Convolution2D",
    "Convolution2DTranspose",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "MaxPool1D",
    "MaxPool2D",
    "SeparableConvolution2D",
]


def _pair(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _size(value: Any, rank: int) -> Any:
    """A window setting as the funcnn layer takes it: a 1-D layer's ``(3,)`` is 3."""
    value = _pair(value)
    return value[0] if rank == 1 and isinstance(value, tuple) and len(value) == 1 else value


class Dense(KerasLayer):
    """``Dense(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")``."""

    masking = "per_step"
    regularizable = KERNEL_AND_BIAS

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "Dense", dim=True))
        self.units = check.positive_int("units", units)
        get_activation(activation)  # an unknown name fails here, where it was written
        self.activation = activation
        self.use_bias = check.boolean("use_bias", use_bias)
        get_initializer(kernel_initializer), get_initializer(bias_initializer)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def core(self) -> Layer:
        dense = L.Dense(
            self.units,
            w_init=get_initializer(self.kernel_initializer),
            b_init=get_initializer(self.bias_initializer),
            use_bias=self.use_bias,
        )
        return _with_activation(dense, self.activation)


class _Conv(KerasLayer):
    rank = 2
    regularizable = KERNEL_AND_BIAS

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        dilation_rate: Any = 1,
        groups: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))
        r = self.rank
        self.filters, self.kernel_size = filters, _size(kernel_size, r)
        self.strides, self.padding = _size(strides, r), padding
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.dilation_rate = _size(dilation_rate, r)
        self.groups = groups
        self.core()  # every setting is checked now, where it was written

    def core(self) -> Layer:
        make = L.Conv2D if self.rank == 2 else L.Conv1D
        padding = causal_padding(
            type(self).__name__, self.padding, self.rank, self.kernel_size, self.dilation_rate
        )
        conv = make(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            dilation=self.dilation_rate,
            w_init=get_initializer(self.kernel_initializer),
            b_init=get_initializer(self.bias_initializer),
            use_bias=self.use_bias,
            groups=self.groups,
        )
        return _with_activation(conv, self.activation)


class Conv2D(_Conv):
    """``Conv2D(filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
    ..., groups=1)`` on channels-last images ``(height, width, channels)``."""


class Conv1D(_Conv):
    """``Conv1D(filters, kernel_size, strides=1, padding="valid", ...)`` on ``(length,
    channels)``; ``padding="causal"`` pads ``dilation_rate * (kernel_size - 1)`` zeros
    before each sequence, as Keras does (WaveNet's causal convolution)."""

    rank = 1


class _Pool(KerasLayer):
    kind = "max"
    rank = 2

    def __init__(
        self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", **kwargs: Any
    ) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))
        r = self.rank
        self.pool_size, self.strides = _size(pool_size, r), _size(strides, r)
        self.padding = padding
        self.core()

    def core(self) -> Layer:
        make = {
            ("max", 2): L.MaxPool2D,
            ("avg", 2): L.AvgPool2D,
            ("max", 1): L.MaxPool1D,
            ("avg", 1): L.AvgPool1D,
        }[self.kind, self.rank]
        return make(self.pool_size, strides=self.strides, padding=self.padding)


class MaxPooling2D(_Pool):
    """``MaxPooling2D(pool_size=(2, 2), strides=None, padding="valid")``."""


class AveragePooling2D(_Pool):
    """``AveragePooling2D(pool_size=(2, 2), strides=None, padding="valid")``."""

    kind = "avg"


class MaxPooling1D(_Pool):
    """``MaxPooling1D(pool_size=2, strides=None, padding="valid")``."""

    rank = 1


class AveragePooling1D(_Pool):
    """``AveragePooling1D(pool_size=2, strides=None, padding="valid")``."""

    kind, rank = "avg", 1


class _Fixed(KerasLayer):
    """A layer without settings: one funcnn layer value (``masked``: the value for a
    masked sequence, where it differs)."""

    value: Layer
    masked: Layer | None = None

    def core_for(self, masked: bool) -> Layer:
        return self.masked if masked and self.masked is not None else super().core_for(masked)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))

    def core(self) -> Layer:
        return self.value


def _fixed(name: str, value: Layer, doc: str | None = None, **masks: Any) -> type[_Fixed]:
    """The Keras layer class ``name``, without settings, that builds ``value``; ``masks``
    its ``masking`` and ``masked`` where they differ from a layer's (see KerasLayer)."""
    settings = {"value": value, "__doc__": doc, "__module__": __name__, **masks}
    return type(name, (_Fixed,), settings)


Flatten = _fixed("Flatten", L.Flatten, "``Flatten()``: each example to a vector.")
GlobalAveragePooling2D = _fixed("GlobalAveragePooling2D", L.GlobalAvgPool2D)
GlobalMaxPooling2D = _fixed("GlobalMaxPooling2D", L.GlobalMaxPool2D)
GlobalAveragePooling1D = _fixed(
    "GlobalAveragePooling1D",
    L.GlobalAvgPool1D,
    "``GlobalAveragePooling1D()``: the mean over the steps (the real ones, given a mask).",
    masked=MaskedGlobalAvgPool1D,
)
GlobalMaxPooling1D = _fixed("GlobalMaxPooling1D", L.GlobalMaxPool1D)
ReLU = _fixed("ReLU", L.Relu, masking="per_step")
Softmax = _fixed("Softmax", L.Softmax, masking="per_step")
Add = _fixed("Add", L.FanInSum, "``Add()([a, b])``: the sum of tensors of one shape.")
Multiply = _fixed("Multiply", L.Merge("multiply"), "``Multiply()([a, b])``: their product.")
Subtract = _fixed("Subtract", L.Merge("subtract"), "``Subtract()([a, b])``: ``a - b``.")
Average = _fixed("Average", L.Merge("average"), "``Average()([a, b])``: their mean.")
Maximum = _fixed("Maximum", L.Merge("maximum"), "``Maximum()([a, b])``: elementwise.")
Minimum = _fixed("Minimum", L.Merge("minimum"), "``Minimum()([a, b])``: elementwise.")
Identity = _fixed("Identity", L.Identity, "``Identity()``: the input as it is.", masking="per_step")


class Concatenate(KerasLayer):
    """``Concatenate(axis=-1)([a, b])``."""

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Concatenate"))
        self.axis = axis
        self.core()

    def core(self) -> Layer:
        return L.FanInConcat(self.axis)


class Activation(KerasLayer):
    """``Activation("relu")``."""

    masking = "per_step"

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Activation"))
        get_activation(activation)
        self.activation = activation

    def core(self) -> Layer:
        return get_activation(self.activation) or L.Identity


class LeakyReLU(KerasLayer):
    """``LeakyReLU(negative_slope=0.3)`` (Keras 2 calls it ``alpha``)."""

    masking = "per_step"

    def __init__(
        self, negative_slope: float | None = None, alpha: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**_common(kwargs, "LeakyReLU"))
        if negative_slope is not None and alpha is not None:
            raise ValueError("give negative_slope or alpha (its Keras 2 name), not both")
        slope = negative_slope if negative_slope is not None else alpha
        self.negative_slope = 0.3 if slope is None else check.number("negative_slope", slope)

    def core(self) -> Layer:
        return L.LeakyRelu(self.negative_slope)


class Dropout(KerasLayer):
    """``Dropout(rate)``: each unit is zeroed with probability ``rate`` in training."""

    masking = "per_step"

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Dropout"))
        self.rate = rate
        self.core()

    def core(self) -> Layer:
        return L.Dropout(self.rate)


class ELU(KerasLayer):
    """``ELU(alpha=1.0)``: ``x`` for ``x > 0``, ``alpha (exp(x) - 1)`` otherwise (alpha 1)."""

    masking = "per_step"

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "ELU"))
        if check.number("alpha", alpha) != 1.0:
            raise ValueError(f"ELU(alpha={alpha!r}): funcnn's Elu has alpha 1.0 only")
        self.alpha = 1.0

    def core(self) -> Layer:
        return L.Elu


class SpatialDropout1D(KerasLayer):
    """``SpatialDropout1D(rate)``: each example's channel zeroed at every step with
    probability ``rate`` in training, the rest scaled by 1/(1-rate)."""

    masking = "per_step"

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))
        self.rate = rate
        self.core()

    def core(self) -> Layer:
        return L.SpatialDropout(self.rate)


class SpatialDropout2D(SpatialDropout1D):
    """``SpatialDropout2D(rate)``: each example's feature map (a channel at every position)
    zeroed with probability ``rate`` in training (channels last)."""


class GaussianNoise(KerasLayer):
    """``GaussianNoise(stddev)``: ``x + stddev * N(0, 1)`` in training."""

    masking = "per_step"

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "GaussianNoise"))
        self.stddev = stddev
        self.core()

    def core(self) -> Layer:
        return L.GaussianNoise(self.stddev)


class GaussianDropout(KerasLayer):
    """``GaussianDropout(rate)``: ``x * N(1, rate / (1 - rate))`` in training."""

    masking = "per_step"

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "GaussianDropout"))
        self.rate = rate
        self.core()

    def core(self) -> Layer:
        return L.GaussianDropout(self.rate)


class RepeatVector(KerasLayer):
    """``RepeatVector(n)``: ``(batch, features) -> (batch, n, features)``."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "RepeatVector"))
        self.n = n
        self.core()

    def core(self) -> Layer:
        return L.RepeatVector(self.n)


class Permute(KerasLayer):
    """``Permute(dims)``: the example's axes reordered, numbered from 1 (``(2, 1)`` swaps
    steps and features)."""

    def __init__(self, dims: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Permute"))
        self.dims = tuple(dims) if isinstance(dims, (list, tuple)) else dims
        self.core()

    def core(self) -> Layer:
        return L.Permute(self.dims)


class Reshape(KerasLayer):
    """``Reshape(target_shape)``: each example to ``target_shape`` (-1 once allowed)."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Reshape"))
        self.target_shape = tuple(target_shape)
        self.core()

    def core(self) -> Layer:
        return L.Reshape(self.target_shape)


class ZeroPadding2D(KerasLayer):
    """``ZeroPadding2D(padding=(1, 1))``."""

    def __init__(self, padding: Any = 1, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "ZeroPadding2D"))
        self.padding = _pair(padding)
        self.core()

    def core(self) -> Layer:
        return L.ZeroPadding2D(self.padding)


class BatchNormalization(KerasLayer):
    """``BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001)``, Keras' defaults; the
    moving variance follows the biased batch variance, as Keras' does."""

    def __init__(
        self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any
    ) -> None:
        super().__init__(**_common(kwargs, "BatchNormalization"))
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.core()

    def core(self) -> Layer:
        return L.BatchNorm(
            momentum=self.momentum, eps=self.epsilon, axis=self.axis, biased_running_var=True
        )


class LayerNormalization(KerasLayer):
    """``LayerNormalization(axis=-1, epsilon=0.001)``."""

    masking = "per_step"

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "LayerNormalization"))
        self.axis, self.epsilon = axis, epsilon
        self.core()

    def core(self) -> Layer:
        return L.LayerNorm(eps=self.epsilon, axis=self.axis)


class Wrap(KerasLayer):
    """A funcnn layer in a Keras model: ``Sequential([Dense(8), funcnn.layers.Gelu])``."""

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Wrap"))
        if isinstance(layer, type) and issubclass(layer, Layer):
            raise TypeError(f"got the class {layer.__name__}; construct it first")
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a funcnn layer, got {type(layer).__name__}")
        self.layer = layer

    def core(self) -> Layer:
        return self.layer

    def get_config(self) -> dict[str, Any]:
        raise TypeError("a wrapped funcnn layer has no Keras config (save the model instead)")

    def __repr__(self) -> str:
        return repr(self.layer)


class InputLayer(KerasLayer):
    """``InputLayer(shape=(784,))`` (Keras 2: ``input_shape=``): a Sequential's input shape."""

    def __init__(self, shape: Any = None, input_shape: Any = None, **kwargs: Any) -> None:
        if shape is not None and input_shape is not None:
            raise ValueError("give shape or input_shape, not both")
        super().__init__(input_shape=shape if shape is not None else input_shape, **kwargs)
        if self.declared_input_shape is None:
            raise ValueError("InputLayer needs shape=(...): one example's shape")

    def core(self) -> Layer:
        return L.Identity


# Keras' other names for the same classes (a saved config names the class)
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
Convolution1D, Convolution2D = Conv1D, Conv2D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
SeparableConvolution2D = SeparableConv2D
