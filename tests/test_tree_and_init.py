"""funcnn.tree helpers, initializers and rng handling."""

import numpy as np
import pytest

from funcnn import initializers as I
from funcnn import tree
from funcnn.layers import DenseParams
from funcnn.random import as_generator, split


def test_tree_map_leaves_and_none():
    t = (DenseParams(np.ones(2), None), [np.zeros((1, 2))], {"a": np.ones(3)})
    assert len(tree.leaves(t)) == 3
    doubled = tree.map(lambda a: a * 2, t)
    assert isinstance(doubled[0], DenseParams) and doubled[0].b is None
    assert np.array_equal(doubled[2]["a"], [2, 2, 2])
    assert tree.size(t) == 7
    assert tree.global_norm(t) == pytest.approx(np.sqrt(5))
    paths = [p for p, _ in tree.leaves_with_path(t)]
    assert paths == ["[0].w", "[1][0]", "[2]'a'"]


def test_structure_errors_name_first_difference():
    a = (DenseParams(np.ones((2, 3)), np.ones(3)), ())
    b = (DenseParams(np.ones((2, 3)), np.ones(4)), ())
    with pytest.raises(ValueError, match=r"\[0\]\.b.*\(3,\).*\(4,\)"):
        tree.map(np.add, a, b)
    with pytest.raises(ValueError, match="differ in structure"):
        tree.check_same_structure(a, (a[0],))
    assert tree.structure_difference(a, tree.zeros_like(a)) is None


@pytest.mark.parametrize(
    "a, b, where",
    [
        ((np.ones(2),), [np.ones(2)], "tuple with 1 children vs list"),
        ({"x": np.ones(2)}, {"y": np.ones(2)}, "key 'x' vs key 'y'"),
        ((np.ones(2), None), (np.ones(2), np.ones(1)), r"\[1\]: None vs leaf"),
        ((np.ones(2),), ((np.ones(2),),), r"\[0\]: leaf of shape \(2,\) vs tuple"),
        (DenseParams(np.ones(2), None), (np.ones(2), None), "DenseParams with 2 children vs tuple"),
        ([np.ones(2)], [np.ones(2), np.ones(2)], "list with 1 children vs list with 2"),
    ],
)
def test_map_walks_the_trees_together_and_names_a_difference(a, b, where):
    with pytest.raises(tree.StructureMismatch, match=where):
        tree.map(np.add, a, b)
    assert issubclass(tree.StructureMismatch, ValueError)


def test_map_with_several_trees_and_masks():
    a = {"k": (np.ones((2, 2)), np.ones(2)), "n": None}
    out = tree.map(lambda x, y, z: x + y + z, a, a, a)
    assert np.array_equal(out["k"][0], np.full((2, 2), 3.0)) and out["n"] is None
    masked = tree.map(lambda x, on: x if on else None, a, tree.kernel_mask(a), shapes=False)
    assert masked["k"][1] is None and masked["k"][0] is a["k"][0]
    with pytest.raises(ValueError, match=r"rest\[1\]"):
        tree.map(lambda *x: x[0], a, a, {"k": (np.ones((2, 2)), np.ones(3)), "n": None})


def test_freeze_and_kernel_mask():
    t = tree.freeze((np.ones((2, 2)), np.ones(2)))
    assert not t[0].flags.writeable
    assert tree.kernel_mask(t) == (True, False)


@pytest.mark.parametrize(
    "init, shape, expected_std",
    [
        (I.glorot_uniform, (300, 200), np.sqrt(2 / 500)),
        (I.glorot_normal, (300, 200), np.sqrt(2 / 500)),
        (I.he_uniform, (400, 100), np.sqrt(2 / 400)),
        (I.he_normal, (400, 100), np.sqrt(2 / 400)),
        (I.lecun_uniform, (400, 100), np.sqrt(1 / 400)),
        (I.lecun_normal, (400, 100), np.sqrt(1 / 400)),
        (I.he_normal, (3, 3, 16, 32), np.sqrt(2 / (3 * 3 * 16))),
        (I.glorot_uniform, (5, 5, 8, 4), np.sqrt(2 / (25 * 8 + 25 * 4))),
        (I.normal(0.2), (300, 300), 0.2),
        (I.uniform(0.3), (300, 300), 0.3 / np.sqrt(3)),
    ],
)
def test_initializer_statistics(init, shape, expected_std):
    w = init(np.random.default_rng(0), shape, np.float64)
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.mean()) < 0.05 * expected_std + 1e-3
    assert w.std() == pytest.approx(expected_std, rel=0.03)


def test_uniform_limits_and_fans():
    assert I.compute_fans((784, 128)) == (784, 128)
    assert I.compute_fans((3, 3, 16, 32)) == (144, 288)
    w = I.glorot_uniform(0, (10, 20))
    assert w.dtype == np.float32 and np.abs(w).max() <= np.sqrt(6 / 30)


def test_orthogonal_constant_and_determinism():
    q = I.orthogonal(0, (6, 4), np.float64)
    assert np.allclose(q.T @ q, np.eye(4))
    q = I.orthogonal(0, (3, 5), np.float64)
    assert np.allclose(q @ q.T, np.eye(3))
    assert np.array_equal(I.zeros(0, (2,)), [0, 0]) and np.array_equal(I.ones(0, (2,)), [1, 1])
    assert np.array_equal(I.constant(0.5)(None, (2,)), [0.5, 0.5])
    assert np.array_equal(I.he_normal(3, (4, 4)), I.he_normal(3, (4, 4)))
    assert not np.array_equal(I.he_normal(3, (4, 4)), I.he_normal(4, (4, 4)))


def test_rng_helpers():
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    a = [c.random() for c in split(5, 3)]
    b = [c.random() for c in split(5, 3)]
    assert a == b and len(set(a)) == 3
    with pytest.raises(TypeError):
        as_generator(True)
    with pytest.raises(ValueError):
        as_generator(-1)
