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

import attrs

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.names import get_activation, get_initializer
from funcnn.layers.base import Layer, as_shape

__all__ = [
    "Activation",
    "Add",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "KerasLayer",
    "KerasTensor",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPooling1D",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
    "Softmax",
    "Wrap",
    "ZeroPadding2D",
]


def _shape(input_shape: Any, input_dim: Any = None) -> tuple[int, ...] | None:
    if input_dim is not None and input_shape is not None:
        raise ValueError("give input_dim or input_shape, not both")
    if input_dim is not None:
        return as_shape((check.positive_int("input_dim", input_dim),))
    return None if input_shape is None else as_shape(tuple(input_shape))


class KerasLayer:
    """A Keras layer: its settings, and the funcnn layer they build (:meth:`core`)."""

    def __init__(
        self, *, name: str | None = None, input_shape: Any = None, input_dim: Any = None
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name
        self.declared_input_shape = _shape(input_shape, input_dim)

    def core(self) -> Layer:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The keyword arguments that build this layer again (JSON values)."""
        config = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        shape = config.pop("declared_input_shape")
        if shape is not None:
            config["input_shape"] = list(shape)
        return config

    def __call__(self, inputs: Any) -> KerasTensor:
        """The functional API: this layer applied to a tensor (or a list of them)."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not items or not all(isinstance(t, KerasTensor) for t in items):
            raise TypeError(
                f"{type(self).__name__} is called on the tensors of keras.Input(shape=...) "
                "or of other layers; to run a model on data use model.predict(x)"
            )
        shapes = tuple(t.shape for t in items)
        core = self.core()
        shape = core.output_shape(shapes if len(items) > 1 else shapes[0])
        return KerasTensor(shape, self, tuple(items))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({settings})"


def _with_activation(layer: Layer, activation: Any) -> Layer:
    act = get_activation(activation)
    return layer if act is None else L.serial(layer, act)


def _pair(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _size(value: Any, rank: int) -> Any:
    """A window setting as the funcnn layer takes it: a 1-D layer's ``(3,)`` is 3."""
    value = _pair(value)
    return value[0] if rank == 1 and isinstance(value, tuple) and len(value) == 1 else value


class Dense(KerasLayer):
    """``Dense(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")``."""

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))
        r = self.rank
        self.filters, self.kernel_size = filters, _size(kernel_size, r)
        self.strides, self.padding = _size(strides, r), padding
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.dilation_rate = _size(dilation_rate, r)
        self.core()  # every setting is checked now, where it was written

    def core(self) -> Layer:
        make = L.Conv2D if self.rank == 2 else L.Conv1D
        conv = make(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
            w_init=get_initializer(self.kernel_initializer),
            b_init=get_initializer(self.bias_initializer),
            use_bias=self.use_bias,
        )
        return _with_activation(conv, self.activation)


class Conv2D(_Conv):
    """``Conv2D(filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
    ...)`` on channels-last images ``(height, width, channels)``."""


class Conv1D(_Conv):
    """``Conv1D(filters, kernel_size, strides=1, padding="valid", ...)`` on ``(length,
    channels)``."""

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
    """A layer without settings: one funcnn layer value."""

    value: Layer

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, type(self).__name__))

    def core(self) -> Layer:
        return self.value


def _fixed(name: str, value: Layer, doc: str | None = None) -> type[_Fixed]:
    """The Keras layer class ``name``, without settings, that builds ``value``."""
    return type(name, (_Fixed,), {"value": value, "__doc__": doc, "__module__": __name__})


Flatten = _fixed("Flatten", L.Flatten, "``Flatten()``: each example to a vector.")
GlobalAveragePooling2D = _fixed("GlobalAveragePooling2D", L.GlobalAvgPool2D)
GlobalMaxPooling2D = _fixed("GlobalMaxPooling2D", L.GlobalMaxPool2D)
GlobalAveragePooling1D = _fixed("GlobalAveragePooling1D", L.GlobalAvgPool1D)
GlobalMaxPooling1D = _fixed("GlobalMaxPooling1D", L.GlobalMaxPool1D)
ReLU = _fixed("ReLU", L.Relu)
Softmax = _fixed("Softmax", L.Softmax)
Add = _fixed("Add", L.FanInSum, "``Add()([a, b])``: the sum of tensors of one shape.")


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

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Activation"))
        get_activation(activation)
        self.activation = activation

    def core(self) -> Layer:
        return get_activation(self.activation) or L.Identity


class LeakyReLU(KerasLayer):
    """``LeakyReLU(negative_slope=0.3)`` (Keras 2 calls it ``alpha``)."""

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

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**_common(kwargs, "Dropout"))
        self.rate = rate
        self.core()

    def core(self) -> Layer:
        return L.Dropout(self.rate)


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
    """``BatchNormalization(axis=-1, momentum=0.99, epsilon=0.001)``, Keras' defaults."""

    def __init__(
        self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any
    ) -> None:
        super().__init__(**_common(kwargs, "BatchNormalization"))
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.core()

    def core(self) -> Layer:
        return L.BatchNorm(momentum=self.momentum, eps=self.epsilon, axis=self.axis)


class LayerNormalization(KerasLayer):
    """``LayerNormalization(axis=-1, epsilon=0.001)``."""

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


@attrs.frozen(eq=False)
class KerasTensor:
    """What the functional API passes between layers: a shape and where it came from."""

    shape: Any
    layer: KerasLayer | None = None  # None for an Input
    parents: tuple[KerasTensor, ...] = ()
    name: str | None = None

    def __repr__(self) -> str:
        return f"<KerasTensor shape={(None, *self.shape)}>"


def Input(shape: Any, name: str | None = None, **unused: Any) -> KerasTensor:
    """``keras.Input(shape=(784,))``: one example's shape, without the batch axis."""
    for key in unused:
        if key not in ("dtype", "batch_size", "sparse"):
            raise TypeError(f"Input got an unexpected keyword {key!r}")
    return KerasTensor(
        as_shape(tuple(shape) if not isinstance(shape, int) else (shape,)), name=name
    )


_COMMON = ("name", "input_shape")


def _common(kwargs: dict[str, Any], who: str, dim: bool = False) -> dict[str, Any]:
    """The keywords every Keras layer takes; a clear error for one funcnn does not know."""
    known = _COMMON + (("input_dim",) if dim else ())
    if kwargs.get("trainable", True) is not True:
        raise ValueError(f"{who}(trainable=False): funcnn's Keras facade trains every layer")
    if kwargs.get("dtype") not in (None, "float32"):
        raise ValueError(f"{who}(dtype={kwargs['dtype']!r}): the Keras facade computes in float32")
    unknown = [k for k in kwargs if k not in known and k not in ("trainable", "dtype")]
    if unknown:
        raise TypeError(
            f"{who} got keyword(s) {', '.join(map(repr, unknown))} that funcnn's Keras facade "
            f"does not support"
        )
    return {k: v for k, v in kwargs.items() if k in known}
