"""linalg.pointwise: an elementwise function run over cache-sized spans on funcnn's
threads gives the bits of one call, for every pointwise activation and its backward."""

import numpy as np
import pytest

from funcnn import layers as L
from funcnn import linalg

POINTWISE = [L.Sigmoid, L.Tanh, L.Softplus, L.Elu, L.Selu, L.Gelu]


def hostile(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    flat = x.reshape(-1)
    flat[::97] = 0.0
    flat[1::97] = -0.0
    flat[2::101] = 50.0
    flat[3::101] = -50.0
    flat[4::1009] = np.inf
    flat[5::1009] = -np.inf
    flat[6::2003] = np.nan
    return x


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("span", [8008, 2**18])  # bytes; 8008: spans that break SIMD alignment
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", POINTWISE, ids=repr)
def test_spans_give_one_calls_bits(layer, dtype, span, monkeypatch):
    monkeypatch.setattr(linalg, "POINTWISE_SPAN", span)
    rng = np.random.default_rng(0)
    x = hostile((37, 3001), dtype, rng)  # 111,037 elements: a ragged last span
    dy = rng.standard_normal(x.shape).astype(dtype)
    assert layer.pointwise
    with np.errstate(all="ignore"):
        y, _, cache = layer.forward_with_state((), (), x, train=True)
        _, dx = layer.backward((), cache, dy)
        y_one = layer.fn(x)
        dx_one = layer.backward_fn(x, y_one, dy)
    assert same_bits(y, y_one)
    assert same_bits(dx, dx_one)


def test_small_odd_shaped_or_strided_inputs_get_one_call():
    calls = []

    def fn(*arrays):
        calls.append(arrays[0].shape)
        return arrays[0] * 2

    x = np.ones((600, 600), np.float32)
    assert same_bits(linalg.pointwise(fn, x[:, ::2]), x[:, ::2] * 2)  # strided
    assert calls == [(600, 300)]
    calls.clear()
    assert same_bits(linalg.pointwise(fn, x[:10]), x[:10] * 2)  # small
    assert calls == [(10, 600)]
    calls.clear()
    out = linalg.pointwise(fn, x)
    assert same_bits(out, x * 2) and len(calls) > 2


def test_softmax_is_not_pointwise():
    assert not L.Softmax.pointwise and not L.LogSoftmax.pointwise
