"""``keras.metrics``: Keras' metric classes and functions, with Keras' semantics and names.

A metric object is used as in Keras, on its own::

    m = metrics.AUC()
    m.update_state(y_true, y_pred)      # Keras' order: targets first
    m.result()                          # a float (an array for several thresholds)
    m.reset_state()

or in ``compile(metrics=[metrics.AUC(), "precision", "sparse_categorical_accuracy"])``,
where ``fit`` logs it under its name (the string given, or the object's ``name``) and
scores it on the epoch's outputs, as Keras' stateful metrics do over the batches.

The semantics are Keras 3's: ``Precision``/``Recall``/``TruePositives``... threshold each
prediction (``y_pred > 0.5``) against ``y_true != 0`` element by element (the positive
class of a binary model; micro-averaged over the columns of a one-hot one, ``class_id``
picks one), ``AUC`` sums its 200-threshold confusion curve as Keras does (trapezoids for
ROC, Davis & Goadrich's interpolation for PR), the mean metrics average a per-sample value
(the mean over the last axis), weighted by ``sample_weight``. Every name Keras' ``compile``
accepts is here (``"auc"``, ``"AUC"``, ``"true_positives"``, ``"mape"``...), except the
per-batch correlations (``pearson_correlation``, ``concordance_correlation``).
``"accuracy"``/``"acc"`` are funcnn's :func:`funcnn.metrics.accuracy` (binary, categorical
or sparse from the shapes, as Keras picks), which thresholds logits at 0 where Keras
would use 0.5.

Sums are float64 (Keras: float32), so results agree with Keras to float32 rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from funcnn import metrics as metrics_lib
from funcnn import validate as check

__all__ = [
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "BinaryIoU",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "F1Score",
    "FBetaScore",
    "FalseNegatives",
    "FalsePositives",
    "Hinge",
    "KLDivergence",
    "LogCoshError",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "Poisson",
    "Precision",
    "R2Score",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "SquaredHinge",
    "Sum",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "get",
]

EPSILON = 1e-7  # Keras' backend.epsilon()


def _as_float(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _same_rank(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras' squeeze_or_expand_to_same_rank: ``(N,)`` targets against ``(N, 1)`` outputs."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    return y_true, y_pred


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _same_rank(_as_float(y_true), _as_float(y_pred))
    if t.ndim == 0 or p.ndim == 0:
        raise ValueError(f"metrics need a batch axis; got y_true {t.shape} and y_pred {p.shape}")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} samples, y_pred {len(p)}")
    return t, p


def _last_mean(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=-1) if a.ndim > 1 else a


# ---------------------------------------------------------------- Keras' metric functions
# Each takes (y_true, y_pred) in Keras' order and returns one value per sample.


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean((t == (p > threshold)).astype(np.float64))


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _as_float(y_true), _as_float(y_pred)
    return (t.argmax(axis=-1) == p.argmax(axis=-1)).astype(np.float64)


def _sparse_labels(y_true: Any, y_pred: np.ndarray) -> np.ndarray:
    t = _as_float(y_true)
    if t.ndim == y_pred.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    return t


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    p = _as_float(y_pred)
    return (_sparse_labels(y_true, p) == p.argmax(axis=-1)).astype(np.float64)


def _in_top_k(labels: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's label is among its ``k`` highest scores."""
    labels = labels.astype(np.int64)
    if p.ndim != 2:
        raise ValueError(f"top-k accuracy needs (samples, classes) scores, got {p.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= p.shape[1]:
        raise ValueError(f"labels must be in [0, {p.shape[1]}), the score columns")
    own = p[np.arange(len(p)), labels]
    return (np.sum(p > own[:, None], axis=1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    p = _as_float(y_pred)
    return _in_top_k(_as_float(y_true).argmax(axis=-1), p, k)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    p = _as_float(y_pred)
    return _in_top_k(_sparse_labels(y_true, p), p, k)


def accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """Keras' ``Accuracy``: how often ``y_pred`` equals ``y_true`` exactly."""
    t, p = _pair(y_true, y_pred)
    return _last_mean((t == p).astype(np.float64))


def mean_squared_error(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean((p - t) ** 2)


def mean_absolute_error(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean(np.abs(p - t))


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return 100.0 * _last_mean(np.abs(t - p) / np.maximum(np.abs(t), EPSILON))


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    first, second = np.log(np.maximum(p, EPSILON) + 1), np.log(np.maximum(t, EPSILON) + 1)
    return _last_mean((first - second) ** 2)


def log_cosh(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    x = p - t
    return _last_mean(x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0))


def poisson(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean(p - t * np.log(p + EPSILON))


def kl_divergence(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    t, p = np.clip(t, EPSILON, 1), np.clip(p, EPSILON, 1)
    return np.sum(t * np.log(t / p), axis=-1)


def _hinge_labels(t: np.ndarray) -> np.ndarray:
    """0/1 labels as -1/1 (Keras converts them when every label is 0 or 1)."""
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


def hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean(np.maximum(1.0 - _hinge_labels(t) * p, 0.0))


def squared_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return _last_mean(np.maximum(1.0 - _hinge_labels(t) * p, 0.0) ** 2)


def categorical_hinge(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _as_float(y_true), _as_float(y_pred)
    positive = np.sum(t * p, axis=-1)
    negative = np.max((1.0 - t) * p, axis=-1)
    return np.maximum(negative - positive + 1.0, 0.0)


def _l2_normalize(a: np.ndarray) -> np.ndarray:
    return a / np.sqrt(np.maximum(np.sum(a * a, axis=-1, keepdims=True), 1e-12))


def cosine_similarity(y_true: Any, y_pred: Any) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    return np.sum(_l2_normalize(t) * _l2_normalize(p), axis=-1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def binary_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    t, p = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:  # the stable form
        return _last_mean(np.maximum(p, 0) - p * t + np.logaddexp(0.0, -np.abs(p)))
    p = np.clip(p, EPSILON, 1.0 - EPSILON)
    return _last_mean(-(t * np.log(p) + (1.0 - t) * np.log(1.0 - p)))


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    t, p = _as_float(y_true), _as_float(y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        shifted = p - p.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        return -np.sum(t * log_p, axis=-1)
    p = np.clip(p / np.sum(p, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    return -np.sum(t * np.log(p), axis=-1)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False
) -> np.ndarray:
    p = _as_float(y_pred)
    labels = _sparse_labels(y_true, p).astype(np.int64)
    return categorical_crossentropy(np.eye(p.shape[-1])[labels], p, from_logits=from_logits)


# Keras' short names of the same functions
mse, mae, mape, msle = (
    mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
)  # fmt: skip
kld = kl_divergence
logcosh = log_cosh_error = log_cosh


# ---------------------------------------------------------------- the classes


class Metric:
    """Keras' metric API: ``update_state(y_true, y_pred, sample_weight=None)``,
    ``result()``, ``reset_state()``, ``name``, ``get_config()``; calling it updates and
    returns the result."""

    default_name: ClassVar[str] = "metric"

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"a metric's name must be a string, got {name!r}")
        self.name = self.default_name if name is None else name
        self.dtype = dtype
        self._config: dict[str, Any] = {}
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def reset_states(self) -> None:
        """Keras 2's name for :meth:`reset_state`."""
        self.reset_state()

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        """The keyword arguments that build this metric again (JSON values)."""
        return {"name": self.name, **self._config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        return cls(**config)

    def fresh(self) -> Metric:
        """A copy with its state reset: what ``fit`` scores each epoch with."""
        other = copy.copy(self)
        other.reset_state()
        return other

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({settings})"


def _weights(sample_weight: Any, values: np.ndarray) -> np.ndarray:
    """Sample weights broadcast against per-sample ``values`` (Keras' rule: a weight per
    sample, or of the values' shape)."""
    if sample_weight is None:
        return np.ones_like(values)
    w = _as_float(sample_weight)
    while w.ndim > values.ndim and w.shape[-1] == 1:
        w = w[..., 0]
    while w.ndim < values.ndim:
        w = w[..., None]
    try:
        return np.broadcast_to(w, values.shape)
    except ValueError:
        raise ValueError(
            f"sample_weight of shape {np.shape(sample_weight)} does not match the "
            f"{values.shape} values it weighs"
        ) from None


class Mean(Metric):
    """The weighted mean of the values given: ``update_state(values, sample_weight=None)``."""

    default_name = "mean"

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def _add(self, values: Any, sample_weight: Any) -> None:
        v = _as_float(values)
        w = _weights(sample_weight, v)
        self.total += float(np.sum(v * w))
        self.count += float(np.sum(w))

    def update_state(self, values: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        self._add(values, sample_weight)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class Sum(Mean):
    """The weighted sum of the values given."""

    default_name = "sum"

    def result(self) -> float:
        return self.total


class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)``, a value per sample: Keras'
    wrapper of a metric function (``compile(metrics=[my_fn])`` wraps ``my_fn`` so)."""

    fn: Callable[..., Any] | None = None

    def __init__(
        self, fn: Callable[..., Any] | None = None, name: str | None = None, dtype: Any = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if fn is not None:
            if not callable(fn):
                raise TypeError(f"MeanMetricWrapper wraps a function, got {fn!r}")
            self.fn = fn
        if self.fn is None:
            raise TypeError("MeanMetricWrapper needs fn, a function (y_true, y_pred) -> values")
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)
        self.kwargs = kwargs
        self._config = dict(kwargs)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        fn = type(self).fn if type(self).fn is not None else self.fn
        assert fn is not None
        self._add(fn(y_true, y_pred, **self.kwargs), sample_weight)

    def get_config(self) -> dict[str, Any]:
        if type(self) is MeanMetricWrapper:
            raise TypeError("a MeanMetricWrapper of a function has no config (save the model)")
        return super().get_config()


def _wrapper(
    cls_name: str, fn: Callable[..., Any], default_name: str, doc: str, **defaults: Any
) -> type[MeanMetricWrapper]:
    """The Keras class ``cls_name``: the mean of ``fn``, with keyword settings ``defaults``."""

    def __init__(self: MeanMetricWrapper, name: str | None = None, dtype: Any = None,
                 **kwargs: Any) -> None:  # fmt: skip
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{cls_name} got unknown argument(s) {', '.join(sorted(unknown))}")
        MeanMetricWrapper.__init__(self, None, name=name, dtype=dtype, **{**defaults, **kwargs})

    return type(
        cls_name,
        (MeanMetricWrapper,),
        {"fn": staticmethod(fn), "default_name": default_name, "__init__": __init__,
         "__doc__": doc, "__module__": __name__},
    )  # fmt: skip


BinaryAccuracy = _wrapper(
    "BinaryAccuracy", binary_accuracy, "binary_accuracy",
    "``BinaryAccuracy(threshold=0.5)``: how often ``(y_pred > threshold) == y_true``.",
    threshold=0.5,
)  # fmt: skip
CategoricalAccuracy = _wrapper(
    "CategoricalAccuracy", categorical_accuracy, "categorical_accuracy",
    "How often the argmax of ``y_pred`` is that of the one-hot ``y_true``.",
)  # fmt: skip
SparseCategoricalAccuracy = _wrapper(
    "SparseCategoricalAccuracy", sparse_categorical_accuracy, "sparse_categorical_accuracy",
    "How often the argmax of ``y_pred`` is the integer label ``y_true``.",
)  # fmt: skip
TopKCategoricalAccuracy = _wrapper(
    "TopKCategoricalAccuracy", top_k_categorical_accuracy, "top_k_categorical_accuracy",
    "``TopKCategoricalAccuracy(k=5)``: how often the one-hot class is among the k highest.",
    k=5,
)  # fmt: skip
SparseTopKCategoricalAccuracy = _wrapper(
    "SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy",
    "``SparseTopKCategoricalAccuracy(k=5)``: how often the label is among the k highest.",
    k=5,
)  # fmt: skip
Accuracy = _wrapper("Accuracy", accuracy, "accuracy", "How often y_pred equals y_true exactly.")
MeanSquaredError = _wrapper(
    "MeanSquaredError", mean_squared_error, "mean_squared_error", "The mean squared error."
)
MeanAbsoluteError = _wrapper(
    "MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "The mean absolute error."
)
MeanAbsolutePercentageError = _wrapper(
    "MeanAbsolutePercentageError", mean_absolute_percentage_error,
    "mean_absolute_percentage_error", "100 |y_true - y_pred| / |y_true|, averaged.",
)  # fmt: skip
MeanSquaredLogarithmicError = _wrapper(
    "MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error", "(log(1 + y_pred) - log(1 + y_true))^2, averaged.",
)  # fmt: skip
LogCoshError = _wrapper("LogCoshError", log_cosh, "logcosh", "log(cosh(y_pred - y_true)).")
Poisson = _wrapper("Poisson", poisson, "poisson", "y_pred - y_true log(y_pred).")
KLDivergence = _wrapper(
    "KLDivergence", kl_divergence, "kl_divergence", "sum(y_true log(y_true / y_pred))."
)
Hinge = _wrapper("Hinge", hinge, "hinge", "max(1 - y_true y_pred, 0) (0/1 labels as -1/1).")
SquaredHinge = _wrapper(
    "SquaredHinge", squared_hinge, "squared_hinge", "max(1 - y_true y_pred, 0)^2."
)
CategoricalHinge = _wrapper(
    "CategoricalHinge", categorical_hinge, "categorical_hinge",
    "max(max_neg - pos + 1, 0) of one-hot rows.",
)  # fmt: skip
CosineSimilarity = _wrapper(
    "CosineSimilarity", cosine_similarity, "cosine_similarity",
    "The cosine of the angle between y_true and y_pred (over the last axis).",
)  # fmt: skip
BinaryCrossentropy = _wrapper(
    "BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
    "``BinaryCrossentropy(from_logits=False, label_smoothing=0)`` as a metric.",
    from_logits=False, label_smoothing=0.0,
)  # fmt: skip
CategoricalCrossentropy = _wrapper(
    "CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
    "``CategoricalCrossentropy(from_logits=False, label_smoothing=0)`` as a metric.",
    from_logits=False, label_smoothing=0.0,
)  # fmt: skip
SparseCategoricalCrossentropy = _wrapper(
    "SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    "``SparseCategoricalCrossentropy(from_logits=False)`` as a metric.", from_logits=False,
)  # fmt: skip


class RootMeanSquaredError(Mean):
    """The square root of the (weighted) mean squared error."""

    default_name = "root_mean_squared_error"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:  # type: ignore[override]
        t, p = _pair(y_true, y_pred)
        self._add((p - t) ** 2, sample_weight)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


# ---------------------------------------------------------------- confusion counts


def _thresholds(thresholds: Any, default: float = 0.5) -> tuple[list[float], bool]:
    """(the thresholds, whether one was given alone: its result is then a number)."""
    if thresholds is None:
        return [default], True
    alone = np.ndim(thresholds) == 0
    values = [float(t) for t in np.atleast_1d(thresholds)]
    for t in values:
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"thresholds must be in [0, 1], got {t}")
    return values, alone


def _confusion(
    y_true: Any, y_pred: Any, sample_weight: Any, thresholds: Sequence[float],
    top_k: int | None = None, class_id: int | None = None,
) -> np.ndarray:  # fmt: skip
    """(thresholds, 4) weighted counts of TP, FP, TN, FN: every element of ``y_pred``
    above a threshold is a positive prediction, every nonzero ``y_true`` a positive (Keras'
    update_confusion_matrix_variables; ``top_k`` keeps each row's k highest, ``class_id``
    one column)."""
    t, p = _pair(y_true, y_pred)
    w = _weights(sample_weight, t if t.ndim >= p.ndim else p)
    if top_k is not None:
        kth = -np.sort(-p, axis=-1)[..., top_k - 1 : top_k]
        p = np.where(p >= kth, p, -np.inf)
    if class_id is not None:
        t, p, w = t[..., class_id], p[..., class_id], w[..., class_id]
    truth = (t != 0).reshape(-1)
    scores, weight = p.reshape(-1), np.broadcast_to(w, p.shape).reshape(-1)
    counts = np.empty((len(thresholds), 4))
    for i, th in enumerate(thresholds):
        predicted = scores > th
        counts[i] = [
            np.sum(weight[predicted & truth]), np.sum(weight[predicted & ~truth]),
            np.sum(weight[~predicted & ~truth]), np.sum(weight[~predicted & truth]),
        ]  # fmt: skip
    return counts


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


class _Confusion(Metric):
    """Counts of a confusion matrix at ``thresholds`` (0.5 by default): a number for one
    threshold, an array for a list of them."""

    column: ClassVar[int] = 0  # TP, FP, TN, FN

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: Any = None,
                 **settings: Any) -> None:  # fmt: skip
        self.thresholds, self._alone = _thresholds(thresholds)
        self._init_thresholds = thresholds
        self._settings = settings
        super().__init__(name=name, dtype=dtype)
        self._config = {"thresholds": thresholds, **settings}

    def reset_state(self) -> None:
        self.counts = np.zeros((len(self.thresholds), 4))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self.counts = self.counts + _confusion(
            y_true, y_pred, sample_weight, self.thresholds, **self._settings
        )

    def _values(self) -> np.ndarray:
        return self.counts[:, self.column]

    def result(self) -> Any:
        values = self._values()
        return float(values[0]) if self._alone else values


class TruePositives(_Confusion):
    """``TruePositives(thresholds=None)``: the (weighted) count of true positives."""

    default_name, column = "true_positives", 0


class FalsePositives(_Confusion):
    """``FalsePositives(thresholds=None)``: the (weighted) count of false positives."""

    default_name, column = "false_positives", 1


class TrueNegatives(_Confusion):
    """``TrueNegatives(thresholds=None)``: the (weighted) count of true negatives."""

    default_name, column = "true_negatives", 2


class FalseNegatives(_Confusion):
    """``FalseNegatives(thresholds=None)``: the (weighted) count of false negatives."""

    default_name, column = "false_negatives", 3


def _top_k_class_id(top_k: Any, class_id: Any) -> dict[str, Any]:
    return {
        "top_k": None if top_k is None else check.positive_int("top_k", top_k),
        "class_id": None if class_id is None else check.non_negative_int("class_id", class_id),
    }


class Precision(_Confusion):
    """``Precision(thresholds=None, top_k=None, class_id=None)``: TP / (TP + FP), the
    positive class's precision (Keras' semantics: each output element is a decision)."""

    default_name = "precision"

    def __init__(self, thresholds: Any = None, top_k: int | None = None,
                 class_id: int | None = None, name: str | None = None,
                 dtype: Any = None) -> None:  # fmt: skip
        super().__init__(thresholds, name, dtype, **_top_k_class_id(top_k, class_id))
        if thresholds is None and top_k is not None:  # Keras: each row's top k are positive
            self.thresholds = [-np.inf]

    def _values(self) -> np.ndarray:
        tp, fp = self.counts[:, 0], self.counts[:, 1]
        return _ratio(tp, tp + fp)


class Recall(Precision):
    """``Recall(thresholds=None, top_k=None, class_id=None)``: TP / (TP + FN)."""

    default_name = "recall"

    def _values(self) -> np.ndarray:
        tp, fn = self.counts[:, 0], self.counts[:, 3]
        return _ratio(tp, tp + fn)


class AUC(Metric):
    """``AUC(num_thresholds=200, curve="ROC", summation_method="interpolation",
    thresholds=None, multi_label=False, num_labels=None, label_weights=None,
    from_logits=False)``: the area under the ROC (or PR) curve of the confusion counts at
    evenly spaced thresholds, summed as Keras sums it."""

    default_name = "auc"

    def __init__(
        self, num_thresholds: int = 200, curve: str = "ROC",
        summation_method: str = "interpolation", name: str | None = None, dtype: Any = None,
        thresholds: Sequence[float] | None = None, multi_label: bool = False,
        num_labels: int | None = None, label_weights: Any = None, from_logits: bool = False,
    ) -> None:  # fmt: skip
        self.curve = check.choice("curve", str(curve).upper(), ("ROC", "PR"))
        self.summation_method = check.choice(
            "summation_method", summation_method, ("interpolation", "minoring", "majoring")
        )
        if thresholds is not None:
            inner, _ = _thresholds(sorted(float(t) for t in thresholds))
            self.num_thresholds = len(inner) + 2
        else:
            n = check.positive_int("num_thresholds", num_thresholds)
            if n < 2:
                raise ValueError(f"num_thresholds must be an integer > 1, got {n}")
            self.num_thresholds = n
            inner = [(i + 1) / (n - 1) for i in range(n - 2)]
        self.thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        self.multi_label = check.boolean("multi_label", multi_label)
        self.label_weights = None if label_weights is None else _as_float(label_weights)
        self.from_logits = check.boolean("from_logits", from_logits)
        super().__init__(name=name, dtype=dtype)
        self._config = {
            "num_thresholds": num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method,
            "thresholds": None if thresholds is None else list(thresholds),
            "multi_label": self.multi_label, "num_labels": num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self.from_logits,
        }  # fmt: skip

    def reset_state(self) -> None:
        self.counts: np.ndarray | None = None  # (thresholds, 4) or (labels, thresholds, 4)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = _pair(y_true, y_pred)
        if self.from_logits:
            p = _sigmoid(p)
        if self.multi_label:
            if p.ndim != 2:
                raise ValueError(f"AUC(multi_label=True) needs (samples, labels), got {p.shape}")
            w = None if sample_weight is None else _as_float(sample_weight).reshape(len(p), -1)
            new = np.stack([
                _confusion(t[:, j], p[:, j], None if w is None else w[:, min(j, w.shape[1] - 1)],
                           self.thresholds)
                for j in range(p.shape[1])
            ])  # fmt: skip
        else:
            new = _confusion(t, p, sample_weight, self.thresholds)
            if self.label_weights is not None and p.ndim == 2:
                new = sum(
                    self.label_weights[j] * _confusion(t[:, j], p[:, j], None, self.thresholds)
                    for j in range(p.shape[1])
                )
        self.counts = new if self.counts is None else self.counts + new

    def _area(self, counts: np.ndarray) -> float:
        tp, fp, tn, fn = counts.T
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _interpolated_pr_auc(tp, fp, fn)
        recall = _ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _ratio(fp, fp + tn), recall
        else:
            x, y = recall, _ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def result(self) -> float:
        if self.counts is None:
            return 0.0
        if not self.multi_label:
            return self._area(self.counts)
        areas = np.array([self._area(c) for c in self.counts])
        if self.label_weights is None:
            return float(areas.mean())
        total = float(np.sum(self.label_weights))
        return float(np.sum(areas * self.label_weights) / total) if total else 0.0


def _interpolated_pr_auc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Keras' closed form of Davis & Goadrich's interpolation of the PR curve."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _ratio(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = np.where(both, _ratio(p[:-1], np.maximum(p[1:], 0)), 1.0)
    increment = _ratio(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
    return float(np.sum(increment))


class BinaryIoU(Metric):
    """``BinaryIoU(target_class_ids=(0, 1), threshold=0.5)``: TP / (TP + FP + FN) of each
    target class, averaged over those that occur."""

    default_name = "binary_io_u"

    def __init__(self, target_class_ids: Sequence[int] = (0, 1), threshold: float = 0.5,
                 name: str | None = None, dtype: Any = None) -> None:  # fmt: skip
        self.target_class_ids = [check.non_negative_int("target class id", c)
                                 for c in target_class_ids]  # fmt: skip
        if any(c > 1 for c in self.target_class_ids):
            raise ValueError(f"target_class_ids are 0 and/or 1, got {self.target_class_ids}")
        self.threshold = check.number("threshold", threshold)
        super().__init__(name=name, dtype=dtype)
        self._config = {"target_class_ids": self.target_class_ids, "threshold": self.threshold}

    def reset_state(self) -> None:
        self.matrix = np.zeros((2, 2))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = _pair(y_true, y_pred)
        w = _weights(sample_weight, p).reshape(-1)
        truth = (t.reshape(-1) > self.threshold).astype(np.int64)
        predicted = (p.reshape(-1) > self.threshold).astype(np.int64)
        self.matrix = self.matrix + np.bincount(
            truth * 2 + predicted, weights=w, minlength=4
        ).reshape(2, 2)

    def result(self) -> float:
        tp = np.diag(self.matrix)
        denominator = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        ids = self.target_class_ids
        valid = int(np.sum(denominator[ids] != 0))
        iou = tp[ids] / (denominator[ids] + EPSILON)
        return float(np.sum(iou) / valid) if valid else 0.0


class R2Score(Metric):
    """``R2Score(class_aggregation="uniform_average", num_regressors=0)``: the coefficient of
    determination over all samples seen, per output column, then averaged."""

    default_name = "r2_score"

    def __init__(self, class_aggregation: str | None = "uniform_average",
                 num_regressors: int = 0, name: str | None = None,
                 dtype: Any = None) -> None:  # fmt: skip
        self.class_aggregation = check.choice(
            "class_aggregation", class_aggregation,
            ("uniform_average", "variance_weighted_average", None),
        )  # fmt: skip
        self.num_regressors = check.non_negative_int("num_regressors", num_regressors)
        super().__init__(name=name, dtype=dtype)
        self._config = {"class_aggregation": class_aggregation,
                        "num_regressors": num_regressors}  # fmt: skip

    def reset_state(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = _as_float(y_true), _as_float(y_pred)
        t = t.reshape(len(t), -1)
        p = p.reshape(len(p), -1)
        if t.shape != p.shape:
            raise ValueError(f"R2Score: y_true {t.shape} and y_pred {p.shape} differ")
        w = np.ones(len(t)) if sample_weight is None else _as_float(sample_weight).reshape(-1)
        self.parts.append((t, p, w))

    def result(self) -> Any:
        if not self.parts:
            return 0.0
        t = np.concatenate([a for a, _, _ in self.parts])
        p = np.concatenate([b for _, b, _ in self.parts])
        w = np.concatenate([c for _, _, c in self.parts])[:, None]
        count = float(np.sum(w))
        mean = np.sum(w * t, axis=0) / count
        total = np.sum(w * (t - mean) ** 2, axis=0)
        residual = np.sum(w * (t - p) ** 2, axis=0)
        r2 = 1.0 - _ratio(residual, total)
        r2 = np.where(total == 0, np.where(residual == 0, 1.0, 0.0), r2)
        if self.class_aggregation is None:
            return r2
        if self.class_aggregation == "uniform_average":
            value = float(np.mean(r2))
        else:
            value = float(np.sum(r2 * total) / np.sum(total)) if np.sum(total) else 0.0
        n, k = count, self.num_regressors
        if k:
            if k > n - 1:
                raise ValueError(f"num_regressors {k} exceeds the samples seen minus 1")
            value = 1.0 - (1.0 - value) * (n - 1) / (n - k - 1)
        return value


class FBetaScore(Metric):
    """``FBetaScore(average=None, beta=1.0, threshold=None)``: per-class F-beta of one-hot
    (multi-label) targets, averaged by ``average`` ('micro', 'macro', 'weighted', or None:
    one score per class). ``threshold=None`` takes each row's argmax as its prediction."""

    default_name = "fbeta_score"

    def __init__(self, average: str | None = None, beta: float = 1.0,
                 threshold: float | None = None, name: str | None = None,
                 dtype: Any = None) -> None:  # fmt: skip
        self.average = check.choice("average", average, ("micro", "macro", "weighted", None))
        self.beta = check.positive("beta", beta)
        self.threshold = None if threshold is None else check.number("threshold", threshold)
        super().__init__(name=name, dtype=dtype)
        self._config = {"average": average, "beta": beta, "threshold": threshold}

    def reset_state(self) -> None:
        self.sums: np.ndarray | None = None  # tp, fp, fn, support per class

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        t, p = _as_float(y_true), _as_float(y_pred)
        if p.ndim != 2 or t.shape != p.shape:
            raise ValueError(
                f"{type(self).__name__} needs one-hot y_true and y_pred of one (samples, "
                f"classes) shape, got {t.shape} and {p.shape}"
            )
        if self.threshold is None:
            predicted = (p == p.max(axis=-1, keepdims=True)).astype(np.float64)
        else:
            predicted = (p > self.threshold).astype(np.float64)
        w = np.ones((len(t), 1)) if sample_weight is None else _as_float(sample_weight).reshape(
            len(t), -1)  # fmt: skip
        new = np.stack([
            np.sum(w * predicted * t, axis=0), np.sum(w * predicted * (1 - t), axis=0),
            np.sum(w * (1 - predicted) * t, axis=0), np.sum(w * t, axis=0),
        ])  # fmt: skip
        self.sums = new if self.sums is None else self.sums + new

    def result(self) -> Any:
        if self.sums is None:
            return 0.0
        tp, fp, fn, support = self.sums
        if self.average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        b2 = self.beta**2
        score = _ratio((1 + b2) * precision * recall, b2 * precision + recall)
        if self.average is None:
            return score
        if self.average == "weighted":
            return float(np.sum(score * support) / np.sum(support)) if support.sum() else 0.0
        return float(np.mean(score))


class F1Score(FBetaScore):
    """``F1Score(average=None, threshold=None)``: F-beta with beta = 1."""

    default_name = "f1_score"

    def __init__(self, average: str | None = None, threshold: float | None = None,
                 name: str | None = None, dtype: Any = None) -> None:  # fmt: skip
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)
        self._config = {"average": average, "threshold": threshold}


# ---------------------------------------------------------------- names, and compile's metrics

CLASSES: dict[str, type[Metric]] = {
    c.__name__: c
    for c in (
        AUC, Accuracy, BinaryAccuracy, BinaryCrossentropy, BinaryIoU, CategoricalAccuracy,
        CategoricalCrossentropy, CategoricalHinge, CosineSimilarity, F1Score, FBetaScore,
        FalseNegatives, FalsePositives, Hinge, KLDivergence, LogCoshError, Mean,
        MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError,
        MeanSquaredLogarithmicError, Poisson, Precision, R2Score, Recall,
        RootMeanSquaredError, SparseCategoricalAccuracy, SparseCategoricalCrossentropy,
        SparseTopKCategoricalAccuracy, SquaredHinge, Sum, TopKCategoricalAccuracy,
        TrueNegatives, TruePositives,
    )
}  # fmt: skip

# Every string Keras 3's compile takes for a metric, and the class it builds.
NAMES: dict[str, type[Metric]] = {
    **{name: cls for name, cls in CLASSES.items() if cls not in (Mean, Sum)},
    "auc": AUC, "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision, "recall": Recall, "true_positives": TruePositives,
    "false_positives": FalsePositives, "true_negatives": TrueNegatives,
    "false_negatives": FalseNegatives, "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError, "MSE": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
    "root_mean_squared_error": RootMeanSquaredError, "log_cosh_error": LogCoshError,
    "poisson": Poisson, "kl_divergence": KLDivergence, "hinge": Hinge,
    "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "cosine_similarity": CosineSimilarity, "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_io_u": BinaryIoU, "r2_score": R2Score, "f1_score": F1Score,
    "f_beta_score": FBetaScore,
}  # fmt: skip
ACCURACY = ("accuracy", "acc")  # funcnn's accuracy, which reads the task from the shapes

FUNCTIONS: dict[Callable[..., Any], str] = {
    binary_accuracy: "binary_accuracy", categorical_accuracy: "categorical_accuracy",
    sparse_categorical_accuracy: "sparse_categorical_accuracy",
    top_k_categorical_accuracy: "top_k_categorical_accuracy",
    sparse_top_k_categorical_accuracy: "sparse_top_k_categorical_accuracy",
    mean_squared_error: "mean_squared_error", mean_absolute_error: "mean_absolute_error",
    mean_absolute_percentage_error: "mean_absolute_percentage_error",
    mean_squared_logarithmic_error: "mean_squared_logarithmic_error", log_cosh: "log_cosh",
    poisson: "poisson", kl_divergence: "kl_divergence", hinge: "hinge",
    squared_hinge: "squared_hinge", categorical_hinge: "categorical_hinge",
    cosine_similarity: "cosine_similarity", binary_crossentropy: "binary_crossentropy",
    categorical_crossentropy: "categorical_crossentropy",
    sparse_categorical_crossentropy: "sparse_categorical_crossentropy",
}  # fmt: skip


def get(identifier: Any) -> Metric:
    """A metric object from Keras' name (``"auc"``, ``"AUC"``, ``"mse"``...), named as
    given, or the object itself; ValueError listing the names for an unknown one."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        cls = NAMES.get(identifier)
        if cls is None:
            valid = ", ".join(sorted({*NAMES, *ACCURACY}))
            raise ValueError(f"unknown metric {identifier!r}; valid names: {valid}")
        return cls(name=identifier)
    if isinstance(identifier, dict) and identifier.get("class") in CLASSES:
        settings = identifier.get("config", {})
        if not isinstance(settings, dict):
            raise ValueError(f"a metric's config must be a JSON object, got {settings!r:.60}")
        return CLASSES[identifier["class"]].from_config(settings)
    if callable(identifier):
        return MeanMetricWrapper(identifier, name=FUNCTIONS.get(identifier))
    raise TypeError(f"a metric must be a name, a keras.metrics object or a function, got "
                    f"{identifier!r:.60}")  # fmt: skip


def scorer(metric: Metric) -> metrics_lib.Metric:
    """``metric`` as ``fit`` and ``evaluate`` score with it: a funcnn metric ``fn(pred,
    target)`` that runs a fresh copy over all the outputs at once (as Keras' state does
    over the batches)."""

    def score(pred: Any, target: Any) -> float:
        fresh = metric.fresh()
        fresh.update_state(target, pred)
        return _one(metric, fresh.result())

    score.running = lambda: _State(metric)  # type: ignore[attr-defined]
    return metrics_lib.Metric(metric.name, score)


def _one(metric: Metric, value: Any) -> float:
    """``metric``'s result as the one number fit logs."""
    if np.ndim(value) != 0:
        raise ValueError(
            f"metric {metric.name!r} gives {np.size(value)} values (one per class or "
            "threshold), and fit logs one number per name: give one threshold, or "
            "average='macro' (F1Score/FBetaScore)"
        )
    return float(value)


class _State:
    """A fresh copy of ``metric`` updated batch by batch: fit's running value of it
    (a :class:`funcnn.metrics.Running`), as Keras' state accumulates."""

    def __init__(self, metric: Metric) -> None:
        self.metric, self.state = metric, metric.fresh()

    def add(self, pred: Any, target: Any) -> None:
        self.state.update_state(target, pred)

    def value(self) -> float:
        return _one(self.metric, self.state.result())


def resolve(metric: Any, *, logits: bool) -> tuple[metrics_lib.Metric, Any]:
    """What ``compile(metrics=[...])`` holds for one entry: (the funcnn metric fit scores,
    its JSON config, or None where it has none). ``logits``: the loss takes logits."""
    if isinstance(metric, str) and metric in ACCURACY:
        return metrics_lib.get(metric, logits=logits), metric
    if isinstance(metric, metrics_lib.Metric) or (
        callable(metric) and getattr(metric, "__module__", None) == metrics_lib.__name__
    ):  # funcnn's own metrics take (pred, target)
        return metrics_lib.get(metric), None
    found = get(metric)
    if isinstance(found, FBetaScore) and found.average is None:
        raise ValueError(
            f"metric {found.name!r} gives one score per class, and fit logs one number per "
            "name: compile with F1Score(average='macro') (or 'micro', 'weighted')"
        )
    if isinstance(metric, str):
        return scorer(found), metric
    try:
        config: Any = {"class": type(found).__name__, "config": found.get_config()}
    except TypeError:
        config = None
    if config is not None and type(found).__name__ not in CLASSES:
        config = None
    return scorer(found), config
