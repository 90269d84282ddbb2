"""The pieces of scikit-learn's MLP algorithm that :mod:`funcnn.sklearn.mlp` runs on funcnn's
layers: the output activations and their losses, scikit-learn's SGD (its velocity holds
steps), its mini-batches, and the params as one vector for the optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
from scipy.special import xlogy

from funcnn import nn, optim
from funcnn.layers.dense import DenseParams
from funcnn.sklearn.neuralnet import _as_float32
from funcnn.tree import freeze

OUTPUT_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax": nn.softmax,
    "logistic": nn.sigmoid,
    "identity": nn.identity,
    "exp": np.exp,
}


def mean(per_sample: np.ndarray, w: np.ndarray | None) -> float:
    """The (weighted) mean over the samples."""
    return float(per_sample.mean() if w is None else np.average(per_sample, weights=w))


def log_loss(Y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> float:
    """Cross-entropy of softmax probabilities ``p`` (clipped to [eps, 1 - eps]) against the
    one-hot ``Y``."""
    eps = np.finfo(p.dtype).eps
    return -mean(xlogy(Y, np.clip(p, eps, 1 - eps)).sum(axis=1), w)


def binary_log_loss(Y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> float:
    """Cross-entropy of each logistic output against its 0/1 column of ``Y``, summed over
    the columns (one for two classes, one per label for multilabel)."""
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    terms = xlogy(Y, p) + xlogy(1 - Y, 1 - p)
    return -mean(terms.sum(axis=1), w)


def squared_loss(Y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> float:
    """Half the mean squared error, averaged over the targets."""
    return 0.5 * mean(np.square(Y - p).mean(axis=1), w)


def poisson_loss(Y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> float:
    """Half the Poisson deviance, summed over the targets."""
    return mean((xlogy(Y, Y / p) - Y + p).sum(axis=1), w)


LOSSES = {"softmax": log_loss, "logistic": binary_log_loss, "identity": squared_loss}
LOSSES["exp"] = poisson_loss


def dense_rows(X: Any, rows: Any, dtype: Any) -> np.ndarray:
    """Rows of ``X`` as a dense array of ``dtype`` (a sparse ``X`` is densified a batch at
    a time, so memory grows with the batch, not the data)."""
    part = X[rows]
    if scipy.sparse.issparse(part):
        part = part.toarray()
    return np.asarray(part, dtype=dtype)


class SGDState(NamedTuple):
    velocity: np.ndarray
    learning_rate: float


def sgd(learning_rate: float, momentum: float, nesterov: bool) -> optim.GradientTransformation:
    """scikit-learn's SGD: the velocity holds steps, v <- momentum v - lr g, and the update
    is v (Nesterov: momentum v - lr g). Unlike optax's trace of gradients, a velocity made
    at one rate keeps its size when "invscaling" or "adaptive" changes the rate."""

    def init(params: np.ndarray) -> SGDState:
        return SGDState(freeze(np.zeros_like(params)), learning_rate)

    def update(
        grads: np.ndarray, state: SGDState, params: Any = None
    ) -> tuple[np.ndarray, SGDState]:
        del params
        step = -state.learning_rate * grads
        velocity = momentum * state.velocity + step
        out = momentum * velocity + step if nesterov else velocity
        return freeze(out), state._replace(velocity=freeze(velocity))

    return optim.GradientTransformation(init, update)


def batches(n: int, size: int) -> list[slice]:
    """``slice``s of ``size`` samples covering ``n`` (sklearn's gen_batches, without its
    argument checks, which cost as much as a small batch's step)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def flat(params: tuple[Any, ...]) -> np.ndarray:
    """The weights and biases of every layer, in order, as one vector."""
    return np.concatenate([a.ravel() for p in params[::2] for a in p])


def unflat(flat: np.ndarray, like: tuple[Any, ...]) -> tuple[Any, ...]:
    """Params shaped as ``like``, viewing ``flat`` (read-only, as ``flat`` is)."""
    out: list[Any] = []
    at = 0
    for p in like[::2]:
        w = flat[at : at + p.w.size].reshape(p.w.shape)
        at += p.w.size
        b = flat[at : at + p.b.size]
        at += p.b.size
        out += [DenseParams(w, b), ()]
    return tuple(out[:-1])


def in_range(X: Any, dtype: Any) -> Any:
    """``X`` in float32 for a float32 network (a ValueError for values float32 cannot
    hold); a sparse or float64 network's ``X`` as it is."""
    if scipy.sparse.issparse(X) or dtype != np.float32:
        return X
    return _as_float32(X, "X")


def as_dtype(p: Any, dtype: Any) -> Any:
    if isinstance(p, DenseParams):
        b = p.b if p.b is None else p.b.astype(dtype, copy=False)
        return DenseParams(p.w.astype(dtype, copy=False), b)
    return p
