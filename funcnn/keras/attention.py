"""Keras' ``MultiHeadAttention``, with Keras' call signature: ``mha(query, value)``,
``mha(query, value, key)``, ``attention_mask=``, ``use_causal_mask=True``;
:mod:`funcnn.keras.layers` exports it.

It builds the core's :class:`funcnn.layers.MultiHeadAttention` (weights in Keras' layout
and order, so ``set_weights`` takes a Keras layer's weights as they are). What a call
passes (a key, an attention mask, the causal mask) is part of the layer's settings
(``call_settings`` in its config), as one Keras layer is one node of the graph.
Self-attention is ``mha(x, x)``: the graph hands the core ``x`` twice and adds both
gradients. Options the core lacks are refused where they are written: ``attention_axes``,
``return_attention_scores``, explicit ``query_mask``/``value_mask``/``key_mask``, masked
inputs (from ``Embedding(mask_zero=True)``: pass an ``attention_mask`` instead),
regularizers and constraints.
"""

from __future__ import annotations

from typing import Any

from funcnn import layers as L
from funcnn import validate as check
from funcnn.keras.base import (
    KerasLayer,
    KerasTensor,
    _common,
    refuse_masked_merge,
    symbolic_shape,
)
from funcnn.keras.names import get_initializer
from funcnn.layers.base import Layer


def _refuse(who: str, **options: Any) -> None:
    for key, value in options.items():
        if value not in (None, False):
            raise ValueError(f"{who}({key}={value!r}) is not supported by funcnn's Keras facade")


class MultiHeadAttention(KerasLayer):
    """``MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
    output_shape=None, kernel_initializer="glorot_uniform", bias_initializer="zeros")``,
    called as ``mha(query, value, key=None, attention_mask=None, use_causal_mask=False)``
    on tensors ``(steps, features)``; ``attention_mask`` a tensor ``(T, S)`` of 0 and 1 (or
    bools), 1 where a query step may attend to a key step."""

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        seed: int | None = None,
        call_settings: dict[str, bool] | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("kernel", "bias", "activity"):
            _refuse(
                "MultiHeadAttention",
                **{f"{key}_regularizer": kwargs.pop(f"{key}_regularizer", None)},
            )
        for key in ("kernel", "bias"):
            _refuse(
                "MultiHeadAttention", **{f"{key}_constraint": kwargs.pop(f"{key}_constraint", None)}
            )
        _refuse("MultiHeadAttention", attention_axes=attention_axes)
        super().__init__(**_common(kwargs, "MultiHeadAttention"))
        self.num_heads = check.positive_int("num_heads", num_heads)
        self.key_dim = check.positive_int("key_dim", key_dim)
        self.value_dim = None if value_dim is None else check.positive_int("value_dim", value_dim)
        self.dropout = dropout
        self.use_bias = check.boolean("use_bias", use_bias)
        if isinstance(output_shape, (list, tuple)):
            if len(output_shape) != 1:
                raise ValueError(
                    f"MultiHeadAttention(output_shape={output_shape!r}): funcnn's facade takes "
                    "one output size (the last axis)"
                )
            output_shape = output_shape[0]
        self.output_shape = (
            None if output_shape is None else check.positive_int("output_shape", output_shape)
        )
        get_initializer(kernel_initializer), get_initializer(bias_initializer)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.call_settings = dict(call_settings or {"key": False, "attention_mask": False,
                                                    "use_causal_mask": False})  # fmt: skip
        self.core()

    def core(self) -> Layer:
        return L.MultiHeadAttention(
            self.num_heads,
            self.key_dim,
            value_dim=self.value_dim,
            output_dim=self.output_shape,
            dropout=self.dropout,
            use_bias=self.use_bias,
            causal=bool(self.call_settings.get("use_causal_mask")),
            attention_mask=bool(self.call_settings.get("attention_mask")),
            w_init=get_initializer(self.kernel_initializer),
            b_init=get_initializer(self.bias_initializer),
        )

    def __call__(
        self,
        query: Any,
        value: Any = None,
        key: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
        key_mask: Any = None,
        attention_mask: Any = None,
        return_attention_scores: bool = False,
        training: Any = None,
        use_causal_mask: bool = False,
    ) -> KerasTensor:
        """Keras' call: the output tensor ``(T, output_shape or the query's features)``."""
        _refuse(
            "MultiHeadAttention",
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            return_attention_scores=return_attention_scores,
        )
        if value is None:
            raise TypeError(
                "MultiHeadAttention is called as mha(query, value) (self-attention: mha(x, x))"
            )
        given = [query, value] + ([key] if key is not None else [])
        if attention_mask is not None:
            given.append(attention_mask)
        if not all(isinstance(t, KerasTensor) for t in given):
            raise TypeError(
                "MultiHeadAttention is called on the tensors of keras.Input(shape=...) or of "
                "other layers (attention_mask too: an Input of shape (T, S)); to run a model "
                "on data use model.predict(x)"
            )
        self.call_settings = {
            "key": key is not None,
            "attention_mask": attention_mask is not None,
            "use_causal_mask": check.boolean("use_causal_mask", use_causal_mask),
        }
        shapes = tuple(t.shape for t in given)
        refuse_masked_merge(self, shapes)
        return KerasTensor(
            symbolic_shape(self.core().output_shape, shapes, "MultiHeadAttention"),
            self,
            tuple(given),
        )
