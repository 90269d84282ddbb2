"""Activation functions on arrays, each written to stay finite for any finite input.

These are the forward halves; the paired derivatives live next to them as
``*_backward(x, y, dy) -> dx`` where ``y`` is the forward output. Layers in
:mod:`funcnn.layers.activations` pair them up.
"""

from __future__ import annotations

import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0)."""
    return np.maximum(x, 0)


def relu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # The derivative at exactly 0 is taken as 0 (as PyTorch and JAX do).
    del x
    return np.multiply(dy, y > 0, dtype=np.result_type(dy, y))


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """x for x > 0, negative_slope * x otherwise."""
    if 0 < negative_slope <= 1:  # then the larger of x and slope * x; ~10x faster than where
        return np.maximum(x, x * negative_slope)
    return np.where(x > 0, x, x * negative_slope)


def leaky_relu_backward(x: np.ndarray, dy: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    if 0 < negative_slope <= 1:  # slope-or-1 factors as max(mask, slope): no np.where
        return dy * np.maximum((x > 0).astype(dy.dtype), negative_slope)
    return np.where(x > 0, dy, dy * negative_slope)


def sigmoid(x: np.ndarray, *, exp_neg_abs: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)), computed through exp(-|x|) so it never overflows (pass it as
    ``exp_neg_abs`` where the caller has it already)."""
    e = np.exp(-np.abs(x)) if exp_neg_abs is None else exp_neg_abs
    # numerator 1 for x >= 0, e otherwise; as max(e, mask) since 0 <= e <= 1 (np.where's
    # branchy loop was 3x slower than the rest of this function together)
    return np.maximum(e, (x >= 0).astype(e.dtype)) / (1 + e)


def sigmoid_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    del x
    return dy * y * (1 - y)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def tanh_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    del x
    return dy * (1 - y * y)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softplus_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    del y
    return dy * sigmoid(x)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    # For x <= 0: d/dx alpha*(exp(x)-1) = alpha*exp(x) = y + alpha.
    return np.where(x > 0, dy, dy * (y + alpha))


def selu(x: np.ndarray) -> np.ndarray:
    """scale * elu(x, alpha) with the constants of Klambauer et al. (2017)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def selu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # For x <= 0: y = scale*alpha*(exp(x)-1), so dy/dx = y + scale*alpha.
    return np.where(x > 0, SELU_SCALE * dy, dy * (y + SELU_SCALE * SELU_ALPHA))


def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    The same as JAX's default (``approximate=True``) and PyTorch's ``approximate="tanh"``;
    NumPy has no vectorized erf for the exact form.
    """
    return 0.5 * x * (1 + _gelu_tanh(np.clip(x, -10, 10)))


def _gelu_tanh(xc: np.ndarray) -> np.ndarray:
    """tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3), from x clipped to +-10 (``xc``): beyond it
    tanh(u) is +-1 exactly in every float type, and x^3 would overflow (float16 beyond 40,
    float32 beyond 7e12) and turn the gradient's 0 * inf into NaN. x^3 is ``xc * xc * xc``:
    NumPy's float32 ``xc ** 3`` calls ``powf`` per element, about 60x slower."""
    return np.tanh(_GELU_C * (xc + _GELU_K * (xc * xc * xc)))


def gelu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    del y
    xc = np.clip(x, -10, 10)
    t = _gelu_tanh(xc)
    du = _GELU_C * (1 + 3 * _GELU_K * xc * xc)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) along ``axis``, shifted by the maximum so it never overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the maximum."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def softmax_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    # Jacobian-vector product of softmax: y * (dy - <dy, y>), not the diagonal y(1-y).
    del x
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x) along ``axis``."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def log_softmax_backward(
    x: np.ndarray, y: np.ndarray, dy: np.ndarray, axis: int = -1
) -> np.ndarray:
    del x
    return dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


def identity(x: np.ndarray) -> np.ndarray:
    return x


def identity_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    del x, y
    return dy
