"""``to_categorical`` and ``pad_sequences``, as ``keras.utils`` has them (and Keras 1/2's
``np_utils`` too); ``PyDataset`` and its older name ``Sequence`` (:mod:`.data`);
``set_random_seed`` (:mod:`.seeding`) and ``plot_model``
(:mod:`.plotting`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from funcnn import datasets
from funcnn.keras.data import PyDataset, Sequence
from funcnn.keras.plotting import plot_model
from funcnn.keras.seeding import set_random_seed

__all__ = [
    "PyDataset",
    "Sequence",
    "class_labels",
    "np_utils",
    "pad_sequences",
    "plot_model",
    "set_random_seed",
    "to_categorical",
]


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


def pad_sequences(
    sequences: Any,
    maxlen: int | None = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float = 0.0,
) -> np.ndarray:
    """Keras' ``pad_sequences``: lists of ids to one ``(N, maxlen)`` array. Longer ones
    lose their start (``truncating="pre"``) or end ("post"); shorter ones get ``value``
    before (``padding="pre"``, Keras' default) or after ("post"). ``maxlen`` defaults to
    the longest."""
    for name, where in (("padding", padding), ("truncating", truncating)):
        if where not in ("pre", "post"):
            raise ValueError(f"{name} must be 'pre' or 'post', got {where!r}")
    rows = [list(np.asarray(s).reshape(-1)) for s in sequences]
    if maxlen is None:
        maxlen = max((len(r) for r in rows), default=0)
    maxlen = int(maxlen)
    out = np.full((len(rows), maxlen), value, dtype=dtype)
    for i, row in enumerate(rows):
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if maxlen and kept:
            if padding == "pre":
                out[i, maxlen - len(kept) :] = kept
            else:
                out[i, : len(kept)] = kept
    return out
