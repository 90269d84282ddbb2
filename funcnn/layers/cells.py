"""Recurrent cells: one time step and its backward, for :class:`funcnn.layers.RNN`.

A cell's params are a :class:`CellParams` in Keras' layout: ``kernel`` ``(input,
gates * units)``, ``recurrent_kernel`` ``(units, gates * units)``, ``bias`` ``(gates *
units,)`` (GRU with ``reset_after=True``: ``(2, 3 * units)``, the input and the recurrent
bias; ``None`` with ``use_bias=False``). The gates are blocks of ``units`` columns, in
Keras' order:

- ``LSTMCell``: ``i, f, c, o`` (input, forget, cell candidate, output). PyTorch's
  ``weight_ih_l0`` is ``kernel.T`` in the same order (PyTorch calls the candidate ``g``);
  its two biases add up to ours.
- ``GRUCell`` (``reset_after=True``, PyTorch's and Keras 2+'s form): ``z, r, h`` (update,
  reset, candidate); PyTorch orders them ``r, z, n``. ``bias[0]`` is PyTorch's ``b_ih``,
  ``bias[1]`` its ``b_hh``. ``reset_after=False`` (Keras 1's and the original GRU's form)
  applies the reset gate to ``h`` before the candidate's recurrent product, with one bias
  row ``(3 * units,)``, as Keras has it.
- ``SimpleRNNCell``: one block, ``h' = activation(x W + h U + b)``.

Dropout (Keras' semantics, training mode only): ``dropout`` drops the inputs,
``recurrent_dropout`` the state ``h`` where it enters the recurrent products, with one
mask per gate block (Keras 3's LSTM and GRU with recurrent dropout), drawn once per
sequence (every step of a sequence sees the same masks) from the layer's key, row by row
(:meth:`funcnn.random.Key.uniform`): the same bits for any batch split.

The protocol, which RNN's scan calls (RNN runs the input products over all time steps):

``init_cell(rng, features, dtype) -> CellParams``;
``state_shapes() -> ((units,), ...)``: the state, a tuple whose first entry ``h`` is the
output;
``step(params, xp, state, *, train[, rec_mask]) -> (new_state, cache)``: ``xp = x_t @
kernel + bias_in`` (RNN computes it for every step in one product), the recurrent
product inside; ``rec_mask`` (``(gates, batch, units)``, given only with recurrent
dropout) scales ``h`` per gate block before it;
``recurrent_inputs(h, cache, rec_mask) -> (a, ...)``: what the recurrent products of the
step read, one array per source of :meth:`Cell.gate_sources` (``h`` alone by default;
GRU(reset_after=False)'s candidate reads ``r * h``);
``step_backward(params, cache, d_new_state) -> (d_xp, d_rec, d_state)``: ``d_rec`` is the
gradient of the recurrent products' outputs, from which (with ``d_xp`` and the inputs)
RNN computes the params' gradients over every step at once (:func:`cell_grads`).

A cell is also a layer of one step: ``(x_t, *state) -> new state`` (``h``, or ``(h, c)``
for LSTM), with input shapes ``((features,), (units,), ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, cast

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg, nn
from funcnn import validate as check
from funcnn.layers.activations import Activation, Tanh
from funcnn.layers.base import Layer, RngArg, as_input, as_params, as_shape, is_shape_tuple
from funcnn.random import RngLike, as_key, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape

State = tuple[np.ndarray, ...]


class CellParams(NamedTuple):
    kernel: np.ndarray  # (input, gates * units)
    recurrent_kernel: np.ndarray  # (units, gates * units)
    bias: np.ndarray | None  # (gates * units,); GRU: (2, gates * units); None: no bias


def gate_products_tn(inputs: Sequence[np.ndarray], d: np.ndarray, group: int) -> np.ndarray:
    """``inputs[g].T @ d[:, block g]`` for every gate block ``g``, summed over the rows
    through linalg; ``inputs`` holds one array for all blocks, or one per block (the same
    array for neighbouring blocks: one product for them)."""
    if len(inputs) == 1:
        return linalg.matmul_tn(inputs[0], d, group=group)
    u = d.shape[1] // len(inputs)
    parts, start = [], 0
    for g in range(1, len(inputs) + 1):
        if g == len(inputs) or inputs[g] is not inputs[start]:
            block = d[:, start * u : g * u]
            parts.append(linalg.matmul_tn(inputs[start], block, group=group))
            start = g
    return np.concatenate(parts, axis=1)


def cell_grads(
    params: CellParams,
    x: np.ndarray | Sequence[np.ndarray],
    h_prev: np.ndarray | Sequence[np.ndarray],
    d_xp: np.ndarray,
    d_rec: np.ndarray,
    group: int = 1,
) -> CellParams:
    """The params' gradients from every step at once: rows are ``group`` steps per sample,
    ``x`` ``(rows, input)``, ``h_prev`` ``(rows, units)`` (each may be a sequence of one
    array per gate block: the inputs under dropout, GRU(reset_after=False)'s ``r * h``),
    ``d_xp`` and ``d_rec`` ``(rows, gates * units)``. Batch sums through linalg (its
    chunks and tree)."""
    xs = (x,) if isinstance(x, np.ndarray) else tuple(x)
    hs = (h_prev,) if isinstance(h_prev, np.ndarray) else tuple(h_prev)
    dw = gate_products_tn(xs, d_xp, group)
    du = gate_products_tn(hs, d_rec, group)
    if params.bias is None:
        return CellParams(dw, du, None)
    db = linalg.sum_rows(d_xp, group=group)
    if params.bias.ndim == 2:
        db = np.stack([db, linalg.sum_rows(d_rec, group=group)])
    return CellParams(dw, du, db)


def _rate(name: str) -> Any:
    def validate(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if not 0 <= check.number(name, value) < 1:
            raise ValueError(
                f"{name} is the probability of dropping a unit, in [0, 1); got {value!r}"
            )

    return validate


def _sum_in_order(parts: list[np.ndarray]) -> np.ndarray:
    """``parts[0] + parts[1] + ...``, left to right (one order: the same bits)."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


class Masks(NamedTuple):
    """A sequence's dropout masks, scaled by ``1 / (1 - rate)``, or None where not used."""

    inputs: np.ndarray | None  # (gates, batch, features)
    recurrent: np.ndarray | None  # (gates, batch, units)


NO_MASKS = Masks(None, None)


@attrs.frozen(repr=False)
class Cell(Layer):
    """What every cell shares: its size, initializers, bias, dropout, params, and its face
    as a layer."""

    units: int = attrs.field(validator=check.field(check.positive_int))
    kernel_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, kw_only=True, validator=attrs.validators.is_callable()
    )
    recurrent_init: initializers.Initializer = attrs.field(
        default=initializers.orthogonal, kw_only=True, validator=attrs.validators.is_callable()
    )
    bias_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, kw_only=True, validator=attrs.validators.is_callable()
    )
    use_bias: bool = attrs.field(default=True, kw_only=True, validator=check.field(check.boolean))
    dropout: float = attrs.field(default=0.0, kw_only=True, validator=_rate("dropout"))
    recurrent_dropout: float = attrs.field(
        default=0.0, kw_only=True, validator=_rate("recurrent_dropout")
    )

    gates: ClassVar[int] = 1

    # -- the cell protocol

    def state_shapes(self) -> tuple[Shape, ...]:
        return ((self.units,),)

    def bias_shape(self) -> Shape | None:
        return (self.gates * self.units,) if self.use_bias else None

    def gate_sources(self, dropped: bool) -> tuple[int, ...]:
        """Which of :meth:`recurrent_inputs`' arrays each gate block's recurrent product
        reads: all ``h`` (one source), or, with recurrent dropout (``dropped``), each its
        own masked ``h``."""
        return tuple(range(self.gates)) if dropped else (0,) * self.gates

    def recurrent_inputs(self, h: np.ndarray, cache: Any, rec_mask: Any) -> State:
        """The arrays the step's recurrent products read (see :meth:`gate_sources`)."""
        return (h,) if rec_mask is None else tuple(h * m for m in rec_mask)

    def init_cell(
        self, rng: RngLike, features: int, *, dtype: DTypeLike = np.float32
    ) -> CellParams:
        k_rng, r_rng, b_rng = split(rng, 3)
        width = self.gates * self.units
        return freeze(
            CellParams(
                self.kernel_init(k_rng, (features, width), dtype),
                self.recurrent_init(r_rng, (self.units, width), dtype),
                self._init_bias(b_rng, dtype) if self.use_bias else None,
            )
        )

    def _init_bias(self, rng: np.random.Generator, dtype: DTypeLike) -> np.ndarray:
        # called only with use_bias, where bias_shape() is a shape
        return self.bias_init(rng, cast(Shape, self.bias_shape()), dtype)

    def check_params(self, params: Any, features: int | None = None) -> CellParams:
        """``params`` as this cell's CellParams, or a TypeError/ValueError."""
        params = as_params(params, self, CellParams)
        width = self.gates * self.units
        bias = None if params.bias is None else params.bias.shape
        shapes = (params.kernel.shape, params.recurrent_kernel.shape, bias)
        expected = ((features or params.kernel.shape[0], width), (self.units, width))
        if shapes[:2] != expected or shapes[2] != self.bias_shape():
            raise ValueError(
                f"{self!r} expects params of shapes {(*expected, self.bias_shape())}, "
                f"got {shapes} (initialized for another cell or input size?)"
            )
        return params

    def project(self, params: CellParams, x: np.ndarray, *, group: int, train: bool) -> np.ndarray:
        """``x @ kernel + bias_in`` for rows of ``group`` steps per sample."""
        xp = linalg.matmul(x, params.kernel, group=group, padded=not train)
        if params.bias is not None:
            xp += params.bias if params.bias.ndim == 1 else params.bias[0]
        return xp

    def project_gates(
        self, params: CellParams, xs: Sequence[np.ndarray], *, group: int, train: bool
    ) -> np.ndarray:
        """:meth:`project` of one input for all gate blocks, or of one input per block
        (``xs[g] @ kernel[:, block g]``: the inputs under dropout)."""
        if len(xs) == 1:
            return self.project(params, xs[0], group=group, train=train)
        u = self.units
        xp = np.concatenate(
            [
                linalg.matmul(a, params.kernel[:, g * u : (g + 1) * u], group=group, padded=False)
                for g, a in enumerate(xs)
            ],
            axis=1,
        )
        if params.bias is not None:
            xp += params.bias if params.bias.ndim == 1 else params.bias[0]
        return xp

    def input_grad(
        self, params: CellParams, d_xp: np.ndarray, masks: np.ndarray | None, group: int
    ) -> np.ndarray:
        """The inputs' gradient from ``d_xp`` ``(rows, gates * units)``; ``masks``: the
        input dropout masks ``(gates, rows, features)`` or None."""
        if masks is None:
            return linalg.matmul(d_xp, params.kernel.T, group=group)
        u = self.units
        parts = [
            linalg.matmul(
                d_xp[:, g * u : (g + 1) * u], params.kernel[:, g * u : (g + 1) * u].T, group=group
            )
            * m
            for g, m in enumerate(masks)
        ]
        return _sum_in_order(parts)

    def dropout_masks(
        self, rng: RngArg, batch: int, features: int, dtype: DTypeLike, *, train: bool
    ) -> Masks:
        """One sequence's masks for each of ``batch`` rows: row ``r``'s depend only on the
        key and on the row's index (``key.row + r``); NO_MASKS outside training or without
        dropout."""
        if not train or (self.dropout == 0 and self.recurrent_dropout == 0):
            return NO_MASKS
        key = as_key(rng)
        if key is None:
            raise ValueError(
                f"{self!r} needs a random key for its dropout when train=True: call "
                "apply(params, x, train=True, rng=seed) with an int seed (or a "
                "funcnn.random.Key or a numpy Generator); with train=False there is no dropout"
            )
        masks: list[np.ndarray | None] = []
        for i, (rate, width) in enumerate(
            ((self.dropout, features), (self.recurrent_dropout, self.units))
        ):
            if rate == 0:
                masks.append(None)
                continue
            keep = key.fold_in(i).uniform((batch, self.gates, width)) >= rate
            scaled = keep * np.asarray(1.0 / (1.0 - rate), dtype=dtype)
            masks.append(np.ascontiguousarray(scaled.transpose(1, 0, 2)))
        return Masks(*masks)

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool, rec_mask: Any = None
    ) -> tuple[State, Any]:
        raise NotImplementedError

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        raise NotImplementedError

    def _recurrent(self, params: CellParams, h: np.ndarray, train: bool) -> np.ndarray:
        return linalg.matmul(h, params.recurrent_kernel, padded=not train)

    def _recurrent_back(self, params: CellParams, d_rec: np.ndarray) -> np.ndarray:
        return linalg.matmul(d_rec, params.recurrent_kernel.T)

    def _recurrent_masked(
        self, params: CellParams, h: np.ndarray, rec_mask: Any, blocks: range
    ) -> np.ndarray:
        """``(h * rec_mask[g]) @ recurrent_kernel[:, block g]`` for the gate ``blocks``
        (training mode: dropout is only there)."""
        u, kernel = self.units, params.recurrent_kernel
        parts = [linalg.matmul(h * rec_mask[g], kernel[:, g * u : (g + 1) * u]) for g in blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _recurrent_masked_back(
        self, params: CellParams, d_rec: np.ndarray, rec_mask: Any, blocks: range
    ) -> np.ndarray:
        """The gradient of ``h`` from :meth:`_recurrent_masked`'s outputs' ``d_rec``
        (its columns: the ``blocks``)."""
        u, kernel = self.units, params.recurrent_kernel
        parts = [
            linalg.matmul(d_rec[:, i * u : (i + 1) * u], kernel[:, g * u : (g + 1) * u].T)
            * rec_mask[g]
            for i, g in enumerate(blocks)
        ]
        return _sum_in_order(parts)

    def _products(
        self, params: CellParams, h: np.ndarray, train: bool, rec_mask: Any
    ) -> np.ndarray:
        """Every gate block's recurrent product, masked or not."""
        if rec_mask is None:
            return self._recurrent(params, h, train)
        return self._recurrent_masked(params, h, rec_mask, range(self.gates))

    def _products_back(self, params: CellParams, d_rec: np.ndarray, rec_mask: Any) -> np.ndarray:
        if rec_mask is None:
            return self._recurrent_back(params, d_rec)
        return self._recurrent_masked_back(params, d_rec, rec_mask, range(self.gates))

    # -- the cell as a layer of one step: (x_t, *state) -> new state

    def _shapes(self, input_shape: Any) -> Shape:
        n = len(self.state_shapes())
        if not is_shape_tuple(input_shape) or len(input_shape) != 1 + n:
            raise ValueError(
                f"{self!r} as a layer takes one step (x_t, {', '.join(['state'] * n)}) of "
                f"shapes ((features,), {', '.join(map(str, self.state_shapes()))}), "
                f"got {input_shape!r}"
            )
        x_shape = as_shape(input_shape[0])
        if len(x_shape) != 1 or tuple(map(tuple, input_shape[1:])) != self.state_shapes():
            raise ValueError(
                f"{self!r} expects shapes ((features,), "
                f"{', '.join(map(str, self.state_shapes()))}), got {input_shape!r}"
            )
        return x_shape

    def output_shape(self, input_shape: Shape) -> Any:
        self._shapes(input_shape)
        shapes = self.state_shapes()
        return shapes if len(shapes) > 1 else shapes[0]

    def init(self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> Params:
        return self.init_cell(rng, self._shapes(input_shape)[0], dtype=dtype)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        n = len(self.state_shapes())
        if not isinstance(x, (tuple, list)) or len(x) != 1 + n:
            raise ValueError(f"{self!r} as a layer takes the tuple (x_t, *state) of {1 + n}")
        x_t = as_input(x[0], self, min_ndim=2)
        p = self.check_params(params, x_t.shape[-1])
        s = tuple(as_input(a, self, min_ndim=2) for a in x[1:])
        masks = self.dropout_masks(rng, x_t.shape[0], x_t.shape[-1], x_t.dtype, train=train)
        xs = (x_t,) if masks.inputs is None else tuple(x_t * m for m in masks.inputs)
        xp = self.project_gates(p, xs, group=1, train=train)
        extra = {} if masks.recurrent is None else {"rec_mask": masks.recurrent}
        new, cache = self.step(p, xp, s, train=train, **extra)
        rec = self.recurrent_inputs(s[0], cache, masks.recurrent)
        return (new if n > 1 else new[0]), state, (xs, rec, masks, cache)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        xs, rec, masks, inner = cache
        d_new = tuple(dy) if isinstance(dy, tuple) else (dy,)
        d_xp, d_rec, d_state = self.step_backward(params, inner, d_new)
        sources = self.gate_sources(masks.recurrent is not None)
        hs = rec if len(rec) == 1 else tuple(rec[k] for k in sources)
        grads = cell_grads(params, xs, hs, d_xp, d_rec)
        if not need_dx:
            return grads, None
        return grads, (self.input_grad(params, d_xp, masks.inputs, 1), *d_state)


@attrs.frozen(repr=False)
class SimpleRNNCell(Cell):
    """``h' = activation(x W + h U + b)``; ``activation`` an activation layer value
    (``Tanh``, the default, or ``Relu``...)."""

    activation: Activation = attrs.field(
        default=Tanh, kw_only=True, validator=attrs.validators.instance_of(Activation)
    )

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool, rec_mask: Any = None
    ) -> tuple[State, Any]:
        a = xp + self._products(params, state[0], train, rec_mask)
        h = self.activation.fn(a)
        return (h,), (a, h, rec_mask)

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        a, h, rec_mask = cache
        da = self.activation.backward_fn(a, h, d_state[0])
        return da, da, (self._products_back(params, da, rec_mask),)


@attrs.frozen(repr=False)
class LSTMCell(Cell):
    """Long short-term memory, gates ``i, f, c, o`` (Keras' order; PyTorch's ``i, f, g, o``
    is the same). State ``(h, c)``::

        i, f, o = sigmoid(.), g = tanh(.)  of  x W + h U + b
        c' = f * c + i * g;  h' = o * tanh(c')

    ``unit_forget_bias`` (Keras' default) starts the forget gate's bias at 1.
    """

    unit_forget_bias: bool = attrs.field(
        default=True, kw_only=True, validator=check.field(check.boolean)
    )

    gates: ClassVar[int] = 4

    def state_shapes(self) -> tuple[Shape, ...]:
        return ((self.units,), (self.units,))

    def _init_bias(self, rng: np.random.Generator, dtype: DTypeLike) -> np.ndarray:
        bias = np.array(super()._init_bias(rng, dtype))
        if self.unit_forget_bias:
            bias[self.units : 2 * self.units] = 1
        return bias

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool, rec_mask: Any = None
    ) -> tuple[State, Any]:
        h, c = state
        u = self.units
        z = xp + self._products(params, h, train, rec_mask)
        i, f, o = nn.sigmoid(z[:, :u]), nn.sigmoid(z[:, u : 2 * u]), nn.sigmoid(z[:, 3 * u :])
        g = np.tanh(z[:, 2 * u : 3 * u])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        cache = (c, i, f, g, o, tanh_c)
        return (o * tanh_c, c_new), (cache if rec_mask is None else (*cache, rec_mask))

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        c, i, f, g, o, tanh_c = cache[:6]
        rec_mask = cache[6] if len(cache) > 6 else None
        dh, dc = d_state
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        dz = np.concatenate(
            [
                dc * g * i * (1 - i),
                dc * c * f * (1 - f),
                dc * i * (1 - g * g),
                dh * tanh_c * o * (1 - o),
            ],
            axis=1,
        )
        return dz, dz, (self._products_back(params, dz, rec_mask), dc * f)


@attrs.frozen(repr=False)
class GRUCell(Cell):
    """Gated recurrent unit, gates ``z, r, h`` (Keras' order; PyTorch's is ``r, z, n``).
    With ``reset_after=True`` (PyTorch's and Keras 2+'s form) the reset gate is applied
    after the recurrent product, and the bias is two rows::

        xz, xr, xh = x W + b[0];  hz, hr, hh = h U + b[1]
        z = sigmoid(xz + hz);  r = sigmoid(xr + hr);  n = tanh(xh + r * hh)
        h' = z * h + (1 - z) * n

    With ``reset_after=False`` (Keras 1's and Cho et al.'s form) it is applied before, and
    the bias is one row ``(3 * units,)``::

        xz, xr, xh = x W + b;  hz, hr = h U_zr
        z = sigmoid(xz + hz);  r = sigmoid(xr + hr);  n = tanh(xh + (r * h) U_h)
    """

    reset_after: bool = attrs.field(
        default=True, kw_only=True, validator=check.field(check.boolean)
    )

    gates: ClassVar[int] = 3

    def bias_shape(self) -> Shape | None:
        if not self.use_bias:
            return None
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def gate_sources(self, dropped: bool) -> tuple[int, ...]:
        if dropped:
            return (0, 1, 2)
        return (0, 0, 0) if self.reset_after else (0, 0, 1)

    def recurrent_inputs(self, h: np.ndarray, cache: Any, rec_mask: Any) -> State:
        if self.reset_after:
            return super().recurrent_inputs(h, cache, rec_mask)
        rh = cache[5]
        if rec_mask is None:
            return (h, rh)
        return (h * rec_mask[0], h * rec_mask[1], rh)

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool, rec_mask: Any = None
    ) -> tuple[State, Any]:
        if not self.reset_after:
            return self._step_reset_before(params, xp, state, train, rec_mask)
        (h,) = state
        u = self.units
        hp = self._products(params, h, train, rec_mask)
        if params.bias is not None:
            hp += params.bias[1]
        z = nn.sigmoid(xp[:, :u] + hp[:, :u])
        r = nn.sigmoid(xp[:, u : 2 * u] + hp[:, u : 2 * u])
        hh = hp[:, 2 * u :]
        n = np.tanh(xp[:, 2 * u :] + r * hh)
        cache = (h, z, r, n, hh)
        return (z * h + (1 - z) * n,), (cache if rec_mask is None else (*cache, rec_mask))

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        if not self.reset_after:
            return self._step_reset_before_backward(params, cache, d_state)
        h, z, r, n, hh = cache[:5]
        rec_mask = cache[5] if len(cache) > 5 else None
        (dh,) = d_state
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hh * r * (1 - r)
        d_xp = np.concatenate([dz, dr, dn], axis=1)
        d_rec = np.concatenate([dz, dr, dn * r], axis=1)
        return d_xp, d_rec, (dh * z + self._products_back(params, d_rec, rec_mask),)

    # reset_after=False: the candidate's recurrent product reads r * h

    def _step_reset_before(
        self, params: CellParams, xp: np.ndarray, state: State, train: bool, rec_mask: Any
    ) -> tuple[State, Any]:
        (h,) = state
        u = self.units
        kernel = params.recurrent_kernel
        if rec_mask is None:
            hzr = linalg.matmul(h, kernel[:, : 2 * u], padded=not train)
            hc = h
        else:
            hzr = self._recurrent_masked(params, h, rec_mask, range(2))
            hc = h * rec_mask[2]
        z = nn.sigmoid(xp[:, :u] + hzr[:, :u])
        r = nn.sigmoid(xp[:, u : 2 * u] + hzr[:, u:])
        rh = r * hc
        n = np.tanh(xp[:, 2 * u :] + linalg.matmul(rh, kernel[:, 2 * u :], padded=not train))
        return (z * h + (1 - z) * n,), (h, z, r, n, hc, rh, rec_mask)

    def _step_reset_before_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        h, z, r, n, hc, _, rec_mask = cache
        (dh,) = d_state
        u = self.units
        kernel = params.recurrent_kernel
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        d_rh = linalg.matmul(dn, kernel[:, 2 * u :].T)
        dr = d_rh * hc * r * (1 - r)
        d_xp = np.concatenate([dz, dr, dn], axis=1)
        d_zr = d_xp[:, : 2 * u]
        if rec_mask is None:
            d_h = linalg.matmul(d_zr, kernel[:, : 2 * u].T) + d_rh * r
        else:
            d_h = self._recurrent_masked_back(params, d_zr, rec_mask, range(2))
            d_h += d_rh * r * rec_mask[2]
        return d_xp, d_xp, (dh * z + d_h,)
