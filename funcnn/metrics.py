"""Metrics ``metric(pred, target) -> float`` (or an array, per class).

Predictions first, as for losses (``loss(pred, target)``).

Class predictions come from ``pred`` as follows: a single column (or a vector)
is a binary probability thresholded at ``threshold`` (0.5; use 0.0 for logits);
several columns are scores whose argmax is the class. ``target`` holds integer
labels, or one-hot rows (argmax), or 0/1 for binary tasks.

Accuracy is the fraction of SAMPLES classified correctly, never the fraction of
per-class binary decisions (which inflates it: with 10 classes, predicting
nothing right still scores 80% that way).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import numpy as np

from funcnn import batching
from funcnn import validate as check


def _arrays(pred: Any, target: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(target), np.asarray(pred)
    for a, what in ((p, "pred"), (t, "target")):
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{name}: {what} must be numeric, got dtype {a.dtype}")
    for a, what in ((p, "pred"), (t, "target")):
        if a.ndim == 0:
            raise ValueError(f"{name}: {what} must have a sample axis, got a scalar")
    if len(t) != len(p):
        raise ValueError(f"{name}: pred has {len(p)} samples, target has {len(t)}")
    if len(p) == 0:
        raise ValueError(f"{name}: no samples to score (pred has shape {p.shape})")
    return t, p


def _no_nan(p: np.ndarray, name: str) -> None:
    if p.dtype.kind == "f" and np.isnan(p).any():
        raise ValueError(f"{name}: the predictions hold NaN, which has no class")


def _labels(t: np.ndarray, classes: int, name: str) -> np.ndarray:
    """Integer class labels in [0, classes) from ``t`` (ints, or floats that are whole)."""
    if t.dtype.kind not in "iub" and not np.all(t == np.round(t)):
        raise ValueError(f"{name}: class labels must be integers")
    labels = t.reshape(-1).astype(np.int64)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"{name}: class labels must be in [0, {classes}) for {classes} score columns, "
            f"got labels from {low} to {high}"
        )
    return labels


def _binary(p: np.ndarray) -> bool:
    return p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1)


def class_predictions(
    pred: Any, target: Any, threshold: float = 0.5, name: str = "metric"
) -> tuple[np.ndarray, np.ndarray, int]:
    """(true classes, predicted classes, number of classes) as int vectors."""
    t, p = _arrays(pred, target, name)
    threshold = check.number("threshold", threshold)
    _no_nan(p, name)
    if _binary(p):
        if t.ndim > 2 or (t.ndim == 2 and t.shape[1] != 1):
            raise ValueError(
                f"{name}: binary predictions need (N,) or (N, 1) targets, got {t.shape}"
            )
        predicted = (p.reshape(len(p)) > threshold).astype(np.int64)
        return (t.reshape(len(t)) > 0.5).astype(np.int64), predicted, 2
    classes = p.shape[-1]
    predicted = p.reshape(-1, classes).argmax(axis=1)
    if t.shape == p.shape:
        truth = t.reshape(-1, classes).argmax(axis=1)
    elif t.shape == p.shape[:-1] or (t.shape == (*p.shape[:-1], 1)):  # (N,) or Keras' (N, 1)
        truth = _labels(t, classes, name)
    else:
        raise ValueError(
            f"{name}: expected labels of shape {p.shape[:-1]} or one-hot {p.shape}, got {t.shape}"
        )
    return truth, predicted, classes


def accuracy(pred: Any, target: Any, threshold: float = 0.5) -> float:
    """Fraction of samples whose predicted class equals the true class."""
    truth, predicted, _ = class_predictions(pred, target, threshold, "accuracy")
    return float(np.mean(truth == predicted))


def binary_accuracy(pred: Any, target: Any, threshold: float = 0.5) -> float:
    """Fraction of elements with ``(pred > threshold) == (target > 0.5)`` (multi-label too)."""
    t, p = _arrays(pred, target, "binary_accuracy")
    threshold = check.number("threshold", threshold)
    _no_nan(p, "binary_accuracy")
    if p.size != t.size:
        raise ValueError(f"binary_accuracy: pred {p.shape} and target {t.shape} differ in size")
    return float(np.mean((p.reshape(t.shape) > threshold) == (t > 0.5)))


def top_k_accuracy(pred: Any, target: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores."""
    t, p = _arrays(pred, target, "top_k_accuracy")
    k = check.positive_int("k", k)
    if p.ndim != 2:
        raise ValueError(f"top_k_accuracy needs (N, classes) scores, got {p.shape}")
    _no_nan(p, "top_k_accuracy")
    if t.shape == p.shape:
        truth = t.argmax(axis=1)
    elif t.shape in ((len(p),), (len(p), 1)):
        truth = _labels(t, p.shape[1], "top_k_accuracy")
    else:
        raise ValueError(
            f"top_k_accuracy: expected labels of shape ({len(p)},) or one-hot {p.shape}, "
            f"got {t.shape}"
        )
    top = np.argpartition(-p, min(k, p.shape[1]) - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == truth[:, None], axis=1)))


def confusion_matrix(
    pred: Any, target: Any, num_classes: int | None = None, threshold: float = 0.5
) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    truth, predicted, classes = class_predictions(pred, target, threshold, "confusion_matrix")
    present = max(classes, int(truth.max(initial=0)) + 1)
    if num_classes is None:
        c = present
    else:
        c = check.positive_int("num_classes", num_classes)
        if c < present:
            raise ValueError(f"num_classes is {c}, but the scores and labels hold {present}")
    return np.bincount(truth * c + predicted, minlength=c * c).reshape(c, c)


def _prf(pred: Any, target: Any, average: str | None, threshold: float) -> tuple[Any, Any, Any]:
    cm = confusion_matrix(pred, target, threshold=threshold).astype(np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    # Zero denominators give 0 (sklearn's zero_division=0).
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    if average is None:
        return precision, recall, f1
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    if average == "binary":
        if len(tp) != 2:
            raise ValueError(f"average='binary' needs 2 classes, got {len(tp)}")
        return float(precision[1]), float(recall[1]), float(f1[1])
    raise ValueError(f"average must be 'macro', 'binary' or None, got {average!r}")


def precision(pred: Any, target: Any, average: str | None = "macro", threshold: float = 0.5) -> Any:
    """TP / (TP + FP) per class (``average=None``), their mean ("macro"), or class 1 ("binary")."""
    return _prf(pred, target, average, threshold)[0]


def recall(pred: Any, target: Any, average: str | None = "macro", threshold: float = 0.5) -> Any:
    """TP / (TP + FN) per class, macro-averaged, or for class 1; see :func:`precision`."""
    return _prf(pred, target, average, threshold)[1]


def f1_score(pred: Any, target: Any, average: str | None = "macro", threshold: float = 0.5) -> Any:
    """2 P R / (P + R) per class, then averaged as in :func:`precision`."""
    return _prf(pred, target, average, threshold)[2]


def _regression(pred: Any, target: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _arrays(pred, target, name)
    if t.shape != p.shape:
        if p.ndim == 2 and p.shape[1] == 1 and t.shape == p.shape[:1]:
            t = t.reshape(p.shape)
        else:
            raise ValueError(f"{name}: target shape {t.shape} does not match pred {p.shape}")
    return t.astype(np.float64), p.astype(np.float64)


def mean_squared_error(pred: Any, target: Any) -> float:
    t, p = _regression(pred, target, "mean_squared_error")
    return float(np.mean((p - t) ** 2))


def mean_absolute_error(pred: Any, target: Any) -> float:
    t, p = _regression(pred, target, "mean_absolute_error")
    return float(np.mean(np.abs(p - t)))


def r2_score(pred: Any, target: Any) -> float:
    """1 - SS_res / SS_tot over all outputs together (1 is perfect, 0 predicts the mean)."""
    t, p = _regression(pred, target, "r2_score")
    ss_tot = float(np.sum((t - t.mean(axis=0)) ** 2))
    ss_res = float(np.sum((t - p) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)


class Running(Protocol):
    """A metric's value over the batches added so far: ``add(pred, target)`` one batch,
    ``value()`` the metric on all of them (what ``fit`` logs at each batch's end)."""

    def add(self, pred: Any, target: Any) -> None: ...

    def value(self) -> float: ...


@attrs.frozen
class Metric:
    """A named metric ``fn(pred, target) -> float`` as used by ``fit`` and ``evaluate``.

    ``fn`` may say how to score batch by batch: a ``fn.running()`` that makes a
    :class:`Running` (see :meth:`running`)."""

    name: str
    fn: Callable[[Any, Any], float] = attrs.field(eq=False)

    def __call__(self, pred: Any, target: Any) -> float:
        return float(self.fn(pred, target))

    def running(self) -> Running:
        """A :class:`Running` of this metric, empty: the per-sample means of this module
        (accuracies, mse, mae) add each batch's mean weighted by its size; a ``fn`` with a
        ``running()`` (a ``keras.metrics`` object's state, :func:`on_outputs`) makes its
        own; any other metric is scored again on all the batches at each ``value()``."""
        made = getattr(self.fn, "running", None)
        if callable(made):
            found: Running = made()
            return found
        base = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        if base in PER_SAMPLE:
            return _BatchMean(self.fn)
        return _Again(self.fn)


def _with(fn: Callable[..., Any], **kwargs: Any) -> Callable[[Any, Any], Any]:
    return functools.partial(fn, **kwargs)


class _BatchMean:
    """A mean over the elements of ``pred`` (or its rows, of the same size): each batch's
    value weighted by its number of elements."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn, self.total, self.count = fn, 0.0, 0

    def add(self, pred: Any, target: Any) -> None:
        size = int(np.size(pred))
        self.total += float(self.fn(pred, target)) * size
        self.count += size

    def value(self) -> float:
        if self.count == 0:
            raise ValueError("no batches to score yet")
        return self.total / self.count


class _Again:
    """Any other metric: scored again on all the batches so far (a pass over them)."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn
        self.preds: list[Any] = []
        self.targets: list[Any] = []

    def add(self, pred: Any, target: Any) -> None:
        self.preds.append(pred)
        self.targets.append(target)

    def value(self) -> float:
        if not self.preds:
            raise ValueError("no batches to score yet")
        return float(self.fn(batching.join(self.preds), batching.join(self.targets)))


class _Through:
    """``inner`` on ``transform(pred)``."""

    def __init__(self, inner: Running, transform: Callable[[Any], Any]) -> None:
        self.inner, self.transform = inner, transform

    def add(self, pred: Any, target: Any) -> None:
        self.inner.add(self.transform(pred), target)

    def value(self) -> float:
        return self.inner.value()


def on_outputs(metric: Metric, transform: Callable[[Any], Any]) -> Metric:
    """``metric`` on ``transform(pred)`` (e.g. probabilities from a model's logits), under
    its name, scored batch by batch as ``metric`` is (see :meth:`Metric.running`)."""

    def fn(pred: Any, target: Any) -> float:
        return metric(transform(pred), target)

    fn.running = lambda: _Through(metric.running(), transform)  # type: ignore[attr-defined]
    return Metric(metric.name, fn)


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_accuracy": top_k_accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1_score,
    "mse": mean_squared_error,
    "mae": mean_absolute_error,
    "r2": r2_score,
}
PER_SAMPLE = frozenset(
    {accuracy, binary_accuracy, top_k_accuracy, mean_squared_error, mean_absolute_error}
)  # means of a value per row or element of pred: Metric.running adds them batch by batch
ALIASES = {
    "acc": "accuracy",
    "f1_score": "f1",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "r2_score": "r2",
}


def get(metric: Any, *, logits: bool = False) -> Metric:
    """A :class:`Metric` from a name, a function or a Metric.

    ``logits=True`` (a loss on logits) makes the binary class threshold 0 instead of 0.5.
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        name = ALIASES.get(metric, metric)
        if name not in METRICS:
            valid = ", ".join(sorted([*METRICS, *ALIASES]))
            raise ValueError(f"unknown metric {metric!r}; valid names: {valid}")
        fn = METRICS[name]
        if logits and name in ("accuracy", "binary_accuracy", "precision", "recall", "f1"):
            fn = _with(fn, threshold=0.0)
        return Metric(metric, fn)  # logged under the name asked for: "acc" stays "acc"
    if callable(metric):
        return Metric(getattr(metric, "__name__", "metric"), metric)
    raise TypeError(f"a metric must be a name or a callable, got {type(metric).__name__}")
