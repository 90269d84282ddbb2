"""``to_categorical``, as ``keras.utils`` has it (and Keras 1/2's ``np_utils`` too)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from funcnn import datasets

__all__ = ["class_labels", "np_utils", "to_categorical"]


def class_labels(y: Any) -> np.ndarray:
    """Integer class labels as funcnn takes them from Keras' forms: ``(N, 1)`` becomes
    ``(N,)``, whole floats become ints; fractional values are an error."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ValueError("class labels must be integers; got fractional values")
        labels = labels.astype(np.int64)
    return labels


def to_categorical(y: Any, num_classes: int | None = None, dtype: Any = "float32") -> np.ndarray:
    """One-hot rows ``(N, num_classes)`` for integer labels ``(N,)`` or ``(N, 1)``
    (whole floats too, as Keras takes them); ``num_classes`` defaults to ``max(y) + 1``."""
    return datasets.one_hot(class_labels(y), num_classes, dtype=dtype)


np_utils = SimpleNamespace(to_categorical=to_categorical)
"""Keras 1 and 2's ``keras.utils.np_utils.to_categorical``."""
