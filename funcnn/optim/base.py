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


def expect_transformation(value: Any, what: str) -> GradientTransformation:
    """``value`` if it is a GradientTransformation; otherwise a TypeError naming ``what``."""
    if not isinstance(value, GradientTransformation):
        raise TypeError(
            f"{what} must be a GradientTransformation such as optim.sgd(0.1), got "
            f"{type(value).__name__} {value!r:.60}"
        )
    return value


def expect_state(state: Any, cls: type[S], name: str) -> S:
    """``state`` if it is a ``cls``; otherwise a TypeError explaining how to make one."""
    if not isinstance(state, cls):
        raise TypeError(
            f"{name}.update expected a {cls.__name__}, got {type(state).__name__}; create the "
            "state with opt_state = optimizer.init(params) before the first update, and pass "
            "the state the previous update returned"
        )
    return state


def require_params(params: Params, name: str) -> Params:
    if params is None:
        raise ValueError(f"{name} needs the current params: call update(grads, state, params)")
    return params


def no_state(params: Params) -> EmptyState:
    """The ``init`` of a transform that keeps no state."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """Pass updates through unchanged."""

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        del params
        return updates, expect_state(state, EmptyState, "identity")

    return GradientTransformation(no_state, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order, each to the previous one's updates."""
    for i, t in enumerate(transforms):
        expect_transformation(t, f"chain argument {i}")

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
    """``params + updates`` leaf by leaf: new read-only arrays in each param's dtype.
    (One add per leaf: spans on threads measured no faster here, benchmarks/LEVERS.md.)"""
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
