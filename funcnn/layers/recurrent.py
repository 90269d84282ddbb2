"""Recurrent layers: RNN runs a cell (:mod:`funcnn.layers.cells`) over the time axis, with
backpropagation through time written here once; Bidirectional runs two.

Inputs (the state is always a tuple, the cell's: ``(h,)``, or ``(h, c)`` for LSTM)::

    x                      (batch, time, features)
    (x, mask)              mask: bool (batch, time), True at real steps
    (x, state)             state: the initial state, e.g. (h0,) or (h0, c0), each (batch, units)
    (x, mask, state)

Without a state the scan starts from zeros. At a masked step the state passes through
unchanged and the output is the previous step's output (zeros before the first real
step), as Keras does.

Outputs, flat (as Keras returns them)::

    y                      (batch, units): the last output (the last real step's)
    y                      (batch, time, units) with return_sequences; y[:, t] is the output
                           after reading step t, also with reverse=True (Keras' go_backwards
                           returns them in reading order)
    (y, mask)              with return_sequences, given a mask: the mask passes on
    (..., *state)          with return_state: the final state's arrays appended, e.g.
                           (y, h, c); pass (h, c) back as the next call's state

Every product runs in :mod:`funcnn.linalg`: the input projections of all steps in one
product (``x @ kernel``, as cuDNN does), the recurrent ones step by step (inference mode
in padded blocks, as Dense), and the params' gradients as sums over the batch in linalg's
chunks and tree, so the reproducibility contract holds.

Dropout (the cell's ``dropout`` and ``recurrent_dropout``, Keras' semantics) acts in
training mode only and needs ``rng``: each sequence's masks are drawn once, from the key
row by row, and used at all of its steps (Bidirectional: ``key.fold_in(0)`` for the
forward copy, ``key.fold_in(1)`` for the backward one).

For generation, :meth:`RNN.scan` runs from a given state and returns the final state, and
:meth:`RNN.step` takes one step: no prefix is computed twice.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_shape, is_shape_tuple
from funcnn.layers.cells import (
    Cell,
    CellParams,
    GRUCell,
    LSTMCell,
    Masks,
    SimpleRNNCell,
    cell_grads,
)
from funcnn.layers.masking import as_mask, mask_grad
from funcnn.random import RngLike, as_key, split
from funcnn.types import Cache, LayerState, Params, Shape

State = tuple[np.ndarray, ...]


class _Inputs(NamedTuple):
    x: np.ndarray  # (batch, time, features)
    mask: np.ndarray | None  # bool (batch, time)
    state: State | None


def _parse_shapes(layer: object, input_shape: Any, states: tuple[Shape, ...]) -> tuple[Shape, bool]:
    """(x's shape, whether a mask comes) from an input shape of one of the four forms."""
    usage = (
        "(time, features), or a tuple with the mask's (time,) and/or the state's "
        f"{states}, in the order (x, mask, state)"
    )
    if not is_shape_tuple(input_shape):
        parts: list[Any] = [input_shape]
    else:
        parts = list(input_shape)
    x_shape = as_shape(parts[0])
    rest = parts[1:]
    has_mask = bool(rest) and not is_shape_tuple(rest[0])
    if has_mask:
        if tuple(as_shape(rest[0])) != x_shape[:1]:
            raise ValueError(
                f"{layer!r}: the mask's shape must be (time,) = {x_shape[:1]}, got {rest[0]}"
            )
        rest = rest[1:]
    if len(rest) > 1 or (rest and tuple(map(tuple, rest[0])) != states):
        raise ValueError(f"{layer!r} expects input shapes {usage}, got {input_shape!r}")
    if len(x_shape) != 2:
        raise ValueError(
            f"{layer!r} expects sequences of shape (time, features), got {x_shape}; "
            f"input shapes are {usage}"
        )
    return x_shape, has_mask


def _parse_inputs(layer: object, x: Any, states: tuple[Shape, ...]) -> _Inputs:
    """The sequence, mask and initial state of an input of one of the four forms."""
    if not isinstance(x, (tuple, list)):
        return _Inputs(as_batch_of_sequences(x, layer), None, None)
    if not 2 <= len(x) <= 3:
        raise ValueError(
            f"{layer!r} takes x, (x, mask), (x, state) or (x, mask, state), got a tuple of {len(x)}"
        )
    values = as_batch_of_sequences(x[0], layer)
    rest = list(x[1:])
    mask = None
    if not isinstance(rest[0], (tuple, list)):
        mask = as_mask(rest.pop(0), values.shape[:2], layer)
    state = None
    if rest:
        given = rest[0]
        if not isinstance(given, (tuple, list)) or len(given) != len(states):
            raise ValueError(
                f"{layer!r} takes its initial state as a tuple of {len(states)} arrays of "
                f"shapes {tuple((values.shape[0], *s) for s in states)}, got {type(given).__name__}"
            )
        state = tuple(as_input(a, layer, min_ndim=2) for a in given)
        for a, s in zip(state, states):
            if a.shape != (values.shape[0], *s):
                raise ValueError(
                    f"{layer!r} expects initial states of shapes "
                    f"{tuple((values.shape[0], *s) for s in states)}, got "
                    f"{tuple(np.shape(a) for a in given)}"
                )
    return _Inputs(values, mask, state)


def as_batch_of_sequences(x: Any, layer: object) -> np.ndarray:
    a = as_input(x, layer)
    if a.ndim != 3:
        raise ValueError(
            f"{layer!r} expects a batch of shape (batch, time, features), got {a.shape}"
        )
    return a


def _input_grads(inputs: _Inputs, dx: np.ndarray, d_state: State) -> Any:
    """dx in the structure of the input: dx, then the mask's zeros, then the state's."""
    parts: list[Any] = [dx]
    if inputs.mask is not None:
        parts.append(mask_grad(inputs.mask, dx.dtype))
    if inputs.state is not None:
        parts.append(tuple(d_state))
    return parts[0] if len(parts) == 1 else tuple(parts)


def _head(inputs: _Inputs, seq: Any, return_sequences: bool) -> tuple[Any, ...]:
    """The outputs before the state: ``seq`` (a tuple for Bidirectional without merge),
    and the mask where sequences pass it on."""
    head = seq if isinstance(seq, tuple) else (seq,)
    return (*head, inputs.mask) if return_sequences and inputs.mask is not None else head


def _split_dy(dy: Any, n_head: int, n_state: int, return_state: bool) -> tuple[tuple, Any]:
    """(gradients of the head outputs, gradients of the final state or None)."""
    parts = tuple(dy) if isinstance(dy, tuple) else (dy,)
    if n_head + (n_state if return_state else 0) == 1:
        parts = (dy,)
    head = parts[:n_head]
    return head, (parts[n_head:] if return_state else None)


# ---------------------------------------------------------------- the scan and its backward


class _ScanCache(NamedTuple):
    x: tuple[np.ndarray, ...]  # (batch * time, features): one, or one per gate (dropout)
    rec: list[np.ndarray]  # (batch, time, units) each: the recurrent inputs of each step
    steps: list[Any]  # each step's cache, by time index
    mask: np.ndarray | None
    order: range
    masks: Masks  # the dropout masks


def _scan(
    cell: Cell,
    params: CellParams,
    inputs: _Inputs,
    *,
    train: bool,
    reverse: bool,
    sequences: bool,
    rng: RngArg = None,
) -> tuple[np.ndarray, State, _ScanCache]:
    """(outputs: (batch, time, units) with ``sequences`` else the last (batch, units);
    final state; cache). ``rng``: the key of the dropout masks (training mode)."""
    x, mask, state = inputs
    batch, time, features = x.shape
    cell.check_params(params, features)
    group = max(time, 1)
    masks = cell.dropout_masks(rng, batch, features, x.dtype, train=train)
    if masks.inputs is None:
        xs: tuple[np.ndarray, ...] = (x.reshape(batch * time, features),)
    else:  # each sequence's mask on all of its steps
        xs = tuple((x * m[:, None, :]).reshape(batch * time, features) for m in masks.inputs)
    xp = cell.project_gates(params, xs, group=group, train=train)
    xp = xp.reshape(batch, time, params.kernel.shape[1])
    dtype, u = xp.dtype, cell.units
    if state is None:
        state = tuple(np.zeros((batch, *s), dtype) for s in cell.state_shapes())
    out = np.zeros((batch, u), dtype)  # the last output: zeros before the first real step
    ys = np.empty((batch, time, u), dtype) if sequences else None
    rec_mask = masks.recurrent
    extra = {} if rec_mask is None else {"rec_mask": rec_mask}
    n_rec = max(cell.gate_sources(rec_mask is not None)) + 1
    rec = [np.empty((batch, time, u), dtype) for _ in range(n_rec)]
    steps: list[Any] = [None] * time
    order = range(time - 1, -1, -1) if reverse else range(time)
    for t in order:
        new, steps[t] = cell.step(params, xp[:, t], state, train=train, **extra)
        for store, a in zip(rec, cell.recurrent_inputs(state[0], steps[t], rec_mask)):
            store[:, t] = a
        if mask is None:
            state, out = new, new[0]
        else:
            m = mask[:, t, None]
            state = tuple(np.where(m, a, b) for a, b in zip(new, state))
            out = np.where(m, new[0], out)
        if ys is not None:
            ys[:, t] = out
    cache = _ScanCache(xs, rec, steps, mask, order, masks)
    return (out if ys is None else ys), state, cache


def _scan_backward(
    cell: Cell,
    params: CellParams,
    cache: _ScanCache,
    d_out: np.ndarray | None,
    d_state: Any,
    *,
    need_dx: bool,
) -> tuple[CellParams, np.ndarray | None, State]:
    """Backpropagation through time. ``d_out``: the outputs' gradient ((batch, time, units)
    for sequences, else (batch, units)); ``d_state``: the final state's (or None).
    Returns (params' gradients, dx or None, the initial state's gradient)."""
    xs, rec, steps, mask, order, masks = cache
    batch, time, u = rec[0].shape
    width = params.recurrent_kernel.shape[1]
    dtype = rec[0].dtype
    sequences = d_out is not None and d_out.ndim == 3
    ds = (
        tuple(np.zeros((batch, *s), dtype) for s in cell.state_shapes())
        if d_state is None
        else tuple(d_state)
    )
    dout = d_out if d_out is not None and not sequences else np.zeros((batch, u), dtype)
    d_xp = np.empty((batch, time, width), dtype)
    d_rec = np.empty((batch, time, width), dtype)
    for t in reversed(order):
        if d_out is not None and sequences:
            dout = dout + d_out[:, t]
        d_new = (ds[0] + dout, *ds[1:])
        if mask is not None:
            m = mask[:, t, None]
            d_new = tuple(np.where(m, d, 0) for d in d_new)
        d_xp[:, t], d_rec[:, t], d_prev = cell.step_backward(params, steps[t], d_new)
        if mask is None:
            ds, dout = d_prev, np.zeros_like(dout)
        else:
            ds = tuple(np.where(m, a, b) for a, b in zip(d_prev, ds))
            dout = np.where(m, 0, dout)
    group = max(time, 1)
    d_xp2, d_rec2 = d_xp.reshape(batch * time, width), d_rec.reshape(batch * time, width)
    flat = [a.reshape(batch * time, u) for a in rec]
    sources = cell.gate_sources(masks.recurrent is not None)
    hs = flat if len(flat) == 1 else [flat[k] for k in sources]
    grads = cell_grads(params, xs, hs, d_xp2, d_rec2, group)
    if not need_dx:
        return grads, None, ds
    in_masks = None
    if masks.inputs is not None:  # each sample's mask on its time rows
        in_masks = np.repeat(masks.inputs, time, axis=1)
    dx = cell.input_grad(params, d_xp2, in_masks, group)
    dx = dx.reshape(batch, time, params.kernel.shape[0])
    return grads, dx, ds


# ---------------------------------------------------------------- the layers


@attrs.frozen(repr=False)
class RNN(Layer):
    """``cell`` run over the time axis: ``(batch, time, features) -> (batch, units)``, or
    ``(batch, time, units)`` with ``return_sequences``; ``reverse`` reads from the last step
    to the first. Inputs and outputs as in the module's docstring. Params: the cell's
    :class:`~funcnn.layers.cells.CellParams`.
    """

    cell: Cell = attrs.field(validator=attrs.validators.instance_of(Cell))
    return_sequences: bool = attrs.field(
        default=False, kw_only=True, validator=check.field(check.boolean)
    )
    return_state: bool = attrs.field(
        default=False, kw_only=True, validator=check.field(check.boolean)
    )
    reverse: bool = attrs.field(default=False, kw_only=True, validator=check.field(check.boolean))

    def _states(self) -> tuple[Shape, ...]:
        return self.cell.state_shapes()

    def output_shape(self, input_shape: Shape) -> Any:
        (time, _), has_mask = _parse_shapes(self, input_shape, self._states())
        seq: Shape = (time, self.cell.units) if self.return_sequences else (self.cell.units,)
        head = (seq, (time,)) if self.return_sequences and has_mask else (seq,)
        out = (*head, *self._states()) if self.return_state else head
        return out if len(out) > 1 else out[0]

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> CellParams:
        (_, features), _ = _parse_shapes(self, input_shape, self._states())
        return self.cell.init_cell(rng, features, dtype=dtype)

    def _run(
        self, params: Params, inputs: _Inputs, *, train: bool, rng: RngArg = None
    ) -> tuple[tuple[Any, ...], State, _ScanCache]:
        """(the outputs before the state, the final state, the scan's cache)."""
        seq, final, cache = _scan(
            self.cell,
            params,
            inputs,
            train=train,
            reverse=self.reverse,
            sequences=self.return_sequences,
            rng=rng,
        )
        return _head(inputs, seq, self.return_sequences), final, cache

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        inputs = _parse_inputs(self, x, self._states())
        out, final, cache = self._run(params, inputs, train=train, rng=rng)
        if self.return_state:
            out = (*out, *final)
        return (out if len(out) > 1 else out[0]), state, (inputs, cache)

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        inputs, scan_cache = cache
        n_head = len(_head(inputs, None, self.return_sequences))
        head, d_state = _split_dy(dy, n_head, len(self._states()), self.return_state)
        grads, dx, ds = _scan_backward(
            self.cell, params, scan_cache, head[0], d_state, need_dx=need_dx
        )
        return grads, (_input_grads(inputs, dx, ds) if dx is not None else None)

    # -- for generation: explicit state in, final state out

    def scan(
        self,
        params: CellParams,
        x: Any,
        state: State | None = None,
        *,
        train: bool = False,
        rng: RngArg = None,
    ) -> tuple[Any, State]:
        """``(outputs, final state)`` for ``x`` or ``(x, mask)`` from ``state`` (zeros when
        None): the outputs as the layer gives them without return_state."""
        inputs = _parse_inputs(self, x, self._states())
        inputs = inputs._replace(state=None if state is None else tuple(state))
        out, final, _ = self._run(params, inputs, train=train, rng=rng)
        return (out if len(out) > 1 else out[0]), final

    def step(self, params: CellParams, state: State | None, x_t: Any) -> tuple[np.ndarray, State]:
        """One step: ``x_t`` ``(batch, features)`` -> ``(h, new state)``, ``h``
        ``(batch, units)``. Inference mode."""
        x_t = as_input(x_t, self, min_ndim=2)
        inputs = _Inputs(x_t[:, None, :], None, None if state is None else tuple(state))
        out, final, _ = _scan(
            self.cell, params, inputs, train=False, reverse=False, sequences=False
        )
        return out, final


_RNN_KEYS = ("return_sequences", "return_state", "reverse")


def _with_cell(cell_class: type[Cell], units: int, kwargs: dict[str, Any]) -> RNN:
    rnn = {k: kwargs.pop(k) for k in _RNN_KEYS if k in kwargs}
    return RNN(cell_class(units, **kwargs), **rnn)


def SimpleRNN(units: int, **kwargs: Any) -> RNN:
    """``RNN(SimpleRNNCell(units, ...), ...)``: the keywords of both."""
    return _with_cell(SimpleRNNCell, units, kwargs)


def LSTM(units: int, **kwargs: Any) -> RNN:
    """``RNN(LSTMCell(units, ...), ...)``: the keywords of both."""
    return _with_cell(LSTMCell, units, kwargs)


def GRU(units: int, **kwargs: Any) -> RNN:
    """``RNN(GRUCell(units, ...), ...)``: the keywords of both."""
    return _with_cell(GRUCell, units, kwargs)


class BidirectionalParams(NamedTuple):
    forward: CellParams
    backward: CellParams


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@attrs.frozen(repr=False)
class Bidirectional(Layer):
    """``layer`` (an RNN) run forwards and, with its own params, backwards; outputs merged
    by ``merge_mode``: ``"concat"`` (last axis: forward's units, then backward's),
    ``"sum"``, ``"mul"``, ``"ave"``, or None for the pair ``(forward, backward)``.

    Inputs as RNN's; an initial state is the forward copy's then the backward copy's,
    flat: ``(h_fw, c_fw, h_bw, c_bw)`` for LSTM. Outputs: the merged outputs, the mask
    with return_sequences given one, then with return_state both final states, flat
    (Keras' order). Both copies see the mask. Params: :class:`BidirectionalParams`.
    """

    layer: RNN = attrs.field(validator=attrs.validators.instance_of(RNN))
    merge_mode: str | None = attrs.field(
        default="concat", converter=lambda v: check.choice("merge_mode", v, MERGE_MODES)
    )

    @property
    def _copies(self) -> tuple[RNN, RNN]:
        return self.layer, attrs.evolve(self.layer, reverse=not self.layer.reverse)

    def _states(self) -> tuple[Shape, ...]:
        return self.layer.cell.state_shapes() * 2

    def output_shape(self, input_shape: Shape) -> Any:
        (time, _), has_mask = _parse_shapes(self, input_shape, self._states())
        units = self.layer.cell.units
        sequences = self.layer.return_sequences
        width = 2 * units if self.merge_mode == "concat" else units
        seq: Shape = (time, width) if sequences else (width,)
        if self.merge_mode is None:
            one: Shape = (time, units) if sequences else (units,)
            head: tuple[Shape, ...] = (one, one)
        else:
            head = (seq,)
        if sequences and has_mask:
            head = (*head, (time,))
        out = (*head, *self._states()) if self.layer.return_state else head
        return out if len(out) > 1 else out[0]

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> BidirectionalParams:
        (_, features), _ = _parse_shapes(self, input_shape, self._states())
        f_rng, b_rng = split(rng, 2)
        cell = self.layer.cell
        return BidirectionalParams(
            cell.init_cell(f_rng, features, dtype=dtype),
            cell.init_cell(b_rng, features, dtype=dtype),
        )

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[Any, LayerState, Cache]:
        if not isinstance(params, BidirectionalParams):
            raise TypeError(
                f"{self!r} expects its params as the BidirectionalParams that "
                f"layer.init(rng, input_shape) returns, got {type(params).__name__}"
            )
        inputs = _parse_inputs(self, x, self._states())
        n = len(self.layer.cell.state_shapes())
        key = as_key(rng)
        runs = []
        for i, (copy, p) in enumerate(zip(self._copies, params)):
            part = inputs._replace(
                state=None if inputs.state is None else inputs.state[i * n : (i + 1) * n]
            )
            runs.append(
                _scan(
                    copy.cell,
                    p,
                    part,
                    train=train,
                    reverse=copy.reverse,
                    sequences=copy.return_sequences,
                    rng=None if key is None else key.fold_in(i),
                )
            )
        (a, fa, ca), (b, fb, cb) = runs
        out = _head(inputs, self._merge(a, b), self.layer.return_sequences)
        if self.layer.return_state:
            out = (*out, *fa, *fb)
        return (out if len(out) > 1 else out[0]), state, (inputs, ca, cb, a, b)

    def _merge(self, a: np.ndarray, b: np.ndarray) -> Any:
        mode = self.merge_mode
        if mode == "concat":
            return np.concatenate([a, b], axis=-1)
        if mode == "sum":
            return a + b
        if mode == "mul":
            return a * b
        if mode == "ave":
            return (a + b) / 2
        return (a, b)

    def _unmerge(self, dy: tuple, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mode, d = self.merge_mode, dy[0]
        if mode is None:
            return dy[0], dy[1]
        if mode == "concat":
            return d[..., : a.shape[-1]], d[..., a.shape[-1] :]
        if mode == "mul":
            return d * b, d * a
        if mode == "ave":
            return d / 2, d / 2
        return d, d

    def backward(
        self, params: Params, cache: Cache, dy: Any, *, need_dx: bool = True
    ) -> tuple[Params, Any]:
        inputs, ca, cb, a, b = cache
        seq = (a, b) if self.merge_mode is None else a
        n_head = len(_head(inputs, seq, self.layer.return_sequences))
        head, d_state = _split_dy(dy, n_head, len(self._states()), self.layer.return_state)
        da, db = self._unmerge(head, a, b)
        n = len(self.layer.cell.state_shapes())
        cell = self.layer.cell
        ga, dxa, dsa = _scan_backward(
            cell, params.forward, ca, da, None if d_state is None else d_state[:n], need_dx=need_dx
        )
        gb, dxb, dsb = _scan_backward(
            cell, params.backward, cb, db, None if d_state is None else d_state[n:], need_dx=need_dx
        )
        grads = BidirectionalParams(ga, gb)
        if dxa is None or dxb is None:
            return grads, None
        return grads, _input_grads(inputs, dxa + dxb, (*dsa, *dsb))
