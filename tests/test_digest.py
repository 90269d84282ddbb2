"""funcnn.testing.digest and assert_same_bits: pinning a seeded run's bits in a unit test;
check_layer's advice for writable params."""

import numpy as np
import pytest

from funcnn import fit, losses, optim
from funcnn import layers as L
from funcnn.layers.dense import Dense
from funcnn.testing import assert_same_bits, check_layer, digest


def seeded_run(seed=0, dtype=np.float32):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)).astype(dtype), rng.integers(0, 3, 64)
    model = L.serial(L.Dense(8), L.BatchNorm(), L.Relu, L.Dense(3))
    params = model.init(seed, (5,), dtype=dtype)
    return fit(
        model, params, losses.softmax_cross_entropy, optim.adam(1e-2), x, y, epochs=2,
        batch_size=16, rng=seed, state=model.init_state((5,), dtype=dtype), verbose=0,
    )  # fmt: skip


def test_a_seeded_run_has_one_digest_of_params_state_and_optimizer_state():
    a, b = seeded_run(), seeded_run()
    assert digest(a) == digest(b) == digest((b.params, b.state, b.opt_state))
    assert len(digest(a)) == 64 and digest(a) != digest(seeded_run(seed=1))
    assert digest(a) != digest(a.params)  # the state and the optimizer state count too
    assert_same_bits(a, b)


def test_dtype_shape_and_structure_change_the_digest():
    w = np.arange(6, dtype=np.float32)
    assert digest(w) != digest(w.astype(np.float64))
    assert digest(w) != digest(w.reshape(2, 3))
    assert digest({"a": w}) != digest({"b": w})  # the path counts
    assert digest(np.zeros(0, np.float32)) != digest(np.zeros((0, 1), np.float32))
    assert digest((1, None)) == digest((1, None)) != digest((1.0, None))


def test_assert_same_bits_names_the_first_differing_leaf():
    a = seeded_run()
    b = seeded_run(dtype=np.float64)
    with pytest.raises(
        AssertionError, match=r"\[0\]\[0\]\.w: actual is float32\[5, 8\], expected float64"
    ):
        assert_same_bits(a, b)
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    nudged = w.copy()
    nudged[1, 0] = np.nextafter(np.float32(3), np.float32(4))
    with pytest.raises(AssertionError) as caught:
        assert_same_bits({"w": w}, {"w": nudged})
    message = str(caught.value)
    assert message.startswith("'w' (float32[2, 2]): 1 of 4 entries differ; first at index [1, 0]")
    assert "largest difference 2.38e-07" in message
    with pytest.raises(AssertionError, match="differ in structure"):
        assert_same_bits((w, w), (w,))
    assert_same_bits(np.array([np.nan]), np.array([np.nan]))  # the same bits: equal


class WritableDense(Dense):
    def init(self, rng, input_shape, *, dtype=np.float32):
        params = super().init(rng, input_shape, dtype=dtype)
        return type(params)(params.w.copy(), params.b.copy())


def test_check_layer_says_how_to_make_params_read_only():
    with pytest.raises(AssertionError, match=r"writable params array.*funcnn\.tree\.freeze"):
        check_layer(WritableDense(2), (3,))
