"""Multi-head attention, ``softmax(q k^T / sqrt(key_dim)) v`` over several heads, and
attention pooling; forwards and hand-written backwards side by side.

Inputs of :class:`MultiHeadAttention` (``E`` features, ``T`` query steps, ``S`` key steps)::

    x                           (batch, T, E): self-attention, query = key = value = x
    (x, mask)                   mask bool (batch, T), True at real steps: self-attention
                                over the real steps (a key padding mask); the output is
                                (y, mask), so masks flow as in :mod:`funcnn.layers.masking`
    (query, value)              cross-attention: key = value, (batch, S, E_v)
    (query, value, key)         cross-attention with its own keys (batch, S, E_k)

Any sequence above may be a masked pair ``(values, mask)``: the value's (or key's) mask
hides those keys; the query's passes on to the output. With ``attention_mask=True`` the
input has one more entry, last: a bool ``(batch, T, S)`` mask, True where query step ``t``
may attend to key step ``s`` (Keras' ``attention_mask``). ``causal=True`` hides every key
after the query's own step (``s > t``). The masks combine: a key is attended only where
each allows it. Masked keys get exactly zero weight (the softmax runs over the allowed
keys only, shifted by their maximum, so it never overflows); a query with no allowed key
gets zero weights, so its output is the output bias (Keras gives such a row uniform
weights, PyTorch NaN). The query's own mask hides nothing (PyTorch's
``key_padding_mask`` rule): padded queries still read the real keys.

Params (:class:`AttentionParams`) are in Keras' layout, so ``set_weights`` with a Keras
layer's weights needs no reshaping: ``query_kernel`` ``(E_q, heads, key_dim)``,
``query_bias`` ``(heads, key_dim)``, the key's and value's alike, ``output_kernel``
``(heads, value_dim, output_dim)``, ``output_bias`` ``(output_dim,)``. PyTorch's
``nn.MultiheadAttention`` splits its ``in_proj_weight`` into heads in the same order:
``q_proj_weight = query_kernel.reshape(E, -1).T``.

Products: the four projections and their weight gradients run in :mod:`funcnn.linalg`
(batch sums in its chunks and tree); the per-sample products ``q k^T`` and ``weights @ v``
are one fixed-shape BLAS call per sample and head with the BLAS held to one thread, and a
sample's scores, softmax, dropout and context run together, in slices of samples on
funcnn's threads (:func:`_by_samples`), so a sample's bits never depend on its batch,
the thread count or the worker count. Dropout on the attention weights draws from the
layer's key, row by row (the same bits for any batch split).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_params, as_shape, is_shape_tuple
from funcnn.layers.masking import as_mask, mask_grad
from funcnn.random import RngLike, as_key, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape

# ---------------------------------------------------------------- the pieces


def _per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` over leading (batch, heads) axes: one BLAS call per sample and head, whose
    shape is set by the sample's, never by the batch; the BLAS held to one thread."""
    linalg.hold_blas_to_one_thread()
    return np.matmul(a, b)


def _rows(a: np.ndarray | None, rows: slice) -> np.ndarray | None:
    """Samples ``rows`` of ``a``, or ``a`` itself where it broadcasts over the batch."""
    return a if a is None or a.shape[0] == 1 else a[rows]


def _by_samples(scores_shape: tuple[int, ...], itemsize: int, body: Any) -> None:
    """``body(rows)`` over slices of samples on funcnn's threads (each writes its own
    samples' part of preallocated outputs), so many that a slice's scores fill about
    :data:`funcnn.linalg.POINTWISE_SPAN` bytes (they stay in cache between the steps).
    Every sample's products, softmax and dropout are its own: the bits of one pass."""
    batch, per_sample = scores_shape[0], int(np.prod(scores_shape[1:])) * itemsize
    step = max(1, linalg.POINTWISE_SPAN // max(1, per_sample))
    tasks = [(lambda lo=lo: body(slice(lo, min(lo + step, batch)))) for lo in range(0, batch, step)]
    linalg.run_elementwise(tasks, int(np.prod(scores_shape)))


def masked_softmax(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """``softmax(scores)`` over the last axis among the ``allowed`` entries (broadcast),
    exactly 0 elsewhere; a row with no allowed entry is all zeros."""
    if allowed is None:
        top = scores.max(axis=-1, keepdims=True)
        e = np.exp(scores - top)
        e /= e.sum(axis=-1, keepdims=True)
        return e
    hidden = np.where(allowed, scores, -np.inf)
    top = hidden.max(axis=-1, keepdims=True)
    e = np.exp(hidden - np.where(np.isfinite(top), top, 0))  # exp(-inf) is 0 exactly
    total = e.sum(axis=-1, keepdims=True)
    e /= np.where(total > 0, total, 1)
    return e


def masked_softmax_backward(weights: np.ndarray, d_weights: np.ndarray) -> np.ndarray:
    """The scores' gradient: ``w * (dw - <dw, w>)`` (zero where the weight is zero)."""
    return weights * (d_weights - np.sum(d_weights * weights, axis=-1, keepdims=True))


def rotary_tables(length: int, dim: int, dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)``, each ``(length, dim)``: rotary position angles ``pos * 10000^(-2i /
    dim)`` for the pairs ``(i, i + dim/2)`` (the "rotate half" form of GPT-NeoX and LLaMA)."""
    freqs = 10000.0 ** (-np.arange(0, dim // 2) * 2.0 / dim)
    angles = np.arange(length)[:, None] * freqs[None, :]
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def _rotate_half(x: np.ndarray, *, transpose: bool = False) -> np.ndarray:
    half = x.shape[-1] // 2
    lo, hi = x[..., :half], x[..., half:]
    return np.concatenate([hi, -lo] if transpose else [-hi, lo], axis=-1)


def rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary embedding of ``x`` ``(..., length, dim)``: each pair of features turned by its
    position's angle."""
    return x * cos + _rotate_half(x) * sin


def rotate_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """The gradient of :func:`rotate` (a rotation's transpose)."""
    return dy * cos + _rotate_half(dy * sin, transpose=True)


# ---------------------------------------------------------------- the inputs


class AttentionParams(NamedTuple):
    query_kernel: np.ndarray  # (query_features, heads, key_dim)
    query_bias: np.ndarray | None  # (heads, key_dim)
    key_kernel: np.ndarray  # (key_features, heads, key_dim)
    key_bias: np.ndarray | None  # (heads, key_dim)
    value_kernel: np.ndarray  # (value_features, heads, value_dim)
    value_bias: np.ndarray | None  # (heads, value_dim)
    output_kernel: np.ndarray  # (heads, value_dim, output_dim)
    output_bias: np.ndarray | None  # (output_dim,)


class _Inputs(NamedTuple):
    query: np.ndarray  # (batch, T, E_q)
    key: np.ndarray  # (batch, S, E_k)
    value: np.ndarray  # (batch, S, E_v)
    query_mask: np.ndarray | None  # (batch, T)
    key_mask: np.ndarray | None  # (batch, S): the value's mask (or the key's)
    attention_mask: np.ndarray | None  # (batch, T, S)
    layout: tuple[Any, ...]  # how the input was given: ("self" | "cross", masked flags...)


def _is_mask_shape(shape: Any) -> bool:
    return not is_shape_tuple(shape) and len(as_shape(shape)) == 1


def _sequence_shape(layer: object, shape: Any, what: str) -> tuple[Shape, bool]:
    """(the values' (steps, features), whether a mask comes) of a sequence's shape."""
    masked = is_shape_tuple(shape) and len(shape) == 2 and _is_mask_shape(shape[1])
    values = as_shape(shape[0] if masked else shape)
    if len(values) != 2:
        raise ValueError(
            f"{layer!r} expects the {what} as sequences of shape (steps, features), or the pair "
            f"((steps, features), (steps,)) with a mask, got {shape!r}"
        )
    if masked and as_shape(shape[1]) != values[:1]:
        raise ValueError(f"{layer!r}: the {what}'s mask must have shape {values[:1]}, got {shape}")
    return values, masked


def _is_mask_array(a: Any) -> bool:
    return not isinstance(a, (tuple, list)) and np.ndim(a) == 2


def _sequence(layer: object, x: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{layer!r} takes the {what} or the pair ({what}, mask)")
        values = as_input(x[0], layer)
        if values.ndim != 3:
            raise ValueError(f"{layer!r} expects the {what} of shape (batch, steps, features)")
        return values, as_mask(x[1], values.shape[:2], layer)
    values = as_input(x, layer)
    if values.ndim != 3:
        raise ValueError(
            f"{layer!r} expects the {what} of shape (batch, steps, features), got {values.shape}"
        )
    return values, None


# ---------------------------------------------------------------- the layer


@attrs.frozen(repr=False)
class MultiHeadAttention(Layer):
    """Scaled dot-product attention over ``num_heads`` heads: ``(batch, T, E) -> (batch, T,
    output_dim)`` (``output_dim`` defaults to the query's features). Inputs, masks and the
    params' layout as in the module's docstring.

    Per head ``h``: ``q = query @ Wq[:, h] + bq[h]`` (``key_dim`` wide), ``k`` and ``v``
    (``value_dim`` wide, ``key_dim`` by default) alike, ``w = softmax(q k^T / sqrt(key_dim))``
    over the allowed keys, then ``dropout`` on ``w`` in training (drawn from the layer's
    key), and ``y = sum_h (w v) @ Wo[h] + bo``. ``rotary=True`` turns ``q`` and ``k`` by
    their steps' angles first (rotary position embeddings; ``key_dim`` even). Kernels start
    from ``w_init`` (Glorot uniform, Keras' fans), biases from ``b_init`` (zeros).
    """

    num_heads: int = attrs.field(validator=check.field(check.positive_int))
    key_dim: int = attrs.field(validator=check.field(check.positive_int))
    value_dim: int | None = attrs.field(default=None, kw_only=True)
    output_dim: int | None = attrs.field(default=None, kw_only=True)
    dropout: float = attrs.field(default=0.0, kw_only=True)
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    causal: bool = attrs.field(default=False, kw_only=True, validator=check.field(check.boolean))
    attention_mask: bool = attrs.field(
        default=False, kw_only=True, validator=check.field(check.boolean)
    )
    rotary: bool = attrs.field(default=False, kw_only=True, validator=check.field(check.boolean))
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )

    attends: ClassVar[bool] = True
    """Reads every step of its input at once (what ``sequence.generate`` asks)."""

    def __attrs_post_init__(self) -> None:
        for name in ("value_dim", "output_dim"):
            if getattr(self, name) is not None:
                check.positive_int(f"MultiHeadAttention {name}", getattr(self, name))
        if not 0 <= check.real("MultiHeadAttention dropout", self.dropout) < 1:
            raise ValueError(
                "MultiHeadAttention dropout is the probability of dropping an attention weight, "
                f"in [0, 1); got {self.dropout!r}"
            )
        if self.rotary and self.key_dim % 2:
            raise ValueError(
                f"MultiHeadAttention(rotary=True) turns pairs of features: key_dim must be even, "
                f"got {self.key_dim}"
            )

    @property
    def _value_dim(self) -> int:
        return self.value_dim if self.value_dim is not None else self.key_dim

    # -- shapes

    def _shapes(self, input_shape: Any) -> tuple[Shape, Shape, Shape, bool]:
        """(query, key, value shapes, whether the query is masked) of an input shape."""
        usage = (
            "(steps, features), ((steps, features), (steps,)) with a mask, or a tuple "
            "(query, value) or (query, value, key) of those"
            + (", then the attention mask's (T, S)" if self.attention_mask else "")
        )
        parts: list[Any] = list(input_shape) if is_shape_tuple(input_shape) else [input_shape]
        mask_shape = None
        if self.attention_mask:
            if len(parts) < 2:
                raise ValueError(
                    f"{self!r} takes its attention mask as the input's last entry: {usage}; "
                    f"got {input_shape!r}"
                )
            mask_shape = as_shape(parts.pop())
        if len(parts) == 2 and _is_mask_shape(parts[1]):
            parts = [tuple(parts)]  # (x, mask): masked self-attention
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"{self!r} expects input shapes {usage}, got {input_shape!r}")
        query, q_masked = _sequence_shape(self, parts[0], "query")
        value, _ = _sequence_shape(self, parts[1 if len(parts) > 1 else 0], "value")
        key, _ = _sequence_shape(self, parts[2], "key") if len(parts) == 3 else (value, False)
        if key[0] != value[0]:
            raise ValueError(
                f"{self!r}: the key and the value must have as many steps, got {key} and {value}"
            )
        if mask_shape is not None and mask_shape != (query[0], key[0]):
            raise ValueError(
                f"{self!r} expects an attention mask of shape (T, S) = {(query[0], key[0])}, "
                f"got {mask_shape}"
            )
        return query, key, value, q_masked

    def output_shape(self, input_shape: Shape) -> Any:
        query, _, _, q_masked = self._shapes(input_shape)
        out = (query[0], self.output_dim or query[1])
        return (out, query[:1]) if q_masked else out

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> AttentionParams:
        query, key, value, _ = self._shapes(input_shape)
        h, dk, dv = self.num_heads, self.key_dim, self._value_dim
        out = self.output_dim or query[1]
        rngs = split(rng, 8)
        bias = self.b_init if self.use_bias else None
        return freeze(
            AttentionParams(
                self.w_init(rngs[0], (query[1], h, dk), dtype),
                bias(rngs[1], (h, dk), dtype) if bias else None,
                self.w_init(rngs[2], (key[1], h, dk), dtype),
                bias(rngs[3], (h, dk), dtype) if bias else None,
                self.w_init(rngs[4], (value[1], h, dv), dtype),
                bias(rngs[5], (h, dv), dtype) if bias else None,
                self.w_init(rngs[6], (h, dv, out), dtype),
                bias(rngs[7], (out,), dtype) if bias else None,
            )
        )

    # -- inputs

    def _parse(self, x: Any) -> _Inputs:
        parts: list[Any] = list(x) if isinstance(x, (tuple, list)) else [x]
        attention_mask = None
        if self.attention_mask:
            if len(parts) < 2:
                raise ValueError(
                    f"{self!r} takes its attention mask as the input's last entry, e.g. "
                    "(x, attention_mask) with a bool mask of shape (batch, T, S)"
                )
            attention_mask = parts.pop()
        if len(parts) == 2 and _is_mask_array(parts[1]):
            parts = [tuple(parts)]
        if not 1 <= len(parts) <= 3:
            raise ValueError(
                f"{self!r} takes x, (x, mask), (query, value) or (query, value, key), got a "
                f"tuple of {len(parts)}"
            )
        query, q_mask = _sequence(self, parts[0], "query")
        if len(parts) == 1:
            key = value = query
            k_mask = q_mask
            layout: tuple[Any, ...] = ("self", q_mask is not None)
        else:
            value, k_mask = _sequence(self, parts[1], "value")
            key, key_own = _sequence(self, parts[2], "key") if len(parts) == 3 else (value, None)
            if key_own is not None:
                k_mask = key_own if k_mask is None else key_own & k_mask
            flags = [isinstance(p, (tuple, list)) for p in parts]
            layout = ("cross", *flags)
        if key.shape[:2] != value.shape[:2] or query.shape[0] != value.shape[0]:
            raise ValueError(
                f"{self!r}: the query, key and value must have one batch size, and the key as "
                f"many steps as the value; got {query.shape}, {key.shape}, {value.shape}"
            )
        if attention_mask is not None:
            attention_mask = check.mask(
                f"{self!r} (attention mask of shape (batch, T, S))",
                attention_mask,
                (query.shape[0], query.shape[1], key.shape[1]),
            )
        return _Inputs(query, key, value, q_mask, k_mask, attention_mask, layout)

    def _check(self, params: Any, inputs: _Inputs) -> AttentionParams:
        params = as_params(params, self, AttentionParams)
        h, dk, dv = self.num_heads, self.key_dim, self._value_dim
        expected = {
            "query_kernel": (inputs.query.shape[2], h, dk),
            "key_kernel": (inputs.key.shape[2], h, dk),
            "value_kernel": (inputs.value.shape[2], h, dv),
        }
        for name, shape in expected.items():
            if getattr(params, name).shape != shape:
                raise ValueError(
                    f"{self!r} expects {name} of shape {shape} for inputs of shapes "
                    f"{inputs.query.shape}, {inputs.key.shape}, {inputs.value.shape}; got "
                    f"{getattr(params, name).shape} (initialized for other inputs?)"
                )
        if params.output_kernel.shape[:2] != (h, dv):
            raise ValueError(
                f"{self!r} expects output_kernel of shape {(h, dv)} + (output_dim,), got "
                f"{params.output_kernel.shape}"
            )
        return params

    def _allowed(self, inputs: _Inputs, t: int, s: int) -> np.ndarray | None:
        """Where query step t may attend to key step s, broadcast to (batch, heads, T, S)."""
        allowed = None
        if inputs.key_mask is not None:
            allowed = inputs.key_mask[:, None, None, :]
        if self.causal:
            tri = (np.arange(s)[None, :] <= np.arange(t)[:, None])[None, None]
            allowed = tri if allowed is None else allowed & tri
        if inputs.attention_mask is not None:
            given = inputs.attention_mask[:, None]
            allowed = given if allowed is None else allowed & given
        return allowed

    # -- forward and backward

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        inputs = self._parse(x)
        p = self._check(params, inputs)
        batch, t = inputs.query.shape[:2]
        s = inputs.key.shape[1]
        q = _project(inputs.query, p.query_kernel, p.query_bias, train)
        k = _project(inputs.key, p.key_kernel, p.key_bias, train)
        v = _project(inputs.value, p.value_kernel, p.value_bias, train)
        tables = None
        if self.rotary:
            tables = rotary_tables(max(t, s), self.key_dim, q.dtype)
            q = rotate(q, tables[0][:t], tables[1][:t])
            k = rotate(k, tables[0][:s], tables[1][:s])
        q = q * np.asarray(1 / np.sqrt(self.key_dim), q.dtype)
        scores_shape = (batch, self.num_heads, t, s)
        drop = None
        if train and self.dropout > 0:
            key = as_key(rng)
            if key is None:
                raise ValueError(
                    f"{self!r} drops attention weights when train=True and needs a random key: "
                    "call apply(params, x, train=True, rng=seed) with an int seed (or a "
                    "funcnn.random.Key or a numpy Generator)"
                )
            keep = key.uniform(scores_shape) >= self.dropout
            drop = keep * np.asarray(1 / (1 - self.dropout), np.result_type(q, k))
        allowed = self._allowed(inputs, t, s)
        k_t = k.transpose(0, 1, 3, 2)
        weights = np.empty(scores_shape, np.result_type(q, k))
        dropped = weights if drop is None else np.empty(scores_shape, weights.dtype)
        context = np.empty((batch, self.num_heads, t, v.shape[3]), np.result_type(dropped, v))

        def attend(r: slice) -> None:  # scores, softmax, dropout and context of samples r
            w = masked_softmax(np.matmul(q[r], k_t[r]), _rows(allowed, r))
            weights[r] = w
            if drop is not None:
                np.multiply(w, drop[r], out=dropped[r])
            np.matmul(dropped[r], v[r], out=context[r])

        linalg.hold_blas_to_one_thread()
        _by_samples(scores_shape, weights.itemsize, attend)
        context = context.transpose(0, 2, 1, 3)
        context = context.reshape(batch * t, self.num_heads * v.shape[3])
        out = p.output_kernel.shape[2]
        w_out = p.output_kernel.reshape(-1, out)
        y = linalg.matmul(context, w_out, group=max(t, 1), padded=not train)
        if p.output_bias is not None:
            y += p.output_bias
        y = y.reshape(batch, t, out)
        cache = (inputs, q, k, v, weights, drop, dropped, context, tables)
        return ((y, inputs.query_mask) if inputs.query_mask is not None else y), state, cache

    def backward(
        self, params: AttentionParams, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[AttentionParams, Any]:
        inputs, q, k, v, weights, drop, dropped, context, tables = cache
        dy = dy[0] if isinstance(dy, tuple) else dy
        batch, t, out = dy.shape
        s = k.shape[2]
        group = max(t, 1)
        dy2 = dy.reshape(batch * t, out)
        w_out = params.output_kernel.reshape(-1, out)
        d_w_out = linalg.matmul_tn(context, dy2, group=group).reshape(params.output_kernel.shape)
        d_b_out = linalg.sum_rows(dy2, group=group) if params.output_bias is not None else None
        d_context = linalg.matmul(dy2, w_out.T, group=group)
        d_context = d_context.reshape(batch, t, self.num_heads, v.shape[3]).transpose(0, 2, 1, 3)
        scale = np.asarray(1 / np.sqrt(self.key_dim), q.dtype)  # q holds the scaled query
        v_t, dropped_t = v.transpose(0, 1, 3, 2), dropped.transpose(0, 1, 3, 2)
        dv = np.empty(v.shape, np.result_type(dropped, d_context))
        dq = np.empty(q.shape, np.result_type(weights, d_context, k, scale))
        dk = np.empty(k.shape, np.result_type(weights, d_context, q))

        def attend_back(r: slice) -> None:  # the gradients through samples r
            d_weights = np.matmul(d_context[r], v_t[r])
            np.matmul(dropped_t[r], d_context[r], out=dv[r])
            if drop is not None:
                d_weights = d_weights * drop[r]
            d_scores = masked_softmax_backward(weights[r], d_weights)
            np.multiply(np.matmul(d_scores, k[r]), scale, out=dq[r])
            np.matmul(d_scores.transpose(0, 1, 3, 2), q[r], out=dk[r])

        linalg.hold_blas_to_one_thread()
        _by_samples(weights.shape, weights.itemsize, attend_back)
        if tables is not None:
            cos, sin = tables
            dq = rotate_backward(dq, cos[:t], sin[:t])
            dk = rotate_backward(dk, cos[:s], sin[:s])
        gq, dxq = _project_backward(
            inputs.query, params.query_kernel, params.query_bias, dq, need_dx
        )
        gk, dxk = _project_backward(inputs.key, params.key_kernel, params.key_bias, dk, need_dx)
        gv, dxv = _project_backward(
            inputs.value, params.value_kernel, params.value_bias, dv, need_dx
        )
        grads = AttentionParams(gq[0], gq[1], gk[0], gk[1], gv[0], gv[1], d_w_out, d_b_out)
        if not need_dx:
            return grads, None
        return grads, self._input_grads(inputs, dxq, dxk, dxv)

    def _input_grads(self, inputs: _Inputs, dxq: Any, dxk: Any, dxv: Any) -> Any:
        """The gradients in the structure of the input (masks' gradients zeros)."""

        def entry(d: np.ndarray, masked: bool, mask: Any) -> Any:
            return (d, mask_grad(mask, d.dtype)) if masked else d

        kind, *flags = inputs.layout
        if kind == "self":
            dx = dxq + dxk + dxv
            parts: list[Any] = [entry(dx, flags[0], inputs.query_mask)]
        else:
            q_mask = inputs.query_mask
            parts = [entry(dxq, flags[0], q_mask)]
            if len(flags) == 2:  # the key is the value
                parts.append(_with_mask_grad(dxk + dxv, flags[1], inputs.value.shape[:2]))
            else:
                parts.append(_with_mask_grad(dxv, flags[1], inputs.value.shape[:2]))
                parts.append(_with_mask_grad(dxk, flags[2], inputs.key.shape[:2]))
        if inputs.attention_mask is not None:
            parts.append(mask_grad(inputs.attention_mask, dxq.dtype))
        if kind == "self" and len(parts) == 1:
            return parts[0]
        return tuple(parts)


def _with_mask_grad(d: np.ndarray, masked: bool, batch_steps: tuple[int, ...]) -> Any:
    return (d, np.zeros(batch_steps, d.dtype)) if masked else d


def _project(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, train: bool) -> np.ndarray:
    """``x @ kernel + bias`` per head: ``(batch, L, F)`` -> ``(batch, heads, L, D)``."""
    batch, steps, features = x.shape
    heads, dim = kernel.shape[1:]
    p = linalg.matmul(
        x.reshape(batch * steps, features),
        kernel.reshape(features, heads * dim),
        group=max(steps, 1),
        padded=not train,
    )
    if bias is not None:
        p += bias.reshape(-1)
    return p.reshape(batch, steps, heads, dim).transpose(0, 2, 1, 3)


def _project_backward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, dp: np.ndarray, need_dx: bool
) -> tuple[tuple[np.ndarray, np.ndarray | None], np.ndarray | None]:
    """((kernel's gradient, bias's), x's gradient or None) of :func:`_project`."""
    batch, steps, features = x.shape
    heads, dim = kernel.shape[1:]
    group = max(steps, 1)
    dp2 = dp.transpose(0, 2, 1, 3).reshape(batch * steps, heads * dim)
    dw = linalg.matmul_tn(x.reshape(batch * steps, features), dp2, group=group)
    db = linalg.sum_rows(dp2, group=group).reshape(heads, dim) if bias is not None else None
    grads = (dw.reshape(kernel.shape), db)
    if not need_dx:
        return grads, None
    dx = linalg.matmul(dp2, kernel.reshape(features, heads * dim).T, group=group)
    return grads, dx.reshape(x.shape)


# ---------------------------------------------------------------- attention pooling


class AttentionPoolParams(NamedTuple):
    w: np.ndarray  # (features,): the learned query that scores each step


@attrs.frozen(repr=False)
class AttentionPool1D(Layer):
    """Attention pooling: ``(batch, time, features) -> (batch, features)``, the mean of the
    steps weighted by ``softmax_t(x_t . w)`` over the real steps (given ``(values, mask)``;
    zeros for a row with none). ``w`` (a learned query) starts from ``w_init`` (Glorot)."""

    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )

    def _values_shape(self, input_shape: Any) -> Shape:
        masked = is_shape_tuple(input_shape) and len(input_shape) == 2
        shape = as_shape(input_shape[0] if masked else input_shape)
        if len(shape) != 2 or (masked and as_shape(input_shape[1]) != shape[:1]):
            raise ValueError(
                f"{self!r} expects examples of shape (time, features), or the pair "
                f"((time, features), (time,)), got {input_shape!r}"
            )
        return shape

    def output_shape(self, input_shape: Shape) -> Shape:
        return self._values_shape(input_shape)[1:]

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> AttentionPoolParams:
        features = self._values_shape(input_shape)[1]
        return freeze(AttentionPoolParams(self.w_init(rng, (features, 1), dtype)[:, 0].copy()))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        values, mask = _sequence(self, x, "sequence")
        w = as_params(params, self, AttentionPoolParams).w
        batch, time, features = values.shape
        if w.shape != (features,):
            raise ValueError(
                f"{self!r} was initialized for {w.shape[0]} features, got {values.shape}"
            )
        group = max(time, 1)
        scores = linalg.matmul(
            values.reshape(batch * time, features), w[:, None], group=group, padded=not train
        ).reshape(batch, time)
        weights = masked_softmax(scores, mask)
        y = _per_sample(weights[:, None, :], values)[:, 0]
        return y, state, (values, mask, weights)

    def backward(
        self, params: AttentionPoolParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[AttentionPoolParams, Any]:
        values, mask, weights = cache
        batch, time, features = values.shape
        group = max(time, 1)
        d_weights = _per_sample(values, dy[:, :, None])[:, :, 0]  # (batch, time)
        d_scores = masked_softmax_backward(weights, d_weights)
        rows = values.reshape(batch * time, features)
        dw = linalg.matmul_tn(rows, d_scores.reshape(-1, 1), group=group)[:, 0]
        if not need_dx:
            return AttentionPoolParams(dw), None
        dx = weights[:, :, None] * dy[:, None, :] + d_scores[:, :, None] * params.w
        return AttentionPoolParams(dw), (dx if mask is None else (dx, mask_grad(mask, dx.dtype)))
