"""Transformers as composition: a skip connection (:class:`Residual`, ``residual(...)``)
and functions that build a ``serial`` of existing layers. No new primitive.

A pre-norm block (GPT-2's, and PyTorch's ``TransformerEncoderLayer(norm_first=True)``)::

    serial(
        residual(per_step(LayerNorm()), MultiHeadAttention(heads, dim // heads),
                 per_step(Dropout(p))),
        residual(per_step(LayerNorm()), per_step(Dense(mlp)), per_step(Gelu),
                 per_step(Dense(dim)), per_step(Dropout(p))),
    )

``per_step`` lets a masked sequence ``(values, mask)`` through each layer (it is the layer
itself on plain values), and :class:`MultiHeadAttention` takes the mask, so the same block
serves padded batches. :func:`TransformerEncoder` stacks blocks and ends with a
LayerNorm; :func:`DecoderOnlyTransformer` is a causal language model (ids in, logits
out) with learned positions, as GPT's.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import validate as check
from funcnn.layers.activations import Gelu
from funcnn.layers.attention import MultiHeadAttention
from funcnn.layers.base import Layer, RngArg, as_input, is_shape_tuple
from funcnn.layers.combinators import Serial, serial
from funcnn.layers.dense import Dense
from funcnn.layers.dropout import Dropout
from funcnn.layers.embedding import Embedding
from funcnn.layers.masking import is_masked_shape, mask_grad, per_step
from funcnn.layers.normalization import LayerNorm
from funcnn.layers.positional import PositionalEmbedding
from funcnn.random import RngLike
from funcnn.types import Cache, LayerState, Params, Shape


@attrs.frozen(repr=False)
class Residual(Layer):
    """``x + layer(x)``: a skip connection around ``layer``, whose output has ``x``'s shape.

    Given a masked sequence ``(values, mask)``, ``layer`` gets the pair, and the output is
    ``(values + layer's values, mask)`` (``layer`` may return the pair or the values). The
    backward adds the two paths' gradients. Params and state are ``layer``'s.
    """

    layer: Layer = attrs.field(validator=attrs.validators.instance_of(Layer))

    def __repr__(self) -> str:
        inner = self.layer
        if isinstance(inner, Serial):
            return f"residual({', '.join(repr(c) for c in inner.layers)})"
        return f"residual({inner!r})"

    def output_shape(self, input_shape: Shape) -> Any:
        out = self.layer.output_shape(input_shape)
        values = input_shape[0] if is_masked_shape(input_shape) else input_shape
        got = out[0] if is_masked_shape(out) else out
        if tuple(got) != tuple(values):
            raise ValueError(
                f"{self!r} adds its input to its layer's output, which must have the input's "
                f"shape {tuple(values)}; got {out}"
            )
        return input_shape if is_shape_tuple(input_shape) else tuple(values)

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        self.output_shape(input_shape)
        return self.layer.init(rng, input_shape, dtype=dtype)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> LayerState:
        return self.layer.init_state(input_shape, dtype=dtype)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        out, state, cache = self.layer.forward_with_state(params, state, x, train=train, rng=rng)
        paired_in = isinstance(x, (tuple, list))
        paired_out = isinstance(out, tuple)
        values = as_input(x[0] if paired_in else x, self)
        y = values + (out[0] if paired_out else out)
        return (
            ((y, x[1]) if paired_in else y),
            state,
            (cache, x[1] if paired_in else None, paired_out),
        )

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        inner, mask, paired_out = cache
        d = dy[0] if isinstance(dy, tuple) else dy
        d_out = (d, mask_grad(mask, d.dtype)) if paired_out else d
        grads, dx = self.layer.backward(params, inner, d_out, need_dx=need_dx)
        if not need_dx:
            return grads, None
        d_values = d + (dx[0] if isinstance(dx, tuple) else dx)
        return grads, (d_values if mask is None else (d_values, mask_grad(mask, d.dtype)))


def residual(*layers: Layer) -> Residual:
    """``x + serial(*layers)(x)``: ``residual(per_step(LayerNorm()), MultiHeadAttention(4,
    16))`` is a pre-norm attention sublayer (one layer: that layer, not a serial of one)."""
    return Residual(layers[0] if len(layers) == 1 else serial(*layers))


def TransformerBlock(
    dim: int,
    num_heads: int,
    mlp_dim: int | None = None,
    *,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    causal: bool = False,
    rotary: bool = False,
    eps: float = 1e-5,
) -> Serial:
    """One pre-norm transformer block on ``(batch, time, dim)`` (or its masked pair):
    ``x + Dropout(MHA(LN(x)))``, then ``x + Dropout(Dense(dim)(Gelu(Dense(mlp_dim)(LN(x)))))``.
    ``mlp_dim`` defaults to ``4 * dim``; ``dim`` must divide among the heads."""
    dim = check.positive_int("dim", dim)
    num_heads = check.positive_int("num_heads", num_heads)
    if dim % num_heads:
        raise ValueError(f"TransformerBlock: dim {dim} does not divide among {num_heads} heads")
    mlp = check.positive_int("mlp_dim", mlp_dim if mlp_dim is not None else 4 * dim)
    attention = MultiHeadAttention(
        num_heads, dim // num_heads, dropout=attention_dropout, causal=causal, rotary=rotary
    )
    after = (per_step(Dropout(dropout)),) if dropout else ()
    return serial(
        residual(per_step(LayerNorm(eps=eps)), attention, *after),
        residual(
            per_step(LayerNorm(eps=eps)),
            per_step(Dense(mlp)),
            per_step(Gelu),
            per_step(Dense(dim)),
            *after,
        ),
    )


def TransformerEncoder(
    dim: int,
    num_heads: int,
    num_layers: int,
    mlp_dim: int | None = None,
    *,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    causal: bool = False,
    rotary: bool = False,
    eps: float = 1e-5,
) -> Serial:
    """``num_layers`` pre-norm :func:`TransformerBlock` s and a final LayerNorm: ``(batch,
    time, dim) -> (batch, time, dim)``, masked pairs passed through."""
    num_layers = check.positive_int("num_layers", num_layers)
    blocks = [
        TransformerBlock(
            dim,
            num_heads,
            mlp_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            causal=causal,
            rotary=rotary,
            eps=eps,
        )
        for _ in range(num_layers)
    ]
    return serial(*blocks, per_step(LayerNorm(eps=eps)))


def DecoderOnlyTransformer(
    vocab_size: int,
    context: int,
    dim: int = 64,
    num_heads: int = 4,
    num_layers: int = 2,
    mlp_dim: int | None = None,
    *,
    dropout: float = 0.0,
    eps: float = 1e-5,
) -> Serial:
    """A causal language model: ids ``(batch, time <= context)`` -> logits ``(batch, time,
    vocab_size)``. ``Embedding``, a learned ``PositionalEmbedding``, dropout,
    ``num_layers`` causal pre-norm blocks, a final LayerNorm and a ``Dense`` to the
    vocabulary (GPT-2's layout, without weight tying: see docs/attention.md).
    ``funcnn.sequence.generate`` samples from it (recomputing the last ``context`` ids
    at each step)."""
    layers: list[Layer] = [Embedding(vocab_size, dim), PositionalEmbedding(context, dim)]
    if dropout:
        layers.append(Dropout(dropout))
    encoder = TransformerEncoder(
        dim, num_heads, num_layers, mlp_dim, dropout=dropout, causal=True, eps=eps
    )
    return serial(*layers, *encoder.layers, Dense(vocab_size))
