"""AMSGrad: ``optim.amsgrad`` against its formula (the largest raw second moment so far,
bias-corrected by the current step), against ``torch.optim.Adam(amsgrad=True)`` where
PyTorch is installed, and the Keras facade's ``Adam(amsgrad=True)``/``AdamW(amsgrad=True)``
against Keras 3 where it is installed; saved and resumed with its state."""

import os

import numpy as np
import pytest

from funcnn import keras, optim
from funcnn.keras import optimizers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

# Gradients that shrink, so that with b2 = 0.5 the second moment falls and the maximum
# holds the old one. The updates against the formula: tests/test_optim_updates.py.
P0 = (np.array([0.5, -1.5, 2.0]), np.array([[0.3, -0.7]]))
SHRINKING = [
    (np.array([0.2, -0.4, 1.0]), np.array([[0.05, -0.3]])),
    (np.array([-0.1, 0.3, 0.8]), np.array([[0.0, 0.6]])),
    (np.array([0.01, 0.1, -0.05]), np.array([[-0.2, 0.02]])),
    (np.array([0.02, -0.01, 0.0]), np.array([[0.1, -0.01]])),
]


def _updates(opt):
    params, state, out = P0, opt.init(P0), []
    for g in SHRINKING:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(u) for u in updates]))
    return out


def test_the_maximum_engages_and_differs_from_adam():
    """Where the second moment falls, AMSGrad keeps the larger one and steps less."""
    ams = _updates(optim.amsgrad(0.02, b2=0.5))
    adam = _updates(optim.adam(0.02, b2=0.5))
    np.testing.assert_allclose(ams[0], adam[0], rtol=1e-14)  # step 1: nu_max = nu
    assert np.any(np.abs(ams[3]) < np.abs(adam[3]))
    assert np.all(np.abs(ams[3]) <= np.abs(adam[3]) + 1e-15)


def test_state_is_read_only_and_the_inputs_are_not_touched():
    params = tuple(np.array(p) for p in P0)
    grads = tuple(np.array(g) for g in SHRINKING[0])
    copies = [g.copy() for g in grads]
    opt = optim.amsgrad(0.1)
    state = opt.init(params)
    _, state = opt.update(grads, state, params)
    for g, c in zip(grads, copies):
        np.testing.assert_array_equal(g, c)
    inner = state.inner[0] if hasattr(state, "inner") else state[0]
    for leaf in (*inner.mu, *inner.nu, *inner.nu_max):
        assert not leaf.flags.writeable


def test_float32_stays_float32():
    params = (np.ones(3, np.float32),)
    opt = optim.amsgrad(0.1)
    updates, _ = opt.update((np.full(3, 0.5, np.float32),), opt.init(params), params)
    assert updates[0].dtype == np.float32


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="eps"):
        optim.amsgrad(0.1, eps=0.0)
    with pytest.raises(ValueError, match="b2"):
        optim.amsgrad(0.1, b2=1.5)
    with pytest.raises(TypeError, match="amsgrad must be True or False"):
        optimizers.Adam(amsgrad="yes")


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) * 0.5**k for k in range(6)]  # shrinking: the max engages
    w = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.01, betas=(0.9, 0.6), eps=1e-8, amsgrad=True)
    ours, params = optim.amsgrad(0.01, b2=0.6), (w0,)
    state = ours.init(params)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        updates, state = ours.update((g,), state, params)
        params = optim.apply_updates(params, updates)
    np.testing.assert_allclose(params[0], w.detach().numpy(), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- the Keras facade


def _data(n=64, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = (2.0 * rng.standard_normal((n, features)) + 1.0).astype(np.float32)
    y = (x @ rng.standard_normal((features, 1)) + 0.1).astype(np.float32)
    return x, y


def _model(module):
    return module.Sequential([module.Input((4,)), module.layers.Dense(3, activation="tanh"),
                              module.layers.Dense(1)])  # fmt: skip


def test_facade_adam_amsgrad_is_optim_amsgrad():
    x, y = _data()
    a, b = _model(keras), _model(keras)
    a.compile(optimizers.Adam(0.01, amsgrad=True), "mse")
    b.compile(optim.amsgrad(0.01, eps=1e-7), "mse")
    b.build()
    a.build()
    b.set_weights(a.get_weights())
    for model in (a, b):
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert optimizers.Adam(0.01, amsgrad=True).get_config()["amsgrad"] is True


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_facade_amsgrad_matches_keras(name):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    k = pytest.importorskip("keras")
    x, y = _data()
    theirs, ours = _model(k), _model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):
        opt = getattr(module.optimizers, name)(learning_rate=0.01, beta_2=0.6, amsgrad=True)
        model.compile(opt, "mse")  # beta_2 = 0.6: the second moment falls, the maximum holds
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


def test_saved_and_resumed_with_its_state(tmp_path):
    x, y = _data()
    model = _model(keras)
    model.compile(optimizers.Adam(0.01, amsgrad=True), "mse")
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.save(tmp_path / "m.npz")
    again = keras.load_model(tmp_path / "m.npz")
    assert again.optimizer.get_config()["amsgrad"] is True
    for m in (model, again):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
