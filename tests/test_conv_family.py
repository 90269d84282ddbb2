"""The convolution family: transposed, grouped, depthwise and separable convolutions,
upsampling, cropping and padding. Float64 finite differences of every layer and setting,
Keras' output-size rules, the transpose as the adjoint of the convolution, and PyTorch's
modules (ConvTranspose2d/1d, grouped Conv2d/1d, Upsample) as oracles from the same
weights, forward and gradients (skipped where torch is not installed)."""

import numpy as np
import pytest

import funcnn
from funcnn import layers as L
from funcnn.layers.conv import ConvParams
from funcnn.testing import check_layer

# Every test runs twice: as it is, and with the memory funcnn takes from np.empty filled
# with NaN first (tests/conftest.py), so a path that reads what it never wrote fails.
pytestmark = pytest.mark.usefixtures("empty_memory")

# (kernel, strides, padding, output_padding, dilation, image (H, W, C))
TRANSPOSE_GRID = [
    (3, 1, "valid", None, 1, (3, 4, 2)),
    (3, 2, "valid", None, 1, (3, 3, 1)),
    (3, 2, "same", None, 1, (3, 4, 2)),
    (4, 2, "same", None, 1, (2, 3, 2)),
    (2, 3, "valid", None, 1, (2, 2, 3)),  # stride past the kernel: gaps of zeros
    (3, 2, "valid", 1, 1, (2, 3, 2)),
    (3, 2, "same", 1, 1, (3, 2, 1)),
    ((2, 3), (2, 1), "same", (1, 0), 1, (2, 3, 2)),
    (3, 1, "same", None, 2, (4, 3, 2)),
    (3, 2, 1, 1, 1, (3, 3, 2)),  # PyTorch's padding and output_padding
    (3, 2, ((1, 0), (0, 2)), None, 1, (3, 3, 1)),
    (1, 2, "valid", None, 1, (2, 3, 2)),
]


@pytest.mark.parametrize(
    "kernel, strides, padding, output_padding, dilation, image", TRANSPOSE_GRID
)
def test_conv2d_transpose_gradients_and_shapes(
    kernel, strides, padding, output_padding, dilation, image
):
    layer = L.Conv2DTranspose(
        3, kernel, strides=strides, padding=padding, output_padding=output_padding,
        dilation=dilation,
    )  # fmt: skip
    check_layer(layer, image, batch_sizes=(1, 2))
    check_layer(layer, image, batch_sizes=(2,), train=True)


@pytest.mark.parametrize(
    "kernel, strides, padding, output_padding",
    [(3, 2, "same", None), (3, 2, "valid", 1), (4, 3, "same", 2), (2, 1, (1, 0), None)],
)
def test_conv1d_transpose_gradients(kernel, strides, padding, output_padding):
    layer = L.Conv1DTranspose(
        2, kernel, strides=strides, padding=padding, output_padding=output_padding
    )
    check_layer(layer, (4, 3), batch_sizes=(1, 2))


def test_keras_output_sizes():
    """Keras' and TensorFlow's rules: "same" gives n * s, "valid" n * s + max(k - s, 0),
    output_padding p gives (n - 1) * s + k + p ("valid") or (n - 1) * s + k % 2 + p."""
    for n, k, s in [(7, 3, 2), (4, 4, 2), (5, 2, 3), (3, 1, 2), (6, 5, 1)]:
        same = L.Conv2DTranspose(1, k, strides=s, padding="same").output_shape((n, n, 1))
        valid = L.Conv2DTranspose(1, k, strides=s).output_shape((n, n, 1))
        assert same[0] == n * s and valid[0] == n * s + max(k - s, 0)
        for p in range(s):
            op_valid = L.Conv2DTranspose(1, k, strides=s, output_padding=p)
            op_same = L.Conv2DTranspose(1, k, strides=s, padding="same", output_padding=p)
            assert op_valid.output_shape((n, n, 1))[0] == (n - 1) * s + k + p
            assert op_same.output_shape((n, n, 1))[0] == (n - 1) * s + k % 2 + p
    assert L.Conv1DTranspose(4, 3, strides=2, padding="same").output_shape((10, 2)) == (20, 4)
    # dilation widens the kernel: (n - 1) * s + d * (k - 1) + 1 for "valid"
    assert L.Conv2DTranspose(1, 3, dilation=2).output_shape((5, 5, 1)) == (9, 9, 1)


@pytest.mark.parametrize("strides, padding", [(1, "valid"), (2, "same"), (2, 1), (3, "valid")])
def test_the_transpose_is_the_adjoint_of_the_convolution(strides, padding):
    """<conv(x), y> == <x, conv_transpose(y)> for the same kernel, where the transposed
    convolution's output has x's size: it is the convolution's dx."""
    rng = np.random.default_rng(0)
    conv = L.Conv2D(4, 3, strides=strides, padding=padding, use_bias=False)
    x = rng.standard_normal((2, 7, 8, 3))
    w = rng.standard_normal((3, 3, 3, 4))
    y = conv.apply(ConvParams(w, None), x)
    oh, ow = y.shape[1:3]
    cy = rng.standard_normal(y.shape)
    # the output_padding that lands on x's size where the stride leaves a remainder
    fits = [
        L.Conv2DTranspose(3, 3, strides=strides, padding=padding, output_padding=(ph, pw))
        for ph in range(strides)
        for pw in range(strides)
    ]
    transpose = next(t for t in fits if t.output_shape((oh, ow, 4)) == (7, 8, 3))
    xt = transpose.apply(ConvParams(w, None), cy)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.sum(y * cy), np.sum(x * xt), rtol=1e-12)
    _, dx = conv.backward(ConvParams(w, None), conv.forward(ConvParams(w, None), x)[1], cy)
    np.testing.assert_allclose(xt, dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups, filters, channels", [(2, 4, 6), (3, 6, 3), (4, 8, 4)])
def test_grouped_convolutions_gradients(groups, filters, channels):
    layer = L.Conv2D(filters, (2, 3), groups=groups, strides=(1, 2), padding="same")
    check_layer(layer, (4, 5, channels), batch_sizes=(1, 2))
    check_layer(L.Conv1D(filters, 3, groups=groups, dilation=2), (7, channels), batch_sizes=(2,))
    assert layer.init(0, (4, 5, channels)).w.shape == (2, 3, channels // groups, filters)


def test_grouped_convolution_is_separate_convolutions_side_by_side():
    rng = np.random.default_rng(1)
    layer = L.Conv2D(6, 3, groups=3, padding="same")
    params = layer.init(0, (5, 5, 6), dtype=np.float64)
    x = rng.standard_normal((2, 5, 5, 6))
    y = layer.apply(params, x)
    for g in range(3):
        part = L.Conv2D(2, 3, padding="same")
        p = ConvParams(params.w[..., 2 * g : 2 * g + 2], params.b[2 * g : 2 * g + 2])
        expected = part.apply(p, x[..., 2 * g : 2 * g + 2])
        np.testing.assert_allclose(y[..., 2 * g : 2 * g + 2], expected, rtol=1e-12, atol=1e-14)


def test_depthwise_and_separable_gradients_and_weights():
    check_layer(L.DepthwiseConv2D(3, 2, padding="same"), (4, 5, 3), batch_sizes=(1, 2))
    check_layer(L.DepthwiseConv2D((2, 3), strides=2, dilation=1), (5, 6, 2), batch_sizes=(2,))
    check_layer(L.SeparableConv2D(4, 3, 2, padding="same"), (4, 4, 3), batch_sizes=(2,))
    check_layer(L.SeparableConv2D(2, 2, strides=2, use_bias=False), (5, 5, 2), batch_sizes=(2,))
    p = L.SeparableConv2D(5, 3, 2).init(0, (6, 6, 3))
    assert [a.shape for a in p] == [(3, 3, 3, 2), (1, 1, 6, 5), (5,)]  # Keras' weights
    assert L.DepthwiseConv2D(3, 4).init(0, (5, 5, 2)).w.shape == (3, 3, 2, 4)


def test_depthwise_output_channels_in_keras_order():
    """Output channel c * depth_multiplier + m is channel c through its filter m."""
    rng = np.random.default_rng(2)
    layer = L.DepthwiseConv2D(2, 3, use_bias=False)
    x = rng.standard_normal((1, 3, 3, 2))
    w = rng.standard_normal((2, 2, 2, 3))
    y = layer.apply(ConvParams(w, None), x)
    for c in range(2):
        for m in range(3):
            one = L.Conv2D(1, 2, use_bias=False).apply(
                ConvParams(w[:, :, c : c + 1, m : m + 1], None), x[..., c : c + 1]
            )
            np.testing.assert_allclose(y[..., c * 3 + m], one[..., 0], rtol=1e-12)


RESAMPLING = [
    (L.UpSampling2D(2), (2, 3, 2)),
    (L.UpSampling2D((3, 1)), (2, 2, 1)),
    (L.UpSampling2D(2, interpolation="bilinear"), (3, 4, 2)),
    (L.UpSampling2D((3, 2), interpolation="bilinear"), (2, 3, 1)),
    (L.UpSampling2D(1, interpolation="bilinear"), (2, 2, 1)),
    (L.UpSampling1D(2), (4, 3)),
    (L.Cropping2D(1), (4, 4, 2)),
    (L.Cropping2D(((0, 2), (1, 0))), (4, 3, 1)),
    (L.Cropping1D((0, 2)), (5, 2)),
    (L.ZeroPadding1D(2), (3, 2)),
    (L.ZeroPadding2D(((2, 0), (0, 1))), (2, 2, 3)),  # the asymmetric form
]


@pytest.mark.parametrize("layer, shape", RESAMPLING, ids=[f"{r[0]!r}-{r[1]}" for r in RESAMPLING])
def test_resampling_gradients_and_shapes(layer, shape):
    check_layer(layer, shape, batch_sizes=(1, 3))


def test_upsampling_cropping_and_padding_values():
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    assert L.UpSampling2D((1, 2)).apply((), x)[0, :, :, 0].tolist() == [
        [0, 0, 1, 1, 2, 2],
        [3, 3, 4, 4, 5, 5],
    ]
    row = L.UpSampling2D((1, 2), interpolation="bilinear").apply((), x)[0, 0, :, 0]
    np.testing.assert_allclose(row, [0, 0.25, 0.75, 1.25, 1.75, 2])  # edges clamp
    assert L.Cropping2D(((1, 0), (1, 1))).apply((), x)[0, :, :, 0].tolist() == [[4]]
    seq = np.arange(4.0).reshape(1, 4, 1)
    assert L.ZeroPadding1D((1, 2)).apply((), seq)[0, :, 0].tolist() == [0, 0, 1, 2, 3, 0, 0]
    assert L.Cropping1D(1).apply((), seq)[0, :, 0].tolist() == [1, 2]
    assert L.UpSampling1D(2).apply((), seq)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="filters must be a multiple of groups"):
        L.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="not a multiple of groups=2"):
        L.Conv2D(4, 3, groups=2).init(0, (5, 5, 3))
    with pytest.raises(ValueError, match="filters must be a multiple of groups"):
        L.Conv1D(3, 3, groups=2)
    with pytest.raises(ValueError, match="output_padding must be smaller than the stride"):
        L.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="crop less"):
        L.Conv2DTranspose(2, 3, padding=3).output_shape((1, 1, 1))
    with pytest.raises(ValueError, match="'nearest', 'bilinear'"):
        L.UpSampling2D(2, interpolation="bicubic")
    with pytest.raises(ValueError, match="keeps nothing"):
        L.Cropping2D(2).output_shape((4, 5, 1))
    with pytest.raises(ValueError, match="keeps nothing"):
        L.Cropping1D((2, 2)).output_shape((4, 1))
    with pytest.raises(TypeError, match="cropping must be"):
        L.Cropping2D((1, 2, 3))
    with pytest.raises(ValueError, match="initialized for 3 input channels"):
        layer = L.Conv2DTranspose(2, 3)
        layer.apply(layer.init(0, (4, 4, 3)), np.zeros((1, 4, 4, 2)))


def test_float32_stays_float32_and_the_prediction_does_not_depend_on_the_batch():
    model = L.serial(
        L.Conv2D(4, 3, strides=2, padding="same"), L.Relu,
        L.DepthwiseConv2D(3, padding="same"), L.SeparableConv2D(4, 3, padding="same"),
        L.Conv2DTranspose(3, 3, strides=2, padding="same"),
        L.UpSampling2D(2, interpolation="bilinear"), L.Cropping2D(1),
        L.Conv2D(2, 1, groups=1),
    )  # fmt: skip
    params = model.init(0, (8, 8, 2))
    x = np.random.default_rng(3).standard_normal((40, 8, 8, 2)).astype(np.float32)
    whole = funcnn.predict(model, params, x)
    assert whole.dtype == np.float32 and whole.shape == (40, 14, 14, 2)
    for size in (1, 7, 32):
        assert np.array_equal(funcnn.predict(model, params, x, batch_size=size), whole)


# ---------------------------------------------------------------- PyTorch as the oracle


def _torch():
    return pytest.importorskip("torch")


def _nchw(torch, x):
    return torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)


def _compare_with_torch(layer, params, module, x, to_torch_weight, from_torch_grad):
    """Forward, and the gradients of <y, dy> for weight, bias and x, against torch."""
    torch = _torch()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(to_torch_weight(params.w)))
        if module.bias is not None:
            module.bias.copy_(torch.tensor(params.b))
    y, cache = layer.forward(params, x)
    xt = _nchw(torch, x)
    yt = module(xt)
    np.testing.assert_allclose(y, np.moveaxis(yt.detach().numpy(), 1, -1), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    grads, dx = layer.backward(params, cache, dy)
    (yt * torch.tensor(np.moveaxis(dy, -1, 1))).sum().backward()
    np.testing.assert_allclose(dx, np.moveaxis(xt.grad.numpy(), 1, -1), rtol=1e-10, atol=1e-12)
    expected_w = from_torch_grad(module.weight.grad.numpy())
    np.testing.assert_allclose(grads.w, expected_w, rtol=1e-10, atol=1e-12)
    if module.bias is not None:
        np.testing.assert_allclose(grads.b, module.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


# PyTorch's (padding, output_padding) as crops: every case of TRANSPOSE_GRID it can express
TORCH_TRANSPOSE = [
    (3, 1, 0, 0, 1),
    (3, 2, 0, 1, 1),
    (3, 2, 1, 1, 1),
    (4, 2, 1, 0, 1),
    (2, 3, 0, 2, 1),
    (3, 1, 2, 0, 2),
    (3, 2, 1, 0, 2),
    ((2, 3), (2, 1), (1, 0), (1, 0), 1),
    (5, 3, 2, 1, 1),
]


@pytest.mark.parametrize("kernel, stride, padding, output_padding, dilation", TORCH_TRANSPOSE)
def test_conv2d_transpose_matches_torch(kernel, stride, padding, output_padding, dilation):
    torch = _torch()
    module = torch.nn.ConvTranspose2d(
        3, 4, kernel, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation,
    ).double()  # fmt: skip
    layer = L.Conv2DTranspose(
        4, kernel, strides=stride, padding=padding, output_padding=output_padding,
        dilation=dilation,
    )  # fmt: skip
    x = np.random.default_rng(4).standard_normal((2, 4, 5, 3))
    params = layer.init(0, (4, 5, 3), dtype=np.float64)
    # funcnn's (kh, kw, filters, C) is PyTorch's (C, filters, kh, kw) transposed
    _compare_with_torch(
        layer,
        params,
        module,
        x,
        lambda w: w.transpose(3, 2, 0, 1),
        lambda g: g.transpose(2, 3, 1, 0),
    )


@pytest.mark.parametrize("kernel, stride", [(3, 2), (4, 2), (3, 1), (5, 3), (2, 3)])
def test_keras_same_and_valid_are_crops_of_torchs_full_output(kernel, stride):
    """PyTorch's padding=0 output holds every position; Keras' "valid" is all of it (with
    zeros past it where the stride is wider than the kernel) and its "same" is the
    ``n * stride`` positions from ``(k - s) // 2`` on (TensorFlow's rule)."""
    torch = _torch()
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 2))
    module = torch.nn.ConvTranspose2d(2, 3, kernel, stride=stride).double()
    valid = L.Conv2DTranspose(3, kernel, strides=stride)
    same = L.Conv2DTranspose(3, kernel, strides=stride, padding="same")
    params = valid.init(0, (3, 4, 2), dtype=np.float64)
    with torch.no_grad():
        module.weight.copy_(torch.tensor(params.w.transpose(3, 2, 0, 1)))
        module.bias.copy_(torch.tensor(params.b))
        full = np.moveaxis(module(torch.tensor(np.moveaxis(x, -1, 1))).numpy(), 1, -1)
    y_valid = valid.apply(params, x)
    h, w = full.shape[1:3]
    np.testing.assert_allclose(y_valid[:, :h, :w], full, rtol=1e-12, atol=1e-12)
    assert not y_valid[:, h:].any() and not y_valid[:, :, w:].any()
    start = max(kernel - stride, 0) // 2
    y_same = same.apply(params, x)
    assert y_same.shape[1:3] == (3 * stride, 4 * stride)
    expected = y_valid[:, start : start + 3 * stride, start : start + 4 * stride]
    np.testing.assert_allclose(y_same, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, padding, output_padding", [(2, 1, 1), (3, 0, 2), (1, 1, 0)])
def test_conv1d_transpose_matches_torch(stride, padding, output_padding):
    torch = _torch()
    module = torch.nn.ConvTranspose1d(
        3, 2, 4, stride=stride, padding=padding, output_padding=output_padding
    ).double()
    layer = L.Conv1DTranspose(2, 4, strides=stride, padding=padding, output_padding=output_padding)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    params = layer.init(0, (5, 3), dtype=np.float64)
    _compare_with_torch(
        layer, params, module, x, lambda w: w.transpose(2, 1, 0), lambda g: g.transpose(2, 1, 0)
    )


@pytest.mark.parametrize(
    "groups, in_channels, filters, stride, padding, dilation",
    [(2, 4, 6, 1, 1, 1), (3, 6, 3, 2, 0, 1), (4, 4, 8, 1, 2, 2), (6, 6, 6, 2, 1, 1)],
)
def test_grouped_conv2d_matches_torch(groups, in_channels, filters, stride, padding, dilation):
    torch = _torch()
    module = torch.nn.Conv2d(
        in_channels, filters, 3, stride=stride, padding=padding, dilation=dilation,
        groups=groups,
    ).double()  # fmt: skip
    layer = L.Conv2D(filters, 3, strides=stride, padding=padding, dilation=dilation, groups=groups)
    x = np.random.default_rng(7).standard_normal((2, 6, 7, in_channels))
    params = layer.init(0, (6, 7, in_channels), dtype=np.float64)
    _compare_with_torch(
        layer,
        params,
        module,
        x,
        lambda w: w.transpose(3, 2, 0, 1),
        lambda g: g.transpose(2, 3, 1, 0),
    )


def test_grouped_conv1d_and_depthwise_match_torch():
    torch = _torch()
    module = torch.nn.Conv1d(4, 6, 3, padding=1, groups=2).double()
    layer = L.Conv1D(6, 3, padding=1, groups=2)
    x = np.random.default_rng(8).standard_normal((2, 7, 4))
    params = layer.init(0, (7, 4), dtype=np.float64)
    _compare_with_torch(
        layer, params, module, x, lambda w: w.transpose(2, 1, 0), lambda g: g.transpose(2, 1, 0)
    )
    # depthwise: PyTorch's Conv2d(groups=C) with C * multiplier outputs; its weight
    # (C * m, 1, kh, kw) is funcnn's (kh, kw, C, m) flattened in the same order
    depthwise = L.DepthwiseConv2D(3, 2, strides=2, padding=1)
    module = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3).double()
    x = np.random.default_rng(9).standard_normal((2, 5, 6, 3))
    params = depthwise.init(0, (5, 6, 3), dtype=np.float64)
    _compare_with_torch(
        depthwise, params, module, x,
        lambda w: w.reshape(3, 3, 6).transpose(2, 0, 1)[:, None],
        lambda g: g[:, 0].transpose(1, 2, 0).reshape(3, 3, 3, 2),
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [2, (3, 2), 1])
def test_upsampling_matches_torch(mode, size):
    torch = _torch()
    x = np.random.default_rng(10).standard_normal((2, 3, 4, 2))
    layer = L.UpSampling2D(size, interpolation=mode)
    y, cache = layer.forward((), x)
    scale = (size, size) if isinstance(size, int) else size
    options = {"align_corners": False} if mode == "bilinear" else {}
    module = torch.nn.Upsample(scale_factor=tuple(float(s) for s in scale), mode=mode, **options)
    xt = _nchw(torch, x)
    yt = module(xt)
    np.testing.assert_allclose(y, np.moveaxis(yt.detach().numpy(), 1, -1), rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(11).standard_normal(y.shape)
    (yt * torch.tensor(np.moveaxis(dy, -1, 1))).sum().backward()
    _, dx = layer.backward((), cache, dy)
    np.testing.assert_allclose(dx, np.moveaxis(xt.grad.numpy(), 1, -1), rtol=1e-12, atol=1e-12)
