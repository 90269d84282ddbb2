"""The architecture check: the params fit the model, layer by layer, on one example.

With an ``input_shape``, save and load check that the params (and state) fit the
architecture (:func:`check_fit`): shape inference first, then each layer (serial,
parallel and Graph opened) runs one zero example with the file's params and state, and
its params have the structure of a fresh init. What each layer would allocate (its
input, output and windows, from shape inference) is counted against the load budget
before anything runs. And save refuses a model that keeps state without its state
(:func:`check_state`): that file could not predict.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import attrs
import numpy as np

from funcnn import layers as L
from funcnn import tree
from funcnn.io.files import Budget
from funcnn.layers.base import Layer, as_shape, is_shape_tuple

_OFFSET_BYTES = 256
"""What a window offset costs, in bytes: pools and one-channel convolutions loop over them."""


@attrs.frozen
class _Part:
    """One layer of a model (combinators opened), with its params, state and shapes."""

    where: str
    layer: Layer
    params: Any
    state: Any
    input_shape: Any
    output_shape: Any


def _parts(layer: Layer, params: Any, state: Any, input_shape: Any, where: str) -> list[_Part]:
    """The layers of ``layer``, serial, parallel and Graph opened, each with its params, state
    and shapes (shape inference only: nothing is allocated)."""
    if not isinstance(layer, (L.Serial, L.Parallel, L.Graph)):
        return [_Part(where, layer, params, state, input_shape, layer.output_shape(input_shape))]
    n = len(layer.layers)
    shapes = layer.child_shapes(input_shape)
    states = (None,) * n if state is None else state
    for what, value in (("params", params), ("state", states)):
        if not isinstance(value, tuple) or len(value) != n:
            got = f"{len(value)} entries" if isinstance(value, (tuple, list)) else "a "
            got += "" if isinstance(value, (tuple, list)) else type(value).__name__
            raise ValueError(
                f"the params do not fit the architecture: {where} has {n} layers, its {what} {got}"
            )
    return [
        part
        for i, (child, p, s, shape) in enumerate(zip(layer.layers, params, states, shapes))
        for part in _parts(child, p, s, shape, f"{where}.layers[{i}]")
    ]


def _shape_list(shape: Any) -> list[tuple[int, ...]]:
    return list(shape) if is_shape_tuple(shape) else [shape]


def _window(layer: Layer) -> tuple[tuple[int, ...], ...] | None:
    """(kernel, strides, dilation) of a layer that gathers a window of its input for each
    output position (Conv2D, Conv1D and the pools: their kernel_size or pool_size,
    strides and dilation fields), or None."""
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if kernel is None:
        return None

    def ints(value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
        value = default if value is None else value
        return tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))

    try:
        sizes = ints(kernel, ())
        strides = ints(getattr(layer, "strides", None), sizes)
        found = (sizes, strides, ints(getattr(layer, "dilation", None), (1,) * len(sizes)))
    except (TypeError, ValueError):
        return None
    if len({len(t) for t in found}) != 1 or min(v for t in found for v in t) < 1:
        return None
    return found


def _cost(part: _Part, itemsize: int) -> int:
    """An upper bound on the bytes ``part`` allocates to run one example: its input, its
    output and temporaries as large, a fresh init of its params, and, for a layer with a
    window, one window of the (padded) input per output position, and its loop over the
    window's offsets."""
    ins, outs = _shape_list(part.input_shape), _shape_list(part.output_shape)
    elements = sum(map(math.prod, ins)) + 3 * sum(map(math.prod, outs))
    elements += sum(a.size for a in tree.leaves(part.params) if isinstance(a, np.ndarray))
    window = _window(part.layer)
    offsets = 0
    if window is not None and len(ins) == len(outs) == 1 and len(outs[0]) == len(window[0]) + 1:
        (kernel, strides, dilation), out, channels = window, outs[0], ins[0][-1]
        offsets = math.prod(kernel)
        elements += math.prod(out[:-1]) * offsets * channels  # the windows (im2col)
        padded = zip(out[:-1], strides, dilation, kernel)
        elements += math.prod(o * s + d * k for o, s, d, k in padded) * channels
    return elements * itemsize + offsets * _OFFSET_BYTES


def check_fit(
    model: Layer,
    params: Any,
    state: Any,
    input_shape: Any,
    budget: Budget,
    *,
    run_layers: bool = True,
) -> None:
    """The params fit the architecture: shape inference first, then each layer (combinators
    opened) runs one zero example with the file's params and state, and its params have
    the structure of a fresh init. What each layer would allocate is counted against
    ``budget`` before anything runs. With ``run_layers=False`` no layer runs: only the
    params' types, shape inference and the budget are checked."""
    for leaf in tree.leaves(params):
        if not isinstance(leaf, np.ndarray) or leaf.dtype.kind != "f":
            raise ValueError(
                f"the params must be float arrays, got a {type(leaf).__name__}"
                + (f" of dtype {leaf.dtype}" if isinstance(leaf, np.ndarray) else "")
            )
    dtype = next((a.dtype for a in tree.leaves(params)), np.dtype(np.float32))
    for shape in _shape_list(input_shape):
        as_shape(shape)
    budget.check(
        sum(map(math.prod, _shape_list(input_shape))) * dtype.itemsize,
        f"its input shape {input_shape} is larger than such a file can serve: one example",
    )
    model.output_shape(input_shape)  # a wiring error, named for the whole model
    parts = _parts(model, params, state if tree.leaves(state) else None, input_shape, "model")
    for part in parts:
        budget.check(_cost(part, dtype.itemsize), f"checking {part.where} ({part.layer!r})")
    for part in parts if run_layers else ():
        _check_part(part, dtype)


def _check_part(part: _Part, dtype: np.dtype) -> None:
    """One layer runs a zero example with its params and gives its inferred output shape.
    It runs in training mode, whose products take the example as it is (inference products
    pad it to a block of up to ``linalg.LEAST_CAP`` rows, which :func:`_cost` does not count)."""
    zeros = [np.zeros((1, *shape), dtype) for shape in _shape_list(part.input_shape)]
    x = tuple(zeros) if is_shape_tuple(part.input_shape) else zeros[0]
    name = f"{part.where} ({part.layer!r})"
    try:
        y, _ = part.layer.apply_with_state(part.params, part.state, x, train=True, rng=0)
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"the params do not fit the architecture: {name}: {e}") from e
    got = tuple(tuple(a.shape[1:]) for a in y) if isinstance(y, tuple) else tuple(y.shape[1:])
    if got != part.output_shape:
        raise ValueError(
            f"the params do not fit the architecture: {name} gives {got}, not {part.output_shape}"
        )
    diff = tree.structure_difference(part.layer.init(0, part.input_shape, dtype=dtype), part.params)
    if diff is not None:
        raise ValueError(f"the params do not fit the architecture: {name} {diff}")


# ---------------------------------------------------------------- state


def _stateful_layers(layer: Layer) -> list[Layer]:
    """The layers inside ``layer`` that define their own ``init_state``, found without an
    input shape: a layer with layers in its fields (serial, parallel, Graph) keeps the
    state of its children, any other keeps state if it defines ``init_state``."""
    children = [
        child
        for field in (attrs.fields(type(layer)) if attrs.has(type(layer)) else ())
        for value in [getattr(layer, field.name)]
        for child in (value if isinstance(value, (tuple, list)) else (value,))
        if isinstance(child, Layer)
    ]
    if children:
        return [found for child in children for found in _stateful_layers(child)]
    return [layer] if type(layer).init_state is not Layer.init_state else []


def check_state(model: Layer, state: Any, input_shape: Any) -> None:
    """Refuse to save a model that keeps state without its state: that file could not predict."""
    if tree.leaves(state):
        return
    keepers = _stateful_layers(model)
    keeps = bool(keepers)
    if input_shape is not None:  # the model itself says, for this shape
        with contextlib.suppress(TypeError, ValueError):  # the fit check names a bad shape
            keeps = bool(tree.leaves(model.init_state(input_shape)))
    if keeps:
        names = ", ".join(dict.fromkeys(repr(layer) for layer in keepers)) or repr(model)
        raise ValueError(
            f"this model keeps state ({names}): pass state=..., e.g. save(path, model, params, "
            "state=state), with the state fit returned (fit(...).state) or "
            "model.init_state(input_shape); without it the file cannot predict"
        )
