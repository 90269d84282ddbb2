"""``keras.Input(shape=(None,))``: sequences (and images) of any length through the Keras
facade, as Keras 3's keras-io text models write them. Output shapes show None, one set of
weights runs every length (checked at build: a weight that depends on the length is a
clear error), fit/predict/evaluate take any length and generators of batches of several
lengths, and save/load/JSON keep the None. Keras 3 (JAX) is the oracle where installed."""

import os

import numpy as np
import pytest

from funcnn import keras
from funcnn.keras import layers

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64:UserWarning"),  # JAX
]


def _tokens(n=48, length=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 100, (n, length))
    return x, (x[:, 0] > 50).astype("float32")


def _bidirectional(module):
    """keras-io's "Bidirectional LSTM on IMDB", smaller."""
    inputs = module.Input(shape=(None,), dtype="int32")
    x = module.layers.Embedding(100, 8)(inputs)
    x = module.layers.Bidirectional(module.layers.LSTM(4, return_sequences=True))(x)
    x = module.layers.Bidirectional(module.layers.LSTM(4))(x)
    outputs = module.layers.Dense(1, activation="sigmoid")(x)
    return module.Model(inputs, outputs)


def _text_cnn(module):
    """keras-io's "Text classification from scratch" model, smaller."""
    inputs = module.Input(shape=(None,), dtype="int64")
    x = module.layers.Embedding(100, 8)(inputs)
    x = module.layers.Dropout(0.5)(x)
    x = module.layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = module.layers.Conv1D(16, 7, padding="valid", activation="relu", strides=3)(x)
    x = module.layers.GlobalMaxPooling1D()(x)
    x = module.layers.Dense(16, activation="relu")(x)
    outputs = module.layers.Dense(1, activation="sigmoid", name="predictions")(x)
    return module.Model(inputs, outputs)


def test_shapes_show_none_and_one_model_runs_every_length():
    model = _bidirectional(keras)
    assert model.input_shape == (None,)
    text = model.summary(print_fn=None)
    assert "(None, None, 8)" in text and "(None, None, 8)" in text.split("bidirectional")[1]
    assert "(None, 8)" in text.split("bidirectional_1")[1]
    x, y = _tokens()
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:, :12], y), verbose=0)
    assert len(history.history["val_loss"]) == 2
    for length in (1, 7, 30, 64):
        assert model.predict(x[:, :length], verbose=0).shape == (48, 1)
    assert np.isfinite(model.evaluate(x[:, :9], y, verbose=0)[0])


def test_a_text_cnn_takes_any_length_its_convolutions_allow():
    model = _text_cnn(keras)
    model.compile("adam", "binary_crossentropy")
    x, y = _tokens()
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x[:, :25], verbose=0).shape == (48, 1)
    with pytest.raises(ValueError):
        model.predict(x[:, :5], verbose=0)  # shorter than the first kernel


def test_sequential_with_a_masked_sequence_of_any_length():
    model = keras.Sequential(
        [keras.Input((None,)), layers.Embedding(100, 8, mask_zero=True), layers.LSTM(4),
         layers.Dense(1)]
    )  # fmt: skip
    model.compile("adam", "mse")
    x, y = _tokens()
    x[:, 20:] = 0  # padding
    model.fit(x, y, epochs=1, verbose=0)
    # the padded steps are masked: the outputs do not depend on how much padding follows
    np.testing.assert_allclose(
        model.predict(x[:, :20], verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7
    )


def test_images_of_any_size():
    model = keras.Sequential(
        [keras.Input((None, None, 3)), layers.Conv2D(4, 3, activation="relu"),
         layers.GlobalAveragePooling2D(), layers.Dense(2)]
    )  # fmt: skip
    assert "(None, None, None, 4)" in model.summary(print_fn=None)
    rng = np.random.default_rng(0)
    for size in ((9, 13), (20, 5)):
        assert model.predict(rng.standard_normal((2, *size, 3)), verbose=0).shape == (2, 2)


def test_a_weight_that_depends_on_the_length_is_refused():
    model = keras.Sequential([keras.Input((None, 3)), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match="layer 'dense' has weights whose shape depends"):
        model.build()


def test_batches_of_several_lengths_from_a_generator():
    model = _bidirectional(keras)
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(1)

    def batches():
        for length in (10, 20, 15):
            x = rng.integers(1, 100, (8, length))
            yield x, (x[:, 0] > 50).astype("float32")

    history = model.fit(batches(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("suffix", ["npz", "json"])
def test_save_load_and_json_keep_the_none(tmp_path, suffix):
    model = _bidirectional(keras)
    model.compile("adam", "binary_crossentropy")
    x, y = _tokens()
    model.fit(x, y, epochs=1, verbose=0)
    path = model.save(tmp_path / f"m.{suffix}")
    again = keras.load_model(path)
    assert again.input_shape == (None,)
    for length in (5, 30):
        np.testing.assert_array_equal(
            again.predict(x[:, :length], verbose=0), model.predict(x[:, :length], verbose=0)
        )
    assert keras.models.model_from_json(model.to_json()).input_shape == (None,)


def test_the_batch_axis_is_still_refused_in_build():
    model = keras.Sequential([layers.Dense(2)])
    with pytest.raises(TypeError, match="without the batch axis"):
        model.build((None, 784))


@pytest.mark.parametrize("make", [_bidirectional, _text_cnn])
def test_outputs_and_training_match_keras(make):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    k = pytest.importorskip("keras")
    theirs, ours = make(k), make(keras)
    ours.build()
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    x, y = _tokens(length=40)
    for length in (30, 40):
        np.testing.assert_allclose(
            ours.predict(x[:, :length], verbose=0),
            np.asarray(theirs.predict(x[:, :length], verbose=0)),
            rtol=1e-5,
            atol=1e-6,
        )
    if make is _text_cnn:
        return  # its Dropout masks are not Keras' (docs/keras.md)
    for model, module in ((theirs, k), (ours, keras)):
        model.compile(module.optimizers.SGD(0.1), "binary_crossentropy")
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [_bidirectional, None])
def test_plot_model_draws_a_model_of_any_length(tmp_path, make):
    model = make(keras) if make else keras.Sequential(
        [keras.Input((None,)), layers.Embedding(100, 8), layers.LSTM(4)]
    )  # fmt: skip
    path = tmp_path / "model.png"
    keras.utils.plot_model(model, to_file=path, show_shapes=True, dpi=40)
    assert path.stat().st_size > 0


def _shrinking(module):
    """keras-io's "Using pre-trained word embeddings" model, smaller: three convolutions and
    two pools take the length down."""
    lay = module.layers
    inputs = module.Input(shape=(None,), dtype="int64")
    x = lay.Embedding(100, 8)(inputs)
    for pool in (5, 5, None):
        x = lay.Conv1D(16, 5, activation="relu")(x)
        x = lay.MaxPooling1D(pool)(x) if pool else lay.GlobalMaxPooling1D()(x)
    return module.Model(inputs, lay.Dense(3)(x))


def test_a_stack_that_shrinks_the_length_builds_and_matches_keras():
    ours = _shrinking(keras)
    x = np.ones((2, 200), "int64")
    assert ours.predict(x, verbose=0).shape == (2, 3)
    assert layers.Conv1D(8, 400, strides=160)(keras.Input((None, 1))).shape == (None, 8)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    k = pytest.importorskip("keras")
    theirs = _shrinking(k)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    x = np.random.default_rng(0).integers(1, 100, (4, 180))
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), np.asarray(theirs.predict(x, verbose=0)), rtol=1e-4, atol=1e-5
    )


def test_a_long_pool_does_not_hide_a_length_dependence():
    inputs = keras.Input((None, 1))
    x = layers.MaxPooling1D(200, padding="same")(inputs)
    model = keras.Model(inputs, layers.Dense(1)(layers.Flatten()(x)))
    with pytest.raises(ValueError, match="layer 'dense' has weights whose shape depends"):
        model.build()


def test_input_shape_with_a_none_length_on_a_first_layer():
    model = keras.Sequential([layers.LSTM(3, input_shape=(None, 4)), layers.Dense(1)])
    assert model.input_shape == (None, 4)
    rng = np.random.default_rng(0)
    for length in (5, 9):
        assert model.predict(rng.standard_normal((2, length, 4)), verbose=0).shape == (2, 1)
