"""Numerics of the activation functions at extreme inputs."""

import numpy as np
import pytest

from funcnn import layers as L
from funcnn import nn

EXTREME = np.array([-1e4, -800.0, -50.0, -1.0, 0.0, 1.0, 50.0, 800.0, 1e4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_overflow_safe(dtype):
    x = EXTREME.astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = nn.sigmoid(x)
    assert y.dtype == dtype and np.all(np.isfinite(y))
    assert y[0] == 0 and y[-1] == 1 and y[4] == 0.5
    assert np.allclose(nn.sigmoid(np.array([-1.0, 2.0])), 1 / (1 + np.exp([1.0, -2.0])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_stable(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1.0, 0.2]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise"):
        p = nn.softmax(z)
        lp = nn.log_softmax(z)
    assert p.dtype == lp.dtype == dtype
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(lp))
    assert np.allclose(p.sum(-1), 1)
    assert np.allclose(p[0], [1, 0, 0]) and np.allclose(p[1], 1 / 3)
    assert lp[0, 1] == pytest.approx(-2e4, rel=1e-6)
    e = np.exp(z[2] - z[2].max())
    assert np.allclose(p[2], e / e.sum())
    assert np.allclose(
        nn.logsumexp(z, axis=-1),
        np.log(np.exp(z.astype(np.float64) - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1),
        rtol=1e-6,
    )


def test_softplus_and_elu_finite_at_extremes():
    with np.errstate(over="raise", invalid="raise"):
        assert np.all(np.isfinite(nn.softplus(EXTREME)))
        assert np.all(np.isfinite(nn.elu(EXTREME)))
        assert np.all(np.isfinite(nn.selu(EXTREME)))
    assert nn.softplus(np.array([1e4]))[0] == 1e4
    assert nn.softplus(np.array([0.0]))[0] == pytest.approx(np.log(2))


def test_relu_derivative_is_step_at_zero():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    dx = nn.relu_backward(x, nn.relu(x), np.ones_like(x))
    assert dx.tolist() == [0, 0, 1, 1, 1]  # not the tutorials' x >= 1


def test_gelu_values():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    assert np.allclose(nn.gelu(x), expected)
    assert nn.gelu(np.array([1.0]))[0] == pytest.approx(0.8411919906, rel=1e-8)


SPECIAL = np.array(
    [-np.inf, -1e30, -1.5, -1e-45, -0.0, 0.0, 1e-45, 2.0, 1e30, np.inf, np.nan], np.float32
)


def same_bits(a, b):
    """Equal values, NaNs in the same places, and the same signs of zero."""
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in the reference
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_forms_equal_the_where_forms_on_special_values(dtype):
    # leaky_relu (forward and backward) and sigmoid avoid np.where (about 10x slower);
    # their results must be exactly the textbook forms', other slopes included.
    x = SPECIAL.astype(dtype)
    dy = np.linspace(-5, 5, x.size).astype(dtype)
    dy[2] = np.nan
    for slope in (0.01, 0.3, 1.0, 1e-30, 0.0, -0.5, 2.0):
        forward = np.where(x > 0, x, x * slope)
        backward = np.where(x > 0, dy, dy * slope)
        assert same_bits(nn.leaky_relu(x, slope), forward), slope
        assert same_bits(nn.leaky_relu_backward(x, dy, slope), backward), slope
        assert nn.leaky_relu_backward(x, dy, slope).dtype == dtype
    e = np.exp(-np.abs(x))
    sigmoid = nn.sigmoid(x)
    assert same_bits(sigmoid, np.where(x >= 0, 1, e) / (1 + e)) and sigmoid.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gelu_is_finite_and_exact_far_out(dtype):
    big = {np.float16: 6e4, np.float32: 1e30, np.float64: 1e300}[dtype]
    x = np.array([-big, -1e4, -50.0, -10.5, 10.5, 50.0, 1e4, big]).astype(dtype)
    x = x[np.isfinite(x)]
    y = nn.gelu(x)
    d = nn.gelu_backward(x, y, np.ones_like(x))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0).astype(dtype))
    np.testing.assert_array_equal(d, (x > 0).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_keeps_only_its_mask_in_training_with_the_same_gradient_bits(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5)).astype(dtype)
    x[0, :2] = 0.0  # the derivative at 0 is 0 either way
    dy = rng.standard_normal((8, 5)).astype(np.float32)
    y, cache = L.Relu.forward((), x, train=True)
    assert cache.positive.dtype == bool and cache.positive.shape == x.shape
    _, dx = L.Relu.backward((), cache, dy)
    _, dx_inference = L.Relu.backward((), L.Relu.forward((), x)[1], dy)
    expected = nn.relu_backward(x, y, dy)
    assert dx.dtype == expected.dtype == dx_inference.dtype
    assert np.array_equal(dx, expected) and np.array_equal(dx_inference, expected)
    assert L.Relu.backward((), cache, dy, need_dx=False) == ((), None)
