"""Keras' loss objects: ``SparseCategoricalCrossentropy(from_logits=True)`` and the rest,
each naming the funcnn loss it is (``from_logits=False`` losses take probabilities: the
output layer's Softmax or Sigmoid, which training fuses into the loss as the strings do).
"""

from __future__ import annotations

from typing import Any

from funcnn import losses
from funcnn import validate as check

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Huber",
    "KerasLoss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
]


class KerasLoss:
    """A Keras loss: the funcnn loss it computes, and whether its targets are class labels."""

    sparse = False

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.loss = self._make(**config)

    def _make(self, *args: Any, **kwargs: Any) -> losses.Loss:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        """Keras' argument order: ``loss(y_true, y_pred)``."""
        return self.loss(y_pred, y_true)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({settings})"


def _logits(from_logits: Any) -> bool:
    return check.boolean("from_logits", from_logits)


class SparseCategoricalCrossentropy(KerasLoss):
    """Cross-entropy with integer class labels (``(N,)`` or ``(N, 1)``, ints or whole floats)."""

    sparse = True

    def __init__(self, from_logits: bool = False, **unused: Any) -> None:
        super().__init__(from_logits=from_logits)

    def _make(self, from_logits: bool) -> losses.Loss:
        return (
            losses.softmax_cross_entropy
            if _logits(from_logits)
            else losses.categorical_cross_entropy
        )


class CategoricalCrossentropy(KerasLoss):
    """Cross-entropy with one-hot (or probability) target rows."""

    def __init__(self, from_logits: bool = False, **unused: Any) -> None:
        super().__init__(from_logits=from_logits)

    def _make(self, from_logits: bool) -> losses.Loss:
        return (
            losses.softmax_cross_entropy
            if _logits(from_logits)
            else losses.categorical_cross_entropy
        )


class BinaryCrossentropy(KerasLoss):
    """Binary cross-entropy with 0/1 (or probability) targets."""

    def __init__(self, from_logits: bool = False, **unused: Any) -> None:
        super().__init__(from_logits=from_logits)

    def _make(self, from_logits: bool) -> losses.Loss:
        return (
            losses.sigmoid_binary_cross_entropy
            if _logits(from_logits)
            else losses.binary_cross_entropy
        )


class MeanSquaredError(KerasLoss):
    def __init__(self, **unused: Any) -> None:
        super().__init__()

    def _make(self) -> losses.Loss:
        return losses.mean_squared_error


class MeanAbsoluteError(KerasLoss):
    def __init__(self, **unused: Any) -> None:
        super().__init__()

    def _make(self) -> losses.Loss:
        return losses.mean_absolute_error


class Huber(KerasLoss):
    def __init__(self, delta: float = 1.0, **unused: Any) -> None:
        super().__init__(delta=delta)

    def _make(self, delta: float) -> losses.Loss:
        return losses.huber(delta)


CLASSES = {
    c.__name__: c
    for c in (
        SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy,
        MeanSquaredError, MeanAbsoluteError, Huber,
    )
}  # fmt: skip
