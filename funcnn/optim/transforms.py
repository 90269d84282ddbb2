"""Building blocks of optimizers. Each returns a ``GradientTransformation``.

Formulas use g for the incoming updates (the gradient at the start of a chain),
t for the update count after this step (1 on the first update), and EMA for
``ema(old, x, d) = d * old + (1 - d) * x``. Every new state array is read-only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from funcnn import tree
from funcnn.optim import kernels
from funcnn.optim.base import (
    ChainState,
    EmptyState,
    GradientTransformation,
    Params,
    State,
    Updates,
    expect_state,
    require_params,
    updates_mismatch,
)
from funcnn.schedules import Schedule

ScalarOrSchedule = float | Schedule


# ---------------------------------------------------------------- validation


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _non_negative(name: str, value: Any) -> float:
    value = _number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _positive(name: str, value: Any) -> float:
    value = _number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _decay(name: str, value: Any) -> float:
    value = _number(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} is a decay rate and must be in [0, 1), got {value}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# ---------------------------------------------------------------- helpers


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _ema(old: np.ndarray, x: np.ndarray, decay: float) -> np.ndarray:
    """decay * old + (1 - decay) * x, written as old + (1 - decay) * (x - old): one new array."""
    out = x - old
    out *= 1 - decay
    out += old
    return _frozen(out)


def _ema_sq(old: np.ndarray, g: np.ndarray, decay: float) -> np.ndarray:
    """decay * old + (1 - decay) * g^2."""
    out = g * g
    out -= old
    out *= 1 - decay
    out += old
    return _frozen(out)


def _zeros(params: Params, fill: float = 0.0) -> Any:
    leaves, treedef = tree.flatten(params)
    return tree.unflatten(treedef, [_frozen(np.full_like(p, fill)) for p in leaves])


def _leafwise(
    name: str,
    step: Callable[..., tuple[Any, ...]],
    updates: Updates,
    *state_trees: Any,
    outputs: int | None = None,
) -> tuple[Any, ...]:
    """Run ``step(g, *state_leaves) -> (u, *new_state_leaves)`` on each leaf.

    Returns one tree per output of ``step`` (by default the updates and one new tree
    per state tree). A state tree whose structure or shapes differ from ``updates``
    raises ValueError naming the place.
    """
    grads, treedef = tree.flatten(updates)
    columns = []
    for state_tree in state_trees:
        leaves = tree.leaves_matching(treedef, grads, state_tree)
        if leaves is None:
            raise updates_mismatch(updates, state_tree, name)
        columns.append(leaves)
    results = [
        step(*args) if np.ndim(args[0]) else _as_0d(step(*(np.reshape(a, 1) for a in args)))
        for args in zip(grads, *columns)
    ]
    columns_out = list(zip(*results)) or [()] * (outputs or 1 + len(state_trees))
    return tuple(tree.unflatten(treedef, list(out)) for out in columns_out)


def _as_0d(results: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """A 0-d leaf's step results: each step runs on 1-element views (arithmetic on 0-d
    arrays gives NumPy scalars, which in-place ufuncs and read-only flags refuse)."""
    return tuple(r.reshape(()) for r in results)


def _no_state(params: Params) -> EmptyState:
    del params
    return EmptyState()


# ---------------------------------------------------------------- scaling


def scale(factor: float) -> GradientTransformation:
    """u = factor * g."""
    factor = _number("factor", factor)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        expect_state(state, EmptyState, "scale")
        return tree.map(lambda g: g * factor, updates), state

    return GradientTransformation(_no_state, update)


class ScaleByLearningRateState(NamedTuple):
    step: int  # updates done so far
    learning_rate: float  # the rate the NEXT update will use (schedule(count) * multiplier)
    multiplier: float  # set by scale_learning_rate (e.g. ReduceLROnPlateau); 1.0 otherwise


def _rate_at(learning_rate: ScalarOrSchedule, count: int) -> float:
    value = learning_rate(count) if callable(learning_rate) else learning_rate
    try:
        return _non_negative("learning rate", value)
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
        _non_negative("learning_rate", learning_rate)
    sign = -1.0 if flip_sign else 1.0

    def init(params: Params) -> ScaleByLearningRateState:
        return ScaleByLearningRateState(0, _rate_at(learning_rate, 0), 1.0)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByLearningRateState, "scale_by_learning_rate")
        factor, new = _advance_rate(learning_rate, sign, s)
        return tree.map(lambda g: g * factor, updates), new

    return GradientTransformation(init, update)


def _advance_rate(
    learning_rate: ScalarOrSchedule, sign: float, s: ScaleByLearningRateState
) -> tuple[float, ScaleByLearningRateState]:
    """(the factor this update multiplies by, the state after it)."""
    factor = sign * _rate_at(learning_rate, s.step) * s.multiplier
    count = s.step + 1
    new = ScaleByLearningRateState(
        count, _rate_at(learning_rate, count) * s.multiplier, s.multiplier
    )
    return factor, new


def _find_lr_states(state: Any) -> list[ScaleByLearningRateState]:
    if isinstance(state, ScaleByLearningRateState):
        return [state]
    if isinstance(state, (tuple, list)):
        return [s for child in state for s in _find_lr_states(child)]
    return []


def current_learning_rate(state: State) -> float:
    """The learning rate the next update will use, read from an optimizer state."""
    found = _find_lr_states(state)
    if not found:
        raise ValueError("this optimizer state holds no learning rate (no scale_by_learning_rate)")
    return found[0].learning_rate


def scale_learning_rate(state: State, factor: float) -> State:
    """A new state whose learning rate(s) are multiplied by ``factor`` from the next update on."""
    factor = _non_negative("factor", factor)
    if isinstance(state, ScaleByLearningRateState):
        return state._replace(
            learning_rate=state.learning_rate * factor, multiplier=state.multiplier * factor
        )
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(scale_learning_rate(s, factor) for s in state))
    if isinstance(state, tuple):
        return tuple(scale_learning_rate(s, factor) for s in state)
    return state


# ---------------------------------------------------------------- momentum


class TraceState(NamedTuple):
    trace: Any


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: m_t = g + decay * m_{t-1}; u = m_t, or g + decay * m_t with ``nesterov``.

    (The heavy-ball form used by optax and PyTorch, m_0 = 0.)
    """
    decay = _decay("momentum decay", decay)

    def init(params: Params) -> TraceState:
        return TraceState(_zeros(params))

    def step(g: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = m * decay
        new += g
        _frozen(new)
        return (g + decay * new if nesterov else new), new

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, TraceState, "trace")
        out, new = _leafwise("trace", step, updates, s.trace)
        return out, TraceState(new)

    return GradientTransformation(init, update)


# ---------------------------------------------------------------- adaptive


class ScaleByRmsState(NamedTuple):
    nu: Any


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0
) -> GradientTransformation:
    """nu = EMA(nu, g^2, decay) from nu_0 = initial_scale; u = g / sqrt(nu + eps).

    eps inside the square root, as optax's default (PyTorch adds it outside).
    """
    decay, eps = _decay("decay", decay), _non_negative("eps", eps)
    initial_scale = _non_negative("initial_scale", initial_scale)

    def init(params: Params) -> ScaleByRmsState:
        return ScaleByRmsState(_zeros(params, initial_scale))

    def step(g: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = _ema_sq(nu, g, decay)
        return g / np.sqrt(new + eps), new

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByRmsState, "scale_by_rms")
        out, nu = _leafwise("scale_by_rms", step, updates, s.nu)
        return out, ScaleByRmsState(nu)

    return GradientTransformation(init, update)


class ScaleByStddevState(NamedTuple):
    mu: Any
    nu: Any


def scale_by_stddev(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0
) -> GradientTransformation:
    """Centered RMSProp: mu = EMA(mu, g), nu = EMA(nu, g^2); u = g / sqrt(nu - mu^2 + eps)."""
    decay, eps = _decay("decay", decay), _non_negative("eps", eps)
    initial_scale = _non_negative("initial_scale", initial_scale)

    def init(params: Params) -> ScaleByStddevState:
        return ScaleByStddevState(_zeros(params), _zeros(params, initial_scale))

    def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
        new_mu, new_nu = _ema(mu, g, decay), _ema_sq(nu, g, decay)
        return g / np.sqrt(new_nu - new_mu * new_mu + eps), new_mu, new_nu

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByStddevState, "scale_by_stddev")
        out, mu, nu = _leafwise("scale_by_stddev", step, updates, s.mu, s.nu)
        return out, ScaleByStddevState(mu, nu)

    return GradientTransformation(init, update)


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Adagrad: s = s + g^2 from s_0 = initial_accumulator_value; u = g / sqrt(s + eps).

    (u = 0 where s = 0 and eps = 0.)
    """
    initial = _non_negative("initial_accumulator_value", initial_accumulator_value)
    eps = _non_negative("eps", eps)

    def init(params: Params) -> ScaleByRssState:
        return ScaleByRssState(_zeros(params, initial))

    def step(g: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = _frozen(s + g * g)
        u = np.where(new > 0, g / np.sqrt(new + eps), 0) if eps == 0 else g / np.sqrt(new + eps)
        return u, new

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByRssState, "scale_by_rss")
        out, sos = _leafwise("scale_by_rss", step, updates, s.sum_of_squares)
        return out, ScaleByRssState(sos)

    return GradientTransformation(init, update)


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
    kernel: str = "numpy",
) -> GradientTransformation:
    """Adam (Kingma & Ba 2015), as optax:

    mu = EMA(mu, g, b1), nu = EMA(nu, g^2, b2), mu_hat = mu / (1 - b1^t),
    nu_hat = nu / (1 - b2^t), u = mu_hat / (sqrt(nu_hat + eps_root) + eps).
    With ``nesterov`` (NAdam, Dozat 2016):
    mu_hat = b1 mu / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t).

    ``kernel="numba"`` computes each leaf in one compiled loop, bit for bit the same
    numbers (:mod:`funcnn.optim.kernels`; needs the ``numba`` extra).
    """
    run = _adam_updater(b1, b2, eps, eps_root, nesterov, kernel)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        return run(updates, expect_state(state, ScaleByAdamState, "scale_by_adam"), 1.0)

    return GradientTransformation(_adam_init, update)


def _adam_init(params: Params) -> ScaleByAdamState:
    return ScaleByAdamState(0, _zeros(params), _zeros(params))


def _adam_updater(
    b1: float, b2: float, eps: float, eps_root: float, nesterov: bool, kernel: str
) -> Callable[[Updates, ScaleByAdamState, float], tuple[Updates, ScaleByAdamState]]:
    """``run(updates, state, factor)``: scale_by_adam's update with its output times
    ``factor``, folded into the last multiply (no pass of its own)."""
    b1, b2 = _decay("b1", b1), _decay("b2", b2)
    eps, eps_root = _non_negative("eps", eps), _non_negative("eps_root", eps_root)
    compiled = kernels.check_kernel(kernel) == "numba"

    def run(
        updates: Updates, s: ScaleByAdamState, factor: float
    ) -> tuple[Updates, ScaleByAdamState]:
        t = s.step + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        # mu_hat / (sqrt(nu_hat + eps_root) + eps) with the bias corrections folded into
        # scalars: with eps_root = 0 it is (mu / c1) sqrt(c2) / (sqrt(nu) + eps sqrt(c2)).
        eps_add, scale = (eps, 1.0) if eps_root else (eps * math.sqrt(c2), math.sqrt(c2))
        if nesterov:  # mu_hat = k1 mu + k2 g
            k1, k2, out_scale = b1 / (1 - b1 ** (t + 1)), (1 - b1) / c1, scale * factor
        else:
            k1, k2, out_scale = 0.0, 0.0, scale / c1 * factor

        def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
            if compiled and kernels.fits(g, mu, nu):
                u, new_mu, new_nu = kernels.adam_leaf(
                    g, mu, nu, 1 - b1, 1 - b2, c2, eps_root, eps_add, k1, k2, out_scale,
                    nesterov=nesterov,
                )  # fmt: skip
                return u, _frozen(new_mu), _frozen(new_nu)
            # Few passes, few arrays: each line below is one pass over the leaf.
            new_mu, new_nu = _ema(mu, g, b1), _ema_sq(nu, g, b2)
            u = np.sqrt(new_nu / c2 + eps_root) if eps_root else np.sqrt(new_nu)
            u += eps_add
            if nesterov:
                mu_hat = new_mu * k1
                mu_hat += g * k2
                np.divide(mu_hat, u, out=u)
            else:
                np.divide(new_mu, u, out=u)
            u *= out_scale
            return u, new_mu, new_nu

        out, mu, nu = _leafwise("scale_by_adam", step, updates, s.mu, s.nu)
        return out, ScaleByAdamState(t, mu, nu)

    return run


def adam_with_learning_rate(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    nesterov: bool = False,
    kernel: str = "numpy",
) -> GradientTransformation:
    """``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))`` in one pass
    less per leaf: the rate is folded into Adam's last multiply instead of scaling a
    finished update (a few percent of an MLP training step). The state is the chain's, and
    the updates equal the chain's up to float rounding (the two factors are multiplied
    first). What ``optim.adam`` and ``optim.nadam`` return.
    """
    run = _adam_updater(b1, b2, eps, eps_root, nesterov, kernel)
    rate = scale_by_learning_rate(learning_rate)

    def init(params: Params) -> ChainState:
        return ChainState((_adam_init(params), rate.init(params)))

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ChainState, "adam")
        if len(s.inner) != 2:
            raise ValueError(
                f"adam got a chain state of {len(s.inner)} transforms, expected 2 (Adam and "
                "the learning rate); was it made by another optimizer's init?"
            )
        adam_state = expect_state(s.inner[0], ScaleByAdamState, "adam")
        rate_state = expect_state(s.inner[1], ScaleByLearningRateState, "adam")
        factor, rate_state = _advance_rate(learning_rate, -1.0, rate_state)
        out, adam_state = run(updates, adam_state, factor)
        return out, ChainState((adam_state, rate_state))

    return GradientTransformation(init, update)


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
    b1, b2, eps = _decay("b1", b1), _decay("b2", b2), _non_negative("eps", eps)

    def init(params: Params) -> ScaleByAdamaxState:
        return ScaleByAdamaxState(0, _zeros(params), _zeros(params))

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByAdamaxState, "scale_by_adamax")
        t = s.step + 1
        c1 = 1 - b1**t

        def step(g: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, ...]:
            new_mu = _ema(mu, g, b1)
            new_nu = _frozen(np.maximum(nu * b2, np.abs(g) + eps))
            return new_mu / c1 / new_nu, new_mu, new_nu

        out, mu, nu = _leafwise("scale_by_adamax", step, updates, s.mu, s.nu)
        return out, ScaleByAdamaxState(t, mu, nu)

    return GradientTransformation(init, update)


class ScaleByAdadeltaState(NamedTuple):
    e_g: Any  # E[g^2]
    e_x: Any  # E[dx^2]


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta (Zeiler 2012): E[g^2] = EMA(E[g^2], g^2, rho);
    u = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g; then E[dx^2] = EMA(E[dx^2], u^2, rho).

    E[dx^2] accumulates the squared UPDATES (u), not the gradients.
    """
    rho, eps = _decay("rho", rho), _non_negative("eps", eps)

    def init(params: Params) -> ScaleByAdadeltaState:
        return ScaleByAdadeltaState(_zeros(params), _zeros(params))

    def step(g: np.ndarray, e_g: np.ndarray, e_x: np.ndarray) -> tuple[np.ndarray, ...]:
        new_e_g = _ema_sq(e_g, g, rho)
        u = np.sqrt(e_x + eps) / np.sqrt(new_e_g + eps) * g
        return u, new_e_g, _ema_sq(e_x, u, rho)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByAdadeltaState, "scale_by_adadelta")
        out, e_g, e_x = _leafwise("scale_by_adadelta", step, updates, s.e_g, s.e_x)
        return out, ScaleByAdadeltaState(e_g, e_x)

    return GradientTransformation(init, update)


class ScaleByLionState(NamedTuple):
    mu: Any


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> GradientTransformation:
    """Lion (Chen et al. 2023): u = sign((1 - b1) g + b1 mu); then mu = EMA(mu, g, b2)."""
    b1, b2 = _decay("b1", b1), _decay("b2", b2)

    def init(params: Params) -> ScaleByLionState:
        return ScaleByLionState(_zeros(params))

    def step(g: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.sign(g * (1 - b1) + mu * b1), _ema(mu, g, b2)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ScaleByLionState, "scale_by_lion")
        out, mu = _leafwise("scale_by_lion", step, updates, s.mu)
        return out, ScaleByLionState(mu)

    return GradientTransformation(init, update)


# ---------------------------------------------------------------- regularization


class MaskedState(NamedTuple):
    inner_state: Any


def _hide(t: Any, mask: Any) -> Any:
    return tree.map(lambda leaf, on: leaf if on else None, t, mask, shapes=False)


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; others pass through unchanged.

    ``mask``: a tree of bools like the params, or a callable on the params/updates
    tree returning one (e.g. :func:`funcnn.tree.kernel_mask`).
    """

    def init(params: Params) -> MaskedState:
        return MaskedState(inner.init(_hide(params, tree.resolve_mask(mask, params))))

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, MaskedState, "masked")
        m = tree.resolve_mask(mask, updates)
        hidden_params = None if params is None else _hide(params, m)
        new, inner_state = inner.update(_hide(updates, m), s.inner_state, hidden_params)
        it = iter(tree.leaves(new))
        merged = tree.map(lambda u, on: next(it) if on else u, updates, m, shapes=False)
        return merged, MaskedState(inner_state)

    return GradientTransformation(init, update)


def _params_transform(
    name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> GradientTransformation:
    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        expect_state(state, EmptyState, name)
        require_params(params, name)
        (out,) = _leafwise(name, lambda g, w: (fn(g, w),), updates, params, outputs=1)
        return out, state

    return GradientTransformation(_no_state, update)


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """u = g + weight_decay * w (L2 before an adaptive scaling; decoupled decay after it)."""
    wd = _non_negative("weight_decay", weight_decay)
    t = _params_transform("add_decayed_weights", lambda g, w: g + wd * w)
    return t if mask is None else masked(t, mask)


def add_l1(l1: float, mask: Any = None) -> GradientTransformation:
    """u = g + l1 * sign(w): the subgradient of l1 * sum|w| (0 at w = 0)."""
    l1 = _non_negative("l1", l1)
    t = _params_transform("add_l1", lambda g, w: g + l1 * np.sign(w))
    return t if mask is None else masked(t, mask)


# ---------------------------------------------------------------- clipping


def clip(max_delta: float) -> GradientTransformation:
    """u = clip(g, -max_delta, max_delta) elementwise."""
    max_delta = _non_negative("max_delta", max_delta)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        expect_state(state, EmptyState, "clip")
        return tree.map(lambda g: np.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(_no_state, update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """u = g * max_norm / ||g|| if ||g|| > max_norm else g; ||g|| over every leaf together."""
    max_norm = _positive("max_norm", max_norm)

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        expect_state(state, EmptyState, "clip_by_global_norm")
        norm = tree.global_norm(updates)
        if norm <= max_norm:
            return updates, state
        factor = max_norm / norm
        return tree.map(lambda g: g * factor, updates), state

    return GradientTransformation(_no_state, update)


# ---------------------------------------------------------------- wrappers


class ApplyIfFiniteState(NamedTuple):
    notfinite_count: int  # consecutive non-finite updates skipped
    last_finite: bool
    total_notfinite: int
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Skip updates that contain NaN or inf: return zero updates and keep the inner state.

    After ``max_consecutive_errors`` skips in a row the next update goes through
    whatever it holds, so a run cannot stall silently forever.
    """
    if (
        isinstance(max_consecutive_errors, bool)
        or not isinstance(max_consecutive_errors, int)
        or max_consecutive_errors < 0
    ):
        raise ValueError(
            f"max_consecutive_errors must be an int >= 0, got {max_consecutive_errors!r}"
        )

    def init(params: Params) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(0, True, 0, inner.init(params))

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, ApplyIfFiniteState, "apply_if_finite")
        new, inner_state = inner.update(updates, s.inner_state, params)
        finite = all(np.isfinite(leaf).all() for leaf in tree.leaves(new))
        if finite or s.notfinite_count >= max_consecutive_errors:
            return new, ApplyIfFiniteState(
                0, bool(finite), s.total_notfinite + (not finite), inner_state
            )
        zeros = tree.zeros_like(updates)
        return zeros, ApplyIfFiniteState(
            s.notfinite_count + 1, False, s.total_notfinite + 1, s.inner_state
        )

    return GradientTransformation(init, update)


class MultiStepsState(NamedTuple):
    mini_step: int  # gradients accumulated since the last real update
    gradient_step: int  # real updates done
    inner_state: Any
    acc_grads: Any  # sum of the accumulated gradients


def multi_steps(opt: GradientTransformation, every_k: int) -> GradientTransformation:
    """Gradient accumulation: sum k gradients, then apply ``opt`` once to their mean.

    The k - 1 calls in between return zero updates.
    """
    every_k = _count("every_k", every_k)

    def init(params: Params) -> MultiStepsState:
        return MultiStepsState(0, 0, opt.init(params), _zeros(params))

    def update(updates: Updates, state: State, params: Params = None) -> tuple[Updates, State]:
        s = expect_state(state, MultiStepsState, "multi_steps")
        (acc,) = _leafwise(
            "multi_steps", lambda g, a: (_frozen(a + g),), updates, s.acc_grads, outputs=1
        )
        if s.mini_step + 1 < every_k:
            zeros = tree.zeros_like(updates)
            return zeros, MultiStepsState(s.mini_step + 1, s.gradient_step, s.inner_state, acc)
        mean = tree.map(lambda a: a / every_k, acc)
        new, inner_state = opt.update(mean, s.inner_state, params)
        return new, MultiStepsState(0, s.gradient_step + 1, inner_state, _zeros(acc))

    return GradientTransformation(init, update)
