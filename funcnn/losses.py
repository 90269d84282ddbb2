"""Losses, each with its paired gradient, and L1/L2 penalties of a params tree.

Every loss is a callable value: ``loss(pred, target) -> float`` and
``loss.value_and_grad(pred, target) -> (float, dloss/dpred)``.

Reduction (the same as Keras):
- ``mean_squared_error``, ``mean_absolute_error``, ``huber``, ``binary_cross_entropy``,
  ``sigmoid_binary_cross_entropy``: the mean over every element.
- ``categorical_cross_entropy``, ``softmax_cross_entropy``: the sum over the class
  axis (last), then the mean over the other axes (the batch).

Targets must match the predictions' shape (a ``(N,)`` target is accepted for an
``(N, 1)`` prediction); the class-index form of ``softmax_cross_entropy`` takes
integer labels of shape ``pred.shape[:-1]``. A NaN in the targets is an error; a
NaN in the predictions (a diverged model) propagates to a NaN loss, which the
training loop reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np

from funcnn import nn, tree
from funcnn import validate as check

PROB_EPS = 1e-7
"""Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before their log (Keras' epsilon)."""


def _pred(pred: Any, name: str) -> np.ndarray:
    p = np.asarray(pred)
    if p.dtype.kind != "f":
        if p.dtype.kind not in "iub":
            raise TypeError(f"{name}: predictions must be numeric, got dtype {p.dtype}")
        p = p.astype(np.float32)
    if p.ndim < 1 or p.size == 0:
        raise ValueError(f"{name}: predictions must be a non-empty batch, got shape {p.shape}")
    return p


def _no_nan(t: np.ndarray, name: str) -> None:
    if t.dtype.kind == "f" and np.isnan(t).any():
        raise ValueError(f"{name}: targets contain NaN")


def _target(target: Any, p: np.ndarray, name: str, *, nan: bool = True) -> np.ndarray:
    """Targets as an array of ``p``'s shape and dtype (checked for NaN unless ``nan=False``:
    the caller checks them another way)."""
    t = np.asarray(target)
    if t.dtype.kind not in "fiub":
        raise TypeError(f"{name}: targets must be numeric, got dtype {t.dtype}")
    if t.shape != p.shape:
        if p.ndim == 2 and p.shape[1] == 1 and t.shape == p.shape[:1]:
            t = t.reshape(p.shape)
        else:
            raise ValueError(
                f"{name}: expected targets of shape {p.shape} to match the predictions, "
                f"got shape {t.shape}"
            )
    if nan:
        _no_nan(t, name)
    return t.astype(p.dtype, copy=False)


def _mean(terms: np.ndarray) -> float:
    """``float(np.mean(terms))``, the same bits, without np.mean's Python overhead (3 of
    the 4 microseconds it spends on a tiny model's batch)."""
    return float(np.add.reduce(terms, axis=None) / terms.size)


def _rows_mean(terms: np.ndarray) -> np.ndarray:
    """The mean of each example's terms: ``(N, ...) -> (N,)``."""
    return terms.reshape(len(terms), -1).mean(axis=1)


def _check_probabilities(p: np.ndarray, name: str, hint: str, *, nan: bool = False) -> bool:
    """Values in [0, 1]; a NaN passes (a diverged model's output) unless ``nan``, where it
    is an error (targets). Whether ``p`` holds a NaN."""
    lo, hi = p.min(), p.max()  # both NaN when p holds one
    if lo >= 0 and hi <= 1:
        return False
    if lo != lo:
        if nan:
            raise ValueError(f"{name} contain NaN")
        return True
    raise ValueError(f"{name} expects probabilities in [0, 1], got values in [{lo}, {hi}]; {hint}")


@attrs.frozen
class Loss:
    """Base class: subclasses implement ``value_and_grad(pred, target)``.

    ``takes_logits`` says whether ``pred`` is a model's raw scores (the fused
    softmax/sigmoid losses) rather than probabilities or values; metrics use it to
    read the predictions the right way.
    """

    takes_logits: ClassVar[bool] = False

    def __call__(self, pred: Any, target: Any) -> float:
        return self.value_and_grad(pred, target)[0]

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def grad(self, pred: Any, target: Any) -> np.ndarray:
        return self.value_and_grad(pred, target)[1]

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        """The loss of each example, shape ``(N,)``: their mean is the loss.

        The built-in losses compute them in one pass; this default calls the loss on
        one example at a time (right for any loss that is a mean over examples).
        """
        p, t = np.asarray(pred), np.asarray(target)
        return np.array([self(p[i : i + 1], t[i : i + 1]) for i in range(len(p))])


@attrs.frozen
class FunctionLoss(Loss):
    """A loss built from your own ``value_and_grad(pred, target) -> (value, dpred)``."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]] = attrs.field(eq=False)

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        value, dpred = self.fn(pred, target)
        return float(value), dpred


@attrs.frozen
class MeanSquaredError(Loss):
    """mean((pred - target)^2); gradient 2 (pred - target) / size."""

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        p = _pred(pred, "mean_squared_error")
        diff = p - _target(target, p, "mean_squared_error")
        value = _mean(diff * diff)
        diff *= 2 / diff.size
        return value, diff

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        p = _pred(pred, "mean_squared_error")
        diff = p - _target(target, p, "mean_squared_error")
        return _rows_mean(diff * diff)


@attrs.frozen
class MeanAbsoluteError(Loss):
    """mean(|pred - target|); gradient sign(pred - target) / size (0 where equal)."""

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        p = _pred(pred, "mean_absolute_error")
        diff = p - _target(target, p, "mean_absolute_error")
        value = _mean(np.abs(diff))
        return value, np.sign(diff) * (1 / diff.size)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        p = _pred(pred, "mean_absolute_error")
        return _rows_mean(np.abs(p - _target(target, p, "mean_absolute_error")))


@attrs.frozen
class Huber(Loss):
    """mean of 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta), r = pred - target.

    Gradient: clip(r, -delta, delta) / size.
    """

    delta: float = attrs.field(default=1.0)

    @delta.validator
    def _positive(self, attribute: attrs.Attribute, value: float) -> None:
        if not value > 0:
            raise ValueError(f"huber delta must be > 0, got {value!r}")

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        p = _pred(pred, "huber")
        r = p - _target(target, p, "huber")
        a = np.abs(r)
        value = _mean(np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta)))
        return value, np.clip(r, -self.delta, self.delta) * (1 / r.size)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        p = _pred(pred, "huber")
        r = p - _target(target, p, "huber")
        a = np.abs(r)
        return _rows_mean(
            np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))
        )


@attrs.frozen
class BinaryCrossEntropy(Loss):
    """-mean(t log p + (1 - t) log(1 - p)) with p clipped to [eps, 1 - eps].

    ``pred`` holds probabilities (after a Sigmoid). The gradient is the exact
    derivative of the clipped loss: (p - t) / (p (1 - p)) / size inside the clip
    range, 0 outside it. Prefer ``sigmoid_binary_cross_entropy`` on logits.
    """

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        name = "binary_cross_entropy"
        p = _pred(pred, name)
        t = _target(target, p, name)
        _check_probabilities(p, name, "for logits use sigmoid_binary_cross_entropy")
        _check_probabilities(t, name + " targets", "targets must be in [0, 1]")
        wide = p.astype(np.promote_types(p.dtype, np.float32), copy=False)  # 1 - 1e-7 is 1 in
        pc = np.clip(wide, PROB_EPS, 1 - PROB_EPS)  # float16: clip where it is not
        value = -_mean(t * np.log(pc) + (1 - t) * np.log1p(-pc))
        inside = (wide > PROB_EPS) & (wide < 1 - PROB_EPS)
        grad = (pc - t) / (pc * (1 - pc)) * (inside / p.size)
        return value, grad.astype(p.dtype, copy=False)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        name = "binary_cross_entropy"
        p = _pred(pred, name)
        t = _target(target, p, name)
        wide = p.astype(np.promote_types(p.dtype, np.float32), copy=False)
        pc = np.clip(wide, PROB_EPS, 1 - PROB_EPS)
        return _rows_mean(-(t * np.log(pc) + (1 - t) * np.log1p(-pc)))


@attrs.frozen
class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits z: mean(max(z, 0) - z t + log(1 + exp(-|z|))).

    Finite for any finite z. Gradient: (sigmoid(z) - t) / size.
    """

    takes_logits: ClassVar[bool] = True

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        name = "sigmoid_binary_cross_entropy"
        z = _pred(pred, name)
        t = _target(target, z, name, nan=False)  # the range check below finds NaN too
        _check_probabilities(t, name + " targets", "targets must be in [0, 1]", nan=True)
        e = np.exp(-np.abs(z))  # shared by the value and the gradient
        value = _mean(np.maximum(z, 0) - z * t + np.log1p(e))
        grad = nn.sigmoid(z, exp_neg_abs=e)
        grad -= t
        grad *= 1 / z.size
        return value, grad

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        name = "sigmoid_binary_cross_entropy"
        z = _pred(pred, name)
        t = _target(target, z, name)
        return _rows_mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))


@attrs.frozen
class CategoricalCrossEntropy(Loss):
    """-sum(t log p) / N over the last (class) axis, p clipped below at eps, N = batch.

    ``pred`` holds probabilities (after a Softmax); ``target`` holds one-hot rows or
    probabilities of the same shape, or integer labels of shape ``pred.shape[:-1]``
    (Keras' sparse form). Gradient: -t / p / N where p > eps, else 0. Prefer
    ``softmax_cross_entropy`` on logits: it is stabler and its backward fused.
    """

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        name = "categorical_cross_entropy"
        p = _pred(pred, name)
        has_nan = _check_probabilities(p, name, "for logits use softmax_cross_entropy")
        if p.ndim >= 2 and np.shape(target) == p.shape[:-1]:
            labels, _ = _class_labels(p, target, name)
            p2 = p.reshape(-1, p.shape[-1])
            rows, flat = np.arange(len(p2)), labels.reshape(-1)
            picked = p2[rows, flat]
            pc = np.maximum(picked, PROB_EPS)
            grad = np.zeros_like(p2)
            grad[rows, flat] = (picked > PROB_EPS) / (-pc * len(p2))
            if has_nan:  # a NaN in any column is a diverged model: NaN, as one-hot rows give
                grad[np.isnan(p2).any(axis=1)] = np.nan
                return math.nan, grad.reshape(p.shape)
            return -_mean(np.log(pc)), grad.reshape(p.shape)
        t = _target(target, p, name)
        n = p.size // p.shape[-1]
        pc = np.maximum(p, PROB_EPS)
        value = -float(np.sum(t * np.log(pc))) / n
        grad = -t / pc * ((p > PROB_EPS) / n)
        return value, grad.astype(p.dtype, copy=False)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        name = "categorical_cross_entropy"
        p = _pred(pred, name)
        if p.ndim >= 2 and np.shape(target) == p.shape[:-1]:
            labels, _ = _class_labels(p, target, name)
            picked = np.take_along_axis(p, labels[..., None].astype(np.intp), axis=-1)[..., 0]
            each = -np.log(np.maximum(picked, PROB_EPS))
            each[np.isnan(p).any(axis=-1)] = np.nan  # as the one-hot form gives
            return _rows_mean(each)
        t = _target(target, p, name)
        return _rows_mean(-np.sum(t * np.log(np.maximum(p, PROB_EPS)), axis=-1))


def _class_labels(logits: np.ndarray, target: Any, name: str) -> tuple[np.ndarray, bool]:
    """(labels, is_index): integer class indices or probability rows, validated."""
    t = np.asarray(target)
    batch_shape, classes = logits.shape[:-1], logits.shape[-1]
    if t.shape == batch_shape and t.dtype.kind in "iu":
        if t.size and (t.min() < 0 or t.max() >= classes):
            raise ValueError(
                f"{name}: integer labels must be in [0, {classes}) for {classes} classes, "
                f"got labels in [{t.min()}, {t.max()}]"
            )
        return t, True
    if t.shape == logits.shape and t.dtype.kind in "fiub":
        _no_nan(t, name)
        return t.astype(logits.dtype, copy=False), False
    if t.shape == batch_shape and t.dtype.kind == "f":
        raise TypeError(
            f"{name}: class labels must have an integer dtype, got {t.dtype}; "
            "pass labels.astype(int)"
        )
    raise ValueError(
        f"{name}: expected integer labels of shape {batch_shape} or one-hot targets of shape "
        f"{logits.shape}, got {t.dtype} targets of shape {t.shape}"
    )


@attrs.frozen
class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of softmax(logits) over the last axis, mean over the batch.

    ``target``: integer labels of shape ``logits.shape[:-1]`` or one-hot /
    probability rows of ``logits``' shape. Value: mean(logsumexp(z) - sum(t z)),
    finite for any finite logits. Fused gradient: (softmax(z) sum(t) - t) / N,
    which is (softmax(z) - onehot) / N for one-hot rows or labels.
    """

    takes_logits: ClassVar[bool] = True

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        name = "softmax_cross_entropy"
        z = _pred(pred, name)
        if z.ndim < 2:
            raise ValueError(f"{name}: logits must have shape (batch, classes), got {z.shape}")
        labels, is_index = _class_labels(z, target, name)
        classes = z.shape[-1]
        z2 = z.reshape(-1, classes)
        n = z2.shape[0]
        shifted = z2 - z2.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        sums = probs.sum(axis=1, keepdims=True)
        log_sums = np.log(sums)
        probs /= sums
        if is_index:
            rows = np.arange(n)
            flat = labels.reshape(-1)
            value = _mean(log_sums[:, 0] - shifted[rows, flat])
            probs[rows, flat] -= 1
        else:
            t = labels.reshape(-1, classes)
            mass = t.sum(axis=1, keepdims=True)
            value = float(np.sum(log_sums * mass) - np.sum(t * shifted)) / n
            probs *= mass
            probs -= t
        probs *= 1 / n
        return value, probs.reshape(z.shape)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        name = "softmax_cross_entropy"
        z = _pred(pred, name)
        if z.ndim < 2:
            raise ValueError(f"{name}: logits must have shape (batch, classes), got {z.shape}")
        labels, is_index = _class_labels(z, target, name)
        shifted = z - z.max(axis=-1, keepdims=True)
        log_sums = np.log(np.exp(shifted).sum(axis=-1))
        if is_index:
            picked = np.take_along_axis(shifted, labels[..., None].astype(np.intp), axis=-1)
            return _rows_mean(log_sums - picked[..., 0])
        return _rows_mean(log_sums * labels.sum(axis=-1) - np.sum(labels * shifted, axis=-1))


@attrs.frozen
class Masked(Loss):
    """``loss`` over the real positions of ``(batch, time, ...)`` predictions: its value is
    the mean over every position where the mask is True (for ``softmax_cross_entropy``
    on ``(batch, time, classes)`` logits and ``(batch, time)`` labels: the mean
    cross-entropy of the real steps). Masked positions get a zero gradient; with no real
    position the value is 0.

    The mask comes with the predictions, ``pred = (values, mask)`` (what a model whose
    input went through ``Embedding(mask_zero=True)`` outputs; its gradient is then the
    pair ``(dvalues, zeros)``), or with the target, ``target = (targets, mask)``. ``loss``
    must be a mean over rows (every built-in loss is): it is called on the real
    positions only, as rows.
    """

    loss: Loss = attrs.field(validator=attrs.validators.instance_of(Loss))

    @property
    def takes_logits(self) -> bool:  # type: ignore[override]
        return self.loss.takes_logits

    def _split(self, pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(pred, tuple) and len(pred) == 2:
            values, mask = pred
        elif isinstance(target, tuple) and len(target) == 2:
            target, mask = target
            values = pred
        else:
            raise ValueError(
                "a masked loss takes the pair (predictions, mask) as its predictions or the "
                f"pair (targets, mask) as its target, got {type(pred).__name__} and "
                f"{type(target).__name__}"
            )
        values, t = np.asarray(values), np.asarray(target)
        if values.ndim < 2 or t.shape[:2] != values.shape[:2]:
            raise ValueError(
                f"masked loss: expected predictions (batch, time, ...) and targets with the same "
                f"(batch, time), got shapes {values.shape} and {t.shape}"
            )
        return values, t, check.mask("masked loss", mask, values.shape[:2])

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, Any]:
        values, t, mask = self._split(pred, target)
        dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float32)
        grad = np.zeros(values.shape, dtype)
        value = 0.0
        if mask.any():
            value, real = self.loss.value_and_grad(values[mask], t[mask])
            grad[mask] = real
        return value, ((grad, np.zeros(mask.shape, dtype)) if isinstance(pred, tuple) else grad)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        """Each sequence's share: its real positions' losses summed, times batch / real
        positions (their mean is the loss)."""
        values, t, mask = self._split(pred, target)
        real = int(mask.sum())
        if real == 0:
            return np.zeros(len(values))
        per_position = self.loss.per_example(values[mask], t[mask])
        rows = np.nonzero(mask)[0]
        return np.bincount(rows, weights=per_position, minlength=len(values)) * (len(values) / real)


def masked(loss: Loss) -> Masked:
    """``loss`` averaged over the real positions of masked sequences; see :class:`Masked`."""
    return Masked(loss)


mean_squared_error = MeanSquaredError()
mean_absolute_error = MeanAbsoluteError()
binary_cross_entropy = BinaryCrossEntropy()
sigmoid_binary_cross_entropy = SigmoidBinaryCrossEntropy()
categorical_cross_entropy = CategoricalCrossEntropy()
softmax_cross_entropy = SoftmaxCrossEntropy()


def huber(delta: float = 1.0) -> Huber:
    """Huber loss with threshold ``delta`` (see :class:`Huber`)."""
    return Huber(delta)


@attrs.frozen
class Penalty:
    """``scale * sum(|w|)`` (L1) or ``scale * sum(w^2)`` (L2) over the masked leaves.

    ``mask``: a tree of bools like params, a callable ``params -> tree of bools``
    (e.g. :func:`funcnn.tree.kernel_mask` to leave biases out), or None for all.
    Gradients: ``scale * sign(w)`` (L1, 0 at 0) and ``2 * scale * w`` (L2); zero for
    masked-out leaves.
    """

    kind: str = attrs.field(validator=attrs.validators.in_(("l1", "l2")))
    scale: float = attrs.field()
    mask: Any = attrs.field(default=None, eq=False)

    @scale.validator
    def _non_negative(self, attribute: attrs.Attribute, value: float) -> None:
        check.non_negative(f"{self.kind} penalty scale", value)

    def __call__(self, params: Any) -> float:
        return self.value_and_grad(params)[0]

    def value_and_grad(self, params: Any) -> tuple[float, Any]:
        mask = tree.resolve_mask(self.mask, params)
        total = 0.0

        def leaf_grad(w: np.ndarray, on: Any) -> np.ndarray:
            nonlocal total
            if not on:
                return np.zeros_like(w)
            if self.kind == "l1":
                total += float(np.sum(np.abs(w)))
                return np.sign(w) * np.asarray(self.scale, dtype=w.dtype)
            total += float(np.sum(w * w))
            return w * np.asarray(2 * self.scale, dtype=w.dtype)

        grads = tree.map(leaf_grad, params, mask, shapes=False)
        return self.scale * total, grads


def l1_penalty(scale: float, mask: Any = None) -> Penalty:
    """L1 penalty ``scale * sum(|w|)``; see :class:`Penalty`."""
    return Penalty("l1", scale, mask)


def l2_penalty(scale: float, mask: Any = None) -> Penalty:
    """L2 penalty ``scale * sum(w^2)`` (Keras' convention, no 1/2); see :class:`Penalty`."""
    return Penalty("l2", scale, mask)


@attrs.frozen
class Weighted(Loss):
    """``loss`` with a weight per example: the target is a pair ``(target, weights)``.

    Value: ``sum_i w_i l_i / N`` (Keras' sample weights: ones give ``loss`` itself, a
    zero leaves an example out of the gradient). Gradient: ``loss``'s, each example's
    rows scaled by its weight (exact for a loss that is a mean over examples, as
    every built-in loss is).
    """

    loss: Loss = attrs.field(validator=attrs.validators.instance_of(Loss))

    @property
    def takes_logits(self) -> bool:  # type: ignore[override]
        return self.loss.takes_logits

    def _split(self, target: Any, n: int) -> tuple[Any, np.ndarray]:
        if not isinstance(target, tuple) or len(target) != 2:
            raise ValueError(
                "a weighted loss takes the pair (target, sample_weight) as its target, "
                f"got {type(target).__name__}"
            )
        t, w = target
        w = np.asarray(w)
        if w.dtype.kind not in "fiub" or w.shape not in ((n,), (n, 1)):
            raise ValueError(f"sample weights must be {n} numbers, got {w.dtype} {w.shape}")
        w = w.reshape(n)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("sample weights must be finite and >= 0")
        return t, w

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, np.ndarray]:
        p = np.asarray(pred)
        t, w = self._split(target, len(p))
        per = self.loss.per_example(p, t)
        grad = self.loss.grad(p, t)
        grad = grad * w.reshape(-1, *([1] * (grad.ndim - 1))).astype(grad.dtype, copy=False)
        return float(np.sum(w * per) / len(p)), grad

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        p = np.asarray(pred)
        t, w = self._split(target, len(p))
        return w * self.loss.per_example(p, t)


def weighted(loss: Loss) -> Weighted:
    """``loss`` with per-example weights: ``fit(..., y=(targets, weights))``; see
    :class:`Weighted`."""
    return Weighted(loss)


@attrs.frozen
class PerOutput(Loss):
    """One loss per output of a model with several outputs: ``pred`` and ``target`` are
    tuples; the value is ``sum_k weights[k] * losses[k](pred[k], target[k])`` and the
    gradient the tuple of each loss's gradient, scaled by its weight."""

    losses: tuple[Loss, ...]
    weights: tuple[float, ...]

    def __attrs_post_init__(self) -> None:
        if not self.losses or not all(isinstance(x, Loss) for x in self.losses):
            raise TypeError("per_output takes one funcnn Loss per output")
        if len(self.weights) != len(self.losses):
            raise ValueError(
                f"per_output got {len(self.losses)} losses but {len(self.weights)} weights"
            )

    def _pairs(self, pred: Any, target: Any) -> list[tuple[Any, Any]]:
        k = len(self.losses)
        for what, value in (("predictions", pred), ("targets", target)):
            if not isinstance(value, tuple) or len(value) != k:
                raise ValueError(
                    f"per_output with {k} losses takes a tuple of {k} {what}, got "
                    f"{type(value).__name__}"
                    + (f" of {len(value)}" if isinstance(value, tuple) else "")
                )
        return list(zip(pred, target))

    def value_and_grad(self, pred: Any, target: Any) -> tuple[float, Any]:
        total, grads = 0.0, []
        for loss, w, (p, t) in zip(self.losses, self.weights, self._pairs(pred, target)):
            value, g = loss.value_and_grad(p, t)
            total += w * value
            grads.append(g * np.asarray(w, dtype=g.dtype) if w != 1 else g)
        return total, tuple(grads)

    def per_example(self, pred: Any, target: Any) -> np.ndarray:
        pairs = self._pairs(pred, target)
        terms = [
            w * loss.per_example(p, t) for loss, w, (p, t) in zip(self.losses, self.weights, pairs)
        ]
        return np.asarray(np.sum(terms, axis=0))


def per_output(*losses: Loss, weights: Any = None) -> PerOutput:
    """A loss for a model with several outputs: ``per_output(mean_squared_error,
    softmax_cross_entropy)`` takes ``(pred_1, pred_2)`` and ``(target_1, target_2)``;
    ``weights`` (one number per loss, 1 by default) as Keras' ``loss_weights``."""
    weights = (1.0,) * len(losses) if weights is None else tuple(weights)
    return PerOutput(tuple(losses), tuple(check.non_negative("loss weight", w) for w in weights))
