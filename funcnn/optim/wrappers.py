"""Wrappers: transforms that run another transform on part of the leaves, or on some steps.

``masked`` (only where a mask says), ``apply_if_finite`` (skip non-finite updates),
``multi_steps`` (gradient accumulation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from funcnn import tree
from funcnn import validate as check
from funcnn.optim.base import GradientTransformation, expect_state, expect_transformation
from funcnn.optim.leaves import frozen, leafwise, zeros
from funcnn.types import OptState, Params, UpdateResult, Updates


class MaskedState(NamedTuple):
    inner_state: Any


def _hide(t: Any, mask: Any) -> Any:
    return tree.map(lambda leaf, on: leaf if on else None, t, mask, shapes=False)


def masked(inner: GradientTransformation, mask: Any) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; others pass through unchanged.

    ``mask``: a tree of bools like the params, or a callable on the params/updates
    tree returning one (e.g. :func:`funcnn.tree.kernel_mask`).
    """
    inner = expect_transformation(inner, "masked's inner")

    def init(params: Params) -> MaskedState:
        return MaskedState(inner.init(_hide(params, tree.resolve_mask(mask, params))))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, MaskedState, "masked")
        m = tree.resolve_mask(mask, updates)
        hidden_params = None if params is None else _hide(params, m)
        new, inner_state = inner.update(_hide(updates, m), s.inner_state, hidden_params)
        it = iter(tree.leaves(new))
        merged = tree.map(lambda u, on: next(it) if on else u, updates, m, shapes=False)
        return merged, MaskedState(inner_state)

    return GradientTransformation(init, update)


class ApplyIfFiniteState(NamedTuple):
    notfinite_count: int  # non-finite updates in a row (0 after a finite one)
    last_finite: bool  # whether the last gradient was finite
    total_notfinite: int  # non-finite gradients since init, never reset
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Skip gradients that hold NaN or inf: return zero updates and keep the inner state.

    optax's rule, counters included: ``notfinite_count`` counts non-finite gradients
    in a row; once it exceeds ``max_consecutive_errors`` they go through to ``inner``
    (so a run cannot stall silently forever) until a finite one resets it to 0.
    """
    inner = expect_transformation(inner, "apply_if_finite's inner")
    max_consecutive_errors = check.non_negative_int(
        "max_consecutive_errors", max_consecutive_errors
    )

    def init(params: Params) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(0, True, 0, inner.init(params))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, ApplyIfFiniteState, "apply_if_finite")
        finite = all(np.isfinite(leaf).all() for leaf in tree.leaves(updates))
        count = 0 if finite else s.notfinite_count + 1
        total = s.total_notfinite + (not finite)
        if finite or count > max_consecutive_errors:
            new, inner_state = inner.update(updates, s.inner_state, params)
        else:
            new, inner_state = tree.zeros_like(updates), s.inner_state
        return new, ApplyIfFiniteState(count, finite, total, inner_state)

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
    opt = expect_transformation(opt, "multi_steps' opt")
    every_k = check.positive_int("every_k", every_k)

    def init(params: Params) -> MultiStepsState:
        return MultiStepsState(0, 0, opt.init(params), zeros(params))

    def update(updates: Updates, state: OptState, params: Params = None) -> UpdateResult:
        s = expect_state(state, MultiStepsState, "multi_steps")
        (acc,) = leafwise(
            "multi_steps", lambda g, a: (frozen(a + g),), updates, s.acc_grads, outputs=1
        )
        if s.mini_step + 1 < every_k:
            return tree.zeros_like(updates), MultiStepsState(
                s.mini_step + 1, s.gradient_step, s.inner_state, acc
            )
        mean = tree.map(lambda a: a / every_k, acc)
        new, inner_state = opt.update(mean, s.inner_state, params)
        return new, MultiStepsState(0, s.gradient_step + 1, inner_state, zeros(acc))

    return GradientTransformation(init, update)
