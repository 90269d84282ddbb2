"""Keras' convolution family, in Keras' words: ``Conv2DTranspose``, ``Conv1DTranspose``,
``DepthwiseConv2D``, ``SeparableConv2D``, ``UpSampling2D``, ``UpSampling1D``,
``Cropping2D``, ``Cropping1D`` and ``ZeroPadding1D``, with Keras 3's keywords and defaults.

Each builds the core layer of the same name (:mod:`funcnn.layers.conv_transpose`,
:mod:`funcnn.layers.separable`, :mod:`funcnn.layers.resample`), whose weights have Keras'
shapes and order, so ``set_weights(keras_model.get_weights())`` carries a Keras model's
weights over as they are. Images are channels-last (``data_format="channels_first"`` is
refused, naming the fix).
"""

from __future__ import annotations

from typing import Any

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.base import KERNEL_AND_BIAS, KerasLayer, _common, _with_activation
from funcnn.keras.names import get_activation, get_initializer
from funcnn.layers.base import Layer


def _setting(value: Any, rank: int) -> Any:
    """A window setting as the core layer takes it: lists as tuples, a 1-D ``(3,)`` as 3."""
    value = tuple(_setting(v, 2) for v in value) if isinstance(value, (list, tuple)) else value
    return value[0] if rank == 1 and isinstance(value, tuple) and len(value) == 1 else value


def _channels_last(who: str, data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{who}(data_format={data_format!r}): funcnn's images are channels-last "
            "(batch, height, width, channels); move the channels axis last (np.moveaxis)"
        )


def _padding(padding: Any) -> Any:
    """Keras writes "same" and "SAME"."""
    return padding.lower() if isinstance(padding, str) else _setting(padding, 2)


# The regularizer keywords of DepthwiseConv2D and SeparableConv2D (Keras'), each with the
# weight it regularizes (see KerasLayer.regularizable)
_DEPTHWISE_AND_BIAS = {"depthwise_regularizer": "kernel", "bias_regularizer": "bias"}
_SEPARABLE = {
    "depthwise_regularizer": "depthwise_kernel",
    "pointwise_regularizer": "pointwise_kernel",
    "bias_regularizer": "bias",
}


def causal_padding(who: str, padding: Any, rank: int, kernel_size: Any, dilation: Any) -> Any:
    """The padding a core convolution takes for Keras' ``padding``: ``"causal"`` (a 1-D
    convolution's only, as in Keras) is ``dilation * (kernel_size - 1)`` zeros before each
    sequence and none after, so ``output[t]`` sees no input after ``t``; any other
    padding is returned as it is."""
    if not (isinstance(padding, str) and padding.lower() == "causal"):
        return padding
    if rank != 1:
        raise ValueError(
            f"{who}(padding='causal'): causal padding is for 1-D convolutions (Conv1D), as "
            "in Keras; use 'valid' or 'same'"
        )
    if not (check.is_int(kernel_size) and check.is_int(dilation)):
        return "valid"  # the core convolution names the bad kernel_size or dilation_rate
    return (int(dilation) * (max(int(kernel_size), 1) - 1), 0)


class _ConvTranspose(KerasLayer):
    rank = 2
    regularizable = KERNEL_AND_BIAS

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        output_padding: Any = None,
        data_format: Any = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        super().__init__(**_common(kwargs, who))
        _channels_last(who, data_format)
        r = self.rank
        self.filters, self.kernel_size = filters, _setting(kernel_size, r)
        self.strides, self.padding = _setting(strides, r), _padding(padding)
        self.output_padding = _setting(output_padding, r)
        self.dilation_rate = _setting(dilation_rate, r)
        get_activation(activation)
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.core()  # every setting is checked now, where it was written

    def core(self) -> Layer:
        make = L.Conv2DTranspose if self.rank == 2 else L.Conv1DTranspose
        conv = make(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation_rate,
            use_bias=self.use_bias,
            w_init=get_initializer(self.kernel_initializer),
            b_init=get_initializer(self.bias_initializer),
        )
        return _with_activation(conv, self.activation)


class Conv2DTranspose(_ConvTranspose):
    """``Conv2DTranspose(filters, kernel_size, strides=(1, 1), padding="valid",
    output_padding=None, dilation_rate=(1, 1), activation=None, use_bias=True, ...)``:
    kernel ``(kh, kw, filters, channels)``, output ``H * stride`` for "same"."""


class Conv1DTranspose(_ConvTranspose):
    """``Conv1DTranspose(filters, kernel_size, strides=1, padding="valid",
    output_padding=None, dilation_rate=1, ...)`` on ``(length, channels)``."""

    rank = 1


class DepthwiseConv2D(KerasLayer):
    """``DepthwiseConv2D(kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
    dilation_rate=(1, 1), activation=None, use_bias=True,
    depthwise_initializer="glorot_uniform", bias_initializer="zeros")``."""

    regularizable = _DEPTHWISE_AND_BIAS

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: Any = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "DepthwiseConv2D"))
        _channels_last("DepthwiseConv2D", data_format)
        self.kernel_size, self.strides = _setting(kernel_size, 2), _setting(strides, 2)
        self.padding, self.depth_multiplier = _padding(padding), depth_multiplier
        self.dilation_rate = _setting(dilation_rate, 2)
        get_activation(activation)
        self.activation, self.use_bias = activation, use_bias
        self.depthwise_initializer, self.bias_initializer = depthwise_initializer, bias_initializer
        self.core()

    def core(self) -> Layer:
        conv = L.DepthwiseConv2D(
            self.kernel_size,
            self.depth_multiplier,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
            use_bias=self.use_bias,
            w_init=get_initializer(self.depthwise_initializer),
            b_init=get_initializer(self.bias_initializer),
        )
        return _with_activation(conv, self.activation)


class SeparableConv2D(KerasLayer):
    """``SeparableConv2D(filters, kernel_size, strides=(1, 1), padding="valid",
    dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
    depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
    bias_initializer="zeros")``: weights depthwise kernel, pointwise kernel, bias."""

    regularizable = _SEPARABLE

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: Any = None,
        dilation_rate: Any = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, "SeparableConv2D"))
        _channels_last("SeparableConv2D", data_format)
        self.filters, self.kernel_size = filters, _setting(kernel_size, 2)
        self.strides, self.padding = _setting(strides, 2), _padding(padding)
        self.dilation_rate, self.depth_multiplier = _setting(dilation_rate, 2), depth_multiplier
        get_activation(activation)
        self.activation, self.use_bias = activation, use_bias
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer
        self.core()

    def core(self) -> Layer:
        conv = L.SeparableConv2D(
            self.filters,
            self.kernel_size,
            self.depth_multiplier,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
            use_bias=self.use_bias,
            depthwise_init=get_initializer(self.depthwise_initializer),
            pointwise_init=get_initializer(self.pointwise_initializer),
            b_init=get_initializer(self.bias_initializer),
        )
        return _with_activation(conv, self.activation)


class UpSampling2D(KerasLayer):
    """``UpSampling2D(size=(2, 2), interpolation="nearest")``; "bilinear" as Keras
    (half-pixel centres). Keras' other interpolations are refused, naming these two."""

    def __init__(
        self, size: Any = (2, 2), data_format: Any = None, interpolation: str = "nearest",
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**_common(kwargs, "UpSampling2D"))
        _channels_last("UpSampling2D", data_format)
        self.size, self.interpolation = _setting(size, 2), interpolation
        self.core()

    def core(self) -> Layer:
        return L.UpSampling2D(self.size, interpolation=self.interpolation)


class UpSampling1D(KerasLayer):
    """``UpSampling1D(size=2)``: each step repeated ``size`` times."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "UpSampling1D"))
        self.size = check.positive_int("size", size)

    def core(self) -> Layer:
        return L.UpSampling1D(self.size)


class Cropping2D(KerasLayer):
    """``Cropping2D(cropping=((0, 0), (0, 0)))``: an int, ``(h, w)`` or ``((top, bottom),
    (left, right))``."""

    def __init__(
        self, cropping: Any = ((0, 0), (0, 0)), data_format: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**_common(kwargs, "Cropping2D"))
        _channels_last("Cropping2D", data_format)
        self.cropping = _setting(cropping, 2)
        self.core()

    def core(self) -> Layer:
        return L.Cropping2D(self.cropping)


class Cropping1D(KerasLayer):
    """``Cropping1D(cropping=(1, 1))``: steps dropped at the start and the end."""

    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Cropping1D"))
        self.cropping = _setting(cropping, 2)
        self.core()

    def core(self) -> Layer:
        return L.Cropping1D(self.cropping)


class ZeroPadding1D(KerasLayer):
    """``ZeroPadding1D(padding=1)``: an int or ``(start, end)``."""

    def __init__(self, padding: Any = 1, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "ZeroPadding1D"))
        self.padding = _setting(padding, 2)
        self.core()

    def core(self) -> Layer:
        return L.ZeroPadding1D(self.padding)
