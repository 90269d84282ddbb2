"""Keras' ``model.summary()`` table: layers, output shapes, parameter counts."""

from __future__ import annotations

from typing import Any

from funcnn import tree
from funcnn.keras import freezing
from funcnn.keras.base import symbolic_shape
from funcnn.layers.masking import is_masked_shape


def _shape(shape: Any) -> str:
    if is_masked_shape(shape):  # a masked sequence: Keras shows the values' shape
        shape = shape[0]
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        return ", ".join(str((None, *s)) for s in shape)
    return str((None, *shape))


def table(model: Any) -> str:
    """The summary of a built Keras-style model as text."""
    core = model.model

    def layer_shapes(input_shape: Any) -> tuple[Any, ...]:
        if model._wiring is None:
            return tuple(core.input_shapes(input_shape)[1:])
        return tuple(core._shapes(input_shape)[core.inputs :])

    # each layer's output shape, None for a length that follows an input's None length
    shapes = symbolic_shape(layer_shapes, model.input_shape, "summary")
    states = model.state if model.state is not None else (None,) * len(model.layers)
    rows = [("Layer (type)", "Output Shape", "Param #")]
    for spec, shape, p, s in zip(model.layers, shapes, model.params, states):
        count = tree.size(p) + (0 if s is None else tree.size(s))
        rows.append((f"{spec.name} ({type(spec).__name__})", _shape(shape), f"{count:,}"))
    widths = [max(len(r[c]) for r in rows) + 2 for c in range(3)]
    rule = "=" * sum(widths)
    lines = [f'Model: "{model.name}" (input shape {_shape(model.input_shape)})', rule]
    lines.append("".join(cell.ljust(w) for cell, w in zip(rows[0], widths)))
    lines.append(rule)
    for row in rows[1:]:
        lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)))
    mask = freezing.trainable_mask(model.params, model._trainable_flags())  # nested: per layer
    trainable = sum(
        int(a.size) for a, on in zip(tree.leaves(model.params), tree.leaves(mask)) if on
    )
    frozen = tree.size(model.params) - trainable  # frozen layers' weights, and the states
    frozen += 0 if model.state is None else tree.size(model.state)
    lines += [
        rule,
        f"Total params: {trainable + frozen:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(lines)
