"""Convolution, pooling and normalization layers: gradients, shapes, state and bad input."""

import itertools

import numpy as np
import pytest

from funcnn import fit, losses, optim, tree
from funcnn import layers as L
from funcnn.testing import check_layer

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

# (kernel, strides, padding, dilation, image (H, W, C))
CONV_GRID = [
    ((3, 3), 1, "valid", 1, (6, 6, 1)),
    ((3, 3), 2, "valid", 1, (7, 7, 2)),
    ((2, 3), 1, "same", 1, (5, 6, 2)),
    ((3, 2), 2, "same", 1, (6, 5, 3)),
    ((2, 2), 1, "same", 1, (4, 4, 1)),  # even kernel: asymmetric "same" pads
    ((3, 3), 1, 1, 1, (5, 4, 2)),
    ((3, 3), (2, 1), ((1, 0), (2, 1)), 1, (6, 5, 1)),
    ((3, 3), 1, "valid", 2, (7, 7, 2)),
    ((2, 3), 2, "same", 2, (8, 7, 1)),
    ((1, 1), 1, "valid", 1, (3, 4, 3)),
    ((3, 3), 2, "same", (2, 1), (6, 7, 2)),
]


@pytest.mark.parametrize("kernel, strides, padding, dilation, image", CONV_GRID)
def test_conv2d_gradients_and_shapes(kernel, strides, padding, dilation, image):
    layer = L.Conv2D(3, kernel, strides=strides, padding=padding, dilation=dilation)
    check_layer(layer, image, batch_sizes=(1, 2))


def test_conv2d_without_bias_and_other_init():
    check_layer(L.Conv2D(2, 3, use_bias=False, padding="same"), (4, 5, 2), batch_sizes=(2,))


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation",
    [(3, 1, "valid", 1), (2, 2, "same", 1), (3, 1, "same", 2), (3, 2, 1, 1)],
)
def test_conv1d_gradients(kernel, strides, padding, dilation):
    check_layer(
        L.Conv1D(3, kernel, strides=strides, padding=padding, dilation=dilation),
        (9, 2),
        batch_sizes=(1, 2),
    )


def test_conv2d_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    layer = L.Conv2D(4, (3, 2), strides=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2))
    x = rng.standard_normal((2, 6, 5, 3))
    params = layer.init(0, (6, 5, 3), dtype=np.float64)
    y = layer.apply(params, x)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)))
    expected = np.zeros(y.shape)
    for n, i, j, o in itertools.product(*map(range, y.shape)):
        for a, b, c in itertools.product(range(3), range(2), range(3)):
            expected[n, i, j, o] += xp[n, 2 * i + a, j + 2 * b, c] * params.w[a, b, c, o]
        expected[n, i, j, o] += params.b[o]
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_same_padding_output_size():
    assert L.Conv2D(1, 3, strides=2, padding="same").output_shape((7, 8, 1)) == (4, 4, 1)
    assert L.MaxPool2D(2, padding="same").output_shape((5, 5, 3)) == (3, 3, 3)
    assert L.Conv2D(1, 3).output_shape((5, 5, 1)) == (3, 3, 1)


POOLS = [
    (L.MaxPool2D(2), (4, 6, 2)),
    (L.MaxPool2D((2, 3), strides=1), (5, 5, 1)),
    (L.MaxPool2D(3, strides=2, padding="same"), (5, 6, 2)),
    (L.AvgPool2D(2), (4, 4, 3)),
    (L.AvgPool2D(3, strides=2, padding="same"), (5, 4, 1)),
    (L.AvgPool2D((1, 2), strides=(1, 1)), (3, 3, 2)),
    (L.GlobalAvgPool2D, (3, 4, 2)),
    (L.GlobalMaxPool2D, (3, 4, 2)),
    (L.MaxPool1D(2), (7, 2)),
    (L.AvgPool1D(3, strides=1, padding="same"), (6, 2)),
    (L.GlobalAvgPool1D, (5, 3)),
    (L.GlobalMaxPool1D, (5, 3)),
    (L.ZeroPadding2D(((1, 0), (2, 1))), (3, 3, 2)),
    (L.ZeroPadding2D(1), (2, 3, 1)),
]


@pytest.mark.parametrize("layer, shape", POOLS, ids=[f"{p[0]!r}-{p[1]}" for p in POOLS])
def test_pooling_gradients_and_shapes(layer, shape):
    check_layer(layer, shape, batch_sizes=(1, 3))


def test_max_pool_tie_rule_first_maximum():
    x = np.ones((1, 2, 2, 1))
    y, cache = L.MaxPool2D(2).forward((), x)
    _, dx = L.MaxPool2D(2).backward((), cache, np.ones_like(y))
    assert dx[0, :, :, 0].tolist() == [[1, 0], [0, 0]]
    assert np.array_equal(L.MaxPool2D(2).apply((), x), y)


def test_avg_pool_same_counts_only_real_inputs():
    x = np.ones((1, 3, 3, 1))
    y = L.AvgPool2D(2, padding="same").apply((), x)
    assert np.all(y == 1.0)


def test_cnn_stack_shapes_and_grads():
    model = L.serial(
        L.Conv2D(3, 3, padding="same"), L.Relu, L.MaxPool2D(2),
        L.Conv2D(4, 2), L.Tanh, L.GlobalAvgPool2D, L.Dense(2),
    )  # fmt: skip
    check_layer(model, (6, 6, 1), batch_sizes=(2,))
    flat = L.serial(L.Conv2D(2, 3), L.MaxPool2D(2), L.Flatten, L.Dense(3))
    assert flat.output_shape((8, 8, 1)) == (3,)
    check_layer(flat, (8, 8, 1), batch_sizes=(1,))


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("shape, axis", [((5,), -1), ((4, 3, 2), -1), ((3, 4), 1)])
def test_batchnorm_gradients(train, shape, axis):
    layer = L.BatchNorm(axis=axis, momentum=0.9)
    reports = check_layer(layer, shape, batch_sizes=(4,), train=train)
    assert all(r.ok for r in reports)


def test_batchnorm_state_updates_and_eval_uses_running_statistics():
    rng = np.random.default_rng(0)
    layer = L.BatchNorm(momentum=0.9)
    params, state = layer.init(0, (3,)), layer.init_state((3,))
    data_mean, data_std = np.array([2.0, -1.0, 0.5]), np.array([3.0, 0.5, 1.0])
    for _ in range(200):
        x = (rng.standard_normal((256, 3)) * data_std + data_mean).astype(np.float32)
        y, new_state = layer.apply_with_state(params, state, x, train=True)
        assert not np.shares_memory(new_state.mean, state.mean)
        state = new_state
    np.testing.assert_allclose(state.mean, data_mean, atol=0.1)
    np.testing.assert_allclose(np.sqrt(state.var), data_std, rtol=0.05)
    x = np.array([[2.0, -1.0, 0.5], [5.0, -0.5, 1.5]], np.float32)
    y, same = layer.apply_with_state(params, state, x)  # inference
    assert same is state
    expected = (x - state.mean) / np.sqrt(state.var + layer.eps)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert (
        y.dtype == np.float32 and state.mean.dtype == np.float32 and not state.mean.flags.writeable
    )


def test_batchnorm_without_state_shows_the_right_call():
    layer = L.serial(L.Dense(3), L.BatchNorm())
    params = layer.init(0, (2,))
    with pytest.raises(ValueError, match=r"apply_with_state\(params, state, x"):
        layer.apply(params, np.ones((2, 2)))
    assert tree.leaves(layer.init_state((2,))) and not tree.leaves(L.Dense(3).init_state((2,)))


def test_stateless_models_need_no_state():
    model = L.serial(L.Conv2D(2, 3), L.Relu, L.Flatten, L.Dense(2))
    params = model.init(0, (5, 5, 1))
    assert model.apply(params, np.ones((1, 5, 5, 1))).shape == (1, 2)


def test_fit_trains_batchnorm_and_updates_its_state():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 4)) * 5 + 3).astype(np.float32)
    y = (x[:, 0] > 3).astype(np.int64)
    model = L.serial(L.Dense(8), L.BatchNorm(momentum=0.8), L.Relu, L.Dense(2))
    params = model.init(0, (4,))
    state0 = model.init_state((4,))
    result = fit(
        model, params, losses.softmax_cross_entropy, optim.adam(0.05), x, y,
        epochs=10, batch_size=16, verbose=0,
    )  # fmt: skip
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert not np.array_equal(result.state[1].mean, state0[1].mean)
    # the optimizer state mirrors params only: BatchNorm statistics are not trained
    assert tree.structure_difference(result.opt_state.inner[0].mu, params) is None


def test_layernorm_gradients():
    check_layer(L.LayerNorm(), (6,), batch_sizes=(1, 3))
    check_layer(L.LayerNorm(axis=-1, center=False), (2, 4), batch_sizes=(2,))
    y = L.LayerNorm().apply(L.LayerNorm().init(0, (5,)), np.arange(10.0).reshape(2, 5))
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-7)


def test_conv_bad_input():
    with pytest.raises(ValueError, match=r"height, width, channels\), got \(784,\)"):
        L.Conv2D(2, 3).init(0, (784,))
    with pytest.raises(ValueError, match="does not fit"):
        L.Conv2D(2, 5).init(0, (4, 4, 1))
    with pytest.raises(ValueError, match="strides must be an int >= 1"):
        L.Conv2D(2, 3, strides=0)
    with pytest.raises(ValueError, match="strides must be an int >= 1"):
        L.Conv2D(2, 3, strides=-1)
    with pytest.raises(ValueError, match="positive int"):
        L.Conv2D(0, 3)
    with pytest.raises(ValueError, match="padding must be"):
        L.Conv2D(2, 3, padding="full")
    layer = L.Conv2D(2, 3)
    params = layer.init(0, (5, 5, 3))
    with pytest.raises(ValueError, match=r"3 input channels, got x of shape \(1, 5, 5, 1\)"):
        layer.apply(params, np.ones((1, 5, 5, 1)))
    with pytest.raises(ValueError, match="batch of shape"):
        layer.apply(params, np.ones((5, 5, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        L.MaxPool2D(3).output_shape((2, 2, 1))


def test_conv_params_and_initializer_fans():
    params = L.Conv2D(16, 3).init(0, (28, 28, 8), dtype=np.float64)
    assert params.w.shape == (3, 3, 8, 16) and params.b.shape == (16,)
    limit = np.sqrt(6 / (9 * 8 + 9 * 16))
    assert np.abs(params.w).max() <= limit and np.abs(params.w).max() > 0.9 * limit


def test_float32_stays_float32():
    model = L.serial(L.Conv2D(2, 3, padding="same"), L.MaxPool2D(2), L.BatchNorm(), L.AvgPool2D(2))
    params, state = model.init(0, (8, 8, 1)), model.init_state((8, 8, 1))
    y, _, cache = model.forward_with_state(
        params, state, np.ones((2, 8, 8, 1), np.float32), train=True
    )
    grads, dx = model.backward(params, cache, np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in tree.leaves(grads))


def test_empty_batches_and_empty_axes_are_refused():
    with pytest.raises(ValueError, match="at least one value per feature"):
        L.BatchNorm().apply_with_state(
            L.BatchNorm().init(0, (3,)), L.BatchNorm().init_state((3,)), np.ones((0, 3)), train=True
        )
    with pytest.raises(ValueError, match="no empty axis"):
        L.GlobalMaxPool2D.output_shape((0, 4, 2))


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e20), (np.float64, 1e200)])
@pytest.mark.parametrize("layer", [L.LayerNorm(), L.BatchNorm(), L.BatchNorm(axis=1)])
def test_normalization_of_huge_inputs_is_exact(layer, dtype, scale):
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
    params, state = layer.init(0, (4,), dtype=dtype), layer.init_state((4,), dtype=dtype)
    small, _ = layer.apply_with_state(params, state, x, train=True)
    with np.errstate(over="ignore"):  # BatchNorm's running variance itself is too large
        huge, _, cache = layer.forward_with_state(params, state, x * dtype(scale), train=True)
    assert np.all(np.isfinite(huge))
    np.testing.assert_allclose(huge, small, rtol=1e-3, atol=1e-3)  # eps is all that differs
    _, dx = layer.backward(params, cache, np.ones_like(huge))
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize(
    "conv",
    [
        L.Conv2D(4, 3),
        L.Conv2D(4, (2, 5), strides=(2, 1), padding="same"),
        L.Conv2D(4, 3, dilation=2, padding=((1, 0), (2, 3))),
        L.Conv2D(2, 1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_channel_im2col_equals_the_window_view_copy(conv, dtype):
    # One channel takes its own copy (per kernel offset: 3x faster there); same matrix
    from numpy.lib.stride_tricks import sliding_window_view

    from funcnn.layers.conv import _effective, pad_spatial

    x = np.random.default_rng(0).standard_normal((5, 11, 9, 1)).astype(dtype)
    pads, (oh, ow) = conv._geometry(x.shape[1:])
    (kh, kw), (dh, dw), (sh, sw) = conv.kernel_size, conv.dilation, conv.strides
    views = sliding_window_view(pad_spatial(x, pads), _effective(conv.kernel_size, conv.dilation),
                                axis=(1, 2))  # fmt: skip
    views = views[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, :, ::dh, ::dw]
    expected = views.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw)
    assert np.array_equal(conv._cols(x)[0], expected)


def test_float16_sums_do_not_overflow_where_their_results_fit():
    """Sums of float16 run in float32: an average of 6e4 and a variance of 100 over 1,024
    samples fit float16, though their sums (12e4 and 1e5) do not."""
    x = np.full((1, 2, 2, 1), 6e4, np.float16)
    y = L.AvgPool2D(2).apply((), x)
    assert y.dtype == np.float16 and y[0, 0, 0, 0] == np.float16(6e4)
    bn = L.BatchNorm(momentum=0.0)
    data = (np.random.default_rng(0).standard_normal((1024, 3)) * 10).astype(np.float16)
    params, state = bn.init(0, (3,), dtype=np.float16), bn.init_state((3,), dtype=np.float16)
    y, new_state, cache = bn.forward_with_state(params, state, data, train=True)
    assert y.dtype == np.float16 and np.isfinite(y).all()
    assert new_state.var.dtype == np.float16
    np.testing.assert_allclose(new_state.var, data.astype(np.float64).var(0, ddof=1), rtol=1e-2)
    grads, dx = bn.backward(params, cache, np.ones_like(y))
    assert dx.dtype == np.float16 and grads.gamma.dtype == np.float16
    assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in grads)
