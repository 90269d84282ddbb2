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


class _Probabilistic(KerasLoss):
    """A cross-entropy on probabilities, or with ``from_logits=True`` on logits."""

    on_logits: losses.Loss
    on_probabilities: losses.Loss

    def __init__(self, from_logits: bool = False, **unused: Any) -> None:
        super().__init__(from_logits=check.boolean("from_logits", from_logits))

    def _make(self, from_logits: bool) -> losses.Loss:
        return self.on_logits if from_logits else self.on_probabilities


class CategoricalCrossentropy(_Probabilistic):
    """Cross-entropy with one-hot (or probability) target rows."""

    on_logits = losses.softmax_cross_entropy
    on_probabilities = losses.categorical_cross_entropy


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy with integer class labels (``(N,)`` or ``(N, 1)``, ints or whole floats)."""

    sparse = True


class BinaryCrossentropy(_Probabilistic):
    """Binary cross-entropy with 0/1 (or probability) targets."""

    on_logits = losses.sigmoid_binary_cross_entropy
    on_probabilities = losses.binary_cross_entropy


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
