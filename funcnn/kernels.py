"""The compiled tier: loops compiled by numba (the optional ``numba`` extra) for the passes
over memory that NumPy makes many of, each giving the NumPy path's bits (the tests compare
them). The NumPy path is the reference and the default.

Turn it on for a process with ``FUNCNN_KERNELS=numba`` in the environment, or for a block
of code (this thread and the tasks it starts)::

    from funcnn import kernels
    with kernels.using("numba"):
        params, history = funcnn.fit(...)

Without numba installed, asking for it raises an ImportError naming the extra. numba
compiles each loop on first use and keeps it in its disk cache (``cache=True``), so a
later process starts at once; ``import funcnn`` never imports numba.

What runs compiled (each loop releases the GIL and runs on funcnn's threads, a block of
samples a task, so the worker count never changes a result):

- ``MaxPool2D`` (and ``MaxPool1D``) forward and backward: one pass finds each window's
  maximum and the offset of its first maximum (row-major window order, NaN never a
  maximum's position, as ``np.equal`` finds them), one pass routes the gradient there.
- ``Relu`` in training: one pass gives the output and where it is positive; backward
  one pass, both over spans on funcnn's threads.
- Adam's update (:func:`funcnn.optim.scale_by_adam` and the aliases on it): the loop of
  :mod:`funcnn.optim.compiled`, one pass per span.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from funcnn import linalg

CHOICES = ("numpy", "numba")

_choice: ContextVar[str | None] = ContextVar("funcnn_kernels", default=None)


def _checked(name: Any) -> str:
    if name not in CHOICES:
        raise ValueError(f"kernels must be one of {CHOICES}, got {name!r}")
    return str(name)


def current() -> str:
    """The tier in use here: what :func:`using` set, else ``FUNCNN_KERNELS``, else numpy."""
    chosen = _choice.get()
    if chosen is not None:
        return chosen
    env = os.environ.get("FUNCNN_KERNELS", "").strip() or "numpy"
    if env not in CHOICES:
        raise ValueError(f"FUNCNN_KERNELS must be one of {CHOICES}, got {env!r}")
    return env


@contextmanager
def using(name: str) -> Iterator[None]:
    """Run the block with the ``"numba"`` (compiled) or ``"numpy"`` tier; the same bits."""
    name = _checked(name)
    if name == "numba":
        _numba()  # fail here, naming the extra, not inside a layer
    token = _choice.set(name)
    try:
        yield
    finally:
        _choice.reset(token)


def compiled() -> bool:
    """Whether layers here take the compiled tier."""
    return current() == "numba"


def _numba() -> Any:
    try:
        import numba
    except ImportError as e:
        raise ImportError(
            "the compiled tier needs numba: pip install 'funcnn[numba]' "
            "(or leave FUNCNN_KERNELS unset: the NumPy path computes the same bits)"
        ) from e
    return numba


_jitted: dict[str, Callable[..., Any]] = {}


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` compiled (once per process; numba's disk cache keeps it across processes).
    IEEE semantics: no fast-math, so each operation rounds as NumPy's does."""
    found = _jitted.get(fn.__name__)
    if found is None:
        found = _numba().njit(nogil=True, cache=True, error_model="numpy")(fn)
        _jitted[fn.__name__] = found
    return found


def _by_samples(n: int, per_sample: int, task: Callable[[int, int], None]) -> None:
    """``task(lo, hi)`` over blocks of samples, on funcnn's threads when worth it."""
    block = max(1, linalg.ELEMENTWISE_MIN // max(1, per_sample) // 2)
    tasks = [functools.partial(task, lo, min(lo + block, n)) for lo in range(0, n, block)]
    linalg.run_elementwise(tasks, n * per_sample)


# ---------------------------------------------------------------- max pooling


def maxpool_forward_loop(
    xp: np.ndarray, y: np.ndarray, arg: np.ndarray, lo: int, hi: int,
    ph: int, pw: int, sh: int, sw: int,
) -> None:  # fmt: skip
    """``y[n, i, j, c]``: the maximum of window (i, j) of ``xp[n]`` as ``np.maximum`` folds
    it (offsets in row-major order; a NaN wins and stays; of equal values such as 0.0 and
    -0.0 the later), for samples ``lo:hi``;
    ``arg``: the first offset whose value equals it (-1 when none: a NaN window)."""
    _, oh, ow, channels = y.shape
    window = ph * pw
    for n in range(lo, hi):
        for i in range(oh):
            for j in range(ow):
                # Offsets outermost and channels innermost: every pass reads contiguous
                # channels, and the comparisons are selects the compiler vectorizes.
                for c in range(channels):
                    y[n, i, j, c] = xp[n, i * sh, j * sw, c]
                    arg[n, i, j, c] = -1
                for k in range(1, window):
                    a, b = k // pw, k % pw
                    for c in range(channels):
                        v = xp[n, i * sh + a, j * sw + b, c]
                        best = y[n, i, j, c]
                        # np.maximum(best, v): v unless best is larger or NaN (ties: v)
                        y[n, i, j, c] = best if (best > v or best != best) else v
                for k in range(window):
                    a, b = k // pw, k % pw
                    for c in range(channels):
                        hit = xp[n, i * sh + a, j * sw + b, c] == y[n, i, j, c]
                        if hit and arg[n, i, j, c] < 0:
                            arg[n, i, j, c] = k


def maxpool_backward_loop(
    dy: np.ndarray, arg: np.ndarray, dxp: np.ndarray, lo: int, hi: int,
    ph: int, pw: int, sh: int, sw: int, overlapping: bool,
) -> None:  # fmt: skip
    """``dxp`` for samples ``lo:hi`` as the NumPy path builds it: for each window offset
    ``k`` in turn, ``dy * (arg == k)`` written (non-overlapping windows) or added (from
    zeros) at that offset's positions. ``dxp`` comes zeroed where windows do not cover it."""
    _, oh, ow, channels = dy.shape
    zero = dy.dtype.type(0)
    one = dy.dtype.type(1)
    for n in range(lo, hi):
        for k in range(ph * pw):
            a, b = k // pw, k % pw
            for i in range(oh):
                for j in range(ow):
                    for c in range(channels):
                        g = dy[n, i, j, c] * (one if arg[n, i, j, c] == k else zero)
                        if overlapping:
                            dxp[n, i * sh + a, j * sw + b, c] += g
                        else:
                            dxp[n, i * sh + a, j * sw + b, c] = g


def maxpool_forward(
    xp: np.ndarray, pool: tuple[int, int], steps: tuple[int, int], out: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, arg)`` of a max pool over the padded input ``xp`` (batch, H, W, C): ``y``
    (batch, oh, ow, C) with the NumPy path's bits, ``arg`` int8 (the window offset of the
    first maximum, -1 for none) or int16 for windows of more than 127 positions."""
    loop = _jit(maxpool_forward_loop)
    xp = np.ascontiguousarray(xp)
    y = np.empty((xp.shape[0], *out, xp.shape[3]), xp.dtype)
    arg = np.empty(y.shape, np.int8 if pool[0] * pool[1] <= 127 else np.int16)
    per = out[0] * out[1] * xp.shape[3] * pool[0] * pool[1]
    _by_samples(len(xp), per, lambda lo, hi: loop(xp, y, arg, lo, hi, *pool, *steps))
    return y, arg


def maxpool_backward(
    dy: np.ndarray, arg: np.ndarray, shape: tuple[int, ...], pool: tuple[int, int],
    steps: tuple[int, int], overlapping: bool, tiled: bool,
) -> np.ndarray:  # fmt: skip
    """The padded input's gradient (``shape``) from ``dy`` and ``arg`` of
    :func:`maxpool_forward`."""
    loop = _jit(maxpool_backward_loop)
    dy = np.ascontiguousarray(dy)
    dxp = (np.empty if tiled else np.zeros)(shape, dtype=dy.dtype)
    per = dy[0].size * pool[0] * pool[1] if len(dy) else 0
    _by_samples(len(dy), per, lambda lo, hi: loop(dy, arg, dxp, lo, hi, *pool, *steps, overlapping))
    return dxp


# ---------------------------------------------------------------- ReLU


def relu_forward_loop(x: np.ndarray, y: np.ndarray, positive: np.ndarray, lo: int, hi: int) -> None:
    """``y = np.maximum(x, 0)`` (NaN stays, -0.0 becomes 0.0: NumPy's ties take the 0) and
    ``positive = y > 0`` over the flat span ``lo:hi``."""
    zero = x.dtype.type(0)
    for i in range(lo, hi):
        v = x[i]
        out = v if (v > zero or v != v) else zero
        y[i] = out
        positive[i] = out > zero


def relu_backward_loop(
    dy: np.ndarray, positive: np.ndarray, dx: np.ndarray, lo: int, hi: int
) -> None:
    """``dx = dy * positive`` (the bool as 1 or 0 in dy's dtype: -0.0 where dy < 0 is
    masked, NaN stays) over the flat span ``lo:hi``."""
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    for i in range(lo, hi):
        dx[i] = dy[i] * (one if positive[i] else zero)


def _spans(size: int, task: Callable[[int, int], None]) -> None:
    """``task(lo, hi)`` over spans of a flat array, on funcnn's threads when worth it."""
    span = linalg.ELEMENTWISE_MIN // 2
    tasks = [functools.partial(task, lo, min(lo + span, size)) for lo in range(0, size, span)]
    linalg.run_elementwise(tasks, size)


def floating(*arrays: Any) -> bool:
    """Whether the compiled loops take these arrays: float32 or float64 ndarrays of one dtype."""
    first = arrays[0]
    return all(
        isinstance(a, np.ndarray) and a.dtype == first.dtype and a.dtype.kind == "f"
        and a.dtype.itemsize in (4, 8) for a in arrays
    )  # fmt: skip


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(np.maximum(x, 0), y > 0)`` in one pass (x float32 or float64)."""
    loop = _jit(relu_forward_loop)
    flat = np.ascontiguousarray(x).reshape(-1)
    y, positive = np.empty_like(flat), np.empty(flat.shape, bool)
    _spans(flat.size, lambda lo, hi: loop(flat, y, positive, lo, hi))
    return y.reshape(x.shape), positive.reshape(x.shape)


def relu_backward(dy: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """``dy * positive`` in dy's dtype, one pass."""
    loop = _jit(relu_backward_loop)
    flat = np.ascontiguousarray(dy).reshape(-1)
    mask = np.ascontiguousarray(positive).reshape(-1)
    dx = np.empty_like(flat)
    _spans(flat.size, lambda lo, hi: loop(flat, mask, dx, lo, hi))
    return dx.reshape(dy.shape)


# ---------------------------------------------------------------- im2col


def gather_windows_loop(
    xp: np.ndarray, cols: np.ndarray, lo: int, hi: int,
    kh: int, kw: int, dh: int, dw: int, sh: int, sw: int, groups: int,
) -> None:  # fmt: skip
    """``cols[n, i, j]`` (one row of ``kh * kw * C`` values, in ``(groups, kh, kw, C /
    groups)`` order) for samples ``lo:hi``: the window of output (i, j) of ``xp[n]``."""
    _, oh, ow, _ = cols.shape
    channels = xp.shape[3]
    per = channels // groups
    for n in range(lo, hi):
        for i in range(oh):
            for j in range(ow):
                k = 0
                for g in range(groups):
                    for a in range(kh):
                        for b in range(kw):
                            for c in range(g * per, (g + 1) * per):
                                cols[n, i, j, k] = xp[n, i * sh + a * dh, j * sw + b * dw, c]
                                k += 1


def gather_windows(
    xp: np.ndarray, kernel: tuple[int, int], dilation: tuple[int, int],
    strides: tuple[int, int], out: tuple[int, int], groups: int = 1,
) -> np.ndarray:  # fmt: skip
    """:func:`funcnn.layers.conv.gather_windows` (im2col) as one compiled copy over blocks
    of samples: ``(N * oh * ow, kh * kw * C)``, the same values in the same order."""
    loop = _jit(gather_windows_loop)
    xp = np.ascontiguousarray(xp)
    width = kernel[0] * kernel[1] * xp.shape[3]
    cols = np.empty((xp.shape[0], *out, width), xp.dtype)
    per = out[0] * out[1] * width
    _by_samples(
        len(xp), per, lambda lo, hi: loop(xp, cols, lo, hi, *kernel, *dilation, *strides, groups)
    )
    return cols.reshape(-1, width)


def add_window_loop(
    dxp: np.ndarray, part: np.ndarray, lo: int, hi: int,
    a: int, b: int, dh: int, dw: int, sh: int, sw: int,
) -> None:  # fmt: skip
    """``dxp[n, i * sh + a * dh, j * sw + b * dw] += part[n, i, j]`` for samples ``lo:hi``."""
    _, oh, ow, channels = part.shape
    for n in range(lo, hi):
        for i in range(oh):
            for j in range(ow):
                for c in range(channels):
                    dxp[n, i * sh + a * dh, j * sw + b * dw, c] += part[n, i, j, c]


def add_window(
    dxp: np.ndarray, part: np.ndarray, offset: tuple[int, int],
    dilation: tuple[int, int], strides: tuple[int, int],
) -> None:  # fmt: skip
    """col2im's step in place on ``dxp`` (the caller's fresh array): kernel offset
    ``offset``'s contribution ``part`` (N, oh, ow, C) added where that offset read, as
    ``dxp[offset_slices(...)] += part`` adds it, over blocks of samples on funcnn's threads."""
    loop = _jit(add_window_loop)
    part = np.ascontiguousarray(part)
    _by_samples(
        len(part), part[0].size if len(part) else 0,
        lambda lo, hi: loop(dxp, part, lo, hi, *offset, *dilation, *strides),
    )  # fmt: skip
