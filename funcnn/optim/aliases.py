"""The optimizers users pick by name: each a short ``chain`` of building blocks.

The formulas follow optax's (defaults included); where libraries disagree (eps
inside or outside a square root, initial accumulators) each docstring says which.
g is the gradient, t the step (1 on the first update), lr the learning rate.
"""

from __future__ import annotations

from typing import Any

from funcnn.optim import transforms
from funcnn.optim.base import GradientTransformation, chain, identity
from funcnn.optim.transforms import ScalarOrSchedule


def sgd(
    learning_rate: ScalarOrSchedule, momentum: float | None = None, nesterov: bool = False
) -> GradientTransformation:
    """Stochastic gradient descent: w <- w - lr * g.

    With ``momentum`` b: m = g + b m, w <- w - lr * m (Nesterov: w <- w - lr (g + b m)).
    """
    return chain(
        transforms.trace(momentum, nesterov) if momentum is not None else identity(),
        transforms.scale_by_learning_rate(learning_rate),
    )


def momentum(learning_rate: ScalarOrSchedule, beta: float = 0.9) -> GradientTransformation:
    """Heavy-ball momentum: m = g + beta m, w <- w - lr * m (Polyak 1964)."""
    return sgd(learning_rate, momentum=beta)


def nesterov(learning_rate: ScalarOrSchedule, beta: float = 0.9) -> GradientTransformation:
    """Nesterov momentum: m = g + beta m, w <- w - lr (g + beta m) (Sutskever et al. 2013)."""
    return sgd(learning_rate, momentum=beta, nesterov=True)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """RMSProp (Hinton 2012): nu = decay nu + (1 - decay) g^2, w <- w - lr g / sqrt(nu + eps).

    eps INSIDE the square root, nu_0 = 0 (optax). ``centered``: divide by
    sqrt(nu - mu^2 + eps) with mu = EMA(g). ``momentum`` b: m = lr g / sqrt(...) + b m,
    w <- w - m (the trace follows the learning-rate scaling, as optax).
    """
    return chain(
        transforms.scale_by_stddev(decay, eps) if centered else transforms.scale_by_rms(decay, eps),
        transforms.scale_by_learning_rate(learning_rate),
        transforms.trace(momentum, nesterov) if momentum is not None else identity(),
    )


def adagrad(
    learning_rate: ScalarOrSchedule, initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011): s = s + g^2 (s_0 = 0.1), w <- w - lr g / sqrt(s + eps)."""
    return chain(
        transforms.scale_by_rss(initial_accumulator_value, eps),
        transforms.scale_by_learning_rate(learning_rate),
    )


def adadelta(
    learning_rate: ScalarOrSchedule | None = None, rho: float = 0.9, eps: float = 1e-6
) -> GradientTransformation:
    """Adadelta (Zeiler 2012): E[g^2] = rho E[g^2] + (1 - rho) g^2,
    dx = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) g, E[dx^2] = rho E[dx^2] + (1 - rho) dx^2,
    w <- w - lr dx. ``learning_rate=None`` means 1 (the paper has none).
    """
    return chain(
        transforms.scale_by_adadelta(rho, eps),
        transforms.scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015): mu = EMA(g, b1), nu = EMA(g^2, b2),
    w <- w - lr (mu / (1 - b1^t)) / (sqrt(nu / (1 - b2^t)) + eps). eps outside the root.

    ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``; ``nesterov``
    gives NAdam (:func:`nadam`).
    """
    return chain(
        transforms.scale_by_adam(b1, b2, eps, eps_root, nesterov=nesterov),
        transforms.scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    mask: Any = None,
) -> GradientTransformation:
    """AdamW (Loshchilov & Hutter 2019): w <- w - lr (adam_direction + weight_decay w).

    Decoupled decay: added after the adaptive scaling, scaled by lr. ``mask``
    (a tree of bools or a callable such as ``funcnn.tree.kernel_mask``) limits decay.
    """
    return chain(
        transforms.scale_by_adam(b1, b2, eps, eps_root),
        transforms.add_decayed_weights(weight_decay, mask),
        transforms.scale_by_learning_rate(learning_rate),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax (Kingma & Ba 2015): mu = EMA(g, b1), nu = max(b2 nu, |g| + eps),
    w <- w - lr mu / (1 - b1^t) / nu.
    """
    return chain(
        transforms.scale_by_adamax(b1, b2, eps), transforms.scale_by_learning_rate(learning_rate)
    )


def amsgrad(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018), PyTorch's and Keras' ``Adam(amsgrad=True)``: Adam whose
    second moment is the largest seen so far, nu_max = max(nu_max, nu),
    w <- w - lr (mu / (1 - b1^t)) / (sqrt(nu_max / (1 - b2^t)) + eps).
    """
    return chain(
        transforms.scale_by_amsgrad(b1, b2, eps, eps_root),
        transforms.scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """NAdam (Dozat 2016), as optax: Adam with
    mu_hat = b1 mu / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t).
    """
    return adam(learning_rate, b1, b2, eps, eps_root, nesterov=True)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    """Lion (Chen et al. 2023): w <- w - lr (sign((1 - b1) g + b1 mu) + weight_decay w),
    then mu = EMA(g, b2). Use a learning rate 3-10x smaller than Adam's. The default
    weight decay is optax's (1e-3).
    """
    return chain(
        transforms.scale_by_lion(b1, b2),
        transforms.add_decayed_weights(weight_decay, mask),
        transforms.scale_by_learning_rate(learning_rate),
    )
