"""Recurrent cells: one time step and its backward, for :class:`funcnn.layers.RNN`.

A cell's params are a :class:`CellParams` in Keras' layout: ``kernel`` ``(input,
gates * units)``, ``recurrent_kernel`` ``(units, gates * units)``, ``bias`` ``(gates *
units,)`` (GRU: ``(2, 3 * units)``, the input and the recurrent bias). The gates are
blocks of ``units`` columns, in Keras' order:

- ``LSTMCell``: ``i, f, c, o`` (input, forget, cell candidate, output). PyTorch's
  ``weight_ih_l0`` is ``kernel.T`` in the same order (PyTorch calls the candidate ``g``);
  its two biases add up to ours.
- ``GRUCell`` (``reset_after=True``, PyTorch's and Keras 2+'s form): ``z, r, h`` (update,
  reset, candidate); PyTorch orders them ``r, z, n``. ``bias[0]`` is PyTorch's ``b_ih``,
  ``bias[1]`` its ``b_hh``.
- ``SimpleRNNCell``: one block, ``h' = activation(x W + h U + b)``.

The protocol, which RNN's scan calls (RNN runs the products over all time steps):

``init_cell(rng, features, dtype) -> CellParams``;
``state_shapes() -> ((units,), ...)``: the state, a tuple whose first entry ``h`` is the
output;
``step(params, xp, state, *, train) -> (new_state, cache)``: ``xp = x_t @ kernel +
bias_in`` (RNN computes it for every step in one product), the recurrent product inside;
``step_backward(params, cache, d_new_state) -> (d_xp, d_rec, d_state)``: ``d_rec`` is the
gradient of ``h_prev @ recurrent_kernel``, from which (with ``d_xp``) RNN computes the
params' gradients over every step at once (:func:`cell_grads`).

A cell is also a layer of one step: ``(x_t, *state) -> new state`` (``h``, or ``(h, c)``
for LSTM), with input shapes ``((features,), (units,), ...)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import initializers, linalg, nn
from funcnn import validate as check
from funcnn.layers.activations import Activation, Tanh
from funcnn.layers.base import Layer, RngArg, as_input, as_params, as_shape, is_shape_tuple
from funcnn.random import RngLike, split
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape

State = tuple[np.ndarray, ...]


class CellParams(NamedTuple):
    kernel: np.ndarray  # (input, gates * units)
    recurrent_kernel: np.ndarray  # (units, gates * units)
    bias: np.ndarray  # (gates * units,); GRU: (2, gates * units), input and recurrent


def cell_grads(
    params: CellParams,
    x: np.ndarray,
    h_prev: np.ndarray,
    d_xp: np.ndarray,
    d_rec: np.ndarray,
    group: int = 1,
) -> CellParams:
    """The params' gradients from every step at once: rows are ``group`` steps per sample,
    ``x`` ``(rows, input)``, ``h_prev`` ``(rows, units)``, ``d_xp`` and ``d_rec``
    ``(rows, gates * units)``. Batch sums through linalg (its chunks and tree)."""
    dw = linalg.matmul_tn(x, d_xp, group=group)
    du = linalg.matmul_tn(h_prev, d_rec, group=group)
    db = linalg.sum_rows(d_xp, group=group)
    if params.bias.ndim == 2:
        db = np.stack([db, linalg.sum_rows(d_rec, group=group)])
    return CellParams(dw, du, db)


@attrs.frozen(repr=False)
class Cell(Layer):
    """What every cell shares: its size, initializers, params, and its face as a layer."""

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

    gates: ClassVar[int] = 1

    # -- the cell protocol

    def state_shapes(self) -> tuple[Shape, ...]:
        return ((self.units,),)

    def bias_shape(self) -> Shape:
        return (self.gates * self.units,)

    def init_cell(
        self, rng: RngLike, features: int, *, dtype: DTypeLike = np.float32
    ) -> CellParams:
        k_rng, r_rng, b_rng = split(rng, 3)
        width = self.gates * self.units
        return freeze(
            CellParams(
                self.kernel_init(k_rng, (features, width), dtype),
                self.recurrent_init(r_rng, (self.units, width), dtype),
                self._init_bias(b_rng, dtype),
            )
        )

    def _init_bias(self, rng: np.random.Generator, dtype: DTypeLike) -> np.ndarray:
        return self.bias_init(rng, self.bias_shape(), dtype)

    def check_params(self, params: Any, features: int | None = None) -> CellParams:
        """``params`` as this cell's CellParams, or a TypeError/ValueError."""
        params = as_params(params, self, CellParams)
        width = self.gates * self.units
        shapes = (params.kernel.shape, params.recurrent_kernel.shape, params.bias.shape)
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
        xp += params.bias if params.bias.ndim == 1 else params.bias[0]
        return xp

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool
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
        new, cache = self.step(p, self.project(p, x_t, group=1, train=train), s, train=train)
        return (new if n > 1 else new[0]), state, (x_t, s[0], cache)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        x_t, h_prev, inner = cache
        d_new = tuple(dy) if isinstance(dy, tuple) else (dy,)
        d_xp, d_rec, d_state = self.step_backward(params, inner, d_new)
        grads = cell_grads(params, x_t, h_prev, d_xp, d_rec)
        if not need_dx:
            return grads, None
        return grads, (linalg.matmul(d_xp, params.kernel.T), *d_state)


@attrs.frozen(repr=False)
class SimpleRNNCell(Cell):
    """``h' = activation(x W + h U + b)``; ``activation`` an activation layer value
    (``Tanh``, the default, or ``Relu``...)."""

    activation: Activation = attrs.field(
        default=Tanh, kw_only=True, validator=attrs.validators.instance_of(Activation)
    )

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool
    ) -> tuple[State, Any]:
        a = xp + self._recurrent(params, state[0], train)
        h = self.activation.fn(a)
        return (h,), (a, h)

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        a, h = cache
        da = self.activation.backward_fn(a, h, d_state[0])
        return da, da, (self._recurrent_back(params, da),)


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
        bias = np.array(self.bias_init(rng, self.bias_shape(), dtype))
        if self.unit_forget_bias:
            bias[self.units : 2 * self.units] = 1
        return bias

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool
    ) -> tuple[State, Any]:
        h, c = state
        u = self.units
        z = xp + self._recurrent(params, h, train)
        i, f, o = nn.sigmoid(z[:, :u]), nn.sigmoid(z[:, u : 2 * u]), nn.sigmoid(z[:, 3 * u :])
        g = np.tanh(z[:, 2 * u : 3 * u])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        return (o * tanh_c, c_new), (c, i, f, g, o, tanh_c)

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        c, i, f, g, o, tanh_c = cache
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
        return dz, dz, (self._recurrent_back(params, dz), dc * f)


def _reset_after(value: Any) -> bool:
    if check.boolean("GRUCell reset_after", value) is not True:
        raise ValueError(
            "GRUCell(reset_after=False) (Keras 1's form, the reset gate applied before the "
            "recurrent product) is not implemented; use reset_after=True"
        )
    return True


@attrs.frozen(repr=False)
class GRUCell(Cell):
    """Gated recurrent unit, gates ``z, r, h`` (Keras' order; PyTorch's is ``r, z, n``),
    the reset gate applied after the recurrent product (``reset_after=True``)::

        xz, xr, xh = x W + b[0];  hz, hr, hh = h U + b[1]
        z = sigmoid(xz + hz);  r = sigmoid(xr + hr);  n = tanh(xh + r * hh)
        h' = z * h + (1 - z) * n
    """

    reset_after: bool = attrs.field(default=True, kw_only=True, converter=_reset_after)

    gates: ClassVar[int] = 3

    def bias_shape(self) -> Shape:
        return (2, 3 * self.units)

    def step(
        self, params: CellParams, xp: np.ndarray, state: State, *, train: bool
    ) -> tuple[State, Any]:
        (h,) = state
        u = self.units
        hp = self._recurrent(params, h, train)
        hp += params.bias[1]
        z = nn.sigmoid(xp[:, :u] + hp[:, :u])
        r = nn.sigmoid(xp[:, u : 2 * u] + hp[:, u : 2 * u])
        hh = hp[:, 2 * u :]
        n = np.tanh(xp[:, 2 * u :] + r * hh)
        return (z * h + (1 - z) * n,), (h, z, r, n, hh)

    def step_backward(
        self, params: CellParams, cache: Any, d_state: State
    ) -> tuple[np.ndarray, np.ndarray, State]:
        h, z, r, n, hh = cache
        (dh,) = d_state
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * hh * r * (1 - r)
        d_xp = np.concatenate([dz, dr, dn], axis=1)
        d_rec = np.concatenate([dz, dr, dn * r], axis=1)
        return d_xp, d_rec, (dh * z + self._recurrent_back(params, d_rec),)
