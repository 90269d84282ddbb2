"""The Keras facade's round-2 bugs, each with a test that fails on the code before the fix:
``layer.trainable = False`` freezes (no updates; a frozen BatchNormalization in inference
mode), Keras callbacks fire in ``evaluate``, ``predict`` and validation, a
``LearningRateScheduler`` starts from ``SGD(learning_rate=0.0)``, and BatchNormalization's
moving variance follows the biased batch variance (Keras' rule). Keras 3 itself is the
oracle where it is installed (JAX backend; skipped elsewhere): the same model from the
same weights, trained a few epochs, ends with the same weights."""

import os

import numpy as np
import pytest

from funcnn import io, keras, optim
from funcnn import layers as L
from funcnn.keras import callbacks as keras_callbacks
from funcnn.keras import layers
from funcnn.testing import check_layer

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _data(n=64, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = (2.0 * rng.standard_normal((n, features)) + 1.0).astype(np.float32)
    y = (x @ rng.standard_normal((features, 1)) + 0.1).astype(np.float32)
    return x, y


def _bn_model(module, dense=8):
    return module.Sequential([
        module.Input((4,)), module.layers.Dense(dense, activation="relu"),
        module.layers.BatchNormalization(), module.layers.Dense(1),
    ])  # fmt: skip


# ---------------------------------------------------------------- trainable


def test_a_layer_frozen_after_construction_keeps_its_weights():
    x, y = _data()
    model = _bn_model(keras)
    model.compile(keras.optimizers.AdamW(0.01), "mse")
    model.fit(x, y, epochs=1, verbose=0)  # momentum and weight decay under way
    before = model.get_weights()
    model.layers[0].trainable = False
    model.layers[1].trainable = False  # BatchNormalization: inference mode too
    model.fit(x, y, epochs=2, verbose=0, batch_size=16)
    after = model.get_weights()
    for a, b in zip(before[:6], after[:6]):  # kernel, bias, gamma, beta, moving mean, var
        assert np.array_equal(a, b)
    assert not np.array_equal(before[6], after[6])  # the last Dense trained
    assert "Trainable params: 9" in model.summary(print_fn=None)
    model.layers[0].trainable = True  # unfrozen: it trains again
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(after[0], model.get_weights()[0])


def test_model_trainable_freezes_every_layer_and_the_flag_is_saved(tmp_path):
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(1)])
    model.compile("sgd", "mse")
    model.trainable = False
    assert not model.trainable and not any(layer.trainable for layer in model.layers)
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.layers[1].trainable = True
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert [layer.trainable for layer in back.layers] == [False, True]
    assert layers.Dense(2, trainable=False).get_config()["trainable"] is False
    with pytest.raises(TypeError, match="trainable must be True or False"):
        model.layers[0].trainable = "no"


def test_a_frozen_batch_normalization_normalizes_by_its_moving_statistics_in_fit():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.BatchNormalization(), layers.Dense(1)])
    model.compile("sgd", "mse")
    model.build()
    weights = model.get_weights()
    weights[2], weights[3] = np.full(4, 1.0, np.float32), np.full(4, 4.0, np.float32)
    model.set_weights(weights)
    model.layers[0].trainable = False
    history = model.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    # one step: the loss fit reports is the inference-mode model's loss on the batch
    assert history["loss"][0] == pytest.approx(_loss(weights, x, y), rel=1e-5)
    assert np.array_equal(model.get_weights()[2], weights[2])
    assert np.array_equal(model.get_weights()[3], weights[3])


def _loss(weights, x, y):
    gamma, beta, mean, var, kernel, bias = weights
    h = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    return float(np.mean((h @ kernel + bias - y) ** 2))


def test_freezing_matches_keras():
    k = keras_real()
    x, y = _data(96)
    theirs, ours = _bn_model(k), _bn_model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model in (theirs, ours):
        model.layers[0].trainable = False
        model.layers[1].trainable = False
        model.compile(optimizer=(k if model is theirs else keras).optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- callbacks


class Recorder(keras_callbacks.Callback):
    """Every hook Keras calls, with its arguments."""

    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args: calls.append((name, *args))
        return object.__getattribute__(self, name)


def _binary_model(module):
    model = module.Sequential([module.Input((4,)), module.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    return model


def test_callbacks_fire_in_evaluate_predict_and_validation():
    x, y = _data(70)
    labels = (y[:, 0] > 0).astype(np.float32)
    model = _binary_model(keras)
    rec = Recorder()
    model.fit(x, labels, epochs=1, verbose=0, validation_split=0.2, callbacks=[rec])
    names = [c[0] for c in rec.calls]
    assert names.index("on_test_begin") < names.index("on_test_end") < names.index("on_epoch_end")
    val = next(c for c in rec.calls if c[0] == "on_test_end")[1]
    assert set(val) == {"loss", "accuracy"}
    rec.calls.clear()
    scores = model.evaluate(x, labels, verbose=0, callbacks=[rec], return_dict=True)
    names = [c[0] for c in rec.calls]
    assert names == ["on_test_begin", *["on_test_batch_begin", "on_test_batch_end"] * 3,
                     "on_test_end"]  # fmt: skip
    assert rec.calls[-1][1] == scores == rec.calls[-2][2]  # the last running logs: the scores
    assert scores == model.evaluate(x, labels, verbose=0, return_dict=True)  # same bits
    first = rec.calls[2][2]
    assert first == model.evaluate(x[:32], labels[:32], verbose=0, return_dict=True)
    rec.calls.clear()
    pred = model.predict(x, callbacks=[rec], batch_size=50)
    assert np.array_equal(pred, model.predict(x))
    assert [c[0] for c in rec.calls] == ["on_predict_begin", "on_predict_batch_begin",
                                         "on_predict_batch_end", "on_predict_batch_begin",
                                         "on_predict_batch_end", "on_predict_end"]  # fmt: skip
    assert np.array_equal(rec.calls[4][2]["outputs"], pred[50:])
    fired = []
    model.evaluate(x, labels, verbose=0, callbacks=keras_callbacks.LambdaCallback(
        on_test_end=lambda logs: fired.append(logs)))  # fmt: skip
    assert fired and set(fired[0]) == {"loss", "accuracy"}


def test_evaluate_callbacks_see_what_keras_shows():
    k = keras_real()
    x, y = _data(70)
    labels = (y[:, 0] > 0).astype(np.float32)
    theirs, ours = _binary_model(k), _binary_model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    logs = {}
    for name, model, base in (("theirs", theirs, k.callbacks.Callback), ("ours", ours, None)):

        class Keep(base or keras_callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seen = []

            def on_test_batch_end(self, batch, logs=None):
                self.seen.append((batch, {n: float(v) for n, v in logs.items()}))

        keep = Keep()
        model.evaluate(x, labels, verbose=0, callbacks=[keep])
        logs[name] = keep.seen
    assert [b for b, _ in logs["ours"]] == [b for b, _ in logs["theirs"]]
    for (_, a), (_, b) in zip(logs["ours"], logs["theirs"]):
        assert a.keys() == b.keys()
        for n in a:
            assert a[n] == pytest.approx(b[n], rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- the learning rate


def test_a_learning_rate_scheduler_starts_from_a_rate_of_zero():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    before = model.get_weights()
    schedule = keras_callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[schedule])
    assert history["lr"] == pytest.approx([0.01, 0.02, 0.03])
    assert not np.array_equal(before[0], model.get_weights()[0])
    # the core: a constant 0 is a placeholder that set_learning_rate replaces
    opt = optim.sgd(0.0)
    state = optim.set_learning_rate(opt.init(np.zeros(2)), 0.5)
    updates, state = opt.update(np.ones(2), state)
    assert updates.tolist() == [-0.5, -0.5] and optim.current_learning_rate(state) == 0.5
    state = optim.set_learning_rate(optim.sgd(0.1).init(np.zeros(2)), 0.4)
    assert optim.current_learning_rate(state) == pytest.approx(0.4)


def test_a_scheduler_from_zero_matches_keras():
    k = keras_real()
    x, y = _data()

    def model_of(module):
        return module.Sequential([module.Input((4,)), module.layers.Dense(3, activation="tanh"),
                                  module.layers.Dense(1)])  # fmt: skip

    theirs, ours = model_of(k), model_of(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(module.optimizers.SGD(learning_rate=0.0), "mse")
        schedule = module.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1))
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[schedule])
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- BatchNormalization


def test_the_moving_variance_follows_the_biased_batch_variance():
    x, _ = _data(10)
    model = keras.Sequential([keras.Input((4,)), layers.BatchNormalization()])
    model.compile("sgd", "mse")
    model.fit(x, np.zeros_like(x), epochs=1, batch_size=10, verbose=0, shuffle=False)
    moving_var = model.get_weights()[3]
    np.testing.assert_allclose(moving_var, 0.99 + 0.01 * x.var(axis=0), rtol=1e-6)  # ddof=0
    core = L.BatchNorm(biased_running_var=True)
    check_layer(core, (3,))
    assert core != L.BatchNorm()  # the option is part of the layer: files keep it


def test_batch_norm_option_is_saved(tmp_path):
    model = L.serial(L.Dense(2), L.BatchNorm(momentum=0.9, biased_running_var=True))
    params, state = model.init(0, (3,)), model.init_state((3,))
    back = io.load(io.save(tmp_path / "bn.npz", model, params, state=state, input_shape=(3,)))
    assert back.model == model


def test_batch_normalization_trains_as_keras_does():
    k = keras_real()
    x, y = _data(96)
    theirs, ours = _bn_model(k), _bn_model(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(module.optimizers.SGD(0.02), "mse")
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(
        ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), rtol=2e-4, atol=2e-5
    )


# ---------------------------------------------------------------- the surface scripts use


def test_version_image_format_and_the_function_forms_of_losses():
    assert keras.__version__.startswith("3.") and keras.backend.image_data_format() == (
        "channels_last"
    )
    with pytest.raises(ValueError, match="channels-last"):
        keras.backend.set_image_data_format("channels_first")
    y, p = np.eye(3)[[0, 1, 2, 1]], np.full((4, 3), 1 / 3)
    np.testing.assert_allclose(keras.losses.categorical_crossentropy(y, p), np.log(3) * np.ones(4))
    model = keras.Sequential([keras.Input((3,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", keras.losses.categorical_crossentropy)
    assert model.compile_config["loss"] == "categorical_crossentropy"  # fused and saved


@pytest.mark.parametrize(
    "name", ["mean_squared_error", "mean_absolute_error", "binary_crossentropy",
             "categorical_crossentropy", "hinge", "kl_divergence", "poisson", "log_cosh",
             "mean_absolute_percentage_error", "cosine_similarity"],
)  # fmt: skip
def test_loss_functions_match_keras(name):
    k = keras_real()
    rng = np.random.default_rng(0)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 10)]
    p = rng.random((10, 4)).astype(np.float32) + 0.05
    p /= p.sum(axis=1, keepdims=True)
    ours = getattr(keras.losses, name)(y, p)
    np.testing.assert_allclose(ours, np.asarray(getattr(k.losses, name)(y, p)), rtol=1e-5)
    labels = np.argmax(y, axis=1).astype(np.int32)
    np.testing.assert_allclose(
        keras.losses.sparse_categorical_crossentropy(labels, p),
        np.asarray(k.losses.sparse_categorical_crossentropy(labels, p)), rtol=1e-5,
    )  # fmt: skip
