"""Keras' ``model.summary()`` table: layers, output shapes, parameter counts."""

from __future__ import annotations

from typing import Any

from funcnn import tree
from funcnn.layers.base import Layer
from funcnn.types import LayerState, Params, Shape


def table(layers: list[Layer], input_shape: Shape, params: Params, state: LayerState) -> str:
    """The summary of a serial stack of ``layers`` as text."""
    rows = [("Layer (type)", "Output Shape", "Param #")]
    shape: Any = input_shape
    for i, (layer, p) in enumerate(zip(layers, params)):
        shape = layer.output_shape(shape)
        rows.append((f"{i}: {layer!r}", str((None, *shape)), f"{tree.size(p):,}"))
    widths = [max(len(r[c]) for r in rows) + 2 for c in range(3)]
    rule = "=" * sum(widths)
    lines = [f'Model: "sequential" (input shape {(None, *input_shape)})', rule]
    lines.append("".join(cell.ljust(w) for cell, w in zip(rows[0], widths)))
    lines.append(rule)
    for row in rows[1:]:
        lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)))
    total = tree.size(params)
    frozen = 0 if state is None else tree.size(state)
    lines += [
        rule,
        f"Total params: {total + frozen:,}",
        f"Trainable params: {total:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(lines)
