"""BatchNorm (with running statistics in the explicit state channel) and LayerNorm."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import attrs
import numpy as np
from numpy.typing import DTypeLike

from funcnn import linalg
from funcnn import validate as check
from funcnn.layers.base import Layer, RngArg, as_input, as_params, as_shape
from funcnn.random import RngLike
from funcnn.tree import freeze
from funcnn.types import Cache, LayerState, Params, Shape


class NormParams(NamedTuple):
    gamma: np.ndarray | None  # (features,) scale, None with scale=False
    beta: np.ndarray | None  # (features,) offset, None with center=False


class BatchNormState(NamedTuple):
    mean: np.ndarray  # running mean (features,)
    var: np.ndarray  # running variance (features,), unbiased (biased_running_var: biased)


def _axis(ndim: int, axis: int, who: object) -> int:
    if not -ndim <= axis < ndim or axis == 0 or axis == -ndim:
        raise ValueError(f"{who!r}: axis {axis} is not a feature axis of a rank-{ndim} batch")
    return axis % ndim


def _eps(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    check.positive(attribute.name, value)


def _affine(params: NormParams, xhat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    y = xhat * params.gamma.reshape(shape) if params.gamma is not None else xhat.copy()
    if params.beta is not None:
        y += params.beta.reshape(shape)
    return y


def _wide(a: np.ndarray) -> np.ndarray:
    """``a`` in float32 at least: float16's sums of squares overflow at 65,504 long before
    the variance they give does (float32 and float64 pass through, no copy)."""
    return a.astype(np.promote_types(a.dtype, np.float32), copy=False)


def _as_dtype_of(grad: np.ndarray | None, param: np.ndarray | None) -> np.ndarray | None:
    """A gradient in its param's dtype (statistics of float16 data run in float32)."""
    return None if grad is None or param is None else grad.astype(param.dtype, copy=False)


def _batch_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """The sum over every axis but the feature ``axis``: over the batch through
    :func:`funcnn.linalg.sum_rows` (fixed chunks, a fixed tree, across processes too)."""
    rows = _feature_rows(a, axis)
    return linalg.sum_rows(rows, group=max(1, rows.shape[0] // max(1, a.shape[0])))


def _feature_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as rows of features: the feature ``axis`` last, every other axis flattened."""
    moved = np.moveaxis(a, axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def _batch_max(a: np.ndarray, axis: int) -> np.ndarray:
    """The maximum over every axis but the feature ``axis`` (across processes too)."""
    return linalg.max_rows(_feature_rows(a, axis))


def _inv_std(
    centered: np.ndarray, mean_of: Any, largest: Any, eps: float, shape: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(var, 1 / sqrt(var + eps))`` with ``var = mean_of(centered ** 2)``. Where the squares
    overflow (float32 data of scale 1e20, float64 of 1e200), the data are rescaled by their
    largest deviation ``largest()`` first, which is exact: xhat = (c / s) / sqrt(mean((c /
    s)^2) + eps / s^2); only the variance itself stays too large for the type."""
    with np.errstate(over="ignore"):
        var = mean_of(centered * centered)
        if np.all(np.isfinite(var)) or not np.all(np.isfinite(centered)):
            return var, 1 / np.sqrt(var + eps)
        s = largest()
        s = np.where(np.isfinite(s) & (s > 0), s, 1).astype(centered.dtype)
        scaled = mean_of(np.square(centered / s.reshape(shape)))  # shape: s against the data
        return var, (1 / s) / np.sqrt(scaled + eps / (s * s))


def _affine_grads(
    params: NormParams, xhat: np.ndarray, dy: np.ndarray, axis: int, shape: Any
) -> tuple[NormParams, np.ndarray]:
    """Grads of gamma and beta (summed over the batch and every axis but ``axis``) and
    dL/dxhat."""
    dgamma = _batch_sum(dy * xhat, axis) if params.gamma is not None else None
    dbeta = _batch_sum(dy, axis) if params.beta is not None else None
    dxhat = dy * params.gamma.reshape(shape) if params.gamma is not None else dy
    return NormParams(dgamma, dbeta), dxhat


@attrs.frozen(repr=False)
class _Normalization(Layer):
    """What BatchNorm and LayerNorm share: the feature axis and the affine params."""

    axis: int = attrs.field(default=-1, kw_only=True)
    center: bool = attrs.field(default=True, kw_only=True)
    scale: bool = attrs.field(default=True, kw_only=True)

    def _features(self, input_shape: Shape) -> int:
        shape = as_shape(input_shape)
        return shape[_axis(len(shape) + 1, self.axis, self) - 1]

    def output_shape(self, input_shape: Shape) -> Shape:
        self._features(input_shape)
        return as_shape(input_shape)

    def init(
        self, rng: RngLike, input_shape: Shape, *, dtype: DTypeLike = np.float32
    ) -> NormParams:
        features = self._features(input_shape)
        dtype = check.float_dtype("dtype", dtype)
        gamma = np.ones(features, dtype) if self.scale else None
        beta = np.zeros(features, dtype) if self.center else None
        return freeze(NormParams(gamma, beta))


@attrs.frozen(repr=False)
class BatchNorm(_Normalization):
    """Normalize each feature (along ``axis``) by batch statistics in training, running ones after.

    Training (``train=True``): ``y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta`` with
    the batch's mean and biased variance over every axis but ``axis``; the returned
    state holds ``running = momentum * running + (1 - momentum) * batch`` (the running
    variance from the unbiased batch variance, PyTorch's rule; with
    ``biased_running_var=True`` from the biased one, Keras' rule). Inference uses the
    running statistics.
    The statistics live in the state tree (``init_state``), never in params, so
    optimizers never touch them. Use ``apply_with_state``/``forward_with_state``.
    """

    momentum: float = attrs.field(default=0.99)
    eps: float = attrs.field(default=1e-3, validator=_eps)
    biased_running_var: bool = attrs.field(default=False, kw_only=True)

    @momentum.validator
    def _momentum(self, attribute: attrs.Attribute, value: float) -> None:
        check.decay("BatchNorm momentum", value)

    def init_state(self, input_shape: Shape, *, dtype: DTypeLike = np.float32) -> BatchNormState:
        features, dtype = self._features(input_shape), check.float_dtype("dtype", dtype)
        return freeze(BatchNormState(np.zeros(features, dtype), np.ones(features, dtype)))

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        if state is None:
            raise ValueError(
                f"{self!r} keeps running statistics: instead of apply(params, x), call "
                "model.apply_with_state(params, state, x, train=...) with "
                "state = model.init_state(input_shape), and keep the state it returns"
            )
        if not isinstance(state, BatchNormState):
            raise TypeError(
                f"{self!r} needs its BatchNormState from init_state(input_shape), got "
                f"{type(state).__name__}"
            )
        params = as_params(params, self, NormParams)
        x = as_input(x, self, min_ndim=2)
        dtype, x = x.dtype, _wide(x)  # statistics in float32 at least
        axis = _axis(x.ndim, self.axis, self)
        if x.shape[axis] != state.mean.shape[0]:
            raise ValueError(
                f"{self!r} was initialized for {state.mean.shape[0]} features on axis "
                f"{self.axis}, got x of shape {x.shape}"
            )
        shape = [1] * x.ndim
        shape[axis] = -1
        if train:
            # batch statistics over every sample of the batch, in all processes together
            count = linalg.batch_samples(x.shape[0]) * (math.prod(x.shape[1:]) // x.shape[axis])
            if count == 0:
                raise ValueError(f"{self!r} needs at least one value per feature in training")
            mean = _batch_sum(x, axis) / count
            centered = x - mean.reshape(shape)
            var, inv_std = _inv_std(
                centered,
                lambda a: _batch_sum(a, axis) / count,
                lambda: _batch_max(np.abs(centered), axis),
                self.eps,
                shape,
            )
            batch_var = var if self.biased_running_var else var * (count / max(count - 1, 1))
            m = self.momentum
            new_state = freeze(
                BatchNormState(
                    (m * state.mean + (1 - m) * mean).astype(state.mean.dtype),
                    (m * state.var + (1 - m) * batch_var).astype(state.var.dtype),
                )
            )
        else:
            centered = x - state.mean.reshape(shape)
            new_state = state
            inv_std = 1 / np.sqrt(state.var + self.eps)
        xhat = centered * inv_std.reshape(shape)
        y = _affine(params, xhat, tuple(shape)).astype(dtype, copy=False)
        return y, new_state, (xhat, inv_std, train, axis, shape)

    def backward(
        self, params: NormParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[NormParams, np.ndarray | None]:
        xhat, inv_std, train, axis, shape = cache
        grads, dxhat = _affine_grads(params, xhat, _wide(dy), axis, shape)
        grads = NormParams(*map(_as_dtype_of, grads, params))
        if not need_dx:
            return grads, None
        if not train:  # running statistics are constants
            return grads, (dxhat * inv_std.reshape(shape)).astype(dy.dtype, copy=False)
        count = linalg.batch_samples(xhat.shape[0]) * (math.prod(xhat.shape[1:]) // inv_std.size)
        mean_dxhat = (_batch_sum(dxhat, axis) / count).reshape(shape)
        mean_dxhat_xhat = (_batch_sum(dxhat * xhat, axis) / count).reshape(shape)
        dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * inv_std.reshape(shape)
        return grads, dx.astype(dy.dtype, copy=False)


@attrs.frozen(repr=False)
class LayerNorm(_Normalization):
    """Normalize each example over ``axis``: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Stateless; statistics per example, so training and inference agree.
    """

    eps: float = attrs.field(default=1e-5, validator=_eps)

    def forward_with_state(
        self, params: Params, state: LayerState, x: Any, *, train: bool = False, rng: RngArg = None
    ) -> tuple[np.ndarray, LayerState, Cache]:
        params = as_params(params, self, NormParams)
        x = as_input(x, self, min_ndim=2)
        axis = _axis(x.ndim, self.axis, self)
        features = params.gamma if params.gamma is not None else params.beta
        if features is not None and x.shape[axis] != features.shape[0]:
            raise ValueError(
                f"{self!r} was initialized for {features.shape[0]} features, "
                f"got x of shape {x.shape}"
            )
        mean = x.mean(axis=axis, keepdims=True)
        centered = x - mean
        _, inv_std = _inv_std(
            centered,
            lambda a: np.mean(a, axis=axis, keepdims=True),
            lambda: np.max(np.abs(centered), axis=axis, keepdims=True),
            self.eps,
            mean.shape,
        )
        xhat = centered * inv_std
        shape = [1] * x.ndim
        shape[axis] = -1
        y = _affine(params, xhat, tuple(shape))
        return y, state, (xhat, inv_std, axis, shape)

    def backward(
        self, params: NormParams, cache: Cache, dy: np.ndarray, *, need_dx: bool = True
    ) -> tuple[NormParams, np.ndarray | None]:
        xhat, inv_std, axis, shape = cache
        grads, dxhat = _affine_grads(params, xhat, dy, axis, shape)
        if not need_dx:
            return grads, None
        mean_dxhat = dxhat.mean(axis=axis, keepdims=True)
        mean_dxhat_xhat = np.mean(dxhat * xhat, axis=axis, keepdims=True)
        return grads, (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * inv_std
