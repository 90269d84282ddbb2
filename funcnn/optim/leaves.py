"""The leaf machinery every transform uses: read-only trees of starting values, the moving
averages (in optax's order of operations), and running a step leaf by leaf.

:func:`leafwise` runs ``step(g, *state_leaves)`` on each leaf; :func:`leafwise_into`, for an
elementwise update such as Adam's, cuts each leaf into spans of :data:`SPAN` elements that
run on funcnn's threads, with the bits of whole-leaf passes; :func:`leafwise_transform`
makes a whole transform from a step. A state tree that does not match the updates raises
ValueError naming the first place that differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from funcnn import linalg, tree
from funcnn.optim.base import GradientTransformation, expect_state
from funcnn.types import OptState, Params, UpdateResult, Updates


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a fresh array that this transform owns)."""
    a.flags.writeable = False
    return a


def zeros(params: Params, fill: float = 0.0) -> Any:
    """A read-only tree like ``params`` filled with ``fill``."""
    leaves, treedef = tree.flatten(params)
    return tree.unflatten(treedef, [frozen(np.full_like(p, fill)) for p in leaves])


def _scaled(old: np.ndarray, decay: float, scratch: np.ndarray | None) -> np.ndarray:
    """decay * old, in ``scratch`` when it has the product's dtype (else a new array)."""
    if scratch is not None and scratch.dtype == np.result_type(old, decay):
        return np.multiply(old, decay, out=scratch)
    return np.multiply(old, decay)


def ema_into(
    out: np.ndarray,
    old: np.ndarray,
    x: np.ndarray,
    decay: float,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """(1 - decay) * x + decay * old (optax's order) into ``out`` (of ``x - old``'s dtype).

    A weighted mean of finite values never overflows, and an inf never meets an inf of
    the other sign (so 1e30 gradients keep Adam finite, as in optax). ``scratch``, an
    array of ``out``'s shape, holds decay * old; without it a temporary does. Each
    operation is one pass over memory.
    """
    scaled = _scaled(old, decay, scratch)
    np.multiply(x, 1 - decay, out=out)
    out += scaled
    return out


def ema(old: np.ndarray, x: np.ndarray, decay: float) -> np.ndarray:
    """:func:`ema_into` a new read-only array."""
    return frozen(ema_into(np.empty(np.shape(old), np.result_type(x, old)), old, x, decay))


def ema_sq_into(
    out: np.ndarray,
    old: np.ndarray,
    g: np.ndarray,
    decay: float,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """(1 - decay) * g^2 + decay * old (optax's order) into ``out`` (of ``g``'s dtype);
    ``scratch`` as in :func:`ema_into`. A g^2 that overflows makes inf, never NaN."""
    scaled = _scaled(old, decay, scratch)
    np.multiply(g, g, out=out)
    out *= 1 - decay
    out += scaled
    return out


def ema_sq(old: np.ndarray, g: np.ndarray, decay: float) -> np.ndarray:
    """:func:`ema_sq_into` a new read-only array."""
    return frozen(ema_sq_into(np.empty(np.shape(g), np.asarray(g).dtype), old, g, decay))


def updates_mismatch(updates: Updates, reference: Any, name: str) -> ValueError:
    """The error for ``updates`` that differ from the state's tree, naming the first place."""
    diff = tree.structure_difference(reference, updates) or "in their nesting"
    return ValueError(
        f"{name}: the grads do not match the optimizer state {diff} "
        "(state vs grads); was the state made by init() from these params?"
    )


def _leaf_columns(name: str, updates: Updates, state_trees: tuple) -> tuple[list, Any, list]:
    """(the update leaves, their treedef, each state tree's leaves), or the ValueError of a
    state tree whose structure or shapes differ from the updates'."""
    grads, treedef = tree.flatten(updates)
    columns = []
    for state_tree in state_trees:
        leaves = tree.leaves_matching(treedef, grads, state_tree)
        if leaves is None:
            raise updates_mismatch(updates, state_tree, name)
        columns.append(leaves)
    return grads, treedef, columns


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
    grads, treedef, columns = _leaf_columns(name, updates, state_trees)
    results = [
        step(*args)
        if np.ndim(args[0])
        else tuple(r.reshape(()) for r in step(*(np.reshape(a, 1) for a in args)))
        for args in zip(grads, *columns)
    ]
    columns_out = list(zip(*results)) or [()] * (outputs or 1 + len(state_trees))
    return tuple(tree.unflatten(treedef, list(out)) for out in columns_out)


SPAN = 2**17
"""Elements per task of :func:`leafwise_into`: spans this long keep a task's arrays in a
core's cache and give two or more cores work on the largest leaves."""


def leafwise_into(
    name: str,
    fill: Callable[..., None],
    dtypes: Callable[..., tuple[np.dtype, ...]],
    updates: Updates,
    *state_trees: Any,
) -> tuple[Any, ...]:
    """Like :func:`leafwise`, for an update that is elementwise: ``fill(g, *state, *outs)``
    writes ``outs`` from ``g`` and the state leaves, all flat slices of one span. The
    outputs are the update and one new state leaf per state tree, fresh arrays of the
    dtypes ``dtypes(g, *state)`` gives. Each leaf is cut into spans of :data:`SPAN`
    elements, run on funcnn's threads (:func:`funcnn.linalg.run_elementwise`): every
    element sees the same operations whichever thread or span computes it, so the
    results are the bits of one whole-leaf pass. Returns one tree per output; the
    outputs after the first (the new state) are read-only.
    """
    grads, treedef, columns = _leaf_columns(name, updates, state_trees)
    per_leaf, tasks, total = [], [], 0
    for args in zip(grads, *columns):
        arrays = [np.asarray(a) for a in args]
        outs = [np.empty(arrays[0].shape, dtype) for dtype in dtypes(*arrays)]
        flat = [a.reshape(-1) for a in (*arrays, *outs)]  # outputs: views of the fresh arrays
        size = arrays[0].size
        for lo in range(0, size, SPAN):
            tasks.append(functools.partial(fill, *(a[lo : lo + SPAN] for a in flat)))
        per_leaf.append(outs)
        total += size
    linalg.run_elementwise(tasks, total)
    if not per_leaf:
        return tuple(tree.unflatten(treedef, []) for _ in range(1 + len(state_trees)))
    out, *state = (list(column) for column in zip(*per_leaf))
    return (
        tree.unflatten(treedef, out),
        *(tree.unflatten(treedef, [frozen(a) for a in column]) for column in state),
    )


def scaled(updates: Updates, factor: float) -> Any:
    """``g * factor`` for every leaf (``factor`` a Python float: each leaf keeps its float
    dtype), large leaves in spans on funcnn's threads with the bits of one whole-leaf
    multiply."""
    tasks: list[Callable[[], None]] = []
    total = 0

    def scale(g: Any) -> Any:
        nonlocal total
        if type(g) is not np.ndarray or g.size < SPAN or not g.flags.c_contiguous:
            return g * factor
        out = np.empty(g.shape, np.result_type(g, factor))
        flat_g, flat_out = g.reshape(-1), out.reshape(-1)
        for lo in range(0, g.size, SPAN):
            tasks.append(
                functools.partial(
                    np.multiply, flat_g[lo : lo + SPAN], factor, out=flat_out[lo : lo + SPAN]
                )
            )
        total += g.size
        return out

    out = tree.map(scale, updates)
    linalg.run_elementwise(tasks, total)
    return out


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
