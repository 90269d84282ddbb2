"""Keras' loss objects: ``SparseCategoricalCrossentropy(from_logits=True)`` and the rest,
each naming the funcnn loss it is (``from_logits=False`` losses take probabilities: the
output layer's Softmax or Sigmoid, which training fuses into the loss as the strings do).

Keras' function forms are here too: ``categorical_crossentropy(y_true, y_pred)`` and the
others give one value per sample, as Keras 3's do, and ``compile(loss=...)`` takes the
ones that name a funcnn loss as their name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcnn import losses
from funcnn import validate as check
from funcnn.keras import metrics as keras_metrics
from funcnn.keras.metrics import (
    binary_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    hinge,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)

__all__ = [
    "FUNCTIONS",
    "binary_crossentropy",
    "categorical_crossentropy",
    "categorical_hinge",
    "cosine_similarity",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mae",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
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

mse, mae = mean_squared_error, mean_absolute_error


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> np.ndarray:
    """Keras' ``huber(y_true, y_pred, delta=1.0)``: per sample, the mean over the last axis
    of ``0.5 e**2`` where ``|e| <= delta`` and ``delta |e| - 0.5 delta**2`` elsewhere
    (``e = y_pred - y_true``)."""
    d = check.non_negative("delta", delta)
    t, p = keras_metrics._pair(y_true, y_pred)
    error = np.abs(p - t)
    return keras_metrics._last_mean(np.where(error <= d, 0.5 * error**2, d * error - 0.5 * d**2))


def cosine_similarity(y_true: Any, y_pred: Any) -> Any:
    """Minus the cosine of the angle between ``y_true`` and ``y_pred`` (a loss: Keras'
    sign, the metric's negative)."""
    return -keras_metrics.cosine_similarity(y_true, y_pred)


# The function forms compile takes as a loss: the name of the funcnn loss each one is.
FUNCTIONS: dict[Any, str] = {
    mean_squared_error: "mean_squared_error",
    mean_absolute_error: "mean_absolute_error",
    binary_crossentropy: "binary_crossentropy",
    categorical_crossentropy: "categorical_crossentropy",
    sparse_categorical_crossentropy: "sparse_categorical_crossentropy",
    huber: "huber",
}
