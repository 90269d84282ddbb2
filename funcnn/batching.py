"""Data as ``fit``, ``predict`` and ``evaluate`` take it: batches of samples, and their rows.

``Data`` is one array with a leading sample axis, or a tuple of them (several inputs or
targets); these functions treat both alike. ``fit`` splits off its validation data
here (:func:`split_validation`) and cuts its epochs into mini-batches (:func:`batches`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

Data = Any  # one array with a leading sample axis, or a tuple of them (several inputs/targets)


def as_batch(x: Any, name: str) -> Data:
    """``x`` as an array (or, for several inputs or targets, a tuple of arrays) with a
    leading sample axis; every array has the same number of samples."""
    if isinstance(x, tuple) or (
        isinstance(x, list) and x and all(isinstance(a, np.ndarray) for a in x)
    ):  # (x1, x2) or Keras' [x1, x2]: several inputs
        if not x:
            raise ValueError(f"{name} is an empty tuple: give one array per input")
        arrays = tuple(as_batch(a, f"{name}[{i}]") for i, a in enumerate(x))
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            sizes = ", ".join(str(len(a)) for a in arrays)
            raise ValueError(f"the arrays of {name} differ in their numbers of samples: {sizes}")
        return arrays
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.ndim < 1 or len(a) == 0:
        raise ValueError(
            f"{name} must be a non-empty batch with a leading sample axis, got {a.shape}"
        )
    return a


def count(data: Data) -> int:
    """The number of samples."""
    return len(data[0]) if isinstance(data, tuple) else len(data)


def rows(data: Data, index: Any) -> Data:
    """The samples at ``index`` (a slice or an index array) of each array."""
    return tuple(a[index] for a in data) if isinstance(data, tuple) else data[index]


def join(pieces: list[Data]) -> Data:
    """Pieces of rows back together, in order."""
    if len(pieces) == 1:
        return pieces[0]
    if isinstance(pieces[0], tuple):
        return tuple(np.concatenate(column) for column in zip(*pieces))
    return np.concatenate(pieces)


def same_count(x: Data, y: Data, names: tuple[str, str] = ("x", "y")) -> None:
    if count(x) != count(y):
        raise ValueError(f"{names[0]} has {count(x)} samples but {names[1]} has {count(y)}")


def split_validation(
    x: Data, y: Data, validation_split: float, validation_data: Any
) -> tuple[Data, Data, tuple[Data, Data] | None]:
    """The training data and the validation pair (or None)."""
    if validation_data is not None:
        if validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        xv, yv = as_batch(validation_data[0], "x_val"), as_batch(validation_data[1], "y_val")
        same_count(xv, yv, ("x_val", "y_val"))
        return x, y, (xv, yv)
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float, np.floating))
        or not 0 <= validation_split < 1
    ):
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if not validation_split:
        return x, y, None
    n = count(x)
    cut = int(n * (1 - validation_split))  # the LAST samples, before any shuffling (Keras)
    if cut < 1 or cut >= n:
        raise ValueError(
            f"validation_split={validation_split} leaves {cut} training and {n - cut} "
            f"validation samples out of {n}"
        )
    train_y, val_y = rows(y, slice(None, cut)), rows(y, slice(cut, None))
    warn_if_one_class(train_y, val_y, validation_split)
    return rows(x, slice(None, cut)), train_y, (rows(x, slice(cut, None)), val_y)


def classes(y: Data) -> np.ndarray | None:
    """The class of each sample, where ``y`` clearly holds classes (integer labels or
    one-hot rows); None for anything else (regression targets, several targets)."""
    if isinstance(y, tuple):
        return None
    if y.dtype.kind in "iub" and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        return y.reshape(-1)
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1):
        return y.argmax(axis=1)
    return None


def warn_if_one_class(train_y: Data, val_y: Data, validation_split: float) -> None:
    """Data sorted by class (the MNIST sample is) would validate on one class: say so."""
    train, val = classes(train_y), classes(val_y)
    if train is None or val is None:
        return
    held_out = np.unique(val)
    if len(held_out) == 1 and len(np.unique(train)) > 1:
        warnings.warn(
            f"validation_split={validation_split} holds out the last {len(val)} samples, "
            f"and every one of them is of class {held_out[0]}: the data look sorted by "
            "class. Shuffle them first (e.g. funcnn.datasets.train_test_split, or "
            "x[p], y[p] for a seeded permutation p), or pass validation_data",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the function calling this point at
    the first caller outside funcnn (the user's line, not fit's or the Keras facade's)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("funcnn."):
        frame, level = frame.f_back, level + 1
    return level


def batches(n: int, batch_size: int, order: np.ndarray | None) -> Iterator[Any]:
    """The index (a slice, or a piece of the shuffled order) of each mini-batch."""
    for start in range(0, n, batch_size):
        yield (
            slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        )
