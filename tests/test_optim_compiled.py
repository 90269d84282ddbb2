"""optim.compiled.scale_by_adam gives bit for bit the NumPy path's numbers and states.

numba comes with the ``numba`` extra (part of ``dev``, so CI runs these).
"""

import sys

import numpy as np
import pytest

from funcnn import optim, schedules, tree
from funcnn.optim import adam_loop, compiled

pytest.importorskip("numba")

RNG = np.random.default_rng(0)
SHAPES = [(7, 5), (5,), (3, 4, 2), ()]


def params_and_grads(dtype, steps=4):
    def draw(shape, magnitude=1.0):
        return np.asarray(RNG.standard_normal(shape) * magnitude, dtype=dtype)

    params = tuple(draw(s) for s in SHAPES)
    grads = [tuple(draw(s, 10.0 ** RNG.integers(-6, 2)) for s in SHAPES) for _ in range(steps)]
    return params, grads


def run(opt, params, grads):
    state, trace = opt.init(params), []
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        trace.append((updates, state))
    return trace


def assert_bit_identical(a, b):
    (la, da), (lb, db) = tree.flatten(a), tree.flatten(b)
    assert da == db
    for x, y in zip(la, lb):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y, strict=True)
        else:
            assert x == y


def adam_like(adam, lr, *, decay=None, **kw):
    """Adam (and AdamW with ``decay``) from a scale_by_adam of either module."""
    blocks = [adam(**kw)]
    if decay is not None:
        blocks.append(optim.add_decayed_weights(decay, mask=tree.kernel_mask))
    return optim.chain(*blocks, optim.scale_by_learning_rate(lr))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda a: adam_like(a, 1e-3),
        lambda a: adam_like(a, schedules.cosine_decay(0.1, 10), b1=0.8, eps=1e-4),
        lambda a: adam_like(a, 3e-3, eps_root=1e-8),
        lambda a: adam_like(a, 2e-3, nesterov=True),
        lambda a: adam_like(a, 1e-2, decay=0.1),
        lambda a: a(b1=0.5, b2=0.9, nesterov=True, eps_root=1e-3),
    ],
    ids=["adam", "adam-schedule", "adam-eps_root", "nadam", "adamw", "scale_by_adam-all"],
)
def test_compiled_adam_is_bit_identical_to_numpy(make, dtype):
    params, grads = params_and_grads(dtype)
    fast = run(make(compiled.scale_by_adam), params, grads)
    reference = run(make(optim.scale_by_adam), params, grads)
    for a, b in zip(fast, reference):
        assert_bit_identical(a, b)
    for leaf in tree.leaves(fast[-1][1]):
        assert not isinstance(leaf, np.ndarray) or not leaf.flags.writeable


def test_compiled_adam_equals_the_adam_alias_and_shares_its_state():
    params, grads = params_and_grads(np.float32)
    fast = run(adam_like(compiled.scale_by_adam, 1e-3), params, grads)
    reference = run(optim.adam(1e-3), params, grads)
    for a, b in zip(fast, reference):
        assert_bit_identical(a, b)


def test_compiled_adam_takes_non_contiguous_grads_and_keeps_numpy_promotion():
    params, grads = params_and_grads(np.float32, steps=2)
    transposed = [(g[0].T.copy().T, *g[1:]) for g in grads]  # F-ordered first leaf
    assert not transposed[0][0].flags.c_contiguous
    mixed = [(g[0].astype(np.float64), *g[1:]) for g in grads]  # promotes in NumPy
    for gs in (transposed, mixed):
        fast = run(adam_like(compiled.scale_by_adam, 1e-2), params, gs)
        reference = run(optim.adam(1e-2), params, gs)
        for a, b in zip(fast, reference):
            assert_bit_identical(a, b)


def test_compiled_adam_without_numba_names_the_extra(monkeypatch):
    monkeypatch.setattr(adam_loop, "_compiled", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now fails
    with pytest.raises(ImportError, match=r"pip install 'funcnn\[numba\]'"):
        compiled.scale_by_adam()
    assert optim.adam(1e-3).init((np.zeros(2),))  # the NumPy path needs nothing
