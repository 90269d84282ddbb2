"""Review fixes: Keras 3's l1_l2, a custom regularizer refused at save, one optimizer
object per model, Keras names compiled as Keras' optimizer objects, and the current
learning rate in the optimizer's config."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from funcnn import keras, optim
from funcnn.keras import layers, regularizers


def keras_real():
    """Keras 3 on JAX (funcnn.keras is another module), or a skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


def _their_config(optimizer):
    """A Keras optimizer's config (its variable's numpy() warns under NumPy 2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return optimizer.get_config()


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def _model(**dense):
    return keras.Sequential([layers.Dense(3, input_shape=(4,), **dense), layers.Dense(1)])


# ---------------------------------------------------------------- regularizers


def test_l1_l2_is_keras_3s_class_with_zeros():
    k = keras_real()
    ours, theirs = regularizers.l1_l2(), k.regularizers.l1_l2()
    assert regularizers.l1_l2 is regularizers.L1L2
    assert ours.get_config() == theirs.get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.l1_l2(l2=0.1).get_config() == {"l1": 0.0, "l2": 0.1}
    with pytest.raises(ValueError):
        k.regularizers.get("l1_l2")
    with pytest.raises(ValueError, match=r"unknown regularizer 'l1_l2'.*L1L2"):
        regularizers.get("l1_l2")
    assert regularizers.get("l1l2") == regularizers.L1L2()


class _Mine(regularizers.Regularizer):
    def value_and_grad(self, x):
        return float(np.sum(np.square(x, dtype=np.float64))), 2 * x


def test_a_custom_regularizer_is_refused_at_save(tmp_path):
    x, y = _data()
    model = _model(kernel_regularizer=_Mine())
    model.compile(keras.optimizers.SGD(0.01), "mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert "_Mine" in repr(model.layers[0])  # the config shows it; printing works
    with pytest.raises(ValueError, match=r"_Mine.*not saved.*L1, L2 and L1L2"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(ValueError, match="not saved"):
        model.to_json()
    with pytest.raises(ValueError, match="not saved"):  # load_model reads this file too
        model.save_weights(tmp_path / "w.weights.h5")


# ---------------------------------------------------------------- optimizers


def test_one_optimizer_object_is_one_models():
    opt = keras.optimizers.SGD(0.01)
    first, second = _model(), _model()
    first.compile(opt, "mse")
    first.compile(opt, "mse")  # compiled again into the same model
    with pytest.raises(ValueError, match=r"compiled into another model.*its own"):
        second.compile(opt, "mse")
    first.compile(keras.optimizers.SGD(0.01), "mse")  # the first no longer has it
    second.compile(opt, "mse")
    assert opt._bound() is second


def test_a_callback_on_one_model_does_not_set_anothers_rate():
    x, y = _data()
    opt = keras.optimizers.SGD(0.01)
    first, second = _model(), _model()
    first.compile(opt, "mse")
    second.compile(keras.optimizers.SGD.from_config(opt.get_config()), "mse")

    class SetRate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate = 0.5

    second.fit(x, y, epochs=1, verbose=0)
    first.fit(x, y, epochs=1, verbose=0, callbacks=[SetRate()])
    assert float(first.optimizer.learning_rate) == pytest.approx(0.5)
    assert float(second.optimizer.learning_rate) == pytest.approx(0.01)


def test_a_keras_name_compiles_keras_optimizer_object():
    k = keras_real()
    model = _model()
    model.compile("adam", "mse")
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    theirs = _their_config(k.optimizers.get("adam"))
    config = model.optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(theirs["learning_rate"])
    assert config["epsilon"] == pytest.approx(theirs["epsilon"])
    model.compile("RMSprop", "mse")
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    for name in ("adadelta", "lion", "adamw"):  # Keras' defaults, not funcnn's
        model.compile(name, "mse")
        assert model.optimizer.get_config()["learning_rate"] == pytest.approx(
            _their_config(k.optimizers.get(name))["learning_rate"]
        )
    assert model.compile_config["optimizer"]["class"] == "AdamW"
    model.compile("momentum", "mse")  # a name only funcnn has: its transformation
    assert isinstance(model.optimizer, keras.optimizers.Given)
    model.compile(optim.adam(0.01), "mse")
    assert isinstance(model.optimizer, keras.optimizers.Given)


def test_the_config_has_the_current_rate_and_the_file_resumes_it(tmp_path):
    k = keras_real()
    theirs = k.optimizers.SGD(0.1)
    theirs.learning_rate = 0.02
    x, y = _data()
    model = _model()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    assert model.optimizer.get_config()["learning_rate"] == 0.1  # before training
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.optimizer.learning_rate = 0.02
    rate = model.optimizer.get_config()["learning_rate"]
    assert rate == pytest.approx(0.02)
    assert rate == pytest.approx(float(_their_config(theirs)["learning_rate"]))
    assert model.compile_config["optimizer"]["config"]["learning_rate"] == pytest.approx(0.02)
    back = keras.models.load_model(model.save(tmp_path / "m.keras"))
    assert float(back.optimizer.learning_rate) == pytest.approx(0.02)
    assert back.optimizer.get_config()["learning_rate"] == pytest.approx(0.02)
    # the loaded model trains on at 0.02, as the saved one does
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    back.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # a rate set on the loaded model counts from there
    back.optimizer.learning_rate = 0.05
    assert float(back.optimizer.learning_rate) == pytest.approx(0.05)
    assert back.optimizer.get_config()["learning_rate"] == pytest.approx(0.05)
