"""Every loss: finite-difference gradients, reductions, numerics and bad input."""

import numpy as np
import pytest

from funcnn import losses, nn, tree
from funcnn.testing import check_loss_grads

G = np.random.default_rng(42)


def _probs(shape):
    return nn.softmax(G.standard_normal(shape))


def _onehot(labels, classes):
    return np.eye(classes)[labels]


GRAD_CASES = [
    ("mse", losses.mean_squared_error, G.standard_normal((4, 3)), G.standard_normal((4, 3))),
    ("mse-vector", losses.mean_squared_error, G.standard_normal((5,)), G.standard_normal((5,))),
    ("mae", losses.mean_absolute_error, G.standard_normal((4, 3)), G.standard_normal((4, 3))),
    ("huber", losses.huber(0.5), 2 * G.standard_normal((6, 2)), G.standard_normal((6, 2))),
    ("bce", losses.binary_cross_entropy, G.uniform(0.05, 0.95, (5, 1)), G.integers(0, 2, (5, 1))),
    (
        "bce-soft",
        losses.binary_cross_entropy,
        G.uniform(0.05, 0.95, (3, 4)),
        G.uniform(0, 1, (3, 4)),
    ),
    (
        "sbce",
        losses.sigmoid_binary_cross_entropy,
        3 * G.standard_normal((5, 2)),
        G.integers(0, 2, (5, 2)),
    ),
    ("cce", losses.categorical_cross_entropy, _probs((4, 5)), _onehot(G.integers(0, 5, 4), 5)),
    ("cce-soft", losses.categorical_cross_entropy, _probs((3, 4)), _probs((3, 4))),
    ("cce-sparse", losses.categorical_cross_entropy, _probs((5, 3)), G.integers(0, 3, 5)),
    ("sce-int", losses.softmax_cross_entropy, G.standard_normal((6, 4)), G.integers(0, 4, 6)),
    ("sce-int-batch1", losses.softmax_cross_entropy, G.standard_normal((1, 3)), np.array([2])),
    (
        "sce-onehot",
        losses.softmax_cross_entropy,
        G.standard_normal((4, 3)),
        _onehot(G.integers(0, 3, 4), 3),
    ),
    ("sce-probs", losses.softmax_cross_entropy, G.standard_normal((4, 3)), _probs((4, 3))),
    (
        "sce-3d",
        losses.softmax_cross_entropy,
        G.standard_normal((2, 3, 4)),
        G.integers(0, 4, (2, 3)),
    ),
    (
        "weighted-sce",
        losses.weighted(losses.softmax_cross_entropy),
        G.standard_normal((5, 3)),
        (G.integers(0, 3, 5), np.array([0.0, 1.0, 2.5, 1.0, 0.5])),
    ),
    (
        "weighted-mse",
        losses.weighted(losses.mean_squared_error),
        G.standard_normal((4, 2)),
        (G.standard_normal((4, 2)), np.array([1.0, 0.0, 3.0, 0.25])),
    ),
    (
        "per-output",
        losses.per_output(
            losses.mean_squared_error, losses.softmax_cross_entropy, weights=(2, 0.5)
        ),
        (G.standard_normal((3, 1)), G.standard_normal((3, 4))),
        (G.standard_normal((3, 1)), G.integers(0, 4, 3)),
    ),
]


@pytest.mark.parametrize("name, loss, pred, target", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_loss_gradients_match_finite_differences(name, loss, pred, target):
    check_loss_grads(loss, pred, target)


def test_loss_grad_check_catches_the_p1mp_softmax_gradient():
    def wrong(logits, labels):
        p = nn.softmax(logits)
        return losses.softmax_cross_entropy(logits, labels), p * (1 - p) / len(p)

    bad = losses.FunctionLoss("bad", wrong)
    report = check_loss_grads(
        bad, G.standard_normal((3, 4)), np.array([0, 1, 2]), raise_on_failure=False
    )
    assert not report.ok


def test_values_match_closed_forms():
    p = np.array([[0.5, 2.0], [1.0, -1.0]])
    t = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert losses.mean_squared_error(p, t) == pytest.approx((0.25 + 1 + 0 + 4) / 4)
    assert losses.mean_absolute_error(p, t) == pytest.approx((0.5 + 1 + 0 + 2) / 4)
    assert losses.huber(1.0)(p, t) == pytest.approx((0.125 + 0.5 + 0 + 1.5) / 4)
    z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 2])
    expected = np.mean([-np.log(np.exp(2) / np.exp([2, 0, -1]).sum()), np.log(3)])
    assert losses.softmax_cross_entropy(z, labels) == pytest.approx(expected)
    assert losses.softmax_cross_entropy(z, np.eye(3)[labels]) == pytest.approx(expected)
    assert losses.categorical_cross_entropy(nn.softmax(z), np.eye(3)[labels]) == pytest.approx(
        expected
    )
    zb = np.array([[1.5], [-0.5]])
    yb = np.array([1, 0])
    pb = 1 / (1 + np.exp(-zb[:, 0]))
    bce = -np.mean(yb * np.log(pb) + (1 - yb) * np.log(1 - pb))
    assert losses.sigmoid_binary_cross_entropy(zb, yb) == pytest.approx(bce)
    assert losses.binary_cross_entropy(pb[:, None], yb) == pytest.approx(bce)


def test_softmax_cross_entropy_fused_gradient():
    z = G.standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0])
    _, g = losses.softmax_cross_entropy.value_and_grad(z, y)
    assert g.dtype == np.float32
    assert np.allclose(g, (nn.softmax(z) - np.eye(4)[y]) / 5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropies_finite_at_extremes(dtype):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=dtype)
        v, g = losses.softmax_cross_entropy.value_and_grad(z, np.array([1, 1]))
        assert np.isfinite(v) and np.all(np.isfinite(g)) and g.dtype == dtype
        assert v == pytest.approx(1e4)
        v, g = losses.sigmoid_binary_cross_entropy.value_and_grad(z, np.array([[0, 1], [1, 1]]))
        assert np.isfinite(v) and np.all(np.isfinite(g)) and g.dtype == dtype
        p = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
        t = np.array([[0, 1], [0, 1]])
        for loss in (losses.binary_cross_entropy, losses.categorical_cross_entropy):
            v, g = loss.value_and_grad(p, t)
            assert np.isfinite(v) and np.all(np.isfinite(g)) and g.dtype == dtype
        assert losses.binary_cross_entropy(p, p) < 1e-5


def test_float32_in_float32_out():
    p = G.standard_normal((3, 2)).astype(np.float32)
    t = G.standard_normal((3, 2)).astype(np.float32)
    for loss in (losses.mean_squared_error, losses.mean_absolute_error, losses.huber()):
        assert loss.grad(p, t).dtype == np.float32


def test_column_targets_do_not_broadcast():
    # (N,) targets for (N, 1) predictions are reshaped, never broadcast to (N, N).
    p = np.array([[0.2], [0.9], [0.4]])
    t = np.array([0.0, 1.0, 0.0])
    assert losses.mean_squared_error(p, t) == pytest.approx(np.mean((p[:, 0] - t) ** 2))
    assert losses.mean_squared_error.grad(p, t).shape == (3, 1)


def test_bad_targets_are_clear_errors():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*\[0, 3\]"):
        losses.softmax_cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 3\).*\(4, 1\)"):
        losses.softmax_cross_entropy(z, np.zeros((4, 1), dtype=int))
    with pytest.raises(TypeError, match="integer dtype"):
        losses.softmax_cross_entropy(z, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected targets of shape \(4, 3\)"):
        losses.mean_squared_error(z, np.zeros((3, 3)))
    with pytest.raises(TypeError, match="numeric"):
        losses.mean_squared_error(np.array(["a"]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"expects probabilities.*sigmoid_binary_cross_entropy"):
        losses.binary_cross_entropy(np.array([[3.0]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match="targets must be in"):
        losses.binary_cross_entropy(np.array([[0.3]]), np.array([[2.0]]))


def test_nan_targets_raise_and_nan_predictions_propagate():
    with pytest.raises(ValueError, match="NaN"):
        losses.mean_squared_error(np.zeros((2, 1)), np.array([[np.nan], [0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        losses.softmax_cross_entropy(np.zeros((1, 2)), np.array([[np.nan, 1.0]]))
    z = np.array([[np.nan, 0.0]])
    assert np.isnan(losses.softmax_cross_entropy(z, np.array([0])))
    assert np.isnan(losses.mean_squared_error(np.array([np.nan]), np.array([0.0])))


@pytest.mark.parametrize("name, loss, pred, target", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_a_nan_anywhere_in_the_predictions_gives_a_nan_loss(name, loss, pred, target):
    """Whatever column a NaN is in, whatever form the targets take (labels pick one
    column; a NaN in another must not vanish)."""
    first = pred[0] if isinstance(pred, tuple) else pred
    for index in np.ndindex(first.shape):
        spoiled = first.copy()
        spoiled[index] = np.nan
        bad = (spoiled, *pred[1:]) if isinstance(pred, tuple) else spoiled
        with np.errstate(invalid="ignore"):
            assert np.isnan(loss(bad, target)), index
            assert np.isnan(loss.per_example(bad, target)[index[0]]), index


def test_penalties_values_gradients_and_mask():
    params = ((np.array([[1.0, -2.0]]), np.array([3.0])), ())
    l2 = losses.l2_penalty(0.1, mask=tree.kernel_mask)
    value, grads = l2.value_and_grad(params)
    assert value == pytest.approx(0.1 * 5)
    assert np.allclose(grads[0][0], [[0.2, -0.4]]) and np.array_equal(grads[0][1], [0.0])
    l1 = losses.l1_penalty(0.5)
    value, grads = l1.value_and_grad(params)
    assert value == pytest.approx(0.5 * 6)
    assert np.allclose(grads[0][0], [[0.5, -0.5]]) and np.allclose(grads[0][1], [0.5])
    with pytest.raises(ValueError, match=">= 0"):
        losses.l2_penalty(-1.0)
    with pytest.raises(ValueError, match="mask does not match"):
        losses.l2_penalty(1.0, mask=(True,)).value_and_grad(params)


def test_per_example_losses_average_to_the_loss():
    for name, loss, pred, target in GRAD_CASES:
        if name.startswith(("weighted", "per-output")):
            continue
        per = loss.per_example(pred, target)
        assert per.shape == (len(np.asarray(pred)),), name
        np.testing.assert_allclose(per.mean(), loss(pred, target), rtol=1e-12, err_msg=name)
        # the default (one example at a time) agrees with each built-in's own pass
        np.testing.assert_allclose(losses.Loss.per_example(loss, pred, target), per, rtol=1e-12)


def test_weighted_and_per_output_values():
    pred, labels = G.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    base = losses.softmax_cross_entropy
    weighted = losses.weighted(base)
    assert weighted(pred, (labels, np.ones(4))) == pytest.approx(base(pred, labels), rel=1e-12)
    w = np.array([0.0, 1.0, 2.0, 1.0])
    expected = np.sum(w * base.per_example(pred, labels)) / 4
    assert weighted(pred, (labels, w)) == pytest.approx(expected, rel=1e-12)
    assert weighted.takes_logits
    with pytest.raises(ValueError, match="pair \\(target, sample_weight\\)"):
        weighted(pred, labels)
    with pytest.raises(ValueError, match="finite and >= 0"):
        weighted(pred, (labels, -w))
    both = losses.per_output(losses.mean_squared_error, base, weights=(2.0, 1.0))
    r, t = G.standard_normal((4, 1)), G.standard_normal((4, 1))
    value = 2 * losses.mean_squared_error(r, t) + base(pred, labels)
    assert both((r, pred), (t, labels)) == pytest.approx(value, rel=1e-12)
    with pytest.raises(ValueError, match="tuple of 2 predictions"):
        both(pred, (t, labels))
    with pytest.raises(ValueError, match="2 losses but 1 weights"):
        losses.per_output(base, base, weights=(1.0,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_mean_has_np_means_bits(dtype):
    # losses._mean skips np.mean's Python overhead; a loss value must not change for it
    rng = np.random.default_rng(0)
    for shape in [(1,), (4, 1), (3, 7), (2, 5, 3), (1000,)]:
        for scale in (1e-3, 1.0, 1e3):
            terms = (rng.standard_normal(shape) * scale).astype(dtype)
            assert losses._mean(terms) == float(np.mean(terms))


def test_sigmoid_cross_entropy_shares_its_exp_with_the_same_bits():
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((64, 3)) * 8).astype(np.float32)
    t = rng.integers(0, 2, z.shape).astype(np.float32)
    _, grad = losses.sigmoid_binary_cross_entropy.value_and_grad(z, t)
    expected = nn.sigmoid(z) - t
    expected *= 1 / z.size
    assert np.array_equal(grad, expected)
    with pytest.raises(ValueError, match="targets contain NaN"):
        losses.sigmoid_binary_cross_entropy(z, np.where(t > 0, np.nan, t))
