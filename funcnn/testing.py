"""Check hand-written gradients against central finite differences, in float64.

``check_grads(layer, params, x)`` compares ``layer.backward`` with numerical
derivatives of ``sum(forward(params, x) * dy)`` for a random cotangent ``dy``,
for every entry of ``params`` and ``x``; ``check_loss_grads`` does the same for a
loss; ``check_layer`` runs the whole layer protocol (shapes, purity, grads).
``poisoned_empty`` fills the memory a layer takes from ``np.empty`` with NaN, so a
backward pass that reads what it never wrote fails every time. Use them in your own
tests when you write a layer.

``digest(tree)`` pins a seeded run's bits in one string (params, state, optimizer state:
every leaf's path, dtype, shape and bytes), and ``assert_same_bits(actual, expected)``
compares two trees leaf by leaf and names the first that differs, where and by how much.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np

from funcnn import tree
from funcnn.layers.base import Layer, is_shape_tuple
from funcnn.losses import Loss
from funcnn.types import Shape

SCALE_FLOOR = 1e-3
"""Errors are relative to max(|analytic|, |numeric|, SCALE_FLOOR)."""


@attrs.frozen
class GradCheckReport:
    """The worst entry found: its relative error, where it is, and both values."""

    max_error: float
    where: str
    analytic: float
    numeric: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"gradient check {verdict}: worst relative error {self.max_error:.3g} "
            f"(tolerance {self.tolerance:.1g}) at {self.where}: analytic {self.analytic!r}, "
            f"numeric {self.numeric!r}"
        )


def _float64_copy(t: Any) -> Any:
    return tree.map(lambda a: np.array(a, dtype=np.float64), t)


def _entries(t: Any, prefix: str) -> Iterator[tuple[str, np.ndarray, tuple[int, ...]]]:
    for path, leaf in tree.leaves_with_path(t):
        for index in np.ndindex(leaf.shape):
            yield f"{prefix}{path}[{', '.join(map(str, index))}]", leaf, index


def _compare(
    objective: Callable[[], float],
    analytic: list[tuple[str, Any, Any]],
    eps: float,
    tolerance: float,
) -> GradCheckReport:
    """Perturb each entry of each (name, writable tree, analytic grads) in place and compare."""
    worst = GradCheckReport(0.0, "nowhere (no entries)", 0.0, 0.0, tolerance)
    for name, values, grads in analytic:
        diff = tree.structure_difference(values, grads)
        if diff is not None:
            return GradCheckReport(
                np.inf, f"{name}: grads differ in structure {diff}", 0, 0, tolerance
            )
        grad_leaves = iter(tree.leaves(grads))
        for path, leaf in tree.leaves_with_path(values):
            g = np.asarray(next(grad_leaves), dtype=np.float64)
            for index in np.ndindex(leaf.shape):
                original = leaf[index]
                leaf[index] = original + eps
                plus = objective()
                leaf[index] = original - eps
                minus = objective()
                leaf[index] = original
                numeric = (plus - minus) / (2 * eps)
                a = float(g[index])
                err = abs(a - numeric) / max(abs(a), abs(numeric), SCALE_FLOOR)
                if not np.isfinite(err):
                    err = np.inf
                if err > worst.max_error or worst.where.startswith("nowhere"):
                    where = f"{name}{path}[{', '.join(map(str, index))}]"
                    worst = GradCheckReport(err, where, a, numeric, tolerance)
    return worst


def _finish(report: GradCheckReport, raise_on_failure: bool) -> GradCheckReport:
    if raise_on_failure and not report.ok:
        raise AssertionError(str(report))
    return report


def check_grads(
    layer: Layer,
    params: Any,
    x: Any,
    *,
    train: bool = False,
    rng_seed: int | None = 0,
    state: Any = None,
    eps: float = 1e-6,
    tolerance: float = 1e-5,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradCheckReport:
    """Compare ``layer.backward`` with central differences for params and inputs.

    Everything is copied to float64 first. The objective is ``sum(y * dy)`` for a
    random cotangent ``dy`` drawn from ``seed``. ``rng_seed`` gives every forward
    pass the same key, so dropout masks agree between evaluations. ``state`` is the
    layer's state (None for a layer without). Raises
    AssertionError with the report when the worst error exceeds ``tolerance``.
    """
    p64, x64 = _float64_copy(params), _float64_copy(x)

    def run() -> tuple[Any, Any]:
        y, _, cache = layer.forward_with_state(p64, state, x64, train=train, rng=rng_seed)
        return y, cache

    y, cache = run()
    gen = np.random.default_rng(seed)
    dy = tree.map(lambda a: gen.standard_normal(np.shape(a)), y)
    grads, dx = layer.backward(p64, cache, dy)
    dy_leaves = tree.leaves(dy)

    def objective() -> float:
        out = tree.leaves(run()[0])
        return float(sum(np.sum(a * b) for a, b in zip(out, dy_leaves)))

    report = _compare(objective, [("params", p64, grads), ("x", x64, dx)], eps, tolerance)
    return _finish(report, raise_on_failure)


def check_loss_grads(
    loss: Loss,
    pred: Any,
    target: Any,
    *,
    eps: float = 1e-6,
    tolerance: float = 1e-5,
    raise_on_failure: bool = True,
) -> GradCheckReport:
    """Compare ``loss.value_and_grad`` with central differences in the predictions
    (a tuple of predictions, for a loss of several outputs, entry by entry)."""
    p64: Any
    if isinstance(pred, tuple):
        p64 = tuple(np.array(p, dtype=np.float64) for p in pred)
        _, dpred = loss.value_and_grad(p64, target)
        entries: list[tuple[str, np.ndarray, Any]] = [
            (f"pred[{k}]", p, d) for k, (p, d) in enumerate(zip(p64, dpred))
        ]
    else:
        p64 = np.array(pred, dtype=np.float64)
        _, dpred = loss.value_and_grad(p64, target)
        entries = [("pred", p64, dpred)]
    report = _compare(lambda: loss(p64, target), entries, eps, tolerance)
    return _finish(report, raise_on_failure)


def random_input(gen: np.random.Generator, input_shape: Shape, batch: int) -> Any:
    """A float64 standard-normal batch for ``input_shape`` (a tuple of them for several)."""
    if is_shape_tuple(input_shape):
        return tuple(random_input(gen, s, batch) for s in input_shape)
    return gen.standard_normal((batch, *input_shape))


def _shapes_of(y: Any) -> Any:
    if isinstance(y, tuple):
        return tuple(_shapes_of(a) for a in y)
    return tuple(np.shape(y)[1:])


def check_layer(
    layer: Layer,
    input_shape: Shape,
    *,
    batch_sizes: tuple[int, ...] = (1, 3),
    train: bool = False,
    seed: int = 0,
    tolerance: float = 1e-5,
) -> list[GradCheckReport]:
    """Run the layer protocol on ``layer`` for each batch size and raise AssertionError on a breach.

    Checks: ``output_shape`` agrees with ``apply``; ``apply_with_state`` equals
    ``forward_with_state`` bit for bit; params are read-only; params and inputs are
    unchanged; grads and dx agree with finite differences in float64.
    """
    reports = []
    for batch in batch_sizes:
        gen = np.random.default_rng([seed, batch])
        params = layer.init(np.random.default_rng(seed), input_shape, dtype=np.float64)
        params_again = layer.init(np.random.default_rng(seed), input_shape, dtype=np.float64)
        for a, b in zip(tree.leaves(params), tree.leaves(params_again)):
            if not np.array_equal(a, b):
                raise AssertionError(f"{layer!r}: the same seed gave different params")
            if a.flags.writeable:
                raise AssertionError(
                    f"{layer!r}: init returned a writable params array; mark the arrays "
                    "read-only before returning them: return funcnn.tree.freeze(params)"
                )
        x = random_input(gen, input_shape, batch)
        x_before, params_before = tree.map(np.copy, x), tree.map(np.copy, params)
        state = layer.init_state(input_shape, dtype=np.float64)
        rng = 1 if train else None
        y, _ = layer.apply_with_state(params, state, x, train=train, rng=rng)
        y2, _, _ = layer.forward_with_state(params, state, x, train=train, rng=rng)
        expected = layer.output_shape(input_shape)
        if _shapes_of(y) != expected:
            raise AssertionError(
                f"{layer!r}: output_shape says {expected}, apply gave {_shapes_of(y)}"
            )
        for a, b in zip(tree.leaves(y), tree.leaves(y2)):
            if not np.array_equal(a, b):
                raise AssertionError(f"{layer!r}: apply differs from forward[0]")
        report = check_grads(
            layer,
            params,
            x,
            train=train,
            rng_seed=1 if train else None,
            state=state,
            tolerance=tolerance,
            seed=seed,
        )
        for before, after, what in ((x_before, x, "input"), (params_before, params, "params")):
            for a, b in zip(tree.leaves(before), tree.leaves(after)):
                if not np.array_equal(a, b):
                    raise AssertionError(f"{layer!r} modified its {what}")
        reports.append(report)
    return reports


_ALLOCATORS: dict[str, Callable[..., np.ndarray]] = {
    "empty": np.empty,
    "empty_like": np.empty_like,
}  # NumPy's own, whatever a block of poisoned_empty puts in their place
_POISONED: list[tuple[str, ...]] = []  # the packages of each poisoned_empty block now open


def _poison(dtype: np.dtype) -> Any:
    """What unwritten memory of ``dtype`` holds under :func:`poisoned_empty`."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind in "iu":
        return np.iinfo(dtype).max
    return True if dtype.kind == "b" else None


def _poisoned(name: str) -> Callable[..., np.ndarray]:
    allocate = _ALLOCATORS[name]

    def allocate_poisoned(*args: Any, **kwargs: Any) -> np.ndarray:
        out = allocate(*args, **kwargs)
        package = sys._getframe(1).f_globals.get("__name__", "").split(".")[0]
        value = _poison(out.dtype)
        if value is not None and out.size and any(package in m for m in _POISONED):
            out.fill(value)
        return out

    return allocate_poisoned


@contextlib.contextmanager
def poisoned_empty(modules: tuple[str, ...] = ("funcnn",)) -> Iterator[None]:
    """Within the block, ``np.empty`` and ``np.empty_like`` called from code in ``modules``
    (top-level package names, e.g. ``("funcnn", "mylayers")``) return arrays filled with
    NaN (ints: their largest value; bools: True) instead of whatever the allocator left.

    Run a gradient check inside it: a path that reads an entry it never wrote then gives
    NaN (or nonsense) every time, not only when the allocator hands out garbage. Blocks
    nest (the packages of every open block are poisoned). Test-only: it replaces NumPy's
    module attributes, for every thread, until the last block ends.
    """
    if not _POISONED:
        for name in _ALLOCATORS:
            setattr(np, name, _poisoned(name))
    _POISONED.append(tuple(modules))
    try:
        yield
    finally:
        _POISONED.pop()
        if not _POISONED:
            for name, allocate in _ALLOCATORS.items():
                setattr(np, name, allocate)


def _run_trees(t: Any) -> Any:
    """What :func:`fit` returns as its trees (params, state, opt_state); anything else as is."""
    if all(hasattr(t, name) for name in ("params", "state", "opt_state")) and not isinstance(
        t, tuple
    ):
        return (t.params, t.state, t.opt_state)
    return t


def _leaf_array(leaf: Any) -> np.ndarray:
    a = np.asarray(leaf)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)  # 0-d stays 0-d


def digest(t: Any) -> str:
    """The SHA-256 (64 hex digits) of a tree's bits: for every leaf in order, its path, dtype,
    shape and bytes. Params, state and optimizer state (step counts and learning rates
    included) all count; so does ``fit``'s result, as its ``(params, state, opt_state)``.

    Two trees have the same digest only if they hold the same structure and the same bits,
    so a seeded test can pin a run in one line::

        assert digest(fit(...)) == "9f2c..."   # the digest this run gave before
    """
    h = hashlib.sha256()
    for path, leaf in tree.leaves_with_path(_run_trees(t)):
        a = _leaf_array(leaf)
        h.update(f"{path}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def assert_same_bits(actual: Any, expected: Any) -> None:
    """Raise AssertionError unless ``actual`` and ``expected`` (trees, or ``fit`` results) have
    the same structure and every leaf the same dtype, shape and bits (NaN equals NaN of the
    same bits). The message names the first leaf that differs: its path, how many entries
    differ, the first such entry's index and both values, and the largest difference."""
    a_tree, e_tree = _run_trees(actual), _run_trees(expected)
    where = tree.structure_difference(a_tree, e_tree, shapes=False)
    if where is not None:
        raise AssertionError(f"the trees differ in structure: {where}")
    for (path, a_leaf), (_, e_leaf) in zip(
        tree.leaves_with_path(a_tree), tree.leaves_with_path(e_tree)
    ):
        a, e = _leaf_array(a_leaf), _leaf_array(e_leaf)
        name = path or "the leaf"
        if a.dtype != e.dtype or a.shape != e.shape:
            raise AssertionError(
                f"{name}: actual is {a.dtype}{list(a.shape)}, expected {e.dtype}{list(e.shape)}"
            )
        if a.tobytes() == e.tobytes():
            continue
        bits_a = a.reshape(-1).view(np.uint8).reshape(a.size, -1)
        differs = np.any(bits_a != e.reshape(-1).view(np.uint8).reshape(e.size, -1), axis=1)
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(differs)), a.shape))
        message = (
            f"{name} ({a.dtype}{list(a.shape)}): {int(differs.sum())} of {a.size} entries "
            f"differ; first at index {list(first)}: actual {a[first]}, expected {e[first]}"
        )
        if a.dtype.kind in "fc":
            with np.errstate(invalid="ignore", over="ignore"):
                gap = np.abs(a.astype(np.float64) - e.astype(np.float64))
            message += f"; largest difference {float(np.nanmax(gap)) if gap.size else 0.0:.3g}"
        raise AssertionError(message)
