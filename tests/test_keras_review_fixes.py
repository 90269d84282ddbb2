"""Fixes from a review of the Keras facade, each with a test that fails on the code before
the fix."""

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _data(n=64, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


# ------------------------------------------- callbacks, regularizer None, training flag


def _dense_model():
    model = keras.Sequential([layers.Dense(1, input_shape=(4,))])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def test_weights_a_callback_sets_at_epoch_end_are_the_ones_fit_ends_with():
    # The Keras guide's early stopping: self.model.set_weights(self.best), then stop
    x, y = _data()
    model = _dense_model()

    class Restore(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best = self.model.get_weights()

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True
                self.model.set_weights(self.best)

    restore = Restore()
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[restore])
    assert len(history.history["loss"]) == 2
    for a, b in zip(model.get_weights(), restore.best):
        np.testing.assert_array_equal(a, b)


def test_weights_a_callback_sets_after_a_batch_train_on_from_there(tmp_path):
    # layer.set_weights after each batch, load_weights at the end: both reach fit
    x, y = _data()
    model = _dense_model()
    model.build()
    model.save_weights(tmp_path / "start.weights.h5")
    start = model.get_weights()
    seen = []

    class Zero(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(self.model.layers[0].get_weights()[0].copy())

        def on_train_batch_end(self, batch, logs=None):
            kernel, bias = self.model.layers[0].get_weights()
            self.model.layers[0].set_weights([np.zeros_like(kernel), bias])

    class Reload(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.model.load_weights(tmp_path / "start.weights.h5")

    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Zero()])
    assert len(seen) == 4
    for kernel in seen[1:]:  # each batch starts from the kernel the callback set
        np.testing.assert_array_equal(kernel, 0.0)
    np.testing.assert_array_equal(model.get_weights()[0], 0.0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Reload()])
    for a, b in zip(model.get_weights(), start):
        np.testing.assert_array_equal(a, b)


def test_a_nested_models_weights_set_by_a_callback_reach_fit():
    x, y = _data()
    base = keras.Sequential([layers.Dense(3, input_shape=(4,))], name="base")
    model = keras.Sequential([base, layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    model.build()
    start = base.get_weights()

    class Restore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            base.set_weights(start)

    model.fit(x, y, epochs=2, verbose=0, callbacks=[Restore()])
    for a, b in zip(base.get_weights(), start):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.get_weights()[0], start[0])


@pytest.mark.parametrize("cls", [layers.BatchNormalization, layers.LayerNormalization])
def test_normalization_layers_take_none_regularizers(cls):
    layer = cls(gamma_regularizer=None, beta_regularizer=None)
    assert "gamma_regularizer" not in layer.get_config()
    model = keras.Sequential([keras.Input((4,)), layer, layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = _data(16)
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="gamma_regularizer"):  # a real one: still refused
        cls(gamma_regularizer="l2")
    with pytest.raises(TypeError, match="recurrent_regularizer"):
        layers.Dense(2, recurrent_regularizer=keras.regularizers.L2(0.1))


def _functional_base():
    inputs = keras.Input((4,))
    h = layers.BatchNormalization()(layers.Dense(6)(inputs))
    return keras.Model(inputs, layers.Dense(5)(h), name="base")


def test_training_false_belongs_to_the_call_not_the_model(tmp_path):
    x, y = _data(48)
    base = _functional_base()
    inputs = keras.Input((4,))
    model_a = keras.Model(inputs, layers.Dense(1)(base(inputs, training=False)))
    t = keras.Input((4,))
    model_b = keras.Model(t, layers.Dense(1)(base(t)))  # a later call, training by default
    assert model_a.get_config()["layers"][0]["config"]["training"] is False
    assert "training" not in model_b.get_config()["layers"][0]["config"]
    assert "training" not in base.get_config()

    model_a.compile(keras.optimizers.SGD(0.05), "mse")
    before = base.get_weights()
    model_a.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(base.get_weights()[4:6], before[4:6]):  # A: inference mode
        np.testing.assert_array_equal(a, b)
    model_a.save(tmp_path / "a.keras")
    loaded = keras.models.load_model(tmp_path / "a.keras")
    assert loaded._inference_calls == {0}

    model_b.compile(keras.optimizers.SGD(0.05), "mse")
    model_b.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert not np.array_equal(base.get_weights()[4], before[4])  # B: training mode
    again = keras.models.model_from_json(model_b.to_json())
    assert again._inference_calls == frozenset()
