"""The compiled tier (funcnn.kernels, the numba extra) gives the NumPy path's bits."""

import subprocess
import sys

import numpy as np
import pytest

import funcnn
from funcnn import kernels, losses, optim, tree
from funcnn import layers as L
from funcnn.train import train_step

pytest.importorskip("numba")


def both(fn):
    """fn() under the NumPy path and under the compiled tier."""
    with kernels.using("numpy"):
        a = fn()
    with kernels.using("numba"):
        b = fn()
    return a, b


def assert_same_bits(a, b):
    (la, da), (lb, db) = tree.flatten(a), tree.flatten(b)
    assert da == db
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)


def hostile(shape, dtype, rng):
    """Values with ties, signed zeros, infinities and a NaN: where orders show."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    x[x == 0] = rng.choice([0.0, -0.0], (x == 0).sum())
    flat = x.reshape(-1)
    flat[::17] = -np.inf
    flat[5 % flat.size] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "layer",
    [
        L.MaxPool2D(2),
        L.MaxPool2D(3, strides=2),  # overlapping windows
        L.MaxPool2D((1, 2), strides=(2, 3)),  # gaps between windows
        L.MaxPool2D(2, strides=1, padding="same"),
        L.MaxPool2D(3, padding="same"),
        L.MaxPool1D(2),
        L.MaxPool1D(3, strides=1, padding="same"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("train", [True, False])
def test_max_pool_forward_and_backward(layer, dtype, train):
    rng = np.random.default_rng(0)
    shape = (5, 7, 3) if "1D" not in repr(layer) else (9, 3)
    x = hostile((4, *shape), dtype, rng)
    dy_rng = np.random.default_rng(1)

    def run():
        y, _, cache = layer.forward_with_state((), (), x, train=train)
        dy = dy_rng.standard_normal(y.shape).astype(dtype)
        dy.reshape(-1)[::3] *= -1  # negative gradients: dy * 0 is -0.0
        return y, layer.backward((), cache, dy)[1]

    dy_rng = np.random.default_rng(1)
    a = run()
    dy_rng = np.random.default_rng(1)
    with kernels.using("numba"):
        b = run()
    assert_same_bits(a, b)


def test_a_cnn_trains_to_the_same_bits():
    model = L.serial(
        L.Conv2D(4, 3), L.Relu, L.MaxPool2D(2), L.Conv2D(4, 3, padding="same"), L.Relu,
        L.MaxPool2D(3, strides=2), L.Flatten, L.Dense(3),
    )  # fmt: skip
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    opt = optim.adam(1e-2)
    step = train_step(model, losses.softmax_cross_entropy, opt)

    def train():
        params = model.init(0, (12, 12, 1))
        state = opt.init(params)
        for _ in range(3):
            params, state, _ = step(params, state, x, y)
        return params, funcnn.predict(model, params, x)

    assert_same_bits(*both(train))


def test_a_cache_from_one_tier_works_in_the_other():
    layer = L.MaxPool2D(2)
    x = np.random.default_rng(3).standard_normal((2, 4, 4, 1))
    with kernels.using("numba"):
        y, _, cache = layer.forward_with_state((), (), x, train=True)
    dx_numpy = layer.backward((), cache, np.ones_like(y))[1]
    y2, _, cache2 = layer.forward_with_state((), (), x, train=True)
    assert_same_bits(dx_numpy, layer.backward((), cache2, np.ones_like(y2))[1])


def test_the_choice_is_checked_and_scoped(monkeypatch):
    assert kernels.current() == "numpy"
    with kernels.using("numba"):
        assert kernels.compiled()
    assert not kernels.compiled()
    with pytest.raises(ValueError, match="one of \\('numpy', 'numba'\\), got 'fast'"):
        kernels.using("fast").__enter__()
    monkeypatch.setenv("FUNCNN_KERNELS", "numba")
    assert kernels.compiled()
    monkeypatch.setenv("FUNCNN_KERNELS", "cuda")
    with pytest.raises(ValueError, match="FUNCNN_KERNELS must be one of"):
        kernels.current()


def test_import_funcnn_does_not_import_numba():
    code = "import sys, funcnn; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [optim.adam, optim.adamw, optim.nadam], ids=lambda f: f.__name__)
def test_the_optimizers_adam_runs_compiled_with_the_same_bits(make, dtype, monkeypatch):
    from funcnn.optim import transforms

    calls = []
    real = transforms.compiled_adam_update
    monkeypatch.setattr(
        transforms, "compiled_adam_update", lambda *a: calls.append(1) or real(*a)
    )  # the compiled tier's loop is the one that runs
    rng = np.random.default_rng(4)
    params = (rng.standard_normal((70, 30)).astype(dtype), rng.standard_normal(30).astype(dtype))
    grads = [tuple(rng.standard_normal(p.shape).astype(dtype) for p in params) for _ in range(3)]
    opt = make(1e-2)

    def run():
        p, state = params, opt.init(params)
        for g in grads:
            u, state = opt.update(g, state, p)
            p = optim.apply_updates(p, u)
        return p, state

    a, b = both(run)
    assert len(calls) == 3
    assert_same_bits(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_and_backward(dtype):
    rng = np.random.default_rng(5)
    x = hostile((300, 7, 11), dtype, rng)
    x.reshape(-1)[7::29] = np.inf
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy.reshape(-1)[::5] = -0.0
    dy.reshape(-1)[3] = np.nan

    def run():
        y, _, cache = L.Relu.forward_with_state((), (), x, train=True)
        return y, cache.positive, L.Relu.backward((), cache, dy)[1]

    assert_same_bits(*both(run))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "layer",
    [
        L.Conv2D(4, 3),
        L.Conv2D(3, (2, 3), strides=(2, 1), padding="same"),
        L.Conv2D(4, 3, dilation=2, padding="same"),
        L.Conv2D(6, 3, groups=3),
        L.Conv1D(4, 3, padding="same"),
    ],
    ids=repr,
)
def test_convolution_windows(layer, dtype):
    rng = np.random.default_rng(8)
    shape = (9, 3) if "1D" in repr(layer) else (7, 8, 3)
    x = hostile((3, *shape), dtype, rng)
    x = np.where(np.isfinite(x), x, 1.5).astype(dtype)
    params = layer.init(0, shape, dtype=dtype)

    def run():
        y, _, cache = layer.forward_with_state(params, (), x, train=True)
        return y, layer.backward(params, cache, np.ones_like(y))

    assert_same_bits(*both(run))
