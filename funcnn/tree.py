"""The few pytree helpers funcnn needs.

A tree is a nest of tuples (NamedTuples included), lists and dicts whose leaves
are arrays. ``None`` is an empty subtree: it has no leaves and maps to ``None``
(``DenseParams(w, b=None)`` for a layer without bias).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Tree = Any


def _is_namedtuple(node: Any) -> bool:
    return isinstance(node, tuple) and hasattr(node, "_fields")


def _children(node: Any) -> list[tuple[str, Any]] | None:
    """(key, child) pairs of a container node, or None for a leaf."""
    if isinstance(node, dict):
        return [(repr(k), v) for k, v in node.items()]
    if _is_namedtuple(node):
        return [(f".{f}", v) for f, v in zip(node._fields, node)]
    if isinstance(node, (tuple, list)):
        return [(f"[{i}]", v) for i, v in enumerate(node)]
    return None


def leaves(tree: Tree) -> list[Any]:
    """The leaves of ``tree`` in a fixed depth-first order."""
    return flatten(tree)[0]


def leaves_with_path(tree: Tree, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs, the path written like ``[0].w``."""
    if tree is None:
        return
    children = _children(tree)
    if children is None:
        yield prefix, tree
        return
    for key, child in children:
        yield from leaves_with_path(child, prefix + key)


def map(fn: Callable[..., Any], tree: Tree, *rest: Tree, shapes: bool = True) -> Tree:
    """Apply ``fn`` to corresponding leaves of ``tree`` and ``rest``.

    ``rest`` must have the structure of ``tree`` (and its leaves' shapes, unless
    ``shapes=False``, as for a mask of bools); otherwise :class:`StructureMismatch`
    (a ValueError) names the place.
    """
    try:
        return _map(fn, tree, rest, shapes)
    except _Mismatch:
        pass
    for i, other in enumerate(rest):
        diff = structure_difference(tree, other, shapes=shapes)
        if diff is not None:
            raise StructureMismatch(f"tree and rest[{i}] differ in structure {diff}")
    raise StructureMismatch("tree and rest differ in structure in their nesting")


class StructureMismatch(ValueError):
    """Two trees that should match differ in nesting or leaf shapes."""


_CONTAINERS = (tuple, dict, list)


class _Mismatch(Exception):
    """Raised inside :func:`_map`; :func:`map` turns it into a message."""


def _map(fn: Callable[..., Any], node: Any, rest: tuple[Any, ...], shapes: bool) -> Any:
    # One walk over all the trees at once (no flatten/unflatten): called on every tree
    # of every training step, so arrays (the common case) come first.
    kind = type(node)
    if kind is np.ndarray or (node is not None and not isinstance(node, _CONTAINERS)):
        if shapes:
            shape = node.shape if kind is np.ndarray else np.shape(node)
            for other in rest:
                if (other.shape if type(other) is np.ndarray else _leaf_shape(other)) != shape:
                    raise _Mismatch
        else:
            for other in rest:
                if other is None or isinstance(other, _CONTAINERS):
                    raise _Mismatch
        return fn(node, *rest)
    if node is None:
        for other in rest:
            if other is not None:
                raise _Mismatch
        return None
    n = len(node)
    for other in rest:
        if type(other) is not kind or len(other) != n:
            raise _Mismatch
    if kind is dict:
        keys = list(node)
        for other in rest:
            if list(other) != keys:
                raise _Mismatch
        return {k: _map(fn, node[k], tuple([other[k] for other in rest]), shapes) for k in keys}
    if not rest:
        children = [_map(fn, child, rest, shapes) for child in node]
    elif len(rest) == 1:
        children = [_map(fn, a, (b,), shapes) for a, b in zip(node, rest[0])]
    else:
        children = [_map(fn, c[0], c[1:], shapes) for c in zip(node, *rest)]
    if kind is list:
        return children
    if kind is tuple or not hasattr(node, "_fields"):
        return tuple(children)
    return kind._make(children)


def _leaf_shape(other: Any) -> Any:
    """A leaf's shape, or a value no shape equals when ``other`` is a container."""
    if other is None or isinstance(other, _CONTAINERS):
        return None
    return np.shape(other)


_LEAF = "*"


def flatten(tree: Tree) -> tuple[list[Any], Any]:
    """(leaves, treedef): the leaves in ``leaves()`` order and a hashable description of the
    nesting, for fast equality checks and :func:`unflatten`."""
    out: list[Any] = []
    return out, _flatten(tree, out)


def _flatten(node: Any, out: list[Any]) -> Any:
    # Called on every tree of every training step: arrays (the common case) first,
    # list comprehensions rather than generators.
    if type(node) is np.ndarray:
        out.append(node)
        return _LEAF
    if node is None:
        return None
    if isinstance(node, tuple):
        kind = type(node) if hasattr(node, "_fields") else "tuple"
        return (kind, tuple([_flatten(v, out) for v in node]))
    if isinstance(node, dict):
        return ("dict", tuple(node), tuple([_flatten(v, out) for v in node.values()]))
    if isinstance(node, list):
        return ("list", tuple([_flatten(v, out) for v in node]))
    out.append(node)
    return _LEAF


def unflatten(treedef: Any, leaves: list[Any]) -> Tree:
    """The tree of ``treedef`` (from :func:`flatten`) holding ``leaves`` in order."""
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(treedef: Any, it: Iterator[Any]) -> Any:
    if treedef is None:
        return None
    if treedef == _LEAF:
        return next(it)
    kind = treedef[0]
    if kind == "dict":
        return {k: _unflatten(d, it) for k, d in zip(treedef[1], treedef[2])}
    children = [_unflatten(d, it) for d in treedef[1]]
    if kind == "tuple":
        return tuple(children)
    if kind == "list":
        return children
    return kind(*children)


def leaves_matching(
    treedef: Any, leaves: list[Any], other: Tree, *, shapes: bool = True
) -> list[Any] | None:
    """``other``'s leaves if it has the nesting ``treedef`` (and, with ``shapes``, the
    shapes of ``leaves``); None otherwise. :func:`structure_difference` says where."""
    other_leaves, other_def = flatten(other)
    if other_def != treedef:
        return None
    if shapes:  # called on every tree of every step: ndarray's own shape, a plain loop
        for a, b in zip(leaves, other_leaves):
            sa = a.shape if type(a) is np.ndarray else np.shape(a)
            if sa != (b.shape if type(b) is np.ndarray else np.shape(b)):
                return None
    return other_leaves


def structure_difference(a: Tree, b: Tree, path: str = "", *, shapes: bool = True) -> str | None:
    """A sentence naming the first place where ``a`` and ``b`` differ, or None.

    With ``shapes=False`` only the nesting is compared, not the leaves' shapes.
    """
    if a is None or b is None:
        if a is None and b is None:
            return None
        return f"at {path or 'the root'}: {_describe(a)} vs {_describe(b)}"
    ca, cb = _children(a), _children(b)
    if ca is None and cb is None:
        sa, sb = np.shape(a), np.shape(b)
        if shapes and sa != sb:
            return f"at {path or 'the root'}: leaf of shape {sa} vs leaf of shape {sb}"
        return None
    if ca is None or cb is None or type(a) is not type(b) or len(ca) != len(cb):
        return f"at {path or 'the root'}: {_describe(a)} vs {_describe(b)}"
    for (ka, va), (kb, vb) in zip(ca, cb):
        if ka != kb:
            return f"at {path or 'the root'}: key {ka} vs key {kb}"
        found = structure_difference(va, vb, path + ka, shapes=shapes)
        if found is not None:
            return found
    return None


def _describe(node: Any) -> str:
    if node is None:
        return "None"
    children = _children(node)
    if children is None:
        return f"leaf of shape {np.shape(node)}"
    return f"{type(node).__name__} with {len(children)} children"


def check_same_structure(a: Tree, b: Tree, *, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise ValueError naming the first difference if the trees differ in structure or shapes."""
    diff = structure_difference(a, b)
    if diff is not None:
        raise ValueError(f"{names[0]} and {names[1]} differ in structure {diff}")


def zeros_like(tree: Tree) -> Tree:
    """A tree of zero arrays with the shapes and dtypes of ``tree``'s leaves."""
    return map(np.zeros_like, tree)


def global_norm(tree: Tree) -> float:
    """sqrt(sum of squares of every leaf), accumulated in float64."""
    total = 0.0
    for leaf in leaves(tree):
        flat = np.ravel(leaf)
        total += float(np.dot(flat, flat)) if flat.dtype.kind == "f" else float(np.sum(flat**2))
    return float(np.sqrt(total))


def size(tree: Tree) -> int:
    """Total number of scalars in the leaves (the parameter count)."""
    return int(builtins.sum(np.size(leaf) for leaf in leaves(tree)))


def freeze(tree: Tree) -> Tree:
    """Mark every array leaf read-only and return the same tree.

    Only call this on arrays you just created: it changes their flags in place.
    """
    for leaf in leaves(tree):
        if isinstance(leaf, np.ndarray):
            leaf.flags.writeable = False
    return tree


def kernel_mask(tree: Tree) -> Tree:
    """True for leaves of rank >= 2 (weight matrices, kernels), False for biases and scales.

    Use it as the mask of a penalty or of weight decay to leave biases alone.
    """
    return map(lambda leaf: np.ndim(leaf) >= 2, tree)


def resolve_mask(mask: Tree | Callable[[Tree], Tree] | None, tree: Tree) -> Tree:
    """A mask given as a tree of bools, a callable on ``tree``, or None (everything)."""
    if mask is None:
        return map(lambda _: True, tree)
    resolved = mask(tree) if callable(mask) else mask
    diff = structure_difference(tree, resolved, shapes=False)
    if diff is not None:
        raise ValueError(f"mask does not match the params tree {diff}")
    return resolved
