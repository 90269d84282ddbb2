"""A model's weights as Keras lists them: ``get_weights``, ``set_weights``,
``count_params``, and the weights of a file checked against the model's.

Functions of the params and state trees (one entry per layer), so the model's values
are only ever replaced, never changed in place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcnn import io, tree


def count_params(params: Any) -> int:
    """The number of trained weights (a BatchNormalization's moving statistics, its state,
    are not among them)."""
    return tree.size(params)


def _layer_states(params: Any, state: Any) -> Any:
    return state if state is not None else (None,) * len(params)


def get_weights(params: Any, state: Any) -> list[np.ndarray]:
    """Every weight as a list of arrays: each layer's params, then its state (a
    BatchNormalization: gamma, beta, moving mean, moving variance), as Keras orders them."""
    return [
        np.array(a)
        for p, s in zip(params, _layer_states(params, state))
        for a in (*tree.leaves(p), *tree.leaves(s))
    ]


def set_weights(params: Any, state: Any, weights: Sequence[Any]) -> tuple[Any, Any]:
    """The inverse of :func:`get_weights`: new ``(params, state)`` from arrays of the same
    shapes, in its order (cast to the dtypes of the weights they replace)."""
    current = get_weights(params, state)
    weights = list(weights)
    if len(weights) != len(current):
        raise ValueError(f"set_weights needs {len(current)} arrays, got {len(weights)}")
    new = []
    for i, (old, w) in enumerate(zip(current, weights)):
        w = np.asarray(w)
        if w.shape != old.shape:
            raise ValueError(f"weight {i} must have shape {old.shape}, got {w.shape}")
        new.append(w.astype(old.dtype))
    it = iter(new)
    new_params, new_states = [], []
    for p, s in zip(params, _layer_states(params, state)):
        flat, treedef = tree.flatten(p)
        new_params.append(tree.unflatten(treedef, [next(it) for _ in flat]))
        flat, treedef = tree.flatten(s)
        new_states.append(tree.unflatten(treedef, [next(it) for _ in flat]))
    return tree.freeze(tuple(new_params)), None if state is None else tree.freeze(tuple(new_states))


def from_checkpoint(
    params: Any, state: Any, checkpoint: io.Checkpoint, path: str | os.PathLike[str]
) -> tuple[Any, Any]:
    """The ``(params, state)`` of a file :meth:`Model.save_weights` or :meth:`Model.save`
    wrote for a model of this architecture; ValueError naming the difference otherwise.
    A file without state leaves ``state`` as it is."""
    for what, mine, theirs in (
        ("params", params, checkpoint.params),
        ("state", state, checkpoint.state),
    ):
        diff = tree.structure_difference(mine, theirs)
        if diff is not None and not (what == "state" and not tree.leaves(mine)):
            raise ValueError(f"{path} holds {what} of another architecture: {diff}")
    if checkpoint.state is not None and tree.leaves(checkpoint.state):
        state = checkpoint.state
    return checkpoint.params, state
