"""value_and_grad on whole models, penalties and the XOR sanity check."""

import numpy as np
import pytest

from funcnn import grad, losses, tree, value_and_grad
from funcnn import layers as L
from funcnn.testing import check_grads

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")


def test_value_and_grad_usage_shape():
    rng = np.random.default_rng(0)
    model = L.serial(L.Dense(128), L.Relu, L.Dense(10))
    params = model.init(np.random.default_rng(0), (784,))
    x = rng.standard_normal((16, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    logits = model.apply(params, x)
    assert logits.shape == (16, 10) and logits.dtype == np.float32
    loss, grads = value_and_grad(model, losses.softmax_cross_entropy)(params, x, labels)
    assert loss == pytest.approx(losses.softmax_cross_entropy(logits, labels))
    assert tree.structure_difference(params, grads) is None
    assert all(g.dtype == np.float32 for g in tree.leaves(grads))
    g_only = grad(model, losses.softmax_cross_entropy)(params, x, labels)
    for a, b in zip(tree.leaves(grads), tree.leaves(g_only)):
        assert np.array_equal(a, b)


def test_model_and_loss_gradient_matches_finite_differences():
    # The whole pipeline: loss(model(params, x), y) differentiated numerically in params.
    rng = np.random.default_rng(3)
    model = L.serial(L.Dense(5), L.Tanh, L.Dense(3))
    params = tree.map(np.copy, model.init(rng, (4,), dtype=np.float64))
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    penalty = losses.l2_penalty(0.01, mask=tree.kernel_mask)
    _, grads = value_and_grad(model, losses.softmax_cross_entropy, penalty=penalty)(params, x, y)
    eps = 1e-6
    for leaf, g in zip(tree.leaves(params), tree.leaves(grads)):
        for idx in np.ndindex(leaf.shape):
            orig = leaf[idx]
            leaf[idx] = orig + eps
            plus = losses.softmax_cross_entropy(model.apply(params, x), y) + penalty(params)
            leaf[idx] = orig - eps
            minus = losses.softmax_cross_entropy(model.apply(params, x), y) + penalty(params)
            leaf[idx] = orig
            assert g[idx] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-8)


def test_value_and_grad_does_not_mutate(rng):
    model = L.serial(L.Dense(4), L.Relu, L.Dropout(0.5), L.Dense(2))
    params = model.init(rng, (3,))
    x, y = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 2))
    before = tree.map(np.copy, (params, x, y))
    value_and_grad(model, losses.mean_squared_error)(params, x, y, rng=0)
    for a, b in zip(tree.leaves(before), tree.leaves((params, x, y))):
        assert np.array_equal(a, b)


def test_value_and_grad_rejects_a_plain_function():
    with pytest.raises(TypeError, match="paired gradient"):
        value_and_grad(L.serial(L.Dense(1)), lambda p, t: 0.0)


def test_check_grads_reports_location():
    model = L.serial(L.Dense(2), L.Sigmoid)
    params = model.init(0, (3,), dtype=np.float64)
    report = check_grads(model, params, np.ones((2, 3)))
    assert report.ok and report.max_error < 1e-6
    assert "ok" in str(report)


@pytest.mark.slow
def test_xor_learns_with_plain_gradient_descent():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    model = L.serial(L.Dense(4), L.Tanh, L.Dense(1), L.Sigmoid)
    params = model.init(0, (2,), dtype=np.float64)
    step = value_and_grad(model, losses.binary_cross_entropy)
    for _ in range(2000):
        loss, grads = step(params, x, y)
        params = tree.map(lambda p, g: p - 0.5 * g, params, grads)  # descend, not climb
    predictions = (model.apply(params, x) > 0.5).astype(int)
    assert np.array_equal(predictions, y.astype(int)), (loss, model.apply(params, x))
    assert loss < 0.1
