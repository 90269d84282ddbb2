"""Every windowed pool against a naive loop in float64, forward and backward.

The grid covers pools smaller than their stride (positions no window reads, whose
gradient is zero), larger (overlapping windows), equal (tiling), odd sizes that leave
rows after the last window, and both paddings. The reference is written from the
definitions alone: a window starts at ``o * stride - pad_before``; a max pool sends
the gradient to the first maximum in row-major window order; an average pool divides
by the number of real (unpadded) inputs it read.
"""

import itertools
import math

import numpy as np
import pytest

from funcnn import layers as L

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

POOLS_2D = [(1, 1), (2, 2), (3, 2), (1, 3), (3, 3)]
STRIDES_2D = [None, 1, 2, (2, 1), 3]
SIZES_2D = [(4, 4), (5, 7), (9, 6), (3, 3)]
POOLS_1D = [1, 2, 3, 4]
STRIDES_1D = [None, 1, 2, 3, 5]
LENGTHS_1D = [1, 4, 7, 9]


def _pads(padding, size, pool, steps):
    if padding == "valid":
        return [0 for _ in size], [(n - k) // s + 1 for n, k, s in zip(size, pool, steps)]
    out = [math.ceil(n / s) for n, s in zip(size, steps)]
    total = [max((o - 1) * s + k - n, 0) for o, s, k, n in zip(out, steps, pool, size)]
    return [t // 2 for t in total], out


def reference(kind, x, dy_seed, pool, strides, padding):
    """(y, dx) for a sum(y * dy) objective, by loops over every sample, output and channel."""
    steps = pool if strides is None else strides
    n, h, w, c = x.shape
    before, (oh, ow) = _pads(padding, (h, w), pool, steps)
    y = np.zeros((n, oh, ow, c))
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    dx = np.zeros_like(x)
    for i, a, b, ch in itertools.product(range(n), range(oh), range(ow), range(c)):
        window = [
            (r, q)
            for r in range(a * steps[0] - before[0], a * steps[0] - before[0] + pool[0])
            for q in range(b * steps[1] - before[1], b * steps[1] - before[1] + pool[1])
            if 0 <= r < h and 0 <= q < w
        ]
        values = [x[i, r, q, ch] for r, q in window]
        if kind == "max":
            first = int(np.argmax(values))  # the first maximum, row-major
            y[i, a, b, ch] = values[first]
            dx[i, window[first][0], window[first][1], ch] += dy[i, a, b, ch]
        else:
            y[i, a, b, ch] = sum(values) / len(values)
            for r, q in window:
                dx[i, r, q, ch] += dy[i, a, b, ch] / len(window)
    return y, dy, dx


def _fits(layer, shape):
    try:
        layer.output_shape(shape)
    except ValueError:
        return False
    return True


def _check(layer, x, ref_y, dy, ref_dx):
    """The layer's output and input gradient equal the reference's, after a training
    forward and after an inference forward (whose cache keeps the input instead)."""
    for train in (True, False):
        y, cache = layer.forward((), x, train=train)
        _, dx = layer.backward((), cache, dy)
        np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
        assert dx.shape == x.shape and np.isfinite(dx).all()
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)


POOLS = {
    (2, "max"): L.MaxPool2D,
    (2, "avg"): L.AvgPool2D,
    (1, "max"): L.MaxPool1D,
    (1, "avg"): L.AvgPool1D,
}
GRID = [
    *((2, pool, strides) for pool in POOLS_2D for strides in STRIDES_2D),
    *((1, pool, strides) for pool in POOLS_1D for strides in STRIDES_1D),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("rank", "pool", "strides"), GRID)
def test_pools_equal_a_naive_loop(kind, padding, rank, pool, strides):
    """On every size of the grid the pool fits (at least one). A 1-D pool is checked as
    the 2-D pool of height 1 it runs as."""
    layer = POOLS[rank, kind](pool, strides=strides, padding=padding)
    steps = pool if strides is None else strides
    if rank == 1:
        sizes, pool, steps = [(1, n) for n in LENGTHS_1D], (1, pool), (1, steps)
    else:
        sizes, steps = SIZES_2D, (steps, steps) if isinstance(steps, int) else steps
    checked = 0
    for size in sizes:
        x = np.random.default_rng(sum(size)).standard_normal((2, *size, 2))
        example = x.shape[1:] if rank == 2 else x.shape[2:]
        if not _fits(layer, example):
            continue
        ref_y, dy, ref_dx = reference(kind, x, 7, pool, steps, padding)
        if rank == 1:
            x, ref_y, dy, ref_dx = (a[:, 0] for a in (x, ref_y, dy, ref_dx))
        _check(layer, x, ref_y, dy, ref_dx)
        checked += 1
    assert checked  # every configuration fits at least one of the sizes


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (L.MaxPool2D((1, 1), strides=2), (4, 4, 3)),
        (L.MaxPool2D((1, 3), strides=3), (9, 6, 3)),
        (L.MaxPool2D((1, 1), strides=(2, 1), padding="same"), (4, 4, 3)),
    ],
)
def test_positions_no_window_reads_get_a_zero_gradient(layer, shape):
    """The cases that once returned uninitialised memory there."""
    x = np.random.default_rng(0).standard_normal((2, *shape))
    y, cache = layer.forward((), x, train=True)
    for _ in range(3):  # fresh allocations each time: garbage would differ between calls
        _, dx = layer.backward((), cache, np.ones_like(y))
        assert np.isfinite(dx).all()
        assert dx.sum() == y.size  # one unit per window, nothing more
        assert np.count_nonzero(dx) == y.size
