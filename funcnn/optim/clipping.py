"""Clipping: bound each update element, or the norm of all of them together."""

from __future__ import annotations

import numpy as np

from funcnn import tree
from funcnn import validate as check
from funcnn.optim.base import EmptyState, GradientTransformation, expect_state, no_state
from funcnn.types import OptState, Params, UpdateResult, Updates


def clip(max_delta: float) -> GradientTransformation:
    """u = clip(g, -max_delta, max_delta) elementwise."""
    max_delta = check.non_negative("max_delta", max_delta)

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        expect_state(state, EmptyState, "clip")
        return tree.map(lambda g: np.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(no_state, update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """u = g * max_norm / ||g|| if ||g|| > max_norm else g; ||g|| over every leaf together."""
    max_norm = check.positive("max_norm", max_norm)

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        expect_state(state, EmptyState, "clip_by_global_norm")
        norm = tree.global_norm(updates)
        if norm <= max_norm:
            return updates, state
        factor = max_norm / norm
        return tree.map(lambda g: g * factor, updates), state

    return GradientTransformation(no_state, update)


def clip_by_leaf_norm(max_norm: float) -> GradientTransformation:
    """Each leaf alone: u = g * max_norm / ||g|| if ||g|| > max_norm else g (Keras' clipnorm)."""
    max_norm = check.positive("max_norm", max_norm)

    def one(g: np.ndarray) -> np.ndarray:
        norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
        return g if norm <= max_norm else g * np.asarray(max_norm / norm, dtype=g.dtype)

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        expect_state(state, EmptyState, "clip_by_leaf_norm")
        return tree.map(one, updates), state

    return GradientTransformation(no_state, update)
