"""A model's weights as Keras lists them: ``get_weights``, ``set_weights``,
``count_params``, and the weights of a file checked against the model's; one layer's
(``layer.get_weights()``, ``layer.weights``: :func:`layer_weights`, :class:`Weight`), named
as Keras names them (kernel, bias, recurrent_kernel, gamma, moving_mean...).

Functions of the params and state trees (one entry per layer), so the model's values
are only ever replaced, never changed in place.
"""

from __future__ import annotations

import os
import re
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


# ---------------------------------------------------------------- one layer's weights

_KERAS_NAMES = {
    "w": "kernel",
    "b": "bias",
    "mean": "moving_mean",
    "var": "moving_variance",
    "depthwise": "depthwise_kernel",
    "pointwise": "pointwise_kernel",
    "means": "mean",  # Normalization's
    "variances": "variance",
    "counted": "count",
}
"""The core's field names that Keras names otherwise (the others are Keras' own: kernel,
recurrent_kernel, bias, embeddings, gamma, beta...)."""

_ATTENTION_PARTS = {"query": "query", "key": "key", "value": "value", "output": "attention_output"}


def _keras_path(path: str) -> str:
    """A leaf's path in the core's tree (``[0].w``, ``.forward.kernel``) as Keras writes a
    weight's path within its layer (``kernel``, ``forward/kernel``)."""
    parts = []
    for field in re.findall(r"\.(\w+)", path):
        part, _, kind = field.rpartition("_")
        if part in _ATTENTION_PARTS and kind in ("kernel", "bias"):
            parts += [_ATTENTION_PARTS[part], kind]
        else:
            parts.append(_KERAS_NAMES.get(field, field))
    return "/".join(parts) or "weight"


def leaf_names(entry: Any) -> list[str]:
    """Keras' name of each leaf of one layer's params (or state) ``entry``, in order:
    ``kernel``, ``bias``... (see :func:`layer_weights`)."""
    return [_keras_path(path).rpartition("/")[2] for path, _ in tree.leaves_with_path(entry)]


def layer_weights(params: Any, state: Any, index: int) -> list[tuple[str, np.ndarray, bool]]:
    """The weights of layer ``index`` of a model's ``(params, state)`` (one entry per
    layer), in Keras' order (its params, then its state: a BatchNormalization's gamma,
    beta, moving mean, moving variance), each as ``(path within the layer, array, is a
    param)``. The arrays are the model's own (read-only), not copies."""
    entries = ((params[index], True), (_layer_states(params, state)[index], False))
    return [
        (_keras_path(path), leaf, is_param)
        for entry, is_param in entries
        for path, leaf in tree.leaves_with_path(entry)
    ]


def set_layer_weights(
    params: Any, state: Any, index: int, arrays: Any, who: str
) -> tuple[Any, Any]:
    """New ``(params, state)`` with layer ``index``'s weights replaced by ``arrays`` (a
    list in :func:`layer_weights`' order, each of the shape of the weight it replaces, cast
    to its dtype); a ValueError (TypeError) naming ``who`` and the weight otherwise."""
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(
            f"{who}.set_weights takes a list of arrays (as get_weights returns), got "
            f"{type(arrays).__name__}"
        )
    current = layer_weights(params, state, index)
    if len(arrays) != len(current):
        names = ", ".join(path for path, _, _ in current) or "none"
        raise ValueError(
            f"{who} has {len(current)} weights ({names}), got a list of {len(arrays)} arrays"
        )
    new = []
    for (path, old, _), given in zip(current, arrays):
        try:
            value = np.asarray(given)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{who}'s weight {path!r} takes an array, got {given!r:.60}") from e
        if value.dtype.kind not in "fiub":
            raise TypeError(f"{who}'s weight {path!r} takes numbers, got dtype {value.dtype}")
        if value.shape != old.shape:
            raise ValueError(
                f"{who}'s weight {path!r} has shape {old.shape}, got an array of shape "
                f"{value.shape}"
            )
        new.append(value.astype(old.dtype))  # a copy: the caller's array stays theirs
    it = iter(tree.freeze(new))
    states = _layer_states(params, state)
    entries = []
    for entry in (params[index], states[index]):
        flat, treedef = tree.flatten(entry)
        entries.append(tree.unflatten(treedef, [next(it) for _ in flat]))
    new_params = (*params[:index], entries[0], *params[index + 1 :])
    if state is None:
        return new_params, None
    return new_params, (*states[:index], entries[1], *states[index + 1 :])


class Weight:
    """One weight of a layer, as Keras' Variable shows it: ``name`` (``"kernel"``),
    ``path`` (``"dense/kernel"``), ``shape``, ``dtype``, ``trainable``, ``numpy()``,
    ``np.asarray(w)``. It is live: ``numpy()`` reads the model's current value (after
    ``fit`` too) and ``assign(value)`` replaces it."""

    def __init__(
        self, layer: Any, index: int, path: str, shape: tuple[int, ...], dtype: Any, trainable: bool
    ) -> None:
        self._layer, self._index = layer, index
        self.path = f"{layer.name}/{path}"
        self.name = path.rpartition("/")[2]
        self.shape, self.dtype = shape, str(np.dtype(dtype))
        self.trainable = trainable

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        return np.array(self._layer.get_weights()[self._index])

    @property
    def value(self) -> np.ndarray:
        return self.numpy()

    def assign(self, value: Any) -> None:
        """Replace the weight in its model (same shape; cast to its dtype)."""
        arrays = self._layer.get_weights()
        arrays[self._index] = value
        self._layer.set_weights(arrays)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"<Weight path={self.path}, shape={self.shape}, dtype={self.dtype}>"
