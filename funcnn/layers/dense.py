"""Dense (fully connected) layer: y = x @ w + b on the last axis."""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_params, as_shape
from funcnn.random import RngLike, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape

_ACTIVATION_LAYERS = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
    "linear": "Linear", "elu": "Elu", "selu": "Selu", "gelu": "Gelu", "softplus": "Softplus",
    "leaky_relu": "LeakyRelu(0.2)", "log_softmax": "LogSoftmax",
}  # fmt: skip


def _activation_advice(activation: Any, units: Any) -> str:
    layer = _ACTIVATION_LAYERS.get(str(activation).lower(), "Relu")
    return (
        f"Dense takes no activation (got activation={activation!r}): in funcnn an activation "
        f"is a layer of its own, so write serial(Dense({units}), {layer}); or use Keras' "
        f"form through the facade: funcnn.keras.layers.Dense({units}, "
        f"activation={activation!r})"
    )


class DenseParams(NamedTuple):
    w: np.ndarray  # (in_features, units)
    b: np.ndarray | None  # (units,), None without bias


@attrs.frozen(repr=False)
class Dense(Layer):
    """``y = x @ w + b`` on the last axis: ``(..., in) -> (..., units)``.

    ``w`` has shape ``(in, units)`` and starts from ``w_init`` (Glorot uniform);
    ``b`` has shape ``(units,)`` and starts from ``b_init`` (zeros). The products run
    in :mod:`funcnn.linalg`: the same bits for any thread count or batch split.
    """

    units: int = attrs.field(validator=check.field(check.positive_int))
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))

    def __new__(cls, *args: Any, **kwargs: Any) -> Dense:
        if "activation" in kwargs:  # what Keras' Dense takes; here an activation is a layer
            raise TypeError(_activation_advice(kwargs["activation"], args[0] if args else "n"))
        return super().__new__(cls)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) < 1:
            raise ValueError(f"{self!r} needs inputs of rank >= 1 per example, got shape {shape}")
        return (*shape[:-1], self.units)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> DenseParams:
        shape = as_shape(input_shape)
        self.output_shape(shape)
        in_features = shape[-1]
        w_rng, b_rng = split(rng, 2)
        w = self.w_init(w_rng, (in_features, self.units), dtype)
        b = self.b_init(b_rng, (self.units,), dtype) if self.use_bias else None
        return freeze(DenseParams(w, b))

    def _check(self, params: DenseParams, x: Any) -> np.ndarray:
        params = as_params(params, self, DenseParams)
        x = as_input(x, self, min_ndim=2)
        if x.shape[-1] != params.w.shape[0]:
            raise ValueError(
                f"{self!r} was initialized for {params.w.shape[0]} input features on the last "
                f"axis, got x of shape {x.shape}"
            )
        return x

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        x = self._check(params, x)
        group = x.size // (x.shape[0] * x.shape[-1]) if x.size else 1  # rows per sample
        y = linalg.matmul(x.reshape(-1, x.shape[-1]), params.w, group=group, padded=not train)
        if params.b is not None:
            y += params.b  # y is our own fresh array
        return y.reshape(*x.shape[:-1], self.units), state, x

    def backward(
        self, params: DenseParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[DenseParams, np.ndarray | None]:
        x = cache
        group = x.size // (x.shape[0] * x.shape[-1]) if x.size else 1
        x2 = x.reshape(-1, x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        dw = linalg.matmul_tn(x2, dy2, group=group)
        db = linalg.sum_rows(dy2, group=group) if params.b is not None else None
        if not need_dx:
            return DenseParams(dw, db), None
        dx = linalg.matmul(dy2, params.w.T, group=group).reshape(x.shape)
        return DenseParams(dw, db), dx
