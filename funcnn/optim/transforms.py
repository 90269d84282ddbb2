"""Building blocks of optimizers: scaling, learning rate, momentum, adaptive scalings and
regularization. Each returns a ``GradientTransformation``.

Formulas use g for the incoming updates (the gradient at the start of a chain),
t for the update count after this step (1 on the first update), and EMA for
``ema(old, x, d) = d * old + (1 - d) * x``. Every new state array is read-only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from funcnn import kernels, tree
from funcnn import validate as check
from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    expect_state,
    no_state,
    require_params,
)
from funcnn.optim.leaves import (
    ema,
    ema_into,
    ema_sq,
    ema_sq_into,
    frozen,
    leafwise,
    leafwise_into,
    leafwise_transform,
    scaled,
    zeros,
)
from funcnn.optim.schedules import Schedule
from funcnn.optim.wrappers import masked
from funcnn.types import OptState, Params, UpdateResult, Updates

ScalarOrSchedule = float | Schedule

# ---------------------------------------------------------------- scaling


def scale(factor: float) -> GradientTransformation:
    """u = factor * g."""
    factor = check.number("factor", factor)

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        expect_state(state, EmptyState, "scale")
        return scaled(updates, factor), state

    return GradientTransformation(no_state, update)


class ScaleByLearningRateState(NamedTuple):
    step: int  # updates done so far
    learning_rate: float  # the rate the NEXT update will use (schedule(count) * multiplier)
    multiplier: float  # set by scale_learning_rate (e.g. ReduceLROnPlateau); 1.0 otherwise


def _rate_at(learning_rate: ScalarOrSchedule, count: int) -> float:
    if not callable(learning_rate):  # a constant, checked once where it was given
        return learning_rate
    value = learning_rate(count)
    try:
        return check.non_negative("learning rate", value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"learning rate at step {count} is invalid: {e}") from None


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """u = -lr(t) * g (or +lr(t) * g with ``flip_sign=False``).

    ``learning_rate`` is a float or a schedule ``step -> float`` (step counts from 0).
    The sign that makes gradient DEscent lives here and nowhere else. The rate the
    next update will use is in the state: :func:`current_learning_rate`.
    """
    if not callable(learning_rate):
        learning_rate = check.non_negative("learning_rate", learning_rate)
    sign = -1.0 if flip_sign else 1.0

    def init(params: Params) -> ScaleByLearningRateState:
        return ScaleByLearningRateState(0, _rate_at(learning_rate, 0), 1.0)

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ScaleByLearningRateState, "scale_by_learning_rate")
        factor, new = _advance_rate(learning_rate, sign, s)
        return scaled(updates, factor), new

    return GradientTransformation(init, update)


def _advance_rate(
    learning_rate: ScalarOrSchedule, sign: float, s: ScaleByLearningRateState
) -> tuple[float, ScaleByLearningRateState]:
    """(the factor this update multiplies by, the state after it)."""
    if not callable(learning_rate) and learning_rate == 0:
        # A constant 0 is a placeholder for the rate a callback sets (Keras' SGD(
        # learning_rate=0.0) with a LearningRateScheduler): the state's rate is the rate.
        return sign * s.learning_rate, s._replace(step=s.step + 1)
    multiplier = s.multiplier
    if multiplier == 0 and s.learning_rate != 0:
        # A rate set (set_learning_rate) after the rate was scaled to 0: the multiplier
        # that makes this step's rate the set one (a schedule goes on from there; one
        # that is 0 at this step holds the set rate until it is not).
        base = _rate_at(learning_rate, s.step)
        if base == 0:
            return sign * s.learning_rate, s._replace(step=s.step + 1)
        multiplier = s.learning_rate / base
        factor = sign * s.learning_rate
    else:
        factor = sign * _rate_at(learning_rate, s.step) * multiplier
    count = s.step + 1
    new = ScaleByLearningRateState(count, _rate_at(learning_rate, count) * multiplier, multiplier)
    return factor, new


def _find_lr_states(state: Any) -> list[ScaleByLearningRateState]:
    if isinstance(state, ScaleByLearningRateState):
        return [state]
    if isinstance(state, (tuple, list)):
        return [s for child in state for s in _find_lr_states(child)]
    return []


def current_learning_rate(state: OptState) -> float:
    """The learning rate the next update will use, read from an optimizer state."""
    found = _find_lr_states(state)
    if not found:
        raise ValueError("this optimizer state holds no learning rate (no scale_by_learning_rate)")
    return found[0].learning_rate


def scale_learning_rate(state: OptState, factor: float) -> OptState:
    """A new state whose learning rate(s) are multiplied by ``factor`` from the next update on."""
    factor = check.non_negative("factor", factor)
    if isinstance(state, ScaleByLearningRateState):
        return state._replace(
            learning_rate=state.learning_rate * factor, multiplier=state.multiplier * factor
        )
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(scale_learning_rate(s, factor) for s in state))
    if isinstance(state, tuple):
        return tuple(scale_learning_rate(s, factor) for s in state)
    return state


def set_learning_rate(state: OptState, value: float) -> OptState:
    """A new state whose learning rate(s) are ``value`` from the next update on: a rate of
    0 (a constant 0, a placeholder) is replaced; any other is rescaled to ``value``
    (:func:`scale_learning_rate`: a schedule goes on, multiplied)."""
    value = check.non_negative("learning rate", value)
    if isinstance(state, ScaleByLearningRateState):
        if state.learning_rate == 0:
            return state._replace(learning_rate=value)
        return scale_learning_rate(state, value / state.learning_rate)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(set_learning_rate(s, value) for s in state))
    if isinstance(state, tuple):
        return tuple(set_learning_rate(s, value) for s in state)
    return state


# ---------------------------------------------------------------- momentum


class TraceState(NamedTuple):
    trace: Any


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: m_t = g + decay * m_{t-1}; u = m_t, or g + decay * m_t with ``nesterov``.

    (The heavy-ball form used by optax and PyTorch, m_0 = 0.)
    """
    decay = check.decay("momentum decay", decay)

    def step(g: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = m * decay
        new += g
        frozen(new)
        return (g + decay * new if nesterov else new), new

    return leafwise_transform("trace", TraceState, (0.0,), step)


# ---------------------------------------------------------------- adaptive


class ScaleByRmsState(NamedTuple):
    nu: Any


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0
) -> GradientTransformation:
    """nu = EMA(nu, g^2, decay) from nu_0 = initial_scale; u = g / sqrt(nu + eps).

    eps inside the square root, as optax's default (PyTorch adds it outside).
    """
    decay, eps = check.decay("decay", decay), check.positive("eps", eps)
    initial_scale = check.non_negative("initial_scale", initial_scale)

    def step(g: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = ema_sq(nu, g, decay)
        return g / np.sqrt(new + eps), new

    return leafwise_transform("scale_by_rms", ScaleByRmsState, (initial_scale,), step)


class ScaleByStddevState(NamedTuple):
    mu: Any
    nu: Any


def scale_by_stddev(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0
) -> GradientTransformation:
    """Centered RMSProp: mu = EMA(mu, g), nu = EMA(nu, g^2); u = g / sqrt(nu - mu^2 + eps)."""
    decay, eps = check.decay("decay", decay), check.positive("eps", eps)
    initial_scale = check.non_negative("initial_scale", initial_scale)

    def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
        new_mu, new_nu = ema(mu, g, decay), ema_sq(nu, g, decay)
        return g / np.sqrt(new_nu - new_mu * new_mu + eps), new_mu, new_nu

    return leafwise_transform("scale_by_stddev", ScaleByStddevState, (0.0, initial_scale), step)


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Adagrad: s = s + g^2 from s_0 = initial_accumulator_value; u = g / sqrt(s + eps).

    (u = 0 where s = 0 and eps = 0.)
    """
    initial = check.non_negative("initial_accumulator_value", initial_accumulator_value)
    eps = check.non_negative("eps", eps)

    def step(g: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = frozen(s + g * g)
        u = np.where(new > 0, g / np.sqrt(new + eps), 0) if eps == 0 else g / np.sqrt(new + eps)
        return u, new

    return leafwise_transform("scale_by_rss", ScaleByRssState, (initial,), step)


class ScaleByAdamState(NamedTuple):
    step: int  # updates done so far
    mu: Any
    nu: Any


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015), as optax:

    mu = EMA(mu, g, b1), nu = EMA(nu, g^2, b2), mu_hat = mu / (1 - b1^t),
    nu_hat = nu / (1 - b2^t), u = mu_hat / (sqrt(nu_hat + eps_root) + eps).
    With ``nesterov`` (NAdam, Dozat 2016):
    mu_hat = b1 mu / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t).

    Each leaf is cut into spans of :data:`funcnn.optim.leaves.SPAN` elements that run on
    funcnn's threads, every operation one pass over a span, written into the new
    arrays (the bits of whole-leaf passes). :func:`funcnn.optim.compiled.scale_by_adam`
    computes the same numbers in one compiled loop per span (the ``numba`` extra).
    """
    b1, b2 = check.decay("b1", b1), check.decay("b2", b2)
    eps, eps_root = check.non_negative("eps", eps), check.non_negative("eps_root", eps_root)
    if eps == 0 and eps_root == 0:  # mu / sqrt(nu) is 0 / 0 for a gradient that is 0
        raise ValueError(
            "scale_by_adam needs eps > 0 (or eps_root > 0): with both 0 it divides by 0"
        )

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ScaleByAdamState, "scale_by_adam")
        if kernels.compiled():  # the compiled tier: one loop per span, the same bits
            done = compiled_adam_update(b1, b2, eps, eps_root, nesterov, updates, s)
            if done is not None:
                return done
        c2, eps_add, k1, k2, out_scale = adam_scalars(b1, b2, eps, eps_root, nesterov, s.step + 1)

        def fill(g: np.ndarray, mu: np.ndarray, nu: np.ndarray, u: np.ndarray,
                 new_mu: np.ndarray, new_nu: np.ndarray) -> None:  # fmt: skip
            # Few passes, no temporaries: each operation is one pass over the span, and
            # u (written last) holds b1 * mu, then b2 * nu, on the way.
            ema_into(new_mu, mu, g, b1, scratch=u)
            ema_sq_into(new_nu, nu, g, b2, scratch=u)
            if eps_root:
                np.divide(new_nu, c2, out=u)
                u += eps_root
                np.sqrt(u, out=u)
            else:
                np.sqrt(new_nu, out=u)
            u += eps_add
            if nesterov:
                mu_hat = new_mu * k1
                mu_hat += g * k2
                np.divide(mu_hat, u, out=u)
            else:
                np.divide(new_mu, u, out=u)
            u *= out_scale

        out, mu, nu = leafwise_into("scale_by_adam", fill, adam_dtypes, updates, s.mu, s.nu)
        return out, ScaleByAdamState(s.step + 1, mu, nu)

    return GradientTransformation(adam_init, update)


def compiled_adam_update(
    b1: float, b2: float, eps: float, eps_root: float, nesterov: bool,
    updates: Updates, s: ScaleByAdamState,
) -> UpdateResult | None:  # fmt: skip
    """One compiled Adam step (the NumPy path's bits), or None for leaves of mixed dtypes
    (NumPy's type promotion decides there, as in the NumPy path)."""
    from funcnn.optim.adam_loop import compiled_adam_loop

    loop = compiled_adam_loop()
    c2, eps_add, k1, k2, out_scale = adam_scalars(b1, b2, eps, eps_root, nesterov, s.step + 1)
    leaves = [*tree.leaves(updates), *tree.leaves(s.mu), *tree.leaves(s.nu)]
    dtype = leaves[0].dtype if leaves else None
    if dtype not in (np.float32, np.float64) or any(
        not isinstance(a, np.ndarray) or a.dtype != dtype for a in leaves
    ):
        return None
    t = dtype.type
    scalars = [t(c) for c in (b1, b2, 1 - b1, 1 - b2, c2, eps_root, eps_add)]
    tail = (nesterov, t(k1), t(k2), t(out_scale))

    def fill(*arrays: np.ndarray) -> None:  # g, mu, nu, u, new_mu, new_nu: flat spans
        loop(*arrays, *scalars, *tail)

    out, mu, nu = leafwise_into(
        "compiled.scale_by_adam", fill, lambda *leaves: (dtype,) * 3, updates, s.mu, s.nu
    )
    return out, ScaleByAdamState(s.step + 1, mu, nu)


def adam_dtypes(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.dtype, ...]:
    """The dtypes of Adam's update, mu and nu for these leaves: those of ``ema`` (``g - mu``)
    and ``ema_sq`` (``g * g``); the update is computed in nu's."""
    return (g.dtype, np.result_type(g, mu), g.dtype)


def adam_init(params: Params) -> ScaleByAdamState:
    return ScaleByAdamState(0, zeros(params), zeros(params))


def adam_scalars(
    b1: float, b2: float, eps: float, eps_root: float, nesterov: bool, t: int
) -> tuple[float, float, float, float, float]:
    """``(c2, eps_add, k1, k2, out_scale)`` of Adam's step ``t``, the bias corrections folded
    into scalars: with eps_root = 0, mu_hat / (sqrt(nu_hat) + eps) is
    (mu / c1) sqrt(c2) / (sqrt(nu) + eps sqrt(c2)), c1 = 1 - b1^t, c2 = 1 - b2^t.
    With nesterov, mu_hat = k1 mu + k2 g. tests/test_optim_updates.py
    (``adam_by_definition``) checks the folded update against the unfolded formula."""
    c1, c2 = 1 - b1**t, 1 - b2**t
    eps_add, scale = (eps, 1.0) if eps_root else (eps * math.sqrt(c2), math.sqrt(c2))
    if nesterov:
        return c2, eps_add, b1 / (1 - b1 ** (t + 1)), (1 - b1) / c1, scale
    return c2, eps_add, 0.0, 0.0, scale / c1


class ScaleByAdamaxState(NamedTuple):
    step: int  # updates done so far
    mu: Any
    nu: Any


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax (Kingma & Ba 2015, sec. 7.1), as optax:

    mu = EMA(mu, g, b1), nu = max(b2 nu, |g| + eps), u = mu / (1 - b1^t) / nu.
    Bias correction uses the step t (not a constant); nu needs none.
    """
    b1, b2, eps = check.decay("b1", b1), check.decay("b2", b2), check.positive("eps", eps)

    def init(params: Params) -> ScaleByAdamaxState:
        return ScaleByAdamaxState(0, zeros(params), zeros(params))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ScaleByAdamaxState, "scale_by_adamax")
        t = s.step + 1
        c1 = 1 - b1**t

        def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
            new_mu = ema(mu, g, b1)
            new_nu = frozen(np.maximum(nu * b2, np.abs(g) + eps))
            return new_mu / c1 / new_nu, new_mu, new_nu

        out, mu, nu = leafwise("scale_by_adamax", step, updates, s.mu, s.nu)
        return out, ScaleByAdamaxState(t, mu, nu)

    return GradientTransformation(init, update)


class ScaleByAmsgradState(NamedTuple):
    step: int  # updates done so far
    mu: Any
    nu: Any
    nu_max: Any  # the largest nu so far, elementwise


def scale_by_amsgrad(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0
) -> GradientTransformation:
    """AMSGrad (Reddi et al. 2018), as PyTorch's and Keras' ``Adam(amsgrad=True)``:

    mu = EMA(mu, g, b1), nu = EMA(nu, g^2, b2), nu_max = max(nu_max, nu),
    u = (mu / (1 - b1^t)) / (sqrt(nu_max / (1 - b2^t) + eps_root) + eps).

    The maximum is taken over the raw second moments, before the bias correction (optax's
    ``scale_by_amsgrad`` takes it after, which keeps the large corrected values of the
    first steps): the step size never grows back once nu has been large.
    """
    b1, b2 = check.decay("b1", b1), check.decay("b2", b2)
    eps, eps_root = check.non_negative("eps", eps), check.non_negative("eps_root", eps_root)
    if eps == 0 and eps_root == 0:  # mu / sqrt(nu) is 0 / 0 for a gradient that is 0
        raise ValueError(
            "scale_by_amsgrad needs eps > 0 (or eps_root > 0): with both 0 it divides by 0"
        )

    def init(params: Params) -> ScaleByAmsgradState:
        return ScaleByAmsgradState(0, zeros(params), zeros(params), zeros(params))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ScaleByAmsgradState, "scale_by_amsgrad")
        t = s.step + 1
        c1, c2 = 1 - b1**t, 1 - b2**t

        def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray, nu_max: np.ndarray) -> tuple:
            new_mu, new_nu = ema(mu, g, b1), ema_sq(nu, g, b2)
            new_max = frozen(np.maximum(nu_max, new_nu))
            denominator = np.sqrt(new_max / c2 + eps_root) if eps_root else np.sqrt(new_max / c2)
            return new_mu / c1 / (denominator + eps), new_mu, new_nu, new_max

        out, mu, nu, nu_max = leafwise("scale_by_amsgrad", step, updates, s.mu, s.nu, s.nu_max)
        return out, ScaleByAmsgradState(t, mu, nu, nu_max)

    return GradientTransformation(init, update)


class ScaleByAdadeltaState(NamedTuple):
    e_g: Any  # E[g^2]
    e_x: Any  # E[dx^2]


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta (Zeiler 2012): E[g^2] = EMA(E[g^2], g^2, rho);
    u = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g; then E[dx^2] = EMA(E[dx^2], u^2, rho).

    E[dx^2] accumulates the squared UPDATES (u), not the gradients.
    """
    rho, eps = check.decay("rho", rho), check.positive("eps", eps)

    def step(g: np.ndarray, e_g: np.ndarray, e_x: np.ndarray) -> tuple[np.ndarray, ...]:
        new_e_g = ema_sq(e_g, g, rho)
        u = np.sqrt(e_x + eps) / np.sqrt(new_e_g + eps) * g
        return u, new_e_g, ema_sq(e_x, u, rho)

    return leafwise_transform("scale_by_adadelta", ScaleByAdadeltaState, (0.0, 0.0), step)


class ScaleByLionState(NamedTuple):
    mu: Any


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> GradientTransformation:
    """Lion (Chen et al. 2023): u = sign((1 - b1) g + b1 mu); then mu = EMA(mu, g, b2)."""
    b1, b2 = check.decay("b1", b1), check.decay("b2", b2)

    def step(g: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.sign(g * (1 - b1) + mu * b1), ema(mu, g, b2)

    return leafwise_transform("scale_by_lion", ScaleByLionState, (0.0,), step)


# ---------------------------------------------------------------- regularization


def _params_transform(
    name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> GradientTransformation:
    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        expect_state(state, EmptyState, name)
        require_params(params, name)
        (out,) = leafwise(name, lambda g, w: (fn(g, w),), updates, params, outputs=1)
        return out, state

    return GradientTransformation(no_state, update)


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """u = g + weight_decay * w (L2 before an adaptive scaling; decoupled decay after it)."""
    wd = check.non_negative("weight_decay", weight_decay)
    t = _params_transform("add_decayed_weights", lambda g, w: g + wd * w)
    return t if mask is None else masked(t, mask)


def add_l1(l1: float, mask: Any = None) -> GradientTransformation:
    """u = g + l1 * sign(w): the subgradient of l1 * sum|w| (0 at w = 0)."""
    l1 = check.non_negative("l1", l1)
    t = _params_transform("add_l1", lambda g, w: g + l1 * np.sign(w))
    return t if mask is None else masked(t, mask)
