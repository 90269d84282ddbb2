"""Masks through a Keras model, as Keras passes them: each layer's core chosen for the
input it gets (a masked sequence ``(values, mask)`` or not; see ``KerasLayer.masking``),
and what a masked output changes in training (the loss and metrics over the real steps)
and in ``predict`` (the values alone, as Keras returns them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from funcnn import losses
from funcnn import metrics as metrics_lib
from funcnn.keras.base import KerasLayer
from funcnn.keras.config import Wiring
from funcnn.layers.base import Layer, is_shape_tuple
from funcnn.layers.masking import is_masked_shape


def cores(specs: Sequence[KerasLayer], wiring: Wiring | None, input_shape: Any) -> list[Layer]:
    """Each layer's core for the input it gets. Without an input shape, or where a shape
    does not follow (the model's own check names the layer then), the plain cores."""
    plain = [spec.core() for spec in specs]
    if input_shape is None:
        return plain
    if wiring is None:
        parents: Sequence[tuple[int, ...]] = [(i,) for i in range(len(specs))]
        shapes = [input_shape]
    else:
        parents, inputs, _ = wiring
        shapes = list(input_shape) if inputs > 1 and is_shape_tuple(input_shape) else [input_shape]
    found: list[Layer] = []
    for spec, ids in zip(specs, parents):
        given = [shapes[i] for i in ids]
        try:
            if len(given) > 1:
                core = spec.core_for_several(tuple(given))
                shapes.append(core.output_shape(tuple(given)))
            else:
                core = spec.core_for(is_masked_shape(given[0]))
                shapes.append(core.output_shape(given[0]))
        except (TypeError, ValueError, IndexError):
            if len(given) > 1 and any(is_masked_shape(s) for s in given):
                raise
            return found + plain[len(found) :]
        found.append(core)
    return found


def is_masked_output(model: Layer, input_shape: Any) -> bool:
    """Whether ``model`` outputs a masked sequence ``(values, mask)``."""
    try:
        return is_masked_shape(model.output_shape(input_shape))
    except (TypeError, ValueError):
        return False


def masked_metric(metric: metrics_lib.Metric) -> metrics_lib.Metric:
    """``metric`` over the real steps of a masked output (Keras weighs metrics by the
    mask), the steps as rows."""

    def over_real_steps(pred: Any, target: Any) -> float:
        values, mask = pred
        return metric(values[mask], target[mask])

    return metrics_lib.Metric(metric.name, over_real_steps)


def scoring(
    loss: losses.Loss, metrics: list[metrics_lib.Metric]
) -> tuple[losses.Loss, list[metrics_lib.Metric]]:
    """The loss and metrics of a model whose output is a masked sequence: the mean over
    the real steps (:func:`funcnn.losses.masked`)."""
    return losses.masked(loss), [masked_metric(m) for m in metrics]


def values(pred: Any) -> Any:
    """A masked output's values (what Keras' ``predict`` returns)."""
    return pred[0]
