"""Loss-and-gradient of a model: forward, fused loss gradient, hand-written backward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from funcnn import tree
from funcnn.layers.base import Layer, RngArg
from funcnn.losses import Loss, Penalty
from funcnn.types import LayerState, Params


def check_model_and_loss(model: Any, loss: Any, penalty: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"model must be a funcnn Layer (e.g. serial(...)), got {type(model).__name__}"
        )
    if not isinstance(loss, Loss):
        raise TypeError(
            f"loss must be a funcnn.losses.Loss with a paired gradient (e.g. "
            f"losses.softmax_cross_entropy), got {type(loss).__name__}; wrap your own as "
            "losses.FunctionLoss(name, value_and_grad_fn)"
        )
    if penalty is not None and not isinstance(penalty, Penalty):
        raise TypeError(f"penalty must be a losses.Penalty or None, got {type(penalty).__name__}")


def value_and_grad(
    model: Layer, loss: Loss, *, penalty: Penalty | None = None
) -> Callable[..., tuple[float, Params]]:
    """``f(params, x, y, *, rng=None, train=True) -> (loss_value, grads)``.

    ``grads`` has the structure of ``params``. ``train=True`` runs training-mode
    layers (Dropout needs ``rng`` then). ``penalty`` (``losses.l2_penalty(...)``)
    is added to the loss and its gradient to ``grads``. Stateful models use
    :func:`value_and_grad_with_state`.
    """
    f = value_and_grad_with_state(model, loss, penalty=penalty)

    def fn(
        params: Params, x: Any, y: Any, *, rng: RngArg = None, train: bool = True
    ) -> tuple[float, Params]:
        (value, _), grads = f(params, None, x, y, rng=rng, train=train)
        return value, grads

    return fn


def forward_backward(
    model: Layer,
    loss: Loss,
    params: Params,
    state: LayerState,
    x: Any,
    y: Any,
    *,
    rng: RngArg = None,
    train: bool = True,
    penalty: Penalty | None = None,
) -> tuple[float, Params, Any, Any]:
    """One forward and backward pass: ``(loss_value, grads, new_state, pred)``.

    ``state=None`` suits a model without state (and gives ``new_state=None``).
    ``pred`` is the model's output in the given mode (what training metrics use).
    """
    pred, new_state, cache = model.forward_with_state(params, state, x, train=train, rng=rng)
    value, dpred = loss.value_and_grad(pred, y)
    grads, _ = model.backward(params, cache, dpred, need_dx=False)
    if penalty is not None:
        extra, pgrads = penalty.value_and_grad(params)
        value += extra
        grads = tree.map(np.add, grads, pgrads)
    return value, grads, new_state, pred


def value_and_grad_with_state(
    model: Layer, loss: Loss, *, penalty: Penalty | None = None
) -> Callable[..., tuple[tuple[float, Any], Params]]:
    """``f(params, state, x, y, *, rng=None, train=True) -> ((loss_value, new_state), grads)``.

    For models with non-trainable state (``model.init_state(input_shape)``); the
    state is returned, never modified.
    """
    check_model_and_loss(model, loss, penalty)

    def fn(
        params: Params, state: LayerState, x: Any, y: Any, *, rng: RngArg = None, train: bool = True
    ) -> tuple[tuple[float, Any], Params]:
        value, grads, new_state, _ = forward_backward(
            model, loss, params, state, x, y, rng=rng, train=train, penalty=penalty
        )
        return (value, new_state), grads

    return fn


def grad(model: Layer, loss: Loss, *, penalty: Penalty | None = None) -> Callable[..., Params]:
    """Like :func:`value_and_grad`, returning only the grads."""
    f = value_and_grad(model, loss, penalty=penalty)

    def fn(params: Params, x: Any, y: Any, *, rng: RngArg = None, train: bool = True) -> Params:
        return f(params, x, y, rng=rng, train=train)[1]

    return fn
