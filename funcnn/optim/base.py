"""The optimizer protocol: ``GradientTransformation(init, update)`` (the optax design).

``init(params) -> state``; ``update(updates, state, params=None) -> (updates, new_state)``;
``apply_updates(params, updates) -> new params``. Updates are what gets ADDED to the
params: descent's minus sign lives in one place, ``scale_by_learning_rate``.
States are NamedTuples, never modified in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np

from funcnn import tree
from funcnn.types import OptState, Params, UpdateResult, Updates

S = TypeVar("S")


class GradientTransformation(NamedTuple):
    """A pair of pure functions: ``init(params) -> state`` and
    ``update(updates, state, params=None) -> (updates, new_state)``."""

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


class ChainState(NamedTuple):
    """One state per transform of a ``chain``."""

    inner: tuple[Any, ...]


def expect_state(state: Any, cls: type[S], name: str) -> S:
    """``state`` if it is a ``cls``; otherwise a TypeError explaining how to make one."""
    if not isinstance(state, cls):
        raise TypeError(
            f"{name}.update expected a {cls.__name__}, got {type(state).__name__}; create the "
            "state with opt_state = optimizer.init(params) before the first update, and pass "
            "the state the previous update returned"
        )
    return state


def updates_mismatch(updates: Updates, reference: Any, name: str) -> ValueError:
    """The error for ``updates`` that differ from the state's tree, naming the first place."""
    diff = tree.structure_difference(reference, updates) or "in their nesting"
    return ValueError(
        f"{name}: the grads do not match the optimizer state {diff} "
        "(state vs grads); was the state made by init() from these params?"
    )


def require_params(params: Params, name: str) -> Params:
    if params is None:
        raise ValueError(f"{name} needs the current params: call update(grads, state, params)")
    return params


def identity() -> GradientTransformation:
    """Pass updates through unchanged."""

    def init(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        del params
        return updates, expect_state(state, EmptyState, "identity")

    return GradientTransformation(init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order, each to the previous one's updates."""
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            raise TypeError(
                f"chain argument {i} must be a GradientTransformation, got {type(t).__name__}"
            )

    def init(params: Params) -> ChainState:
        return ChainState(tuple(t.init(params) for t in transforms))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        state = expect_state(state, ChainState, "chain")
        if len(state.inner) != len(transforms):
            raise ValueError(
                f"chain of {len(transforms)} transforms got a state of {len(state.inner)}; "
                "was it made by another optimizer's init?"
            )
        new_states = []
        for t, s in zip(transforms, state.inner):
            updates, s = t.update(updates, s, params)
            new_states.append(s)
        return updates, ChainState(tuple(new_states))

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf: new read-only arrays in each param's dtype."""
    try:
        return tree.map(_add_leaf, params, updates)
    except tree.StructureMismatch:
        diff = tree.structure_difference(params, updates) or "in their nesting"
        raise ValueError(
            f"apply_updates: updates do not match params {diff} (params vs updates)"
        ) from None


def _add_leaf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.asarray(np.add(p, u, dtype=p.dtype, casting="same_kind"))  # 0-d: a scalar
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------- leaf helpers of every transform


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a fresh array that this transform owns)."""
    a.flags.writeable = False
    return a


def zeros(params: Params, fill: float = 0.0) -> Any:
    """A read-only tree like ``params`` filled with ``fill``."""
    leaves, treedef = tree.flatten(params)
    return tree.unflatten(treedef, [frozen(np.full_like(p, fill)) for p in leaves])


def ema(old: np.ndarray, x: np.ndarray, decay: float) -> np.ndarray:
    """decay * old + (1 - decay) * x, written as old + (1 - decay) * (x - old): one new array."""
    out = x - old
    out *= 1 - decay
    out += old
    return frozen(out)


def ema_sq(old: np.ndarray, g: np.ndarray, decay: float) -> np.ndarray:
    """decay * old + (1 - decay) * g^2."""
    out = g * g
    out -= old
    out *= 1 - decay
    out += old
    return frozen(out)


def leafwise(
    name: str,
    step: Callable[..., tuple[Any, ...]],
    updates: Updates,
    *state_trees: Any,
    outputs: int | None = None,
) -> tuple[Any, ...]:
    """Run ``step(g, *state_leaves) -> (u, *new_state_leaves)`` on each leaf.

    Returns one tree per output of ``step`` (by default the updates and one new tree
    per state tree). A state tree whose structure or shapes differ from ``updates``
    raises ValueError naming the place. A 0-d leaf runs as a 1-element view
    (arithmetic on 0-d arrays gives NumPy scalars, which in-place ufuncs and
    read-only flags refuse) and comes back 0-d.
    """
    grads, treedef = tree.flatten(updates)
    columns = []
    for state_tree in state_trees:
        leaves = tree.leaves_matching(treedef, grads, state_tree)
        if leaves is None:
            raise updates_mismatch(updates, state_tree, name)
        columns.append(leaves)
    results = [
        step(*args)
        if np.ndim(args[0])
        else tuple(r.reshape(()) for r in step(*(np.reshape(a, 1) for a in args)))
        for args in zip(grads, *columns)
    ]
    columns_out = list(zip(*results)) or [()] * (outputs or 1 + len(state_trees))
    return tuple(tree.unflatten(treedef, list(out)) for out in columns_out)


def leafwise_transform(
    name: str, cls: type, fills: tuple[float, ...], step: Callable[..., tuple[Any, ...]]
) -> GradientTransformation:
    """A transform whose state is ``cls(*trees)``, one tree like the params per fill
    (starting at that value), updated leaf by leaf: ``step(g, *leaves) -> (u, *new_leaves)``."""

    def init(params: Params) -> Any:
        return cls(*(zeros(params, fill) for fill in fills))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        out, *new = leafwise(name, step, updates, *expect_state(state, cls, name))
        return out, cls(*new)

    return GradientTransformation(init, update)


def no_state(params: Params) -> EmptyState:
    """The ``init`` of a transform that keeps no state."""
    del params
    return EmptyState()
